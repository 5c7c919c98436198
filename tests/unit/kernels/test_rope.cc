// RoPE: inverse frequencies (incl. Gemma 4's proportional partial layout), rotation against a
// double-precision rotation of the f32 angle, identity pairs, strides, and rope_apply == ref.
#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::random_vector;

TEST(Rope, InvFreqFollowsTheFormulaAndZeroPads) {
  const auto f = rope_inv_freq(256, 10000.0, 128);
  ASSERT_EQ(f.size(), 128u);
  for (int j = 0; j < 128; ++j) {
    const double expect = std::pow(10000.0, -2.0 * j / 256.0);
    EXPECT_NEAR(f[j], expect, 1.5e-7 * expect) << j;
  }
  EXPECT_EQ(f[0], 1.0f);
  // Gemma 4 full attention: head_dim 512, 64 rotated pairs with exponent denominator 512.
  const auto g = rope_inv_freq(512, 1e6, 64);
  ASSERT_EQ(g.size(), 256u);
  for (int j = 0; j < 64; ++j) EXPECT_NEAR(g[j], std::pow(1e6, -2.0 * j / 512.0), 1.5e-7 * std::pow(1e6, -2.0 * j / 512.0));
  for (int j = 64; j < 256; ++j) EXPECT_EQ(g[j], 0.0f) << j;
  EXPECT_THROW(rope_inv_freq(7, 1e4, 1), Error);
  EXPECT_THROW(rope_inv_freq(8, 1e4, 5), Error);
  EXPECT_THROW(rope_inv_freq(8, -1.0, 2), Error);
}

TEST(Rope, RotatesHalfSplitPairsByPositionTimesFrequency) {
  const int64_t heads = 3, dim = 64, half = 32, stride = heads * dim + 5;  // padded rows
  const int64_t rows = 6;
  const auto inv = rope_inv_freq(dim, 10000.0, 24);  // pairs 24..31 unrotated
  const std::vector<int32_t> pos = {0, 1, 7, 100, 4095, 131071};
  const auto x0 = random_vector(static_cast<size_t>(rows * stride), 3, -2.0f, 2.0f);
  auto x = x0;
  rope_apply(x.data(), rows, stride, heads, dim, pos.data(), inv.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* a = x0.data() + r * stride + h * dim;
      const float* b = x.data() + r * stride + h * dim;
      for (int64_t j = 0; j < half; ++j) {
        if (j >= 24) {
          EXPECT_EQ(b[j], a[j]);
          EXPECT_EQ(b[j + half], a[j + half]);
          continue;
        }
        const float angle = static_cast<float>(pos[r]) * inv[j];  // f32 angle, as HF
        const double c = std::cos(static_cast<double>(angle)), s = std::sin(static_cast<double>(angle));
        const double y0 = a[j] * c - a[j + half] * s, y1 = a[j + half] * c + a[j] * s;
        const double tol = 3e-7 * (std::fabs(a[j]) + std::fabs(a[j + half]));
        ASSERT_NEAR(b[j], y0, tol) << "row " << r << " head " << h << " pair " << j;
        ASSERT_NEAR(b[j + half], y1, tol) << "row " << r << " head " << h << " pair " << j;
      }
    }
    // Padding between rows is untouched.
    for (int64_t c = heads * dim; c < stride; ++c) EXPECT_EQ(x[r * stride + c], x0[r * stride + c]);
  }
  // Position 0 is the identity.
  for (int64_t c = 0; c < heads * dim; ++c) EXPECT_EQ(x[c], x0[c]);
}

TEST(Rope, ApplyEqualsReferenceBitExactOnGemmaLayouts) {
  for (const auto& [dim, theta, pairs] : {std::tuple<int64_t, double, int64_t>{256, 1e4, 128}, {512, 1e6, 64}}) {
    const int64_t heads = 4, rows = 300;  // enough work to take the threaded path
    const auto inv = rope_inv_freq(dim, theta, pairs);
    std::vector<int32_t> pos(rows);
    for (int64_t r = 0; r < rows; ++r) pos[r] = static_cast<int32_t>(r * 37 % 5000);
    auto a = random_vector(static_cast<size_t>(rows * heads * dim), 9);
    auto b = a;
    rope_apply(a.data(), rows, heads * dim, heads, dim, pos.data(), inv.data());
    rope_apply_ref(b.data(), rows, heads * dim, heads, dim, pos.data(), inv.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << dim;
    // The unrotated dimensions of the proportional layout: 64..255 and 320..511 pass through.
    if (pairs == 64) {
      const auto orig = random_vector(static_cast<size_t>(rows * heads * dim), 9);
      for (int64_t c = 64; c < 256; ++c) {
        EXPECT_EQ(a[c], orig[c]);
        EXPECT_EQ(a[c + 256], orig[c + 256]);
      }
    }
  }
}

TEST(Rope, RejectsBadShapes) {
  std::vector<float> x(16);
  const int32_t pos = 1;
  const auto inv = rope_inv_freq(8, 1e4, 4);
  EXPECT_THROW(rope_apply(x.data(), 1, 8, 2, 8, &pos, inv.data()), Error);  // stride < heads * dim
  EXPECT_THROW(rope_apply(x.data(), 1, 16, 2, 7, &pos, inv.data()), Error);  // odd head_dim
}

}  // namespace
}  // namespace shardlm
