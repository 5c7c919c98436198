// AVX-512 instantiation of the attention row-tile kernel (attention_impl.inl).
// GCC 12 reports _mm512_undefined_*() inside its own AVX-512 intrinsics as uninitialised reads.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention_simd.h"
#include "kernels/simd_math.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")

namespace shardlm::detail {

#include "kernels/attention_impl.inl"

void attention_tile_avx512(const AttnTileArgs& args, const AttnRow* rows, int n_rows) {
  attention_tile_t<simd::VecAvx512, float>(args, rows, n_rows);
}

void attention_tile_avx512_bf16(const AttnTileArgs& args, const AttnRow* rows, int n_rows) {
  attention_tile_t<simd::VecAvx512, uint16_t>(args, rows, n_rows);
}

}  // namespace shardlm::detail

#pragma GCC pop_options
