// AVX2 instantiation of the element-wise kernels (elementwise_impl.inl).
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/elementwise_simd.h"
#include "kernels/simd_math.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace shardlm::detail {

#include "kernels/elementwise_impl.inl"

using S = simd::VecAvx2;

void rms_norm_avx2(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps) {
  rms_norm_t<S>(x, w, y, rows, dim, eps);
}
void gelu_tanh_mul_avx2(const float* gate, const float* up, float* out, int64_t n) { gelu_tanh_mul_t<S>(gate, up, out, n); }
void soft_cap_avx2(float* x, int64_t n, float cap) { soft_cap_t<S>(x, n, cap); }
void softmax_rows_avx2(float* x, int64_t rows, int64_t dim) { softmax_rows_t<S>(x, rows, dim); }
float log_sum_exp_avx2(const float* x, int64_t n) { return log_sum_exp_t<S>(x, n); }
void exp_sums_avx2(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t) {
  exp_sums_t<S>(x, n, max, inv_t, sum, sum_t);
}

}  // namespace shardlm::detail

#pragma GCC pop_options
