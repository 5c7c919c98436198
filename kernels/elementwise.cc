// Element-wise kernels: the scalar references (also the kScalar path) and the ISA dispatch.
#include "kernels/elementwise.h"

#include <cmath>
#include <limits>

#include "common/error.h"
#include "kernels/cpu_features.h"
#include "kernels/elementwise_simd.h"

namespace shardlm {
namespace {

void check_rows(const char* what, int64_t rows, int64_t dim) {
  if (rows < 0 || dim < 0) fail("{}: negative shape [{}, {}]", what, rows, dim);
}

// The kScalar path of gelu_tanh_mul: the same function in the form without cancellation,
// 0.5 g (1 + tanh(u)) = g / (1 + exp(-2u)), like the SIMD paths.
void gelu_tanh_mul_scalar(const float* gate, const float* up, float* out, int64_t n) {
  const float c = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float u = c * (g + 0.044715f * g * g * g);
    out[i] = g / (1.0f + std::exp(-2.0f * u)) * up[i];
  }
}

}  // namespace

void rms_norm_ref(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps) {
  check_rows("rms_norm", rows, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float mean = static_cast<float>(sum / static_cast<double>(dim));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w != nullptr ? (xr[i] * scale) * w[i] : xr[i] * scale;
  }
}

void gelu_tanh_mul_ref(const float* gate, const float* up, float* out, int64_t n) {
  const float c = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(c * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void soft_cap_ref(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void softmax_rows_ref(float* x, int64_t rows, int64_t dim) {
  check_rows("softmax_rows", rows, dim);
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * dim;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < dim; ++i) m = std::fmax(m, xr[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      xr[i] = std::exp(xr[i] - m);
      sum += xr[i];
    }
    const float total = static_cast<float>(sum);
    for (int64_t i = 0; i < dim; ++i) xr[i] /= total;
  }
}

float log_sum_exp_ref(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    nan = nan || std::isnan(x[i]);
    m = std::fmax(m, x[i]);
  }
  if (nan) return std::numeric_limits<float>::quiet_NaN();
  if (std::isinf(m)) return m;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - m);
  return m + static_cast<float>(std::log(sum));
}

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps) {
  check_rows("rms_norm", rows, dim);
  if (rows == 0 || dim == 0) return;
  switch (active_isa()) {
    case Isa::kAvx512: return detail::rms_norm_avx512(x, w, y, rows, dim, eps);
    case Isa::kAvx2: return detail::rms_norm_avx2(x, w, y, rows, dim, eps);
    case Isa::kScalar: return rms_norm_ref(x, w, y, rows, dim, eps);
  }
}

void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n) {
  if (n <= 0) return;
  switch (active_isa()) {
    case Isa::kAvx512: return detail::gelu_tanh_mul_avx512(gate, up, out, n);
    case Isa::kAvx2: return detail::gelu_tanh_mul_avx2(gate, up, out, n);
    case Isa::kScalar: return gelu_tanh_mul_scalar(gate, up, out, n);
  }
}

void soft_cap(float* x, int64_t n, float cap) {
  if (n <= 0) return;
  if (!(cap > 0.0f)) fail("soft_cap: cap must be positive, got {}", cap);
  switch (active_isa()) {
    case Isa::kAvx512: return detail::soft_cap_avx512(x, n, cap);
    case Isa::kAvx2: return detail::soft_cap_avx2(x, n, cap);
    case Isa::kScalar: return soft_cap_ref(x, n, cap);
  }
}

void softmax_rows(float* x, int64_t rows, int64_t dim) {
  check_rows("softmax_rows", rows, dim);
  if (rows == 0 || dim == 0) return;
  switch (active_isa()) {
    case Isa::kAvx512: return detail::softmax_rows_avx512(x, rows, dim);
    case Isa::kAvx2: return detail::softmax_rows_avx2(x, rows, dim);
    case Isa::kScalar: return softmax_rows_ref(x, rows, dim);
  }
}

void exp_sums_ref(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t) {
  double total = 0.0, total_t = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - max;
    total += std::exp(d);
    total_t += std::exp(d * inv_t);
  }
  *sum = total;
  *sum_t = inv_t == 1.0f ? total : total_t;
}

void exp_sums(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t) {
  switch (active_isa()) {
    case Isa::kAvx512: return detail::exp_sums_avx512(x, n, max, inv_t, sum, sum_t);
    case Isa::kAvx2: return detail::exp_sums_avx2(x, n, max, inv_t, sum, sum_t);
    case Isa::kScalar: break;
  }
  exp_sums_ref(x, n, max, inv_t, sum, sum_t);
}

float log_sum_exp(const float* x, int64_t n) {
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  switch (active_isa()) {
    case Isa::kAvx512: return detail::log_sum_exp_avx512(x, n);
    case Isa::kAvx2: return detail::log_sum_exp_avx2(x, n);
    case Isa::kScalar: break;
  }
  return log_sum_exp_ref(x, n);
}

}  // namespace shardlm
