// AVX2 micro-kernels of the own GEMM: an MR x NR-panel register tile, two ymm (8 columns each) per
// (row, panel) accumulator, weights widened from bf16 in registers (4-6 rows: micro_rows, the
// prefill and batched-decode tile; one row: the GEMV tile of gemm_own_gemv.inl). Arithmetic as in gemm_own.h.
#include <algorithm>
#include <type_traits>
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
  const int64_t len = chunk_len(k);
  for (int64_t c0 = k0; c0 < k1; c0 += len) {
    const int64_t c1 = std::min(c0 + len, k1);
    __m256 acc[MR][kV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
      for (int v = 0; v < kV; ++v) acc[r][v] = _mm256_setzero_ps();
    }
    const ChunkRows rows = chunk_rows(c0, k, len);
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

// Prefetch distance of the AVX2 GEMV tiles, per stream. Measured on Zen 3 (bf16, 31B and 26B-A4B
// expert shapes, ratios to the read bandwidth): one stream, one thread: 8 KiB ahead 0.70, 2 KiB
// 0.80, 768 B to 1.5 KiB 0.82-0.84, 512 B 0.75; three streams (the GEMV there), alternated runs,
// one thread: 1.5 KiB each 0.81-0.94 (mostly below 0.9), 768 B 0.90-0.96, 384 B and 1 KiB about the
// same as 768 B, none 0.82-0.95; two threads 1.5 KiB 0.85-0.95, 768 B 0.87-0.97.
inline constexpr int64_t kAvx2PrefetchBytesOneStream = 1536;
inline constexpr int64_t kAvx2PrefetchBytesPerStream = 768;

// A panel row of 16 f32 columns in two ymm, for the GEMV tile (gemm_own_gemv.inl).
struct RowAvx2 {
  struct V {
    __m256 lo, hi;
  };
  static constexpr int64_t prefetch_bytes(int streams) {
    return streams == 1 ? kAvx2PrefetchBytesOneStream : kAvx2PrefetchBytesPerStream;
  }
  [[gnu::always_inline]] static void prefetch(const char* p) { _mm_prefetch(p, _MM_HINT_T0); }
  SHARDLM_AVX2 static V zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  SHARDLM_AVX2 static V add(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  template <bool kBf16>
  SHARDLM_AVX2 static V fma_row(float x, const void* w, int64_t row, V acc) {
    const __m256 xb = _mm256_set1_ps(x);
    return {_mm256_fmadd_ps(xb, load_half_row<kBf16>(w, row * kPanel), acc.lo),
            _mm256_fmadd_ps(xb, load_half_row<kBf16>(w, row * kPanel + 8), acc.hi)};
  }
  SHARDLM_AVX2 static V load_y(const float* y, int valid) { return {load_8(y, valid), load_8(y + 8, valid - 8)}; }
  SHARDLM_AVX2 static void store_y(float* y, V v, int valid) {
    store_8(y, v.lo, valid);
    store_8(y + 8, v.hi, valid - 8);
  }
  // y[0, 8) as far as `valid` columns go (zeros past them), and back.
  SHARDLM_AVX2 static __m256 load_8(const float* y, int valid) {
    if (valid >= 8) return _mm256_loadu_ps(y);
    if (valid <= 0) return _mm256_setzero_ps();
    return _mm256_maskload_ps(y, simd::tail_mask_avx2(valid));
  }
  SHARDLM_AVX2 static void store_8(float* y, __m256 v, int valid) {
    if (valid >= 8) {
      _mm256_storeu_ps(y, v);
    } else if (valid > 0) {
      _mm256_maskstore_ps(y, simd::tail_mask_avx2(valid), v);
    }
  }
};

// A panel row of 16 bf16 columns in two ymm: V's lo holds the even columns (0, 2, .., 14), hi the
// odd ones, both widened from one 32-byte load: the low half of each 32-bit lane shifted up, the high
// half masked (no lane-crossing conversion; the widening with vpmovzxwd took ~40% more uops). Each
// column's sums are the same operations in the same order, only held in other lanes; y is
// de-interleaved on load and interleaved back on store.
struct RowAvx2Bf16 : RowAvx2 {
  template <bool kBf16>
  SHARDLM_AVX2 static V fma_row(float x, const void* w, int64_t row, V acc) {
    static_assert(kBf16, "bf16 rows only");
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + row * kPanel));
    const __m256 xb = _mm256_set1_ps(x);
    const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
    return {_mm256_fmadd_ps(xb, even, acc.lo), _mm256_fmadd_ps(xb, odd, acc.hi)};
  }
  SHARDLM_AVX2 static V load_y(const float* y, int valid) {
    const __m256 lo = RowAvx2::load_8(y, valid), hi = RowAvx2::load_8(y + 8, valid - 8);
    // Within 128-bit lanes [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs reordered.
    const __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 odd = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0))),
            _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), _MM_SHUFFLE(3, 1, 2, 0)))};
  }
  SHARDLM_AVX2 static void store_y(float* y, V v, int valid) {
    const __m256 a = _mm256_unpacklo_ps(v.lo, v.hi);  // [e0 o0 e1 o1 | e4 o4 e5 o5]
    const __m256 b = _mm256_unpackhi_ps(v.lo, v.hi);  // [e2 o2 e3 o3 | e6 o6 e7 o7]
    RowAvx2::store_8(y, _mm256_permute2f128_ps(a, b, 0x20), valid);
    RowAvx2::store_8(y + 8, _mm256_permute2f128_ps(a, b, 0x31), valid - 8);
  }
};

// The register tile of MR = 4 to 6 rows and one panel, for prefill and decodes of several
// sequences: 6 rows are the widest that fits the 16 ymm registers (12 accumulators, the panel row's
// two weight vectors, one broadcast), so that the two FMA pipes have 12 independent chains to
// interleave (the generic tile of 4 rows had 8, just the FMA latency x pipes). Per k the panel row is loaded once (bf16: widened as its even and odd columns,
// as RowAvx2Bf16 does, which y is de-interleaved for) and each row's x broadcast into its two FMAs.
// Each output's sums are the same FMA chain as every other path's.
// How far ahead the row tile prefetches its panel: a decode of several sequences streams the whole
// panel from memory as one stream, read chunk by chunk (every other cache line of an interleaved
// pair of chunks, then the others). 31B with 2 layers, bf16, 4 sequences, two threads, ms per step:
// none 250-277, 768 B 251, 1.5 KiB 215, 3 KiB 205-213, 6 KiB 210, 12 KiB 216. Prefill (the panel
// block in L2) the same with or without, within the noise.
inline constexpr int64_t kRowsPrefetchBytes = 3072;

template <int MR, bool kBf16>
SHARDLM_AVX2 void micro_rows(const float* x, int64_t ldx, const void* w, int64_t /*panel_stride*/, int64_t k,
                             int64_t k0, int64_t k1, float* y, int64_t ldy, int valid_last) {
  using Row = std::conditional_t<kBf16, RowAvx2Bf16, RowAvx2>;
  const int64_t len = chunk_len(k);
  for (int64_t c0 = k0; c0 < k1; c0 += len) {
    const int64_t c1 = std::min(c0 + len, k1);
    __m256 lo[MR], hi[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    // k indices c0 + 2i and c0 + 2i + 1 are adjacent panel rows (gemm_own.h), the pairs step rows apart.
    const ChunkRows rows = chunk_rows(c0, k, len);
    const int64_t pair_stride = rows.step * kPanel;
    const auto step = [&](int64_t row, int64_t kk) SHARDLM_AVX2 {
      __m256 w0, w1;
      if constexpr (kBf16) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + row));
        // The odd columns by two shifts: a mask constant (one register more than the tile leaves) was
        // spilled and reloaded every step.
        w0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(v, 16), 16));
      } else {
        w0 = _mm256_loadu_ps(static_cast<const float*>(w) + row);
        w1 = _mm256_loadu_ps(static_cast<const float*>(w) + row + 8);
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m256 xb = _mm256_broadcast_ss(x + r * ldx + kk);
        lo[r] = _mm256_fmadd_ps(xb, w0, lo[r]);
        hi[r] = _mm256_fmadd_ps(xb, w1, hi[r]);
      }
    };
    int64_t kk = c0, row = rows.first * kPanel;
    for (; kk + 1 < c1; kk += 2, row += pair_stride) {
      _mm_prefetch(static_cast<const char*>(w) + row * (kBf16 ? 2 : 4) + kRowsPrefetchBytes, _MM_HINT_T0);
      step(row, kk);
      step(row + kPanel, kk + 1);
    }
    if (kk < c1) step(row, kk);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      float* yr = y + r * ldy;
      Row::store_y(yr, Row::add(Row::load_y(yr, valid_last), typename Row::V{lo[r], hi[r]}), valid_last);
    }
  }
}

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "kernels/gemm_own_gemv.inl"
#pragma GCC pop_options

// Widest panel count per row count: accumulators + broadcasts + weight registers <= 16 ymm.
constexpr int kMrMax = 6;
constexpr int kNrMax[kMrMax + 1] = {0, 4, 2, 1, 1, 1, 1};

// The kernel of an MR x NR-panel tile: the GEMV tile for one row and one to three panels (micro_gemv),
// the register tile otherwise.
template <int MR, int NR, bool kBf16>
MicroKernel tile_kernel() {
  if constexpr (MR == 1 && NR <= 3) {
    return &micro_gemv<std::conditional_t<kBf16, RowAvx2Bf16, RowAvx2>, kBf16, NR>;
  } else if constexpr (MR >= 4) {
    static_assert(NR == 1);
    return &micro_rows<MR, kBf16>;
  } else {
    return &micro<MR, NR, kBf16>;
  }
}

template <int MR, int... NRs>
void fill_row(MicroKernelSet& set, std::integer_sequence<int, NRs...>) {
  ((set.f32[MR][NRs + 1] = tile_kernel<MR, NRs + 1, false>()), ...);
  ((set.bf16[MR][NRs + 1] = tile_kernel<MR, NRs + 1, true>()), ...);
}

template <int... MRs>
void fill(MicroKernelSet& set, std::integer_sequence<int, MRs...>) {
  (fill_row<MRs + 1>(set, std::make_integer_sequence<int, kNrMax[MRs + 1]>{}), ...);
}

MicroKernelSet make_set() {
  MicroKernelSet set;
  set.mr_max = kMrMax;
  for (int mr = 1; mr <= kMrMax; ++mr) set.nr_max[mr] = kNrMax[mr];
  // A GEMV is read as three sequential streams per thread (units of three panels a third of the
  // matrix apart, gemm_task.h), the chunk pairs of each panel side by side too: a Zen 3 core reads
  // one stream ~15% slower than several and three fastest (a plain read, one thread: 1 stream ~22.5
  // GB/s, 2 ~24.5, 3 ~32, 4 ~27). Against two streams, one thread, paired runs from memory: bf16 31B
  // MLP up 0.78-0.82 -> 0.84-0.86 of the read bandwidth, q (full) 0.76-0.80 -> 0.85-0.89, 26B-A4B
  // expert gate+up 0.79-0.80 -> 0.84-0.89, down 0.79-0.80 -> 0.83-0.84; two threads the same within
  // the noise. Two streams against one had given bf16 expert down 20.4-21.4 -> 24.1-24.5 GB/s;
  // tiles of two adjacent panels (the rule before that, for panels of 16 KiB and more) gained on long
  // panels only.
  set.gemv_streams = 3;
  fill(set, std::make_integer_sequence<int, kMrMax>{});
  return set;
}

}  // namespace

const MicroKernelSet& avx2_kernels() {
  static const MicroKernelSet set = make_set();
  return set;
}

}  // namespace shardlm::gemm
