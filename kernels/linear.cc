// Linear: owns the packed weights of one layer and forwards to the own kernel (gemm_own.h) at the
// active ISA, or to oneDNN (linear_onednn.h).
#include "kernels/linear.h"

#include "common/error.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_own.h"
#include "kernels/linear_onednn.h"

namespace shardlm {

struct Linear::Impl {
  int64_t n = 0;
  int64_t k = 0;
  WeightFormat format = WeightFormat::kF32;
  MatmulBackend backend = MatmulBackend::kOwn;
  gemm::PackedWeights own;              // kOwn (and degenerate shapes of kOneDnn)
  std::unique_ptr<OneDnnMatmul> onednn;  // kOneDnn
};

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

namespace {

void check_args(const void* w, int64_t n, int64_t k) {
  if (n < 0 || k < 0) fail("linear weight shape [{}, {}] is negative", n, k);
  if (w == nullptr && n > 0 && k > 0) fail("linear weight [{}, {}] has no data", n, k);
}

}  // namespace

Linear Linear::from_f32(const float* w, int64_t n, int64_t k, WeightFormat format, MatmulBackend backend) {
  check_args(w, n, k);
  Linear linear;
  linear.impl_ = std::make_unique<Impl>();
  Impl& impl = *linear.impl_;
  impl.n = n;
  impl.k = k;
  impl.format = format;
  impl.backend = backend;
  const bool bf16 = format == WeightFormat::kBF16;
  if (backend == MatmulBackend::kOneDnn && n > 0 && k > 0) {
    impl.onednn = std::make_unique<OneDnnMatmul>(w, nullptr, n, k, bf16);
  } else {
    impl.own = gemm::pack_f32(w, n, k, bf16);
  }
  return linear;
}

Linear Linear::from_bf16(const uint16_t* w, int64_t n, int64_t k, WeightFormat format, MatmulBackend backend) {
  check_args(w, n, k);
  Linear linear;
  linear.impl_ = std::make_unique<Impl>();
  Impl& impl = *linear.impl_;
  impl.n = n;
  impl.k = k;
  impl.format = format;
  impl.backend = backend;
  const bool bf16 = format == WeightFormat::kBF16;
  if (backend == MatmulBackend::kOneDnn && n > 0 && k > 0) {
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
  if (impl_->onednn) {
    impl_->onednn->forward(x, m, y, accumulate);
  } else {
    gemm::gemm(impl_->own, x, m, y, accumulate, active_isa());
  }
}

int64_t Linear::out_features() const { return impl_ ? impl_->n : 0; }
int64_t Linear::in_features() const { return impl_ ? impl_->k : 0; }
WeightFormat Linear::format() const { return impl_ ? impl_->format : WeightFormat::kF32; }
MatmulBackend Linear::backend() const { return impl_ ? impl_->backend : MatmulBackend::kOwn; }
size_t Linear::weight_bytes() const {
  if (!impl_) return 0;
  return impl_->onednn ? impl_->onednn->weight_bytes() : impl_->own.bytes();
}
bool Linear::empty() const { return !impl_; }

}  // namespace shardlm
