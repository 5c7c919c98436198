// Portable (scalar) instantiation of the attention row-tile kernel (attention_impl.inl).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention_simd.h"
#include "kernels/simd_math.h"

namespace shardlm::detail {

#include "kernels/attention_impl.inl"

void attention_tile_scalar(const AttnTileArgs& args, const AttnRow* rows, int n_rows) {
  attention_tile_t<simd::VecScalar, float>(args, rows, n_rows);
}

void attention_tile_scalar_bf16(const AttnTileArgs& args, const AttnRow* rows, int n_rows) {
  attention_tile_t<simd::VecScalar, uint16_t>(args, rows, n_rows);
}

}  // namespace shardlm::detail
