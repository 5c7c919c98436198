// Dealing a count of units (heads, MLP columns, experts, vocabulary rows) out to workers as evenly as
// the shapes allow: contiguous ranges in worker order whose sizes differ by at most one granule.
#pragma once

#include <cstdint>
#include <vector>

#include "model/checkpoint.h"

namespace shardlm {

// Splits [0, total) into `parts` contiguous ranges, worker w's range following worker w-1's.
// The range is dealt in granules of `granule` items (total must be a multiple of it): every part gets
// total/granule/parts granules and the remaining granules go one each to the parts first_extra,
// first_extra+1, ... (cyclically). Sizes therefore differ by at most one granule. Throws Error for
// parts < 1, granule < 1, negative totals or a total that is not a multiple of the granule.
std::vector<Range> split_even(int64_t total, int parts, int64_t granule = 1, int first_extra = 0);

// The granule to deal `total` items with: `preferred` when total is a multiple of it and every part
// still gets at least one granule, else 1.
int64_t choose_granule(int64_t total, int parts, int64_t preferred);

// Cycles the extra granules of successive splits over the workers, so that over many layers every
// worker receives the same number of extras (within one): call next() with each split's remainder.
class ExtraCursor {
 public:
  explicit ExtraCursor(int parts) : parts_(parts) {}
  // First part to receive an extra granule in a split of `total_granules`; advances the cursor.
  int next(int64_t total_granules);

 private:
  int parts_;
  int cursor_ = 0;
};

}  // namespace shardlm
