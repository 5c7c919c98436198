#include "partition/even_split.h"

#include "common/error.h"

namespace shardlm {

std::vector<Range> split_even(int64_t total, int parts, int64_t granule, int first_extra) {
  if (parts < 1) fail("split: number of parts must be at least 1 (got {})", parts);
  if (granule < 1) fail("split: granule must be at least 1 (got {})", granule);
  if (total < 0) fail("split: total must not be negative (got {})", total);
  if (total % granule != 0) fail("split: total {} is not a multiple of the granule {}", total, granule);
  const int64_t granules = total / granule;
  const int64_t base = granules / parts;
  const int64_t extras = granules % parts;
  const int start = ((first_extra % parts) + parts) % parts;
  std::vector<Range> ranges(parts);
  int64_t at = 0;
  for (int w = 0; w < parts; ++w) {
    const int64_t offset = (w - start + parts) % parts;  // position of w in the extra order
    const int64_t count = base + (offset < extras ? 1 : 0);
    ranges[w] = {at, at + count * granule};
    at += count * granule;
  }
  return ranges;
}

int64_t choose_granule(int64_t total, int parts, int64_t preferred) {
  if (preferred > 1 && total % preferred == 0 && total / preferred >= parts) return preferred;
  return 1;
}

int ExtraCursor::next(int64_t total_granules) {
  const int first = cursor_;
  cursor_ = static_cast<int>((cursor_ + total_granules % parts_) % parts_);
  return first;
}

}  // namespace shardlm
