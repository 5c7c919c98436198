// Element-wise and row-wise kernels on f32 activations: RMSNorm, GELU-tanh gating, soft-capping,
// softmax. Each dispatches on active_isa() and has a scalar reference (the *_ref functions).
#pragma once

#include <cstdint>

namespace shardlm {

// y[r, :] = x[r, :] * (mean(x[r, :]^2) + eps)^-1/2 * (w ? w : 1). x and y may alias.
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps);
void rms_norm_ref(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps);

// out[i] = gelu_tanh(gate[i]) * up[i], gelu_tanh(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).
void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n);
void gelu_tanh_mul_ref(const float* gate, const float* up, float* out, int64_t n);

// x[i] = cap * tanh(x[i] / cap).
void soft_cap(float* x, int64_t n, float cap);
void soft_cap_ref(float* x, int64_t n, float cap);

// In-place softmax of each row.
void softmax_rows(float* x, int64_t rows, int64_t dim);
void softmax_rows_ref(float* x, int64_t rows, int64_t dim);

// log(sum(exp(x))) of one row, computed stably (-inf for n == 0 or all -inf).
float log_sum_exp(const float* x, int64_t n);
float log_sum_exp_ref(const float* x, int64_t n);

// The sums of exp(x[i] - max) and of exp((x[i] - max) * inv_t) over a row (a log-sum-exp at
// temperature 1 and 1 / inv_t; max >= every x[i]): each term in float, summed in float lanes over
// 256 values at a time and those partial sums in double. inv_t == 1: both sums are the first.
void exp_sums(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t);
void exp_sums_ref(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t);

}  // namespace shardlm
