// The sampling candidates of every logits row of a step on this rank's vocabulary slice
// (proto/logit_candidates.h), the rows in parallel: with several sequences in a step each row's
// selection is a pass over its whole slice (262144 logits on one rank), which would otherwise run on
// one thread while the others wait. Each row is selected exactly as alone, so the result does not
// depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/logit_candidates.h"

namespace shardlm {

// Row r's logits are logits[r * slice, (r + 1) * slice), token ids from token_offset; one request per row.
std::vector<RowCandidates> select_step_candidates(const float* logits, int64_t slice, int64_t token_offset,
                                                  const std::vector<RowRequest>& requests);

}  // namespace shardlm
