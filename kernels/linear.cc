// Linear: owns the packed weights of one layer and forwards to the own kernel (gemm_own.h) at the
// active ISA, to the AMX tiles (gemm_amx.h) or to oneDNN (linear_onednn.h).
#include "kernels/linear.h"

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_amx.h"
#include "kernels/gemm_own.h"
#include "kernels/linear_onednn.h"
#include "kernels/qgemm.h"
#include "kernels/weight_shape.h"

namespace shardlm {

struct Linear::Impl {
  int64_t n = 0;
  int64_t k = 0;
  WeightFormat format = WeightFormat::kF32;
  MatmulBackend backend = MatmulBackend::kOwn;
  gemm::PackedWeights own;              // kOwn f32/bf16 (and degenerate shapes of kOneDnn)
  qgemm::PackedWeights quant;           // int8 / q4 (either backend)
  std::unique_ptr<OneDnnMatmul> onednn;  // kOneDnn
  amx::PackedWeights amx;               // kAmx bf16
  bool on_amx = false;
};

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

namespace {

void check_args(const void* w, int64_t n, int64_t k) {
  check_weight_shape(n, k);
  if (w == nullptr && n > 0 && k > 0) fail("linear weight [{}, {}] has no data", n, k);
}

// kAmx takes bf16 weights (f32 ones run on the own kernel); refused without AMX.
bool use_amx(WeightFormat format, MatmulBackend backend, int64_t n, int64_t k) {
  if (backend != MatmulBackend::kAmx || format != WeightFormat::kBF16) return false;
  amx::require_amx("linear [{}, {}]", n, k);
  return true;
}

qgemm::Format quant_format(WeightFormat format) {
  return format == WeightFormat::kInt8 ? qgemm::Format::kInt8 : qgemm::Format::kQ4;
}

}  // namespace

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return "f32";
    case WeightFormat::kBF16: return "bf16";
    case WeightFormat::kInt8: return "int8";
    case WeightFormat::kQ4: return "q4";
  }
  return "unknown";
}

WeightFormat parse_weight_format(const std::string& name) {
  if (name == "f32") return WeightFormat::kF32;
  if (name == "bf16") return WeightFormat::kBF16;
  if (name == "int8") return WeightFormat::kInt8;
  if (name == "q4") return WeightFormat::kQ4;
  fail("weight format '{}' is not one of f32, bf16, int8, q4", name);
}

bool amx_supported() { return has_amx_bf16(); }

bool is_quantized(WeightFormat format) { return format == WeightFormat::kInt8 || format == WeightFormat::kQ4; }

Linear Linear::with_shape(int64_t n, int64_t k, WeightFormat format, MatmulBackend backend) {
  Linear linear;
  linear.impl_ = std::make_unique<Impl>();
  linear.impl_->n = n;
  linear.impl_->k = k;
  linear.impl_->format = format;
  linear.impl_->backend = backend;
  return linear;
}

Linear Linear::from_f32(const float* w, int64_t n, int64_t k, WeightFormat format, MatmulBackend backend) {
  check_args(w, n, k);
  Linear linear = with_shape(n, k, format, backend);
  Impl& impl = *linear.impl_;
  const bool bf16 = format == WeightFormat::kBF16;
  if (is_quantized(format)) {
    impl.quant = qgemm::pack_f32(w, n, k, quant_format(format));
  } else if (use_amx(format, backend, n, k)) {
    impl.amx = amx::pack_f32(w, n, k);
    impl.on_amx = true;
  } else if (backend == MatmulBackend::kOneDnn && n > 0 && k > 0) {
    impl.onednn = std::make_unique<OneDnnMatmul>(w, nullptr, n, k, bf16);
  } else {
    impl.own = gemm::pack_f32(w, n, k, bf16);
  }
  return linear;
}

Linear Linear::from_rows(int64_t n, int64_t k, WeightFormat format,
                         const std::function<void(int64_t row, float* out)>& read_row, const float* row_max_abs) {
  if (!is_quantized(format)) fail("Linear::from_rows packs int8 or q4, not {}", weight_format_name(format));
  Linear linear = with_shape(n, k, format, MatmulBackend::kOwn);
  Impl& impl = *linear.impl_;
  impl.quant = qgemm::pack_rows(n, k, quant_format(format), read_row, row_max_abs);
  return linear;
}

Linear Linear::from_bf16(const uint16_t* w, int64_t n, int64_t k, WeightFormat format, MatmulBackend backend) {
  check_args(w, n, k);
  Linear linear = with_shape(n, k, format, backend);
  Impl& impl = *linear.impl_;
  const bool bf16 = format == WeightFormat::kBF16;
  if (is_quantized(format)) {
    impl.quant = qgemm::pack_bf16(w, n, k, quant_format(format));
  } else if (use_amx(format, backend, n, k)) {
    impl.amx = amx::pack_bf16(w, n, k);
    impl.on_amx = true;
  } else if (backend == MatmulBackend::kOneDnn && n > 0 && k > 0) {
    impl.onednn = std::make_unique<OneDnnMatmul>(nullptr, w, n, k, bf16);
  } else {
    impl.own = gemm::pack_bf16(w, n, k, !bf16);
  }
  return linear;
}

void Linear::forward(const float* x, int64_t m, float* y, bool accumulate) const {
  if (!impl_) fail("Linear::forward called on an empty Linear (no weights packed)");
  if (m < 0) fail("Linear::forward: negative batch size {}", m);
  if (m == 0) return;
  if (is_quantized(impl_->format)) {
    qgemm::gemm(impl_->quant, x, m, y, accumulate, active_isa());
  } else if (impl_->on_amx) {
    amx::gemm(impl_->amx, x, m, y, accumulate);
  } else if (impl_->onednn) {
    impl_->onednn->forward(x, m, y, accumulate);
  } else {
    gemm::gemm(impl_->own, x, m, y, accumulate, active_isa());
  }
}

void Linear::forward_group(const std::vector<Product>& products) {
  std::vector<qgemm::GemmTask> quantised;
  std::vector<gemm::GemmTask> own;
  std::vector<amx::GemmTask> tiles;
  for (const Product& p : products) {
    if (p.linear == nullptr || !p.linear->impl_) fail("Linear::forward_group: a product has no weights");
    if (p.m < 0) fail("Linear::forward_group: negative batch size {}", p.m);
    const Impl& impl = *p.linear->impl_;
    if (is_quantized(impl.format)) {
      quantised.push_back(qgemm::GemmTask{&impl.quant, p.x, p.m, p.y});
    } else if (impl.on_amx) {
      tiles.push_back(amx::GemmTask{&impl.amx, p.x, p.m, p.y});
    } else if (impl.onednn) {
      p.linear->forward(p.x, p.m, p.y);
    } else {
      own.push_back(gemm::GemmTask{&impl.own, p.x, p.m, p.y});
    }
  }
  if (!quantised.empty()) qgemm::gemm_group(quantised.data(), quantised.size(), active_isa());
  if (!own.empty()) gemm::gemm_group(own.data(), own.size(), active_isa());
  if (!tiles.empty()) amx::gemm_group(tiles.data(), tiles.size());
}

void Linear::read_row(int64_t r, float* out) const {
  if (!impl_) fail("Linear::read_row called on an empty Linear (no weights packed)");
  if (r < 0 || r >= impl_->n) fail("Linear::read_row: row {} outside [0, {})", r, impl_->n);
  if (is_quantized(impl_->format)) {
    qgemm::dequantize_row(impl_->quant, r, out);
    return;
  }
  if (impl_->onednn) fail("Linear::read_row: the oneDNN backend keeps its weights in its own layout");
  if (impl_->on_amx) {
    for (int64_t kk = 0; kk < impl_->k; ++kk) out[kk] = bf16_to_f32(impl_->amx.at(r, kk));
    return;
  }
  const gemm::PackedWeights& w = impl_->own;
  const size_t base = static_cast<size_t>((r / gemm::kPanel) * w.panel_stride() + r % gemm::kPanel);
  gemm::for_each_k_row(w.k, [&](int64_t kk, int64_t row) {
    const size_t at = base + static_cast<size_t>(row * gemm::kPanel);
    out[kk] = w.bf16 ? bf16_to_f32(w.b16[at]) : w.f32[at];
  });
}

int64_t Linear::out_features() const { return impl_ ? impl_->n : 0; }
int64_t Linear::in_features() const { return impl_ ? impl_->k : 0; }
WeightFormat Linear::format() const { return impl_ ? impl_->format : WeightFormat::kF32; }
MatmulBackend Linear::backend() const { return impl_ ? impl_->backend : MatmulBackend::kOwn; }
size_t Linear::weight_bytes() const {
  if (!impl_) return 0;
  if (is_quantized(impl_->format)) return impl_->quant.bytes();
  if (impl_->on_amx) return impl_->amx.bytes();
  return impl_->onednn ? impl_->onednn->weight_bytes() : impl_->own.bytes();
}
bool Linear::empty() const { return !impl_; }

}  // namespace shardlm
