// Internal: the per-ISA variants of the element-wise kernels (elementwise_avx2.cc,
// elementwise_avx512.cc), selected by the dispatchers in elementwise.cc.
#pragma once

#include <cstdint>

namespace shardlm::detail {

#define SHARDLM_ELEMENTWISE_DECLS(isa)                                                                   \
  void rms_norm_##isa(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps); \
  void gelu_tanh_mul_##isa(const float* gate, const float* up, float* out, int64_t n);                \
  void soft_cap_##isa(float* x, int64_t n, float cap);                                                 \
  void softmax_rows_##isa(float* x, int64_t rows, int64_t dim);                                        \
  float log_sum_exp_##isa(const float* x, int64_t n);                                                 \
  void exp_sums_##isa(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t);

SHARDLM_ELEMENTWISE_DECLS(avx2)
SHARDLM_ELEMENTWISE_DECLS(avx512)

#undef SHARDLM_ELEMENTWISE_DECLS

}  // namespace shardlm::detail
