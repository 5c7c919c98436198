// AVX-512 VNNI micro-kernels of the quantised GEMM: per (row, panel) one zmm of 16 int32 block sums
// built with vpdpbusd (stored weight bytes, unsigned, times the broadcast activation bytes, signed)
// and one zmm of f32 chunk sums. The stored weights are offset (q + 128 / q + 8), so the block sum
// is corrected by 128 / 8 times the block's activation sum. Arithmetic as in qgemm.h.
// GCC 12 reports _mm512_undefined_*() inside its own AVX-512 intrinsics as uninitialised reads.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/qgemm.h"

#define SHARDLM_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

namespace shardlm::qgemm {
namespace {

SHARDLM_AVX512_VNNI inline __m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// On Intel server cores a GEMV reads two streams per thread (gemv_streams, units of two panels
// about half the matrix apart, placed half a 4 KiB page off each other: place_gemv_streams): each
// stream prefetched as below, alternated with one stream in the same runs (a Xeon with 2 vCPUs; 31B
// MLP up / 26B-A4B expert down, one thread / two, ratio to the read bandwidth): q4 0.86 / 0.84 ->
// 0.96-0.97 / 1.01 (two threads 0.86-0.91 / 0.70-0.72 -> 0.96-0.97 / 0.86; three streams 0.89-0.90
// / 1.00); int8 with each stream prefetched one line 1 KiB ahead before each load 0.88 / 0.87-0.88
// -> 0.90-0.91 / 0.91 (two threads 0.88 / 0.81 -> 0.90 / 0.85; 512 B or 1.5 KiB ahead the same; 2
// KiB ahead 0.71 / 0.83, no prefetch 0.83, the block's 8 lines at once 2 KiB ahead into L1 0.88 /
// 0.89, 4 KiB into L2 0.88 / 0.88). Measured before with one stream per thread (one thread, same
// shapes): int8 (Zen 5 needs none) none 0.70 / 0.70, the block's 8 lines at once 4 KiB ahead into
// L2 (T1) 0.82 / 0.83, into L1 1-8 KiB 0.80-0.86; one line before each of the block's 8 loads, with
// the block's dot products in two chains (even and odd groups; integer sums, the same result),
// alternated in the same runs: 2 KiB ahead into L1 0.89-0.90 / 0.88-0.89 (two threads 0.89-0.91 /
// 0.82-0.84, against 0.82-0.83 / 0.77-0.79), 1 KiB 0.89 / 0.88, 3 KiB 0.87 / 0.80, into L2 at 4 / 8
// KiB 0.82 / 0.84, two chains alone 0.81-0.82, with two paced loads per prefetch as the bf16 tile
// has 0.77 / 0.81. q4 the Zen 5 distance (24 blocks, 6.75 KiB, into L1) 0.64 / 0.53, none 0.78 /
// 0.78, the block's 5 lines at once 2 KiB ahead into L1 0.82-0.88 / 0.80-0.86, 4-8 KiB 0.76-0.80,
// into L2 0.67-0.79; one line before each load instead 0.87 / 0.86 (paced 0.88 / 0.85; into L2 4
// KiB ahead 0.78 / 0.77): no better; q4 with four shifts fewer per block (the high nibbles masked
// in place, their sum shifted once) or addresses without divisions: the same. Later, two threads,
// expert down: a second prefetch of each block 8 or 16 KiB ahead into L2 (T1 or T2) besides the one
// 2 KiB ahead 0.76-0.79 against 0.84-0.86, only every other line 0.70-0.73, each pair's 9 lines at
// once 0.84-0.86 (the same). By address from the block being read: a stream's panels are
// consecutive, so past the panel's end this reaches into the next one (prefetches never fault).
inline constexpr int kIntelGemvStreams = 2;
// The streams tuning (PrefetchTuning::kStreams, for hosts whose hardware prefetchers serve several
// streams better than software prefetches far ahead serve one): a GEMV reads four streams per
// thread; q4 prefetching one line 1.5 KiB ahead before each load (and the scales' line after the
// block's last) with the high nibbles in a second chain, int8 as the Intel GEMV tile (below).
// Measured on a Zen 5 VM where the Zen tuning's one stream read at 0.51-0.56 of the read bandwidth
// (q4, 31B MLP up / down, one thread; two threads 0.54-0.79): four streams 0.90-0.92 / 0.94 (two
// threads 0.94-0.98 / 0.95); each block's five lines at once 1.5 KiB ahead 0.82-0.83 / 0.87-0.88
// (0.85-0.91 / 0.87); one line each 1 KiB ahead 0.87 / 0.87 (0.87 / 0.96), 2 KiB 0.82 (0.92); four
// streams without prefetching 0.73 / 0.84 (0.91 / 0.79); three streams 0.72 / 0.83; two 0.70 / 0.71;
// four in one chain per panel 0.76 / 0.78. (PrefetchTuning is chosen per machine: gemv_tuning.h.)
inline constexpr int kStreamsGemvStreams = 4;
inline constexpr int64_t kStreamsQ4AheadBytes = 1536;
inline constexpr int64_t kIntelInt8AheadBytes = 1024;
inline constexpr int64_t kIntelQ4AheadBytes = 2048;

template <int MR, int NR, Format kFormat, PrefetchTuning kTuning>
SHARDLM_AVX512_VNNI void micro(const MicroArgs& a) {
  constexpr bool kInt8 = kFormat == Format::kInt8;
  // The Intel GEMV tile: one row, one panel per stream.
  constexpr bool kIntelGemv = kTuning == PrefetchTuning::kIntel && MR == 1 && NR <= kIntelGemvStreams;
  // The int8 GEMV tile of the streams tuning is prefetched and chained as the Intel one (one line 1
  // KiB ahead before each load; odd groups in a second chain): on the Zen 5 VM of kStreamsGemvStreams,
  // against none, 31B MLP up / down one thread 0.90 / 0.67 -> 0.84 / 0.91 of the read bandwidth, two
  // 0.93 / 0.81 -> 0.92 / 0.92; 8 experts' down per call 0.78 / 0.71 -> 0.87 / 0.89.
  constexpr bool kInt8Paced = kIntelGemv || (kTuning == PrefetchTuning::kStreams && MR == 1);
  const __mmask16 last_mask = static_cast<__mmask16>((1u << a.valid_last) - 1u);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const int64_t nb = a.nb;
  for (int64_t c0 = a.b0; c0 < a.b1; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(c0 + kChunkBlocks, a.b1);
    __m512 f[MR][NR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) f[r][j] = _mm512_setzero_ps();
    }
    for (int64_t b = c0; b < c1; ++b) {
      // The block sums start at the correction for the stored offset (q + 128 / q + 8).
      __m512i s[MR][NR];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512i corr = _mm512_set1_epi32(-(kInt8 ? 128 : 8) * a.xs[r * nb + b]);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) s[r][j] = corr;
      }
      if constexpr (kInt8) {
        const uint8_t* wb = a.w + int8_block_offset(b);
        // The Intel GEMV tile: one prefetch before each load and the odd groups in a second chain.
        [[maybe_unused]] __m512i s_odd[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) s_odd[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
          if constexpr (kInt8Paced) {
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) {
              _mm_prefetch(reinterpret_cast<const char*>(wb + j * a.panel_stride + kIntelInt8AheadBytes + g * 64), _MM_HINT_T0);
            }
          }
          __m512i wv[NR];
#pragma GCC unroll 8
          for (int j = 0; j < NR; ++j) wv[j] = _mm512_load_si512(wb + j * a.panel_stride + g * 64);
#pragma GCC unroll 8
          for (int r = 0; r < MR; ++r) {
            const __m512i xb = broadcast4(a.xq + r * a.kp + b * kBlock + g * 4);
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) {
              if (kInt8Paced && g % 2 == 1) {
                s_odd[j] = _mm512_dpbusd_epi32(s_odd[j], wv[j], xb);
              } else {
                s[r][j] = _mm512_dpbusd_epi32(s[r][j], wv[j], xb);
              }
            }
          }
        }
        if constexpr (kInt8Paced) {
#pragma GCC unroll 8
          for (int j = 0; j < NR; ++j) s[0][j] = _mm512_add_epi32(s[0][j], s_odd[j]);
        }
      } else {
        const uint8_t* wb = a.w + q4_data_offset(b);
        if constexpr (kIntelGemv) {
#pragma GCC unroll 8
          for (int j = 0; j < NR; ++j) prefetch_lines<5, _MM_HINT_T0>(wb + j * a.panel_stride + kIntelQ4AheadBytes);
        } else if constexpr (kTuning != PrefetchTuning::kStreams) {
          prefetch_q4_ahead<NR>(a, b);
        }
        // Per panel: unpack the two nibbles and use them at once, so that only the accumulators stay
        // in registers (unpacking all panels first would spill with 8 panels). A GEMV tile sums the
        // high nibbles in a second chain per panel (integer sums: the same result), halving the chain
        // of dependent dot products per block.
        constexpr bool kTwoChains = MR * NR == 1 || kIntelGemv || (kTuning == PrefetchTuning::kStreams && MR == 1);
        [[maybe_unused]] __m512i s_hi[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) s_hi[j] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int h = 0; h < 4; ++h) {
#pragma GCC unroll 8
          for (int j = 0; j < NR; ++j) {
            if constexpr (kTuning == PrefetchTuning::kStreams) {  // the line 1.5 KiB ahead, and after the last the scales'
              const char* ahead = reinterpret_cast<const char*>(wb + j * a.panel_stride + kStreamsQ4AheadBytes);
              _mm_prefetch(ahead + h * 64, _MM_HINT_T0);
              if (h == 3) _mm_prefetch(ahead + 256, _MM_HINT_T0);
            }
            // Loaded once into a register: GCC otherwise folds the load into both the and and the
            // shift, two loads of each line, and the kernel is bound by its loads once its weights are
            // in cache (Zen 5, q4 GEMV from L2 in alternated runs: 70-79 -> 104-105 GB/s of weights;
            // q4 prefill of the 31B MLP up on two threads 729-780 -> 770-866 GFLOP/s).
            __m512i raw = _mm512_load_si512(wb + j * a.panel_stride + h * 64);
            __asm__("" : "+v"(raw));
            const __m512i lo = _mm512_and_si512(raw, low4);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
              const int8_t* xr = a.xq + r * a.kp + b * kBlock + h * 8;
              s[r][j] = _mm512_dpbusd_epi32(s[r][j], lo, broadcast4(xr));
              if constexpr (kTwoChains) {
                s_hi[j] = _mm512_dpbusd_epi32(s_hi[j], hi, broadcast4(xr + 4));
              } else {
                s[r][j] = _mm512_dpbusd_epi32(s[r][j], hi, broadcast4(xr + 4));
              }
            }
          }
        }
        if constexpr (kTwoChains) {
#pragma GCC unroll 8
          for (int j = 0; j < NR; ++j) s[0][j] = _mm512_add_epi32(s[0][j], s_hi[j]);
        }
      }
      __m512 d[NR];
      if constexpr (!kInt8) {
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
          d[j] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.w + j * a.panel_stride + q4_scale_offset(b))));
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512 dx = _mm512_set1_ps(a.dx[r * nb + b]);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
          const __m512 sf = _mm512_cvtepi32_ps(s[r][j]);
          if constexpr (kInt8) {
            f[r][j] = _mm512_fmadd_ps(sf, dx, f[r][j]);
          } else {
            f[r][j] = _mm512_fmadd_ps(_mm512_mul_ps(sf, d[j]), dx, f[r][j]);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      float* yr = a.y + r * a.ldy;
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __mmask16 mask = j == NR - 1 ? last_mask : static_cast<__mmask16>(0xFFFF);
        const __m512 t = _mm512_maskz_loadu_ps(mask, yr + j * kPanel);
        __m512 out;
        if constexpr (kInt8) {
          out = _mm512_fmadd_ps(f[r][j], _mm512_load_ps(reinterpret_cast<const float*>(a.w + j * a.panel_stride)), t);
        } else {
          out = _mm512_add_ps(t, f[r][j]);
        }
        _mm512_mask_storeu_ps(yr + j * kPanel, mask, out);
      }
    }
  }
}

constexpr int kMrMax = 4;
constexpr int kNrMax[kMrMax + 1] = {0, 8, 4, 3, 3};

template <PrefetchTuning kTuning, int MR, int... NRs>
void fill_row(MicroKernelSet& set, std::integer_sequence<int, NRs...>) {
  ((set.int8[MR][NRs + 1] = &micro<MR, NRs + 1, Format::kInt8, kTuning>), ...);
  ((set.q4[MR][NRs + 1] = &micro<MR, NRs + 1, Format::kQ4, kTuning>), ...);
}

template <PrefetchTuning kTuning, int... MRs>
void fill(MicroKernelSet& set, std::integer_sequence<int, MRs...>) {
  (fill_row<kTuning, MRs + 1>(set, std::make_integer_sequence<int, kNrMax[MRs + 1]>{}), ...);
}

template <PrefetchTuning kTuning>
MicroKernelSet make_set() {
  MicroKernelSet set;
  set.mr_max = kMrMax;
  for (int mr = 1; mr <= kMrMax; ++mr) set.nr_max[mr] = kNrMax[mr];
  // A GEMV tile is one panel, so that each thread reads one sequential stream: measured on Zen 5
  // against tiles of 4 (q4) / 8 (int8) panels, in the same runs, one thread: q4 0.76 -> 0.90 of the
  // read bandwidth on the 26B-A4B expert down matrix, 0.88 -> 0.92 on the 31B MLP; int8 0.82 ->
  // 0.94 and 0.86 -> 0.99 (int8 needs no software prefetch then). On Intel a thread reads two such
  // streams (above).
  set.q4_gemv_nr = 1;
  set.int8_gemv_nr = 1;
  if constexpr (kTuning == PrefetchTuning::kIntel) {
    set.gemv_streams = kIntelGemvStreams;
    set.place_gemv_streams = true;
  }
  if constexpr (kTuning == PrefetchTuning::kStreams) set.gemv_streams = kStreamsGemvStreams;
  fill<kTuning>(set, std::make_integer_sequence<int, kMrMax>{});
  return set;
}

MicroKernelSet with_tile_rows(MicroKernelSet set) {
  set.tile_rows = &tile_rows_amx;
  return set;
}

}  // namespace

SHARDLM_AVX512_VNNI bool quantize_row_avx512(const float* x, int64_t k, int64_t kp, int8_t* q, float* dx, int32_t* xs) {
  bool finite = true;
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < kp / kBlock; ++b) {
    const int64_t k0 = b * kBlock;
    const int64_t valid = std::min<int64_t>(kBlock, k - k0);
    const __mmask16 m0 = static_cast<__mmask16>(valid >= 16 ? 0xFFFF : (1u << valid) - 1u);
    const __mmask16 m1 = static_cast<__mmask16>(valid >= 32 ? 0xFFFF : valid <= 16 ? 0u : (1u << (valid - 16)) - 1u);
    const __m512 v0 = _mm512_maskz_loadu_ps(m0, x + k0), v1 = _mm512_maskz_loadu_ps(m1, x + k0 + 16);
    const __m512 a0 = _mm512_and_ps(v0, abs_mask), a1 = _mm512_and_ps(v1, abs_mask);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    // |v| >= inf or unordered: an infinity or a NaN (which vmaxps may drop from amax).
    const __mmask16 bad = _mm512_mask_cmp_ps_mask(m0, a0, _mm512_set1_ps(INFINITY), _CMP_NLT_UQ) |
                          _mm512_mask_cmp_ps_mask(m1, a1, _mm512_set1_ps(INFINITY), _CMP_NLT_UQ);
    const bool block_bad = bad != 0;
    if (block_bad) {
      finite = false;
      amax = 0.0f;
    }
    const float d = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
    // cvtps rounds to nearest even (the default MXCSR mode), as nearbyint does; a quotient that is not
    // finite (a block whose scale underflows makes 1 / d infinite) gives 0, as in the scalar one.
    const __m512 f0 = _mm512_mul_ps(v0, id), f1 = _mm512_mul_ps(v1, id);
    const __mmask16 ok0 = _mm512_cmp_ps_mask(_mm512_and_ps(f0, abs_mask), _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
    const __mmask16 ok1 = _mm512_cmp_ps_mask(_mm512_and_ps(f1, abs_mask), _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
    __m512i q0 = _mm512_maskz_cvtps_epi32(ok0, f0), q1 = _mm512_maskz_cvtps_epi32(ok1, f1);
    if (block_bad) q0 = q1 = _mm512_setzero_si512();
    q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
    q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k0), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k0 + 16), _mm512_cvtepi32_epi8(q1));
    dx[b] = d;
    xs[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
  return finite;
}

const MicroKernelSet& avx512_kernels() {
  static const MicroKernelSet sets[] = {make_set<PrefetchTuning::kZen>(), make_set<PrefetchTuning::kIntel>(),
                                         make_set<PrefetchTuning::kStreams>()};  // indexed by PrefetchTuning
  return sets[static_cast<int>(prefetch_tuning())];
}

const MicroKernelSet& avx512_amx_kernels() {
  static const MicroKernelSet sets[] = {with_tile_rows(make_set<PrefetchTuning::kZen>()),
                                         with_tile_rows(make_set<PrefetchTuning::kIntel>()),
                                         with_tile_rows(make_set<PrefetchTuning::kStreams>())};  // indexed by PrefetchTuning
  return sets[static_cast<int>(prefetch_tuning())];
}

}  // namespace shardlm::qgemm
