// Internal: the oneDNN backend of Linear. Weights are reordered once into the layout oneDNN's matmul
// prefers (format_tag::any); one matmul primitive is cached per batch size m (and accumulate flag and
// OpenMP thread count).
// F32 weights: f32 x f32 -> f32. BF16 weights: activations rounded to bf16 (nearest even), f32 out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace shardlm {

class OneDnnMatmul {
 public:
  // Exactly one of w_f32 / w_bf16 is non-null: W [n, k] row-major.
  OneDnnMatmul(const float* w_f32, const uint16_t* w_bf16, int64_t n, int64_t k, bool bf16_weights);
  ~OneDnnMatmul();
  OneDnnMatmul(const OneDnnMatmul&) = delete;
  OneDnnMatmul& operator=(const OneDnnMatmul&) = delete;

  void forward(const float* x, int64_t m, float* y, bool accumulate) const;
  size_t weight_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shardlm
