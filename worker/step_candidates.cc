#include "worker/step_candidates.h"

#include <exception>

#include "kernels/elementwise.h"

namespace shardlm {

std::vector<RowCandidates> select_step_candidates(const float* logits, int64_t slice, int64_t token_offset,
                                                  const std::vector<RowRequest>& requests) {
  const int64_t rows = static_cast<int64_t>(requests.size());
  std::vector<RowCandidates> out(requests.size());
  // Exceptions (an allocation failing) must not leave the parallel region: the first one is rethrown.
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    try {
      out[static_cast<size_t>(r)] =
          select_row_candidates(logits + r * slice, slice, token_offset, requests[static_cast<size_t>(r)], &exp_sums);
    } catch (...) {
#pragma omp critical(shardlm_step_candidates_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace shardlm
