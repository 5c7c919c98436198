// Shared by the Linear tests (own kernel, oneDNN, AMX): the double-precision reference product,
// the check of a result against it, bf16 rounding of a whole vector and bit-equality of results.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/half.h"

namespace shardlm::testing {

inline std::vector<float> round_to_bf16(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return r;
}

// y = x · Wᵀ in double, plus Σ|x·w| per element (the scale of the rounding error).
inline void reference(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n, int64_t k,
                      std::vector<double>& y, std::vector<double>& magnitude) {
  y.assign(static_cast<size_t>(m * n), 0.0);
  magnitude.assign(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0, a = 0.0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const double p = static_cast<double>(x[i * k + kk]) * w[j * k + kk];
        s += p;
        a += std::fabs(p);
      }
      y[i * n + j] = s;
      magnitude[i * n + j] = a;
    }
  }
}

// |y - ref| <= rel * Σ|x·w| (+ a tiny absolute floor for all-zero rows).
inline ::testing::AssertionResult close_to_reference(const std::vector<float>& y, const std::vector<double>& ref,
                                                     const std::vector<double>& magnitude, double rel) {
  for (size_t i = 0; i < y.size(); ++i) {
    const double err = std::fabs(static_cast<double>(y[i]) - ref[i]);
    if (!(err <= rel * magnitude[i] + 1e-30)) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << y[i] << ", reference " << ref[i]
                                           << ", |err| " << err << " > " << rel << " * " << magnitude[i];
    }
  }
  return ::testing::AssertionSuccess();
}

inline bool bit_equal(const float* a, const float* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace shardlm::testing
