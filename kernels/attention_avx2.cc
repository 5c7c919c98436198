// AVX2 instantiation of the attention row-tile kernel (attention_impl.inl).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention_simd.h"
#include "kernels/simd_math.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace shardlm::detail {

#include "kernels/attention_impl.inl"

void attention_tile_avx2(const AttnTileArgs& args, const AttnRow* rows, int n_rows) {
  attention_tile_t<simd::VecAvx2, float>(args, rows, n_rows);
}

void attention_tile_avx2_bf16(const AttnTileArgs& args, const AttnRow* rows, int n_rows) {
  attention_tile_t<simd::VecAvx2, uint16_t>(args, rows, n_rows);
}

}  // namespace shardlm::detail

#pragma GCC pop_options
