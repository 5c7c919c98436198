// AVX-512 micro-kernels of the own GEMM: an MR x NR-panel register tile, one zmm (16 columns) per
// (row, panel) accumulator, weights widened from bf16 in registers. Arithmetic as in gemm_own.h.
// GCC 12 reports _mm512_undefined_*() inside its own AVX-512 intrinsics as uninitialised reads.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <utility>

#include "kernels/gemm_own.h"
#include "kernels/simd_math.h"

namespace shardlm::gemm {
namespace {

template <bool kBf16>
SHARDLM_AVX512 inline __m512 load_panel_row(const void* w, int64_t offset) {
  if constexpr (kBf16) {
    return simd::load_bf16_avx512(static_cast<const uint16_t*>(w) + offset);
  } else {
    return _mm512_loadu_ps(static_cast<const float*>(w) + offset);
  }
}

template <int MR, int NR, bool kBf16>
SHARDLM_AVX512 void micro(const float* x, int64_t ldx, const void* w, int64_t panel_stride, int64_t k, int64_t k0,
                          int64_t k1, float* y, int64_t ldy, int valid_last) {
  const __mmask16 last_mask = simd::tail_mask_avx512(valid_last);
  for (int64_t c0 = k0; c0 < k1; c0 += kKChunk) {
    const int64_t c1 = std::min(c0 + kKChunk, k1);
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_setzero_ps();
    }
    const ChunkRows rows = chunk_rows(c0, k);
    for (int64_t kk = c0; kk < c1; ++kk) {
      const int64_t row = rows.row(kk - c0) * kPanel;
      __m512 wv[NR];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = load_panel_row<kBf16>(w, j * panel_stride + row);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512 xb = _mm512_set1_ps(x[r * ldx + kk]);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_fmadd_ps(xb, wv[j], acc[r][j]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      float* yr = y + r * ldy;
#pragma GCC unroll 8
      for (int j = 0; j < NR - 1; ++j) {
        _mm512_storeu_ps(yr + j * kPanel, _mm512_add_ps(_mm512_loadu_ps(yr + j * kPanel), acc[r][j]));
      }
      float* yl = yr + (NR - 1) * kPanel;
      _mm512_mask_storeu_ps(yl, last_mask, _mm512_add_ps(_mm512_maskz_loadu_ps(last_mask, yl), acc[r][NR - 1]));
    }
  }
}

// A GEMV tile (one panel, one row) prefetches its weights this far ahead: the hardware prefetchers
// alone fall behind.
constexpr int64_t kGemvPrefetchBytes = 8192;

// The GEMV tile: a complete pair of chunks is stored interleaved (gemm_own.h), so the two chunks'
// sums run side by side (one fma chain alone is bound by the fma latency, ~39 GB/s of bf16 on a
// Zen 5 core) while the weights are read as one sequential stream; each chunk's sum is added to y
// in chunk order, as the arithmetic prescribes. Other chunks (an incomplete last pair, a range that
// starts inside a pair) run one at a time.
template <bool kBf16>
SHARDLM_AVX512 void micro_gemv(const float* x, int64_t /*ldx*/, const void* w, int64_t /*panel_stride*/, int64_t k,
                               int64_t k0, int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  const __mmask16 mask = simd::tail_mask_avx512(valid_last);
  const char* wb = static_cast<const char*>(w);
  __m512 t = _mm512_maskz_loadu_ps(mask, y);
  int64_t c0 = k0;
  while (c0 < k1) {
    if (c0 % (2 * kKChunk) == 0 && c0 + 2 * kKChunk <= std::min(k, k1)) {
      // Rows c0 + 4i .. c0 + 4i + 3 hold k = c0 + 2i, c0 + 2i + 1 (first chunk) and the same two of
      // the second chunk.
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
      const float* xa = x + c0;
      const float* xb = x + c0 + kKChunk;
      for (int64_t i = 0; i < kKChunk / 2; ++i) {
        const int64_t row = c0 + 4 * i;
#pragma GCC unroll 4
        for (int64_t line = 0; line < 4 * kRowBytes / 64; ++line) {
          _mm_prefetch(wb + row * kRowBytes + kGemvPrefetchBytes + line * 64, _MM_HINT_T0);
        }
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(xa[2 * i]), load_panel_row<kBf16>(w, row * kPanel), s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(xb[2 * i]), load_panel_row<kBf16>(w, (row + 2) * kPanel), s1);
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(xa[2 * i + 1]), load_panel_row<kBf16>(w, (row + 1) * kPanel), s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(xb[2 * i + 1]), load_panel_row<kBf16>(w, (row + 3) * kPanel), s1);
      }
      t = _mm512_add_ps(t, s0);
      t = _mm512_add_ps(t, s1);
      c0 += 2 * kKChunk;
    } else {
      const int64_t c1 = std::min(c0 + kKChunk, k1);
      const ChunkRows rows = chunk_rows(c0, k);
      __m512 s = _mm512_setzero_ps();
      int64_t kk = c0, row = rows.first;
      for (; kk + 1 < c1; kk += 2, row += rows.step) {
#pragma GCC unroll 2
        for (int64_t line = 0; line < 2 * kRowBytes / 64; ++line) {
          _mm_prefetch(wb + row * kRowBytes + kGemvPrefetchBytes + line * 64, _MM_HINT_T0);
        }
        s = _mm512_fmadd_ps(_mm512_set1_ps(x[kk]), load_panel_row<kBf16>(w, row * kPanel), s);
        s = _mm512_fmadd_ps(_mm512_set1_ps(x[kk + 1]), load_panel_row<kBf16>(w, (row + 1) * kPanel), s);
      }
      if (kk < c1) s = _mm512_fmadd_ps(_mm512_set1_ps(x[kk]), load_panel_row<kBf16>(w, row * kPanel), s);
      t = _mm512_add_ps(t, s);
      c0 = c1;
    }
  }
  _mm512_mask_storeu_ps(y, mask, t);
}

// Widest panel count per row count: accumulators + weight registers + 1 broadcast <= 32 zmm.
constexpr int kMrMax = 8;
constexpr int kNrMax[kMrMax + 1] = {0, 8, 8, 6, 5, 4, 4, 3, 3};

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
  // A bf16 GEMV tile is one panel (micro_gemv), so that each thread reads one sequential stream.
  // Measured on Zen 5 against tiles of 8 panels, in the same runs, one thread: 0.77 -> 0.90 of the
  // read bandwidth on the 26B-A4B expert down matrix, 0.85 -> 0.90 on the expert gate+up, 0.88 ->
  // 0.91 on the 31B MLP with one chunk at a time; 0.94-0.99 on the 31B shapes with chunk pairs.
  set.bf16_gemv_nr = 1;
  fill(set, std::make_integer_sequence<int, kMrMax>{});
  set.bf16[1][1] = &micro_gemv<true>;
  set.f32[1][1] = &micro_gemv<false>;
  return set;
}

}  // namespace

const MicroKernelSet& avx512_kernels() {
  static const MicroKernelSet set = make_set();
  return set;
}

}  // namespace shardlm::gemm
