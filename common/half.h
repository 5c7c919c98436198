// bfloat16 and IEEE half conversions (storage types of checkpoints and weights).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shardlm {

inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// v[i] = bf16_to_f32(f32_to_bf16(v[i])) for n values (vectorised).
void round_to_bf16(float* v, size_t n);
// out[i] = f32_to_bf16(in[i]) for n values (vectorised).
void f32_to_bf16_row(const float* in, uint16_t* out, size_t n);

float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float f);

}  // namespace shardlm
