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
  const int64_t len = chunk_len(k);
  for (int64_t c0 = k0; c0 < k1; c0 += len) {
    const int64_t c1 = std::min(c0 + len, k1);
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_setzero_ps();
    }
    const ChunkRows rows = chunk_rows(c0, k, len);
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

// A panel row of 16 columns in one zmm, for the GEMV tile (gemm_own_gemv.inl), prefetching kAhead
// bytes ahead into the cache level kHint names; with kPace each prefetch also reads
// g_pace twice (two loads from L1 that change nothing). Zen 5 (one stream): 8 KiB into L1, no pacing.
// An Intel server core (Xeon with AMX, 2 vCPUs; bf16, 31B MLP up / q (full) / 26B-A4B expert down,
// ratio to the read bandwidth): without pacing, 8 KiB into L1 0.61 (one thread), into L2 (T1)
// 0.70-0.76 whatever the distance (4-32 KiB), one prefetch per 128 bytes 0.61, no prefetch 0.71-0.81
// (one thread) / 0.65-0.77 (two). The same loop with a few more loads per step streams faster on that
// core: 8 KiB into L2 with two paced loads per prefetch, alternated with no prefetch in the same
// runs, 0.82-0.89 (one thread) and 0.83-0.84 (two) against 0.71-0.81 / 0.65-0.77; 4 KiB ahead
// 0.76-0.88; six paced loads or a compiler barrier instead were no better. (Found by accident: a
// build of the loop with a run-time switch over the hint streamed at 0.92-0.98.) Why a slower issue
// of the loads helps is not known: fewer demand misses waiting at once for the lines the L2
// prefetches bring, presumably.
inline volatile int g_pace = 0;
template <_mm_hint kHint, int64_t kAhead, bool kPace = false>
struct RowAvx512 {
  using V = __m512;
  static constexpr int64_t prefetch_bytes(int /*streams*/) { return kAhead; }
  [[gnu::always_inline]] static void prefetch(const char* p) {
    _mm_prefetch(p, kHint);
    if constexpr (kPace) {
      (void)g_pace;
      (void)g_pace;
    }
  }
  SHARDLM_AVX512 static V zero() { return _mm512_setzero_ps(); }
  SHARDLM_AVX512 static V add(V a, V b) { return _mm512_add_ps(a, b); }
  template <bool kBf16>
  SHARDLM_AVX512 static V fma_row(float x, const void* w, int64_t row, V acc) {
    return _mm512_fmadd_ps(_mm512_set1_ps(x), load_panel_row<kBf16>(w, row * kPanel), acc);
  }
  SHARDLM_AVX512 static V load_y(const float* y, int valid) { return _mm512_maskz_loadu_ps(simd::tail_mask_avx512(valid), y); }
  SHARDLM_AVX512 static void store_y(float* y, V v, int valid) { _mm512_mask_storeu_ps(y, simd::tail_mask_avx512(valid), v); }
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
#include "kernels/gemm_own_gemv.inl"
#pragma GCC pop_options

// Widest panel count per row count: accumulators + weight registers + 1 broadcast <= 32 zmm.
constexpr int kMrMax = 8;
constexpr int kNrMax[kMrMax + 1] = {0, 8, 8, 6, 5, 4, 4, 3, 3};

// The kernel of an MR x NR-panel tile: the GEMV tile for one row and one panel (micro_gemv), the
// register tile otherwise.
using RowZen = RowAvx512<_MM_HINT_T0, 8192>;
using RowIntel = RowAvx512<_MM_HINT_T1, 8192, true>;
// The streams tuning (PrefetchTuning::kStreams): a GEMV reads three streams per thread (micro_gemv
// with three panels), each prefetched 768 bytes ahead, as the AVX2 tile does on Zen 3. Measured on a
// Zen 5 VM where the Zen tuning's one stream 8 KiB ahead read bf16 at 0.64-0.65 of the read bandwidth
// (31B MLP up / down, one and two threads; 26B-A4B expert down 0.59-0.67): 0.90-0.91 (expert down
// 0.79-0.89).
using RowStreams = RowAvx512<_MM_HINT_T0, 768>;
inline constexpr int kStreamsGemvStreams = 3;

template <class Row, int MR, int NR, bool kBf16>
MicroKernel tile_kernel() {
  if constexpr (std::is_same_v<Row, RowStreams> && MR == 1 && NR <= kStreamsGemvStreams) {
    return &micro_gemv<Row, kBf16, NR>;
  } else if constexpr (MR == 1 && NR == 1) {
    return &micro_gemv<Row, kBf16, 1>;
  } else {
    return &micro<MR, NR, kBf16>;
  }
}

template <class Row, int MR, int... NRs>
void fill_row(MicroKernelSet& set, std::integer_sequence<int, NRs...>) {
  ((set.f32[MR][NRs + 1] = tile_kernel<Row, MR, NRs + 1, false>()), ...);
  ((set.bf16[MR][NRs + 1] = tile_kernel<Row, MR, NRs + 1, true>()), ...);
}

template <class Row, int... MRs>
void fill(MicroKernelSet& set, std::integer_sequence<int, MRs...>) {
  (fill_row<Row, MRs + 1>(set, std::make_integer_sequence<int, kNrMax[MRs + 1]>{}), ...);
}

template <class Row>
MicroKernelSet make_set() {
  MicroKernelSet set;
  set.mr_max = kMrMax;
  for (int mr = 1; mr <= kMrMax; ++mr) set.nr_max[mr] = kNrMax[mr];
  // A GEMV tile is one panel (micro_gemv), so that each thread reads one sequential stream.
  // Measured on Zen 5 against tiles of 8 panels, in the same runs, one thread: bf16 0.77 -> 0.90 of
  // the read bandwidth on the 26B-A4B expert down matrix, 0.85 -> 0.90 on the expert gate+up, 0.88 ->
  // 0.91 on the 31B MLP with one chunk at a time; 0.94-0.99 on the 31B shapes with chunk pairs; f32
  // on the 31B MLP 27 -> 38 GB/s (0.70 -> 0.99).
  set.gemv_nr = 1;
  if constexpr (std::is_same_v<Row, RowStreams>) set.gemv_streams = kStreamsGemvStreams;
  fill<Row>(set, std::make_integer_sequence<int, kMrMax>{});
  return set;
}

}  // namespace

const MicroKernelSet& avx512_kernels() {
  static const MicroKernelSet sets[] = {make_set<RowZen>(), make_set<RowIntel>(), make_set<RowStreams>()};  // by PrefetchTuning
  return sets[static_cast<int>(prefetch_tuning())];
}

}  // namespace shardlm::gemm
