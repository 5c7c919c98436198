// Linear on the AMX backend: refused clearly where the CPU has no AMX-BF16; where it has, results
// against a double reference on bf16-rounded activations (odd sizes, k and n tails, batch sizes
// across the kernel's row tiles), batch and thread invariance bit for bit, accumulate mode,
// forward_group, read_row, and f32 weights falling back to the own kernel.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/linear.h"
#include "tests/unit/kernels/linear_reference.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::bit_equal;
using testing::close_to_reference;
using testing::random_vector;
using testing::reference;
using testing::round_to_bf16;
using testing::ScopedThreads;

Linear amx_linear(const std::vector<float>& w, int64_t n, int64_t k) {
  return Linear::from_f32(w.data(), n, k, WeightFormat::kBF16, MatmulBackend::kAmx);
}

TEST(LinearAmx, RefusedWithoutAmxNamingTheAlternative) {
  if (amx_supported()) GTEST_SKIP() << "this CPU has AMX-BF16 (the other LinearAmx tests run)";
  const auto w = random_vector(64 * 32, 1);
  try {
    amx_linear(w, 64, 32);
    ADD_FAILURE() << "bf16 weights on the AMX backend were accepted on a CPU without AMX";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AMX-BF16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--matmul own"), std::string::npos) << e.what();
  }
}

TEST(LinearAmx, F32WeightsRunOnTheOwnKernel) {
  const int64_t n = 40, k = 70;
  const auto w = random_vector(static_cast<size_t>(n * k), 2);
  const auto x = random_vector(static_cast<size_t>(3 * k), 3);
  const Linear a = Linear::from_f32(w.data(), n, k, WeightFormat::kF32, MatmulBackend::kAmx);
  const Linear own = Linear::from_f32(w.data(), n, k, WeightFormat::kF32);
  std::vector<float> ya(3 * n), yo(3 * n);
  a.forward(x.data(), 3, ya.data());
  own.forward(x.data(), 3, yo.data());
  EXPECT_TRUE(bit_equal(ya.data(), yo.data(), ya.size()));
}

// Every (n, k) pair with tails in both, batch sizes on both sides of the 16- and 32-row tiles, one
// and two threads, plain and accumulating: within f32 accumulation error of the double reference
// on bf16-rounded x and w; and each row bit-equal to the same row computed alone on one thread.
TEST(LinearAmx, MatchesBf16ReferenceAndIsBatchAndThreadInvariant) {
  if (!amx_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  const std::vector<int64_t> sizes = {1, 15, 32, 33, 100, 300};
  int checked = 0;
  for (const int64_t n : sizes) {
    for (const int64_t k : sizes) {
      const auto w = random_vector(static_cast<size_t>(n * k), static_cast<uint32_t>(n * 131 + k));
      const Linear lin = amx_linear(w, n, k);
      ASSERT_EQ(lin.backend(), MatmulBackend::kAmx);
      ASSERT_GE(lin.weight_bytes(), static_cast<size_t>(n * k) * 2);
      const auto wr = round_to_bf16(w);
      for (const int64_t m : {int64_t{1}, int64_t{5}, int64_t{16}, int64_t{17}, int64_t{40}, int64_t{70}}) {
        const auto x = random_vector(static_cast<size_t>(m * k), static_cast<uint32_t>(m * 1000 + k + n));
        // One row at a time on one thread: the baseline every batch must reproduce bit for bit.
        std::vector<float> alone(static_cast<size_t>(m * n));
        {
          const ScopedThreads one(1);
          for (int64_t i = 0; i < m; ++i) lin.forward(x.data() + i * k, 1, alone.data() + i * n);
        }
        std::vector<double> ref, mag;
        reference(round_to_bf16(x), wr, m, n, k, ref, mag);
        ASSERT_TRUE(close_to_reference(alone, ref, mag, 1e-5)) << "n " << n << " k " << k << " m " << m;
        for (const int threads : {1, 2}) {
          const ScopedThreads scoped(threads);
          std::vector<float> y(static_cast<size_t>(m * n), 7.0f);
          lin.forward(x.data(), m, y.data());
          ASSERT_TRUE(bit_equal(y.data(), alone.data(), y.size())) << "n " << n << " k " << k << " m " << m
                                                                   << " threads " << threads;
          std::vector<float> acc(static_cast<size_t>(m * n), 1.5f);
          lin.forward(x.data(), m, acc.data(), true);
          for (size_t e = 0; e < acc.size(); ++e) ASSERT_EQ(acc[e], 1.5f + alone[e]) << e;
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 36 * 6);
}

// The activations are rounded to bf16 (what the tiles multiply), not used at f32.
TEST(LinearAmx, RoundsActivationsToBf16) {
  if (!amx_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  const int64_t n = 16, k = 32;
  std::vector<float> w(n * k, 0.0f);
  w[0] = 1.0f;                            // y[0] = x[0]
  const std::vector<float> x = {1.00390625f + 1.0f / 4096};  // between two bf16 values
  std::vector<float> xs(k, 0.0f);
  xs[0] = x[0];
  std::vector<float> y(n);
  amx_linear(w, n, k).forward(xs.data(), 1, y.data());
  EXPECT_EQ(y[0], bf16_to_f32(f32_to_bf16(x[0])));
  EXPECT_NE(y[0], x[0]);
}

TEST(LinearAmx, ForwardGroupAndReadRow) {
  if (!amx_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  const int64_t k = 96;
  const auto wa = random_vector(static_cast<size_t>(48 * k), 11);
  const auto wb = random_vector(static_cast<size_t>(200 * k), 12);
  const Linear a = amx_linear(wa, 48, k), b = amx_linear(wb, 200, k);
  const auto x = random_vector(static_cast<size_t>(20 * k), 13);
  for (const int64_t m : {int64_t{1}, int64_t{20}}) {
    std::vector<float> ya(m * 48), yb(m * 200), ga(m * 48, 3.0f), gb(m * 200, 3.0f);
    a.forward(x.data(), m, ya.data());
    b.forward(x.data(), m, yb.data());
    Linear::forward_group({{&a, x.data(), m, ga.data()}, {&b, x.data(), m, gb.data()}});
    EXPECT_TRUE(bit_equal(ya.data(), ga.data(), ya.size())) << m;
    EXPECT_TRUE(bit_equal(yb.data(), gb.data(), yb.size())) << m;
  }
  std::vector<float> row(k);
  for (const int64_t r : {int64_t{0}, int64_t{17}, int64_t{199}}) {
    b.read_row(r, row.data());
    for (int64_t kk = 0; kk < k; ++kk) ASSERT_EQ(row[kk], bf16_to_f32(f32_to_bf16(wb[r * k + kk]))) << r << " " << kk;
  }
}

}  // namespace
}  // namespace shardlm
