// A linear layer's weight matrix W [n, k] (out, in; Hugging Face layout), packed once at load, and
// y[m, n] = x[m, k] · Wᵀ for f32 activations. Two backends:
//  - kOwn: the project's SIMD kernel; each output element is reduced in the same order whatever m
//    is (batch-invariant), weights streamed once per call; used for decode and, by default, prefill.
//  - kOneDnn: oneDNN matmul (weights reordered once with format_tag::any, primitive cached per m)
//    for large prefill chunks where batch invariance is not required.
#pragma once

#include <cstdint>
#include <memory>

namespace shardlm {

enum class WeightFormat { kF32, kBF16 };
enum class MatmulBackend { kOwn, kOneDnn };

class Linear {
 public:
  Linear();
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  // Packs W (row-major [n, k], f32) into the given storage format.
  static Linear from_f32(const float* w, int64_t n, int64_t k, WeightFormat format,
                         MatmulBackend backend = MatmulBackend::kOwn);
  // Packs W given as bf16 bit patterns (row-major [n, k], e.g. straight from a checkpoint); kBF16
  // keeps the values exactly, kF32 widens them exactly.
  static Linear from_bf16(const uint16_t* w, int64_t n, int64_t k, WeightFormat format,
                          MatmulBackend backend = MatmulBackend::kOwn);

  // y[m, n] = x[m, k] · Wᵀ (accumulate: y += ...). x rows are contiguous with stride k, y with n.
  void forward(const float* x, int64_t m, float* y, bool accumulate = false) const;

  int64_t out_features() const;  // n
  int64_t in_features() const;   // k
  WeightFormat format() const;
  MatmulBackend backend() const;
  size_t weight_bytes() const;
  bool empty() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm
