// Internal SIMD helpers shared by the kernels: target attributes for the per-function ISA levels,
// accurate vector exp and tanh (max relative error ~2e-7 on normal results), and horizontal sums
// with a fixed reduction order (so results never depend on which code path called them).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "common/half.h"

#define SHARDLM_AVX2 __attribute__((target("avx2,fma")))
#define SHARDLM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

namespace shardlm::simd {

// exp(x) = 2^n · exp(r), x = n·ln2 + r, |r| <= ln2/2; exp(r) by its degree-7 Taylor polynomial
// (truncation error < 6e-9 relative). ln2 is split in two parts so that r is exact enough.
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693145751953125f;        // 16 significant bits of ln 2
inline constexpr float kLn2Lo = 1.428606765330187045e-06f;  // ln 2 - kLn2Hi
inline constexpr float kExpMaxArg = 88.72283905206835f;     // ln(FLT_MAX)
inline constexpr float kExpMinArg = -87.33654475055310898f;  // ln(FLT_MIN): below it the result is 0
inline constexpr float kExpC2 = 1.0f / 2, kExpC3 = 1.0f / 6, kExpC4 = 1.0f / 24, kExpC5 = 1.0f / 120,
                       kExpC6 = 1.0f / 720, kExpC7 = 1.0f / 5040;

// tanh on |x| < 0.625: x + x^3 · P(x^2), minimax P of degree 4 (relative error < 1e-7).
// Elsewhere tanh|x| = 1 - 2 / (exp(2|x|) + 1), which has no cancellation there.
inline constexpr float kTanhSmall = 0.625f;
inline constexpr float kTanhP0 = -3.333328068e-01f, kTanhP1 = 1.333144158e-01f, kTanhP2 = -5.373971537e-02f,
                       kTanhP3 = 2.063908987e-02f, kTanhP4 = -5.704987794e-03f;
inline constexpr float kTanhClamp = 44.0f;  // exp(88) is still finite; tanh(44) == 1 in f32

// ---------------------------------------------------------------------------------------------
// AVX2

SHARDLM_AVX2 inline __m256 exp_poly(__m256 r) {
  __m256 p = _mm256_set1_ps(kExpC7);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpC6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  return _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
}

// exp with results below FLT_MIN flushed to 0, above FLT_MAX = +inf, NaN propagated.
SHARDLM_AVX2 inline __m256 exp_avx2(__m256 x) {
  // min/max with x as the second operand return x when it is NaN, so NaN flows through.
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(kExpMinArg), _mm256_min_ps(_mm256_set1_ps(kExpMaxArg), x));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = exp_poly(r);
  // 2^n in two factors so that n = 128 and n = -126 stay representable.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  result = _mm256_blendv_ps(result, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(kExpMinArg), _CMP_LT_OQ));
  result = _mm256_blendv_ps(result, _mm256_set1_ps(__builtin_inff()),
                            _mm256_cmp_ps(x, _mm256_set1_ps(kExpMaxArg), _CMP_GT_OQ));
  return result;
}

SHARDLM_AVX2 inline __m256 tanh_avx2(__m256 x) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  __m256 a = _mm256_andnot_ps(sign_mask, x);
  // small |x|: polynomial
  __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(kTanhP4);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kTanhP3));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kTanhP2));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kTanhP1));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kTanhP0));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x, z), p, x);
  // large |x|
  __m256 e = exp_avx2(_mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_min_ps(_mm256_set1_ps(kTanhClamp), a)));
  __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  __m256 large = _mm256_or_ps(t, _mm256_and_ps(sign_mask, x));
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(kTanhSmall), _CMP_LT_OQ));
}

// Fixed order: (lanes 0-3 + lanes 4-7), then pairs, then the last two.
SHARDLM_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

SHARDLM_AVX2 inline float hmax_avx2(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lanes [0, count) set (count in 0..8), for maskload/maskstore.
SHARDLM_AVX2 inline __m256i tail_mask_avx2(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// ---------------------------------------------------------------------------------------------
// AVX-512

SHARDLM_AVX512 inline __m512 exp_avx512(__m512 x) {
  // Clamp keeps n finite (scalef then produces 0 / denormals / inf exactly); NaN flows through.
  __m512 xc = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpC7);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  __m512 result = _mm512_scalef_ps(p, n);
  // Match the AVX2 and scalar paths: below FLT_MIN the result is exactly 0.
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpMinArg), _CMP_LT_OQ), result,
                              _mm512_setzero_ps());
}

SHARDLM_AVX512 inline __m512 tanh_avx512(__m512 x) {
  __m512 a = _mm512_abs_ps(x);
  __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(kTanhP4);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(kTanhP3));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(kTanhP2));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(kTanhP1));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(kTanhP0));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(x, z), p, x);
  __m512 e = exp_avx512(_mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_min_ps(_mm512_set1_ps(kTanhClamp), a)));
  __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
  // copy the sign of x onto t
  __m512 large = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(t), _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u)))));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(kTanhSmall), _CMP_LT_OQ), large, small);
}

// Fixed order: halves, then quarters, then as hsum_avx2's 128-bit steps.
SHARDLM_AVX512 inline float hsum_avx512(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

SHARDLM_AVX512 inline float hmax_avx512(__m512 v) { return _mm512_reduce_max_ps(v); }

// The horizontal sums of sixteen vectors at once: lane 4q + t of the result is hsum_avx512(v[4t + q]),
// bit for bit — a transposing network that adds the same pairs in the same order (lanes i and i + 8,
// then i and i + 4, i and i + 2, i and i + 1), 15 additions and 30 shuffles instead of 64 and 64.
SHARDLM_AVX512 inline __m512 hsum16_avx512(const __m512* v) {
  __m512 t[8], u[4], w[2];
  for (int m = 0; m < 8; ++m) {  // lanes 0-7: v[2m]'s i + (i + 8); 8-15: v[2m + 1]'s
    t[m] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * m], v[2 * m + 1], 0x44), _mm512_shuffle_f32x4(v[2 * m], v[2 * m + 1], 0xEE));
  }
  for (int m = 0; m < 4; ++m) {  // 128-bit lane q: v[4m + q]'s i + (i + 4)
    u[m] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0x88), _mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0xDD));
  }
  for (int m = 0; m < 2; ++m) {  // lane q: v[8m + q]'s i + (i + 2) (i < 2), then v[8m + 4 + q]'s
    w[m] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * m], u[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(u[2 * m], u[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Lanes [0, count) set, count in 0..16.
SHARDLM_AVX512 inline __mmask16 tail_mask_avx512(int64_t count) {
  return static_cast<__mmask16>((1u << count) - 1u);
}

// 16 bf16 values widened exactly to f32 (bf16 is the upper half of an f32).
SHARDLM_AVX512 inline __m512 load_bf16_avx512(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // The maskz forms with a full mask compile to the plain instructions; they avoid GCC 12's
  // false -Wmaybe-uninitialized on _mm512_undefined_epi32 inside the unmasked intrinsics.
  const __mmask16 all = static_cast<__mmask16>(0xffff);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
}

SHARDLM_AVX2 inline __m256 load_bf16_avx2(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// ---------------------------------------------------------------------------------------------
// Vector traits, so that a kernel template is written once and instantiated per ISA. The
// template must itself be compiled for the ISA (see the "#pragma GCC target" in the *_avx2.cc /
// *_avx512.cc files that include a kernel's .inl implementation).

struct VecAvx2 {
  using V = __m256;
  static constexpr int kWidth = 8;
  SHARDLM_AVX2 static V zero() { return _mm256_setzero_ps(); }
  SHARDLM_AVX2 static V set1(float v) { return _mm256_set1_ps(v); }
  SHARDLM_AVX2 static V load(const float* p) { return _mm256_loadu_ps(p); }
  SHARDLM_AVX2 static V load(const uint16_t* p) { return load_bf16_avx2(p); }  // bf16, widened exactly
  // Lanes >= count read as 0 (and are not touched in memory).
  SHARDLM_AVX2 static V load_tail(const float* p, int64_t count) { return _mm256_maskload_ps(p, tail_mask_avx2(count)); }
  SHARDLM_AVX2 static V load_tail(const uint16_t* p, int64_t count) {
    alignas(32) float tmp[kWidth] = {};
    for (int64_t i = 0; i < count && i < kWidth; ++i) tmp[i] = bf16_to_f32(p[i]);
    return _mm256_load_ps(tmp);
  }
  // Lanes >= count read as `fill`.
  SHARDLM_AVX2 static V load_tail_fill(const float* p, int64_t count, float fill) {
    const __m256i mask = tail_mask_avx2(count);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask));
  }
  SHARDLM_AVX2 static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  SHARDLM_AVX2 static void store_tail(float* p, V v, int64_t count) { _mm256_maskstore_ps(p, tail_mask_avx2(count), v); }
  SHARDLM_AVX2 static V add(V a, V b) { return _mm256_add_ps(a, b); }
  SHARDLM_AVX2 static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  SHARDLM_AVX2 static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  SHARDLM_AVX2 static V div(V a, V b) { return _mm256_div_ps(a, b); }
  SHARDLM_AVX2 static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  SHARDLM_AVX2 static V max(V a, V b) { return _mm256_max_ps(a, b); }
  SHARDLM_AVX2 static V exp(V x) { return exp_avx2(x); }
  SHARDLM_AVX2 static V tanh(V x) { return tanh_avx2(x); }
  SHARDLM_AVX2 static float hsum(V v) { return hsum_avx2(v); }
  SHARDLM_AVX2 static float hmax(V v) { return hmax_avx2(v); }
};

struct VecAvx512 {
  using V = __m512;
  static constexpr int kWidth = 16;
  SHARDLM_AVX512 static V zero() { return _mm512_setzero_ps(); }
  SHARDLM_AVX512 static V set1(float v) { return _mm512_set1_ps(v); }
  SHARDLM_AVX512 static V load(const float* p) { return _mm512_loadu_ps(p); }
  SHARDLM_AVX512 static V load(const uint16_t* p) { return load_bf16_avx512(p); }  // bf16, widened exactly
  SHARDLM_AVX512 static V load_tail(const float* p, int64_t count) { return _mm512_maskz_loadu_ps(tail_mask_avx512(count), p); }
  SHARDLM_AVX512 static V load_tail(const uint16_t* p, int64_t count) {
    const __m256i h = _mm256_maskz_loadu_epi16(tail_mask_avx512(count), p);
    const __mmask16 all = static_cast<__mmask16>(0xffff);
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
  }
  SHARDLM_AVX512 static V load_tail_fill(const float* p, int64_t count, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), tail_mask_avx512(count), p);
  }
  SHARDLM_AVX512 static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  SHARDLM_AVX512 static void store_tail(float* p, V v, int64_t count) { _mm512_mask_storeu_ps(p, tail_mask_avx512(count), v); }
  SHARDLM_AVX512 static V add(V a, V b) { return _mm512_add_ps(a, b); }
  SHARDLM_AVX512 static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  SHARDLM_AVX512 static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  SHARDLM_AVX512 static V div(V a, V b) { return _mm512_div_ps(a, b); }
  SHARDLM_AVX512 static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  SHARDLM_AVX512 static V max(V a, V b) { return _mm512_max_ps(a, b); }
  SHARDLM_AVX512 static V exp(V x) { return exp_avx512(x); }
  SHARDLM_AVX512 static V tanh(V x) { return tanh_avx512(x); }
  SHARDLM_AVX512 static float hsum(V v) { return hsum_avx512(v); }
  SHARDLM_AVX512 static float hmax(V v) { return hmax_avx512(v); }
};

// Scalar "vector" of width 1 with the same interface, for the portable path of shared templates.
struct VecScalar {
  using V = float;
  static constexpr int kWidth = 1;
  static V zero() { return 0.0f; }
  static V set1(float v) { return v; }
  static V load(const float* p) { return *p; }
  static V load(const uint16_t* p) { return bf16_to_f32(*p); }
  static V load_tail(const float* p, int64_t count) { return count > 0 ? *p : 0.0f; }
  static V load_tail(const uint16_t* p, int64_t count) { return count > 0 ? bf16_to_f32(*p) : 0.0f; }
  static V load_tail_fill(const float* p, int64_t count, float fill) { return count > 0 ? *p : fill; }
  static void store(float* p, V v) { *p = v; }
  static void store_tail(float* p, V v, int64_t count) {
    if (count > 0) *p = v;
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fmadd(V a, V b, V c) { return std::fma(a, b, c); }
  static V max(V a, V b) { return std::fmax(a, b); }
  static V exp(V x) { return std::exp(x); }
  static V tanh(V x) { return std::tanh(x); }
  static float hsum(V v) { return v; }
  static float hmax(V v) { return v; }
};

}  // namespace shardlm::simd
