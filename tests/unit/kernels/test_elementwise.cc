// Element-wise kernels on every ISA path against double-precision references (and the *_ref
// functions), on odd sizes and tails, with edge values (huge, infinite, NaN, -inf rows).
#include "kernels/elementwise.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/error.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::random_vector;
using testing::runnable_isas;
using testing::ScopedIsa;

const std::vector<int64_t> kSizes = {1, 3, 15, 16, 17, 31, 33, 64, 100, 257, 1000};
constexpr float kInf = std::numeric_limits<float>::infinity();

// 0.5 z (1 + tanh(u)) written as z / (1 + exp(-2u)): identical, without cancellation for z < 0.
double gelu_u(double z) { return std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z); }
double gelu_tanh_double(double z) { return z / (1.0 + std::exp(-2.0 * gelu_u(z))); }

// Tolerance of the kernel paths: ~1e-6 relative, plus what the f32 rounding of u costs through exp.
double gelu_tolerance(double z, double expect) {
  return std::fabs(expect) * (2e-6 + 2e-7 * std::fabs(2.0 * gelu_u(z))) + 1e-37;
}

TEST(Elementwise, RmsNormMatchesDoubleReferenceWithAndWithoutWeightInPlace) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int64_t dim : kSizes) {
      for (const int64_t rows : {int64_t{1}, int64_t{3}, int64_t{70}}) {
        const auto x = random_vector(static_cast<size_t>(rows * dim), static_cast<uint32_t>(dim + rows), -4.0f, 4.0f);
        const auto w = random_vector(static_cast<size_t>(dim), static_cast<uint32_t>(dim), 0.5f, 2.0f);
        for (const bool with_weight : {false, true}) {
          std::vector<float> y(x.size(), std::nanf(""));
          rms_norm(x.data(), with_weight ? w.data() : nullptr, y.data(), rows, dim, 1e-6f);
          std::vector<float> in_place = x;
          rms_norm(in_place.data(), with_weight ? w.data() : nullptr, in_place.data(), rows, dim, 1e-6f);
          EXPECT_EQ(y, in_place) << "aliasing changed the result, isa " << isa_name(isa);
          std::vector<float> ref_f(x.size());
          rms_norm_ref(x.data(), with_weight ? w.data() : nullptr, ref_f.data(), rows, dim, 1e-6f);
          for (int64_t r = 0; r < rows; ++r) {
            double ss = 0.0;
            for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
            const double scale = 1.0 / std::sqrt(ss / dim + 1e-6);
            for (int64_t i = 0; i < dim; ++i) {
              const double expect = x[r * dim + i] * scale * (with_weight ? w[i] : 1.0);
              ASSERT_NEAR(y[r * dim + i], expect, 1e-6 * std::fabs(expect) + 1e-30)
                  << isa_name(isa) << " dim " << dim << " row " << r << " i " << i;
              ASSERT_NEAR(ref_f[r * dim + i], expect, 1e-6 * std::fabs(expect) + 1e-30);
            }
          }
        }
      }
    }
  }
}

TEST(Elementwise, RmsNormOfZeroRowIsZero) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    std::vector<float> x(40, 0.0f), y(40, 1.0f);
    rms_norm(x.data(), nullptr, y.data(), 1, 40, 1e-6f);
    for (float v : y) EXPECT_EQ(v, 0.0f);
  }
}

TEST(Elementwise, GeluTanhMulMatchesDoubleReference) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int64_t n : kSizes) {
      auto gate = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n), -8.0f, 8.0f);
      const auto up = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n + 1), -2.0f, 2.0f);
      std::vector<float> out(static_cast<size_t>(n), std::nanf("")), ref(static_cast<size_t>(n));
      gelu_tanh_mul(gate.data(), up.data(), out.data(), n);
      gelu_tanh_mul_ref(gate.data(), up.data(), ref.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double expect = gelu_tanh_double(gate[i]) * up[i];
        ASSERT_NEAR(out[i], expect, gelu_tolerance(gate[i], expect)) << isa_name(isa) << " n " << n << " gate " << gate[i];
        // The literal f32 formula of the reference is only accurate to ~1 ulp of |g| (1 + tanh cancels).
        ASSERT_NEAR(ref[i], expect, 2e-6 * std::fabs(expect) + 2e-7 * std::fabs(gate[i] * up[i])) << "ref, gate " << gate[i];
      }
    }
  }
}

TEST(Elementwise, GeluTanhMulInPlace) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    const int64_t n = 1000 * 70 + 5;  // large enough for the threaded path, with a tail
    const auto gate = random_vector(static_cast<size_t>(n), 31, -6.0f, 6.0f);
    const auto up = random_vector(static_cast<size_t>(n), 32);
    std::vector<float> expect(static_cast<size_t>(n));
    gelu_tanh_mul(gate.data(), up.data(), expect.data(), n);
    auto g = gate;
    gelu_tanh_mul(g.data(), up.data(), g.data(), n);  // out aliases gate
    EXPECT_EQ(g, expect) << isa_name(isa);
    auto u = up;
    gelu_tanh_mul(gate.data(), u.data(), u.data(), n);  // out aliases up
    EXPECT_EQ(u, expect) << isa_name(isa);
  }
}

TEST(Elementwise, GeluTanhMulAccurateOnDenseSweepAndExtremes) {
  std::vector<float> gate;
  for (float g = -12.0f; g <= 12.0f; g += 0.00137f) gate.push_back(g);
  // (-inf itself gives NaN, like the f32 formula: -inf * 0.)
  for (float g : {0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 1e6f, -1e6f, 1e20f, -1e20f, kInf}) gate.push_back(g);
  const std::vector<float> up(gate.size(), 1.0f);
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    std::vector<float> out(gate.size());
    gelu_tanh_mul(gate.data(), up.data(), out.data(), static_cast<int64_t>(gate.size()));
    for (size_t i = 0; i < gate.size(); ++i) {
      const double g = gate[i];
      if (std::isinf(g)) {
        EXPECT_EQ(out[i], kInf) << isa_name(isa);
        continue;
      }
      const double expect = std::fabs(g) > 1e5 ? (g > 0 ? g : 0.0) : gelu_tanh_double(g);
      // Results below FLT_MIN may flush to 0.
      const double tol = std::fabs(g) > 1e5 ? 0.0 : std::max(gelu_tolerance(g, expect), std::fabs(expect) < 1e-37 ? 1e-37 : 0.0);
      ASSERT_NEAR(out[i], expect, tol) << isa_name(isa) << " gate " << g;
    }
  }
}

TEST(Elementwise, SoftCapMatchesDoubleTanhIncludingTailsAndInfinities) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int64_t n : kSizes) {
      auto x = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n + 5), -200.0f, 200.0f);
      const auto x0 = x;
      soft_cap(x.data(), n, 30.0f);
      for (int64_t i = 0; i < n; ++i) {
        const double expect = 30.0 * std::tanh(x0[i] / 30.0);
        ASSERT_NEAR(x[i], expect, 1e-6 * std::fabs(expect) + 1e-30) << isa_name(isa) << " x " << x0[i];
      }
    }
    // Dense sweep across the polynomial / exp boundary (|x/cap| = 0.625) and tiny values.
    std::vector<float> sweep;
    for (float v = -3.0f; v <= 3.0f; v += 0.000731f) sweep.push_back(v);
    for (float v : {1e-8f, -1e-8f, 1e-38f, 0.0f, 18.75f, -18.75f, 18.7501f, kInf, -kInf}) sweep.push_back(v * 30.0f);
    auto y = sweep;
    soft_cap(y.data(), static_cast<int64_t>(y.size()), 30.0f);
    for (size_t i = 0; i < sweep.size(); ++i) {
      const double expect = 30.0 * std::tanh(static_cast<double>(sweep[i]) / 30.0);
      ASSERT_NEAR(y[i], expect, 1e-6 * std::fabs(expect) + 1e-37) << isa_name(isa) << " x " << sweep[i];
    }
    std::vector<float> nan_in = {std::nanf(""), 1.0f};
    soft_cap(nan_in.data(), 2, 30.0f);
    EXPECT_TRUE(std::isnan(nan_in[0])) << isa_name(isa);
  }
  float x = 1.0f;
  EXPECT_THROW(soft_cap(&x, 1, 0.0f), Error);
}

TEST(Elementwise, SoftmaxRowsMatchesDoubleReference) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int64_t dim : kSizes) {
      const int64_t rows = 3;
      auto x = random_vector(static_cast<size_t>(rows * dim), static_cast<uint32_t>(dim), -30.0f, 30.0f);
      if (dim > 2) {
        x[1] = -kInf;  // masked entry
        x[dim + 2] = 200.0f;  // dominating entry
      }
      const auto x0 = x;
      auto ref = x;
      softmax_rows(x.data(), rows, dim);
      softmax_rows_ref(ref.data(), rows, dim);
      for (int64_t r = 0; r < rows; ++r) {
        double m = -INFINITY;
        for (int64_t i = 0; i < dim; ++i) m = std::max<double>(m, x0[r * dim + i]);
        double sum = 0.0;
        for (int64_t i = 0; i < dim; ++i) sum += std::exp(x0[r * dim + i] - m);
        for (int64_t i = 0; i < dim; ++i) {
          const double expect = std::exp(x0[r * dim + i] - m) / sum;
          // f32 rounding of x - max alone costs |x - max| * 2^-24 relative.
          const double tol = std::isinf(x0[r * dim + i]) ? 0.0 : expect * (2e-6 + std::fabs(x0[r * dim + i] - m) * 6e-8) + 1e-37;
          ASSERT_NEAR(x[r * dim + i], expect, tol) << isa_name(isa) << " dim " << dim;
          ASSERT_NEAR(ref[r * dim + i], expect, tol);
        }
      }
    }
  }
}

TEST(Elementwise, LogSumExpMatchesDoubleReferenceAndEdgeCases) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int64_t n : kSizes) {
      const auto x = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n + 9), -50.0f, 50.0f);
      double m = -INFINITY;
      for (float v : x) m = std::max<double>(m, v);
      double sum = 0.0;
      for (float v : x) sum += std::exp(v - m);
      const double expect = m + std::log(sum);
      EXPECT_NEAR(log_sum_exp(x.data(), n), expect, 1e-6 * std::fabs(expect) + 1e-6) << isa_name(isa) << " n " << n;
      EXPECT_NEAR(log_sum_exp_ref(x.data(), n), expect, 1e-6 * std::fabs(expect) + 1e-6);
    }
    const std::vector<float> all_neg_inf(19, -kInf);
    EXPECT_EQ(log_sum_exp(all_neg_inf.data(), 19), -kInf) << isa_name(isa);
    EXPECT_EQ(log_sum_exp(all_neg_inf.data(), 0), -kInf);
    std::vector<float> with_inf(19, 1.0f);
    with_inf[17] = kInf;
    EXPECT_EQ(log_sum_exp(with_inf.data(), 19), kInf) << isa_name(isa);
    std::vector<float> mixed(19, -kInf);
    mixed[18] = 2.5f;  // in the tail of every vector width
    EXPECT_FLOAT_EQ(log_sum_exp(mixed.data(), 19), 2.5f) << isa_name(isa);
    std::vector<float> same(1000, 3.0f);
    EXPECT_NEAR(log_sum_exp(same.data(), 1000), 3.0 + std::log(1000.0), 2e-6) << isa_name(isa);
  }
}

// The exp sums of a log-sum-exp at temperature 1 and 1 / inv_t match double sums to ~1e-6 relative
// on every ISA, the LM-head size included; at inv_t == 1 both are the first.
TEST(Elementwise, ExpSumsMatchDoubleSums) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int64_t n : {int64_t{1}, int64_t{17}, int64_t{255}, int64_t{256}, int64_t{257}, int64_t{1000}, int64_t{262144}}) {
      const auto x = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n + 3), -30.0f, 30.0f);
      float m = -kInf;
      for (float v : x) m = std::max(m, v);
      for (const float inv_t : {1.0f, 1.0f / 0.7f, 1.0f / 1.3f}) {
        double expect = 0.0, expect_t = 0.0;
        for (float v : x) {
          expect += std::exp(static_cast<double>(v) - m);
          expect_t += std::exp((static_cast<double>(v) - m) * inv_t);
        }
        double sum = -1.0, sum_t = -1.0;
        exp_sums(x.data(), n, m, inv_t, &sum, &sum_t);
        EXPECT_NEAR(sum, expect, 2e-6 * expect) << isa_name(isa) << " n " << n << " inv_t " << inv_t;
        EXPECT_NEAR(sum_t, expect_t, 2e-6 * expect_t) << isa_name(isa) << " n " << n << " inv_t " << inv_t;
        if (inv_t == 1.0f) {
          EXPECT_EQ(sum, sum_t);
        }
        exp_sums_ref(x.data(), n, m, inv_t, &sum, &sum_t);
        EXPECT_NEAR(sum, expect, 2e-6 * expect);
        EXPECT_NEAR(sum_t, expect_t, 2e-6 * expect_t);
      }
    }
    std::vector<float> tail(19, -kInf);
    tail[18] = 2.0f;  // in the tail of every vector width; -inf terms are exactly 0
    double sum = 0.0, sum_t = 0.0;
    exp_sums(tail.data(), 19, 2.0f, 0.5f, &sum, &sum_t);
    EXPECT_EQ(sum, 1.0) << isa_name(isa);
    EXPECT_EQ(sum_t, 1.0) << isa_name(isa);
  }
}

}  // namespace
}  // namespace shardlm
