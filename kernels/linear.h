// A linear layer's weight matrix W [n, k] (out, in; Hugging Face layout), packed once at load, and
// y[m, n] = x[m, k] · Wᵀ for f32 activations. Three backends:
//  - kOwn: the project's SIMD kernel; each output element is reduced in the same order whatever m
//    is (batch-invariant), weights streamed once per call; used for decode and, by default, prefill.
//  - kOneDnn: oneDNN matmul (weights reordered once with format_tag::any, primitive cached per m)
//    for large prefill chunks where batch invariance is not required.
//  - kAmx: bf16 weights on Intel AMX tiles (gemm_amx.h; activations rounded to bf16), for every
//    batch size: batch-invariant, but not bit-equal to kOwn. Refused where the CPU has no AMX-BF16;
//    f32 weights on kAmx run on the own kernel.
// Weight formats: f32, bf16, and the quantised int8 (per-row scales) and q4 (blocks of 32 with an
// f16 scale), which always run on the own quantised kernel (qgemm.h; activations quantised to int8
// per block of 32 on the fly) whatever the backend asked for.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shardlm {

enum class WeightFormat { kF32, kBF16, kInt8, kQ4 };

const char* weight_format_name(WeightFormat format);  // f32 | bf16 | int8 | q4
// Parses f32 | bf16 | int8 | q4 (throws Error naming the accepted values otherwise).
WeightFormat parse_weight_format(const std::string& name);
bool is_quantized(WeightFormat format);
enum class MatmulBackend { kOwn, kOneDnn, kAmx };
// Whether the kAmx backend can run on this CPU (has_amx_bf16()).
bool amx_supported();
// Whether the kOneDnn backend can take bf16 weights on this CPU: oneDNN 2.6 has bf16 matmuls only
// from AVX-512 on (a Linear of bf16 weights on kOneDnn is refused elsewhere, naming the CPU's ISA).
bool onednn_supports_bf16();

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

  // Packs W [n, k] into a quantised format (int8 or q4), reading row r through read_row(r, out) (k
  // f32 values; called from several threads at once) while it quantises, so that the matrix is never
  // held whole in f32: how large matrices are loaded. row_max_abs (int8; n values, or null): the
  // magnitude each row's scale is taken from instead of its own largest, e.g. the largest over the
  // whole row when W is one worker's slice of its columns (so that the scales do not depend on the split).
  static Linear from_rows(int64_t n, int64_t k, WeightFormat format,
                          const std::function<void(int64_t row, float* out)>& read_row,
                          const float* row_max_abs = nullptr);

  // y[m, n] = x[m, k] · Wᵀ (accumulate: y += ...). x rows are contiguous with stride k, y with n.
  void forward(const float* x, int64_t m, float* y, bool accumulate = false) const;

  // Several independent products y = x · Wᵀ (the experts a MoE layer routes its tokens to), run in
  // one parallel region where the kernels allow (no barrier between them); each result equals
  // forward() of its product alone, bit for bit.
  struct Product {
    const Linear* linear;
    const float* x;
    int64_t m;
    float* y;
  };
  static void forward_group(const std::vector<Product>& products);

  // Row r of W (k values) as the kernel sees it (dequantised / widened); not on the oneDNN backend.
  void read_row(int64_t r, float* out) const;

  int64_t out_features() const;  // n
  int64_t in_features() const;   // k
  WeightFormat format() const;
  MatmulBackend backend() const;
  size_t weight_bytes() const;
  bool empty() const;

 private:
  // An empty Linear of the given shape and format, whose weights the caller packs.
  static Linear with_shape(int64_t n, int64_t k, WeightFormat format, MatmulBackend backend);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm
