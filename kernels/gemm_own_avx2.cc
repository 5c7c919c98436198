// AVX2 micro-kernels of the own GEMM: an MR x NR-panel register tile, two ymm (8 columns each) per
// (row, panel) accumulator, weights widened from bf16 in registers. Arithmetic as in gemm_own.h.
#include <algorithm>
#include <utility>

#include "kernels/gemm_own.h"
#include "kernels/simd_math.h"

namespace shardlm::gemm {
namespace {

template <bool kBf16>
SHARDLM_AVX2 inline __m256 load_half_row(const void* w, int64_t offset) {
  if constexpr (kBf16) {
    return simd::load_bf16_avx2(static_cast<const uint16_t*>(w) + offset);
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(w) + offset);
  }
}

SHARDLM_AVX2 inline void add_to_y(float* yp, __m256 v, int valid) {
  if (valid >= 8) {
    _mm256_storeu_ps(yp, _mm256_add_ps(_mm256_loadu_ps(yp), v));
  } else if (valid > 0) {
    const __m256i mask = simd::tail_mask_avx2(valid);
    _mm256_maskstore_ps(yp, mask, _mm256_add_ps(_mm256_maskload_ps(yp, mask), v));
  }
}

template <int MR, int NR, bool kBf16>
SHARDLM_AVX2 void micro(const float* x, int64_t ldx, const void* w, int64_t panel_stride, int64_t k, int64_t k0,
                        int64_t k1, float* y, int64_t ldy, int valid_last) {
  constexpr int kV = 2 * NR;  // ymm vectors per row of the tile
  for (int64_t c0 = k0; c0 < k1; c0 += kKChunk) {
    const int64_t c1 = std::min(c0 + kKChunk, k1);
    __m256 acc[MR][kV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
      for (int v = 0; v < kV; ++v) acc[r][v] = _mm256_setzero_ps();
    }
    const ChunkRows rows = chunk_rows(c0, k);
    for (int64_t kk = c0; kk < c1; ++kk) {
      const int64_t row = rows.row(kk - c0) * kPanel;
      __m256 xb[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) xb[r] = _mm256_broadcast_ss(x + r * ldx + kk);
#pragma GCC unroll 16
      for (int v = 0; v < kV; ++v) {
        const __m256 wv = load_half_row<kBf16>(w, (v / 2) * panel_stride + row + (v % 2) * 8);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][v] = _mm256_fmadd_ps(xb[r], wv, acc[r][v]);
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float* yr = y + r * ldy;
#pragma GCC unroll 16
      for (int v = 0; v < kV - 2; ++v) add_to_y(yr + v * 8, acc[r][v], 8);
      add_to_y(yr + (kV - 2) * 8, acc[r][kV - 2], valid_last);
      add_to_y(yr + (kV - 1) * 8, acc[r][kV - 1], valid_last - 8);
    }
  }
}

// y[0, 8) of a panel row as far as valid columns go (zeros past them), and back.
SHARDLM_AVX2 inline __m256 load_y(const float* yp, int valid) {
  if (valid >= 8) return _mm256_loadu_ps(yp);
  if (valid <= 0) return _mm256_setzero_ps();
  return _mm256_maskload_ps(yp, simd::tail_mask_avx2(valid));
}
SHARDLM_AVX2 inline void store_y(float* yp, __m256 v, int valid) {
  if (valid >= 8) {
    _mm256_storeu_ps(yp, v);
  } else if (valid > 0) {
    _mm256_maskstore_ps(yp, simd::tail_mask_avx2(valid), v);
  }
}

// A GEMV tile prefetches its weights this far ahead: the hardware prefetchers alone fall behind.
constexpr int64_t kGemvPrefetchBytes = 8192;

// The GEMV tile (one panel, one row), as micro_gemv of the AVX-512 kernels: a complete pair of
// chunks is stored interleaved (gemm_own.h), so the two chunks' sums run side by side over one
// sequential stream (reading a pair's rows chunk by chunk would take every other line twice);
// each chunk's sum is added to y in chunk order, as the arithmetic prescribes.
template <bool kBf16>
SHARDLM_AVX2 void micro_gemv(const float* x, int64_t /*ldx*/, const void* w, int64_t /*panel_stride*/, int64_t k,
                             int64_t k0, int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  __m256 t0 = load_y(y, valid_last), t1 = load_y(y + 8, valid_last - 8);
  // fma of x into (lo, hi) with panel row `row`.
  auto fma_row = [&](float xv, int64_t row, __m256& lo, __m256& hi) SHARDLM_AVX2 {
    const __m256 xb = _mm256_set1_ps(xv);
    lo = _mm256_fmadd_ps(xb, load_half_row<kBf16>(w, row * kPanel), lo);
    hi = _mm256_fmadd_ps(xb, load_half_row<kBf16>(w, row * kPanel + 8), hi);
  };
  // Rows are prefetched kGemvPrefetchBytes ahead, a line at a time.
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  const char* wb = static_cast<const char*>(w) + kGemvPrefetchBytes;
  int64_t c0 = k0;
  while (c0 < k1) {
    if (c0 % (2 * kKChunk) == 0 && c0 + 2 * kKChunk <= std::min(k, k1)) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
      const float* xa = x + c0;
      const float* xb = x + c0 + kKChunk;
      for (int64_t i = 0; i < kKChunk / 2; ++i) {
        const int64_t row = c0 + 4 * i;
#pragma GCC unroll 4
        for (int64_t line = 0; line < 4 * kRowBytes / 64; ++line) _mm_prefetch(wb + row * kRowBytes + line * 64, _MM_HINT_T0);
        fma_row(xa[2 * i], row, a0, a1);
        fma_row(xb[2 * i], row + 2, b0, b1);
        fma_row(xa[2 * i + 1], row + 1, a0, a1);
        fma_row(xb[2 * i + 1], row + 3, b0, b1);
      }
      t0 = _mm256_add_ps(t0, a0);
      t1 = _mm256_add_ps(t1, a1);
      t0 = _mm256_add_ps(t0, b0);
      t1 = _mm256_add_ps(t1, b1);
      c0 += 2 * kKChunk;
    } else {
      const int64_t c1 = std::min(c0 + kKChunk, k1);
      const ChunkRows rows = chunk_rows(c0, k);
      __m256 s0 = _mm256_setzero_ps(), s1 = s0;
      for (int64_t kk = c0; kk < c1; ++kk) {
        const int64_t row = rows.row(kk - c0);
        if ((kk - c0) % 2 == 0) {
#pragma GCC unroll 2
          for (int64_t line = 0; line < 2 * kRowBytes / 64; ++line) _mm_prefetch(wb + row * kRowBytes + line * 64, _MM_HINT_T0);
        }
        fma_row(x[kk], row, s0, s1);
      }
      t0 = _mm256_add_ps(t0, s0);
      t1 = _mm256_add_ps(t1, s1);
      c0 = c1;
    }
  }
  store_y(y, t0, valid_last);
  store_y(y + 8, t1, valid_last - 8);
}

// Widest panel count per row count: accumulators + broadcasts + 1 weight register <= 16 ymm.
constexpr int kMrMax = 4;
constexpr int kNrMax[kMrMax + 1] = {0, 4, 2, 1, 1};

template <int MR, int... NRs>
void fill_row(MicroKernelSet& set, std::integer_sequence<int, NRs...>) {
  ((set.f32[MR][NRs + 1] = &micro<MR, NRs + 1, false>), ...);
  ((set.bf16[MR][NRs + 1] = &micro<MR, NRs + 1, true>), ...);
}

template <int... MRs>
void fill(MicroKernelSet& set, std::integer_sequence<int, MRs...>) {
  (fill_row<MRs + 1>(set, std::make_integer_sequence<int, kNrMax[MRs + 1]>{}), ...);
}

MicroKernelSet make_set() {
  MicroKernelSet set;
  set.mr_max = kMrMax;
  for (int mr = 1; mr <= kMrMax; ++mr) set.nr_max[mr] = kNrMax[mr];
  set.bf16_gemv_nr = 1;  // one sequential stream per thread, the chunk pairs side by side
  fill(set, std::make_integer_sequence<int, kMrMax>{});
  set.bf16[1][1] = &micro_gemv<true>;
  set.f32[1][1] = &micro_gemv<false>;
  return set;
}

}  // namespace

const MicroKernelSet& avx2_kernels() {
  static const MicroKernelSet set = make_set();
  return set;
}

}  // namespace shardlm::gemm
