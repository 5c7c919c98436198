// The check every weight packer (own, quantised, AMX) and Linear run on a matrix's shape [n, k].
#pragma once

#include <cstdint>

#include "common/error.h"

namespace shardlm {

inline void check_weight_shape(int64_t n, int64_t k) {
  if (n < 0 || k < 0) fail("linear weight shape [{}, {}] is negative", n, k);
}

}  // namespace shardlm
