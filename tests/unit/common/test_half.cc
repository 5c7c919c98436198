#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/half.h"

namespace shardlm {
namespace {

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// The vectorised row conversion gives f32_to_bf16's bits for every value: ties to even both ways,
// values that round up into the next binade or to infinity, subnormals, signed zeros, infinities and
// NaNs (quiet, their sign and high payload kept), at every position of a row (vector body and tail).
TEST(Half, RowToBf16EqualsTheScalarConversion) {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, from_bits(0x3f808000u), from_bits(0x3f818000u), from_bits(0x3f80ffffu),
                          from_bits(0x7f7fffffu), from_bits(0xff7f8000u), from_bits(0x00000001u), from_bits(0x807fffffu),
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          from_bits(0x7fc00001u), from_bits(0xff800001u), from_bits(0x7f8000ffu), 65504.0f, -3.0e-39f};
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) v.push_back(from_bits(static_cast<uint32_t>(rng())));
  for (size_t n : {v.size(), size_t{7}, size_t{8}, size_t{9}, size_t{1}, size_t{0}}) {
    std::vector<uint16_t> out(n + 1, 0xabcd);
    f32_to_bf16_row(v.data(), out.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(out[i], f32_to_bf16(v[i])) << i << " of " << n << ": " << std::hex << bits_of(v[i]);
    EXPECT_EQ(out[n], 0xabcd) << "wrote past " << n;
  }
  // Spot checks of f32_to_bf16 itself.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);  // the largest float rounds to infinity
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));  // a NaN stays a NaN
}

}  // namespace
}  // namespace shardlm
