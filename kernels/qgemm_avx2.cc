// AVX2 micro-kernels of the quantised GEMM (also used on AVX-512 CPUs without AVX-512 VNNI): per
// (row, panel) two ymm of int32 block sums and two ymm of f32 chunk sums. On CPUs with AVX-VNNI
// (e.g. Intel cores without AVX-512) the block sums come from the VEX vpdpbusd, as on the AVX-512
// path, corrected by the stored offset (q + 128 / q + 8) times the block's activation sum. Without
// it, from vpmaddubsw + vpmaddwd: int8 as |q| * (x with q's sign) or |x| * (q with x's sign),
// which cannot saturate (|q|, |x| <= 127) and needs no correction; q4 (stored q + 8 <= 15) times x
// cannot saturate either (a block's products are summed in int16 before vpmaddwd) and is corrected
// by 8 times the block's activation sum. Without VNNI a GEMV runs the one-row tile (gemv_maddubs),
// a batch the row tile (rows_maddubs). Arithmetic as in qgemm.h. Tiles that read one stream
// prefetch their weights in software as on the AVX-512 path; the three-stream GEMV tiles without
// VNNI do not (make_set).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/qgemm.h"

#define SHARDLM_AVX2_F16C __attribute__((target("avx2,fma,f16c")))
// The register tile with AVX-VNNI is compiled with it enabled; only that tile uses it (the others
// contain no VNNI instruction and run on any AVX2 CPU).
#define SHARDLM_AVX2_MAYBE_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

namespace shardlm::qgemm {
namespace {

SHARDLM_AVX2_F16C inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Lanes [0, count) set (count 0..8).
SHARDLM_AVX2_F16C inline __m256i lane_mask(int count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), index);
}

// In an int8 tile of NR panels at block b: prefetches the 8 cache lines of the block
// kInt8PrefetchBlocks ahead in each panel or, past the tile's last block, of the matching block of
// the next tile's panels (when there is one). Always inlined (see qgemm.h: GCC 12 deletes calls to
// a function that only prefetches).
template <int NR>
[[gnu::always_inline]] inline void prefetch_int8_ahead(const MicroArgs& a, int64_t b) {
  const int64_t block = b + kInt8PrefetchBlocks;
  const uint8_t* ahead = block < a.b1 ? a.w + int8_block_offset(block)
                         : a.next_w != nullptr ? a.next_w + int8_block_offset(block - a.b1)
                                               : nullptr;
  if (ahead == nullptr) return;
  for (int j = 0; j < NR; ++j) {
    for (int line = 0; line < 8; ++line) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + j * a.panel_stride + line * 64), _MM_HINT_T0);
    }
  }
}

// Adds a chunk's f32 sums of panel j of the tile (its two halves of 8 columns) into the output row
// yr: int8 times the panel's row scales, q4 as they are; only the valid columns.
template <Format kFormat, int NR>
[[gnu::always_inline]] SHARDLM_AVX2_F16C inline void add_chunk_to_y(const MicroArgs& a, int j, float* yr,
                                                                    const __m256 (&f)[2]) {
  const int valid = j == NR - 1 ? a.valid_last : static_cast<int>(kPanel);
#pragma GCC unroll 2
  for (int half = 0; half < 2; ++half) {
    const __m256i mask = lane_mask(std::clamp(valid - half * 8, 0, 8));
    float* yp = yr + j * kPanel + half * 8;
    const __m256 t = _mm256_maskload_ps(yp, mask);
    __m256 out;
    if constexpr (kFormat == Format::kInt8) {
      const __m256 d = _mm256_load_ps(reinterpret_cast<const float*>(a.w + j * a.panel_stride) + half * 8);
      out = _mm256_fmadd_ps(f[half], d, t);
    } else {
      out = _mm256_add_ps(t, f[half]);
    }
    _mm256_maskstore_ps(yp, mask, out);
  }
}

// The register tile with AVX-VNNI (MR rows x NR panels): each block's sums from vpdpbusd.
template <int MR, int NR, Format kFormat>
SHARDLM_AVX2_MAYBE_VNNI void micro_vnni(const MicroArgs& a) {
  constexpr bool kInt8 = kFormat == Format::kInt8;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const int64_t nb = a.nb;
  for (int64_t c0 = a.b0; c0 < a.b1; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(c0 + kChunkBlocks, a.b1);
    __m256 f[MR][NR][2];
    for (int r = 0; r < MR; ++r) {
      for (int j = 0; j < NR; ++j) f[r][j][0] = f[r][j][1] = _mm256_setzero_ps();
    }
    for (int64_t b = c0; b < c1; ++b) {
      __m256i s[MR][NR][2];
      for (int r = 0; r < MR; ++r) {
        for (int j = 0; j < NR; ++j) s[r][j][0] = s[r][j][1] = _mm256_setzero_si256();
      }
      if constexpr (kInt8) {
        // The stored bytes (q + 128, unsigned) times the activation bytes, 4 per lane.
        const uint8_t* wb = a.w + int8_block_offset(b);
        prefetch_int8_ahead<NR>(a, b);
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
#pragma GCC unroll 4
          for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 2
            for (int half = 0; half < 2; ++half) {
              const __m256i stored = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + j * a.panel_stride + g * 64 + half * 32));
#pragma GCC unroll 4
              for (int r = 0; r < MR; ++r) {
                const __m256i xb = broadcast4(a.xq + r * a.kp + b * kBlock + g * 4);
                s[r][j][half] = _mm256_dpbusd_avx_epi32(s[r][j][half], stored, xb);
              }
            }
          }
        }
      } else {
        const uint8_t* wb = a.w + q4_data_offset(b);
        prefetch_q4_ahead<NR>(a, b);
#pragma GCC unroll 4
        for (int h = 0; h < 4; ++h) {
#pragma GCC unroll 4
          for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 2
            for (int half = 0; half < 2; ++half) {
              const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + j * a.panel_stride + h * 64 + half * 32));
              const __m256i lo = _mm256_and_si256(raw, low4);
              const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
#pragma GCC unroll 4
              for (int r = 0; r < MR; ++r) {
                const __m256i xlo = broadcast4(a.xq + r * a.kp + b * kBlock + h * 8);
                const __m256i xhi = broadcast4(a.xq + r * a.kp + b * kBlock + h * 8 + 4);
                s[r][j][half] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(s[r][j][half], lo, xlo), hi, xhi);
              }
            }
          }
        }
      }
      for (int r = 0; r < MR; ++r) {
        // The stored offset (q + 128 / q + 8) times the block's activation sum.
        const __m256i corr = _mm256_set1_epi32((kInt8 ? 128 : 8) * a.xs[r * nb + b]);
        const __m256 dx = _mm256_set1_ps(a.dx[r * nb + b]);
        for (int j = 0; j < NR; ++j) {
          for (int half = 0; half < 2; ++half) {
            const __m256 sf = _mm256_cvtepi32_ps(_mm256_sub_epi32(s[r][j][half], corr));
            if constexpr (kInt8) {
              f[r][j][half] = _mm256_fmadd_ps(sf, dx, f[r][j][half]);
            } else {
              const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(
                  reinterpret_cast<const __m128i*>(a.w + j * a.panel_stride + q4_scale_offset(b) + half * 16)));
              f[r][j][half] = _mm256_fmadd_ps(_mm256_mul_ps(sf, d), dx, f[r][j][half]);
            }
          }
        }
      }
    }
    for (int r = 0; r < MR; ++r) {
      for (int j = 0; j < NR; ++j) add_chunk_to_y<kFormat, NR>(a, j, a.y + r * a.ldy, f[r][j]);
    }
  }
}

// A q4 block of the GEMV tile without VNNI (gemv_maddubs; one row, NR panels): the block's
// products summed in one int16 chain per (panel, half). A generic register tile (the one with VNNI,
// written for maddubs) let GCC hoist every load of a block and spill its f32 sums to the stack (120
// instructions a block for one panel; this one about 90): from L3 on Zen 3 26 -> 30 GB/s.
template <int NR>
SHARDLM_AVX2_F16C inline void q4_block_maddubs(const uint8_t* data, int64_t panel_stride, const uint8_t* scales,
                                               const int8_t* xb, float dx, int32_t xs, __m256 (&f)[NR][2]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i acc[NR][2];
  // The stored offset's correction (8 times the block's activation sum xs) as the start of every
  // int16 lane's chain, -4 xs (a lane pair's vpmaddwd sum then carries -8 xs). Exact: with x's 16
  // values in the lane summing to P - N (P, N >= 0, P + N <= 16 * 127) and the other lane's to o, a
  // partial sum lies between -4 (P - N) - 4 o - 15 N and -4 (P - N) - 4 o + 15 P, within +-30480.
  // Against subtracting 8 xs from each int32 sum, alternated runs, one thread 0.742 -> 0.758 of the
  // read bandwidth on average (q4, 31B MLP up, q (full), the expert matrices), two 0.736 -> 0.790.
  const __m256i start = _mm256_set1_epi16(static_cast<int16_t>(-4 * xs));
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) acc[j][0] = acc[j][1] = start;
#pragma GCC unroll 4
  for (int h = 0; h < 4; ++h) {
    const __m256i xlo = broadcast4(xb + 8 * h), xhi = broadcast4(xb + 8 * h + 4);
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        const __m256i r = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + j * panel_stride + 64 * h + 32 * half));
        acc[j][half] = _mm256_add_epi16(acc[j][half], _mm256_maddubs_epi16(_mm256_and_si256(r, low4), xlo));
        acc[j][half] = _mm256_add_epi16(acc[j][half], _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(r, 4), low4), xhi));
        // Keeps GCC from hoisting the block's loads ahead of these sums and spilling (reassociating
        // the int16 adds): 181 stack accesses in the two-panel tile without, 27 with; from L3 on Zen 3
        // 21.5 -> 26-30 GB/s.
        asm("" : "+x"(acc[j][half]));
      }
    }
  }
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256 dxv = _mm256_set1_ps(dx);
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[j][half], ones));
      const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(scales + j * panel_stride + 16 * half)));
      f[j][half] = _mm256_fmadd_ps(_mm256_mul_ps(sum, d), dxv, f[j][half]);
    }
  }
}

// An int8 block of the GEMV tile without VNNI (gemv_maddubs): |x| times (q with x's sign) rather
// than |q| times (x with q's sign) — the same products, exact in int16 pairs — so that |x| is taken
// once per group of 4 k for all the tile's loads instead of |q| once per load, with each (panel,
// half)'s block sum in one chain that an empty asm keeps GCC from reassociating (a generic register
// tile spilled two of its sums and both f32 chunk sums to the stack every block).
template <int NR>
SHARDLM_AVX2_F16C inline void int8_block_maddubs(const uint8_t* data, int64_t panel_stride, const int8_t* xb, float dx,
                                                 __m256 (&f)[NR][2]) {
  const __m256i sign_bit = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[NR][2];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
    const __m256i x = broadcast4(xb + 4 * g);
    const __m256i ax = _mm256_abs_epi8(x);
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        const __m256i stored = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + j * panel_stride + 64 * g + 32 * half));
        const __m256i q = _mm256_xor_si256(stored, sign_bit);
        acc[j][half] = _mm256_add_epi32(acc[j][half], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(q, x)), ones));
        asm("" : "+x"(acc[j][half]));
      }
    }
  }
  const __m256 dxv = _mm256_set1_ps(dx);
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) f[j][half] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[j][half]), dxv, f[j][half]);
  }
}

// The GEMV tile without VNNI of either format (one row, NR panels): per chunk of blocks, the f32 sums
// of each (panel, half) from the format's block function, then added to y (int8: times the row
// scales). q4 blocks are walked in their stored pairs (the pair's data, scales, scales, data).
// kPrefetch: whether the tile prefetches its weights in software (qgemm.h).
template <int NR, Format kFormat, bool kPrefetch = true>
SHARDLM_AVX2_F16C void gemv_maddubs(const MicroArgs& a) {
  constexpr bool kInt8 = kFormat == Format::kInt8;
  for (int64_t c0 = a.b0; c0 < a.b1; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(c0 + kChunkBlocks, a.b1);
    __m256 f[NR][2];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) f[j][0] = f[j][1] = _mm256_setzero_ps();
    if constexpr (kInt8) {
      for (int64_t b = c0; b < c1; ++b) {
        if constexpr (kPrefetch) prefetch_int8_ahead<NR>(a, b);
        int8_block_maddubs<NR>(a.w + int8_block_offset(b), a.panel_stride, a.xq + b * kBlock, a.dx[b], f);
      }
    } else {
      const uint8_t* pair = a.w + q4_data_offset(c0);  // c0 is even
      int64_t b = c0;
      for (; b + 1 < c1; b += 2, pair += kQ4PairBytes) {
        if constexpr (kPrefetch) {
          prefetch_q4_ahead<NR>(a, b);
          prefetch_q4_ahead<NR>(a, b + 1);
        }
        q4_block_maddubs<NR>(pair, a.panel_stride, pair + 256, a.xq + b * kBlock, a.dx[b], a.xs[b], f);
        q4_block_maddubs<NR>(pair + 320, a.panel_stride, pair + 288, a.xq + (b + 1) * kBlock, a.dx[b + 1], a.xs[b + 1], f);
      }
      if (b < c1) {
        if constexpr (kPrefetch) prefetch_q4_ahead<NR>(a, b);
        q4_block_maddubs<NR>(pair, a.panel_stride, pair + 256, a.xq + b * kBlock, a.dx[b], a.xs[b], f);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) add_chunk_to_y<kFormat, NR>(a, j, a.y, f[j]);
  }
}

// A q4 block of the row tile without VNNI (rows_maddubs; MR rows, one panel): the block's data
// unpacked once per 64 bytes for all rows, and each (row, half)'s products in one int16 chain started
// at the offset correction, as in q4_block_maddubs.
template <int MR>
SHARDLM_AVX2_F16C inline void q4_block_rows(const uint8_t* data, const uint8_t* scales, const MicroArgs& a, int64_t b,
                                            __m256 (&f)[MR][2]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_set1_epi16(static_cast<int16_t>(-4 * a.xs[r * a.nb + b]));
#pragma GCC unroll 4
  for (int h = 0; h < 4; ++h) {
    __m256i lo[2], hi[2];
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + 64 * h + 32 * half));
      lo[half] = _mm256_and_si256(raw, low4);
      hi[half] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const int8_t* xb = a.xq + r * a.kp + b * kBlock + 8 * h;
      const __m256i xlo = broadcast4(xb), xhi = broadcast4(xb + 4);
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        acc[r][half] = _mm256_add_epi16(acc[r][half], _mm256_maddubs_epi16(lo[half], xlo));
        acc[r][half] = _mm256_add_epi16(acc[r][half], _mm256_maddubs_epi16(hi[half], xhi));
        asm("" : "+x"(acc[r][half]));  // one chain per (row, half), not reassociated and spilled
      }
    }
  }
  const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
    const __m256 dxv = _mm256_set1_ps(a.dx[r * a.nb + b]);
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[r][half], ones));
      const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(scales + 16 * half)));
      f[r][half] = _mm256_fmadd_ps(_mm256_mul_ps(sum, d), dxv, f[r][half]);
    }
  }
}

// An int8 block of the row tile without VNNI (rows_maddubs; MR rows, one panel): |q| times (x with
// q's sign), |q| taken once per 32 bytes for all rows (the GEMV tile's |x| times (q with x's sign)
// measured 5-10% slower here with two and four rows), each 64 bytes of the block's data loaded once.
template <int MR>
SHARDLM_AVX2_F16C inline void int8_block_rows(const uint8_t* data, const MicroArgs& a, int64_t b, __m256 (&f)[MR][2]) {
  const __m256i sign_bit = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
    __m256i q[2], aq[2];
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      q[half] = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(data + 64 * g + 32 * half)), sign_bit);
      aq[half] = _mm256_abs_epi8(q[half]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256i x = broadcast4(a.xq + r * a.kp + b * kBlock + 4 * g);
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        acc[r][half] = _mm256_add_epi32(acc[r][half], _mm256_madd_epi16(_mm256_maddubs_epi16(aq[half], _mm256_sign_epi8(x, q[half])), ones));
        asm("" : "+x"(acc[r][half]));
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
    const __m256 dxv = _mm256_set1_ps(a.dx[r * a.nb + b]);
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) f[r][half] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][half]), dxv, f[r][half]);
  }
}

// The row tile without VNNI of either format for batches of MR = 2..4 rows (prefill chunks,
// decodes of several sequences) and one panel: per chunk of blocks each row's f32 sums, then added
// to y. Each block's data is loaded (q4: unpacked) once for all rows and the integer chains stay in
// registers (the f32 sums, touched once a block, may live on the stack); prefetches as the one-stream
// tiles do. It replaced a generic register tile of at most 2 rows whose int16 sums GCC reassociated
// and spilled (78 stack accesses in the q4 tile of 2 rows): prefill of 512 rows on Zen 3, alternated
// runs, q4 150-179 -> 254-267 GFLOP/s on two threads and 77-89 -> 121-135 on one, int8 64-76 ->
// 92-96 on one.
template <int MR, Format kFormat>
SHARDLM_AVX2_F16C void rows_maddubs(const MicroArgs& a) {
  for (int64_t c0 = a.b0; c0 < a.b1; c0 += kChunkBlocks) {
    const int64_t c1 = std::min(c0 + kChunkBlocks, a.b1);
    __m256 f[MR][2];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) f[r][0] = f[r][1] = _mm256_setzero_ps();
    for (int64_t b = c0; b < c1; ++b) {
      if constexpr (kFormat == Format::kInt8) {
        prefetch_int8_ahead<1>(a, b);
        int8_block_rows<MR>(a.w + int8_block_offset(b), a, b, f);
      } else {
        prefetch_q4_ahead<1>(a, b);
        q4_block_rows<MR>(a.w + q4_data_offset(b), a.w + q4_scale_offset(b), a, b, f);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) add_chunk_to_y<kFormat, 1>(a, 0, a.y + r * a.ldy, f[r]);
  }
}

// A block's 32 values v quantised with the inverse scale id into q (32 bytes); returns the eight
// lanes whose sum is the block's sum of q. A quotient that is not finite gives 0.
SHARDLM_AVX2_F16C inline __m256i quantize_block(const __m256 (&v)[4], __m256 id, int8_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 inf = _mm256_set1_ps(INFINITY);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  __m256i qi[4];
  __m256i sum = _mm256_setzero_si256();
  for (int i = 0; i < 4; ++i) {
    const __m256 f = _mm256_mul_ps(v[i], id);
    const __m256i ok = _mm256_castps_si256(_mm256_cmp_ps(_mm256_and_ps(f, abs_mask), inf, _CMP_LT_OQ));
    qi[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_and_si256(_mm256_cvtps_epi32(f), ok), lo), hi);
    sum = _mm256_add_epi32(sum, qi[i]);
  }
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return sum;
}

// The largest |value| of a block's 32 values (its absolute values a) and whether one is infinite or NaN.
SHARDLM_AVX2_F16C inline __m256 block_abs(const float* x, int valid, __m256 (&v)[4], bool& bad) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 inf = _mm256_set1_ps(INFINITY);
  __m256 a[4];
  int non_finite = 0;
  for (int i = 0; i < 4; ++i) {
    v[i] = valid >= 8 * (i + 1) ? _mm256_loadu_ps(x + 8 * i)
                                : _mm256_maskload_ps(x + 8 * i, lane_mask(std::clamp(valid - 8 * i, 0, 8)));
    a[i] = _mm256_and_ps(v[i], abs_mask);
    non_finite |= _mm256_movemask_ps(_mm256_cmp_ps(a[i], inf, _CMP_NLT_UQ));  // inf or NaN
  }
  bad = non_finite != 0;
  return _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
}

}  // namespace

// As quantize_row_scalar, bit for bit (the same scale per block: amax / 127 and its inverse by
// correctly rounded divisions, vector or scalar alike; vcvtps2dq rounds to nearest even as nearbyint
// does; a quotient that is not finite, e.g. from a block whose scale underflows, gives 0). Blocks go
// eight at a time where they are complete: their maxima, scales and sums reduced side by side, one
// division for all eight (block by block: 1.4 us at k = 2816, now 1.07 us; the values are read again
// from L1 for the second pass, as 32 registers of them would spill). The scalar loop takes ~5 ns a value.
SHARDLM_AVX2_F16C bool quantize_row_avx2(const float* x, int64_t k, int64_t kp, int8_t* q, float* dx, int32_t* xs) {
  bool finite = true;
  const int64_t nb = kp / kBlock, full = k / kBlock;
  int64_t b = 0;
  for (; b + 8 <= full; b += 8) {
    __m256 m[8];
    int bad_bits = 0;
    for (int i = 0; i < 8; ++i) {
      __m256 v[4];
      bool bad;
      m[i] = block_abs(x + (b + i) * kBlock, static_cast<int>(kBlock), v, bad);
      bad_bits |= static_cast<int>(bad) << i;
    }
    // Lane i of amax: block b + i's largest |value| (max is exact in any order).
    const __m256 m01 = _mm256_max_ps(_mm256_unpacklo_ps(m[0], m[1]), _mm256_unpackhi_ps(m[0], m[1]));
    const __m256 m23 = _mm256_max_ps(_mm256_unpacklo_ps(m[2], m[3]), _mm256_unpackhi_ps(m[2], m[3]));
    const __m256 m45 = _mm256_max_ps(_mm256_unpacklo_ps(m[4], m[5]), _mm256_unpackhi_ps(m[4], m[5]));
    const __m256 m67 = _mm256_max_ps(_mm256_unpacklo_ps(m[6], m[7]), _mm256_unpackhi_ps(m[6], m[7]));
    const __m256 m0123 = _mm256_max_ps(_mm256_shuffle_ps(m01, m23, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(m01, m23, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 m4567 = _mm256_max_ps(_mm256_shuffle_ps(m45, m67, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(m45, m67, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 amax = _mm256_max_ps(_mm256_permute2f128_ps(m0123, m4567, 0x20), _mm256_permute2f128_ps(m0123, m4567, 0x31));
    if (bad_bits != 0) {  // blocks with a value that is not finite get scale 0, as in the scalar quantiser
      finite = false;
      const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
      const __m256i lanes = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(bad_bits), bit), bit);
      amax = _mm256_andnot_ps(_mm256_castsi256_ps(lanes), amax);
    }
    const __m256 d = _mm256_div_ps(amax, _mm256_set1_ps(127.0f));
    const __m256 id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d), _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_GT_OQ));
    _mm256_storeu_ps(dx + b, d);
    __m256i s[8];
    for (int i = 0; i < 8; ++i) {  // the values again, from L1
      const float* xb = x + (b + i) * kBlock;
      const __m256 v[4] = {_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8), _mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24)};
      s[i] = quantize_block(v, _mm256_permutevar8x32_ps(id, _mm256_set1_epi32(i)), q + (b + i) * kBlock);
    }
    // Lane i: block b + i's sum (integer adds, exact in any order).
    const __m256i s0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    const __m256i s4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
    const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20), _mm256_permute2x128_si256(s0123, s4567, 0x31));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs + b), sums);
  }
  for (; b < nb; ++b) {  // the rest, one block at a time
    const int64_t k0 = b * kBlock;
    const int valid = static_cast<int>(std::min<int64_t>(kBlock, k - k0));
    __m256 v[4];
    bool bad;
    const __m256 m = block_abs(x + k0, valid, v, bad);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    float amax = _mm_cvtss_f32(m4);
    if (bad) {
      finite = false;
      amax = 0.0f;
    }
    const float d = amax / 127.0f;
    const __m256i sum = quantize_block(v, _mm256_set1_ps(d > 0.0f ? 1.0f / d : 0.0f), q + k0);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    dx[b] = d;
    xs[b] = _mm_cvtsi128_si32(s4);
  }
  return finite;
}

namespace {

// Tallest tile: without VNNI 4 rows (rows_maddubs: 8 int16 chains, the unpacked data of 64 bytes
// and two broadcasts fill the registers); with AVX-VNNI 2 (micro_vnni).
template <bool kVnni>
constexpr int kMrMax = kVnni ? 2 : 4;
constexpr int kNrMax[5] = {0, 2, 1, 1, 1};  // widest tile for each row count

// The q4 kernel of an MR x NR-panel tile: without VNNI the GEMV tile for one row (gemv_maddubs) or
// the row tile (rows_maddubs), with AVX-VNNI the register tile.
template <bool kVnni, int MR, int NR>
MicroKernel q4_tile_kernel() {
  if constexpr (!kVnni && MR == 1) {
    return &gemv_maddubs<NR, Format::kQ4>;
  } else if constexpr (!kVnni && NR == 1) {
    return &rows_maddubs<MR, Format::kQ4>;
  } else {
    return &micro_vnni<MR, NR, Format::kQ4>;
  }
}

// The int8 kernel of an MR x NR-panel tile, as q4_tile_kernel.
template <bool kVnni, int MR, int NR>
MicroKernel int8_tile_kernel() {
  if constexpr (!kVnni && MR == 1) {
    return &gemv_maddubs<NR, Format::kInt8>;
  } else if constexpr (!kVnni && NR == 1) {
    return &rows_maddubs<MR, Format::kInt8>;
  } else {
    return &micro_vnni<MR, NR, Format::kInt8>;
  }
}

template <bool kVnni, int MR, int... NRs>
void fill_row(MicroKernelSet& set, std::integer_sequence<int, NRs...>) {
  ((set.int8[MR][NRs + 1] = int8_tile_kernel<kVnni, MR, NRs + 1>()), ...);
  ((set.q4[MR][NRs + 1] = q4_tile_kernel<kVnni, MR, NRs + 1>()), ...);
}

template <bool kVnni, int... MRs>
void fill(MicroKernelSet& set, std::integer_sequence<int, MRs...>) {
  (fill_row<kVnni, MRs + 1>(set, std::make_integer_sequence<int, kNrMax[MRs + 1]>{}), ...);
}

template <bool kVnni>
MicroKernelSet make_set() {
  MicroKernelSet set;
  set.mr_max = kMrMax<kVnni>;
  for (int mr = 1; mr <= kMrMax<kVnni>; ++mr) set.nr_max[mr] = kNrMax[mr];
  // With AVX-VNNI a GEMV tile is one panel, one sequential stream per thread (as at the AVX-512
  // level). Measured on Zen 5 against tiles of 2 adjacent panels, one thread: q4 on the 26B-A4B
  // expert down matrix 12 -> 30 GB/s, on the 31B MLP 26 -> 31; int8 on the expert down 25 -> 36.
  // Without VNNI (measured on Zen 3, whose cores read one stream ~15% slower than several) a GEMV
  // is read as several streams per thread (units of S panels n/S apart, gemm_task.h): first two,
  // which first paired the halves of each range a thread took. Two against one stream,
  // one thread, paired runs from memory: q4 expert down 19.1-20.2 -> 21.8-23.0 GB/s, expert gate+up
  // 20.6-21.1 -> 23.6-24.4; int8 expert down 20.1-21.2 -> 25.6-26.6. Tiles of two adjacent panels
  // (the rule before, for panels of 16 KiB and more) lost on short panels (q4 expert down 0.73 ->
  // 0.63) and matched two streams on the 31B shapes.
  // Both formats are read as three streams, by tiles that leave the prefetching to the hardware:
  // where a Zen 3 core reads three streams, its prefetchers keep up with them, and the software
  // prefetches only took load slots and fill buffers from the kernel's own reads. Alternated runs of
  // every shape, two rounds, ratios to the read bandwidth: q4 (two streams each prefetched 24 blocks
  // ahead before) one thread 0.69-0.84 -> 0.80-0.94, two 0.60-0.91 -> 0.71-0.97; int8 (three
  // streams 1 KiB ahead before) one thread 0.85-0.91 -> 0.85-0.98, two 0.80-0.96 -> 0.90-0.98. With
  // software prefetching q4's three-panel tile had measured slower than two streams (0.67-0.77
  // against 0.79-0.83, whatever the distance), and int8's three streams 0.84-0.91 against two
  // streams' 0.76-0.86. A standalone loop of the q4 tile over 300 MB of weights, one thread: without
  // its arithmetic (loads only) 0.86-0.95 of the read bandwidth, the tile itself 0.83-0.88 — so the
  // reads more than the arithmetic set its pace.
  set.q4_gemv_nr = 1;
  set.int8_gemv_nr = 1;
  set.gemv_streams = kVnni ? 1 : 3;
  fill<kVnni>(set, std::make_integer_sequence<int, kMrMax<kVnni>>{});
  if constexpr (!kVnni) {
    set.int8[1][3] = &gemv_maddubs<3, Format::kInt8, false>;  // the three-stream tiles
    set.q4[1][3] = &gemv_maddubs<3, Format::kQ4, false>;
  }
  return set;
}

}  // namespace

const MicroKernelSet& avx2_kernels() {
  static const MicroKernelSet set = make_set<false>();
  return set;
}

const MicroKernelSet& avx2_vnni_kernels() {
  static const MicroKernelSet set = make_set<true>();
  return set;
}

}  // namespace shardlm::qgemm
