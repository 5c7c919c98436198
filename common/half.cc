#include "common/half.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shardlm {

#if defined(__SSE2__)
namespace {

// Four f32 values rounded as f32_to_bf16 does, the bf16 bits in the high half of each lane: add
// 0x7fff plus the lowest kept bit, drop the low 16 bits; a NaN keeps its high bits with the quiet
// bit set.
inline __m128i round_high_bf16(__m128i bits) {
  const __m128i one = _mm_set1_epi32(1), bias = _mm_set1_epi32(0x7fff), high = _mm_set1_epi32(static_cast<int>(0xffff0000u));
  const __m128i abs_mask = _mm_set1_epi32(0x7fffffff), inf = _mm_set1_epi32(0x7f800000), quiet = _mm_set1_epi32(0x00400000);
  const __m128i lsb = _mm_and_si128(_mm_srli_epi32(bits, 16), one);
  const __m128i rounded = _mm_and_si128(_mm_add_epi32(bits, _mm_add_epi32(bias, lsb)), high);
  const __m128i nan = _mm_cmpgt_epi32(_mm_and_si128(bits, abs_mask), inf);
  const __m128i kept = _mm_and_si128(_mm_or_si128(bits, quiet), high);
  return _mm_or_si128(_mm_and_si128(nan, kept), _mm_andnot_si128(nan, rounded));
}

}  // namespace
#endif

void round_to_bf16(float* v, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4) {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(v + i), round_high_bf16(bits));
  }
#endif
  for (; i < n; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
}

void f32_to_bf16_row(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  // The high halves as 16-bit values: shifted down, offset by -0x8000 so that the signed pack is
  // exact, and the offset undone on the 16-bit lanes.
  const __m128i offset32 = _mm_set1_epi32(0x8000), offset16 = _mm_set1_epi16(static_cast<short>(0x8000));
  for (; i + 8 <= n; i += 8) {
    const __m128i a = _mm_srli_epi32(round_high_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))), 16);
    const __m128i b = _mm_srli_epi32(round_high_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 4))), 16);
    const __m128i packed = _mm_packs_epi32(_mm_sub_epi32(a, offset32), _mm_sub_epi32(b, offset32));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_xor_si128(packed, offset16));
  }
#endif
  for (; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  uint32_t sign = (bits >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((bits >> 23) & 0xffu) - 127 + 15;
  uint32_t mant = bits & 0x7fffffu;
  if (((bits >> 23) & 0xffu) == 0xffu) {
    return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  }
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) half_mant++;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return static_cast<uint16_t>(h);
}

}  // namespace shardlm
