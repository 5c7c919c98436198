// oneDNN 2.6 matmul backend of Linear: weights logically [k, n] (our row-major [n, k] is format "ba"),
// reordered once into the primitive's preferred layout; primitives cached per (m, accumulate, threads).
#include "kernels/linear_onednn.h"

#include <omp.h>

#include <map>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "common/error.h"
#include "common/half.h"

namespace shardlm {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// One CPU engine per process; streams are per thread (a CPU stream executes synchronously).
dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// Batch size used to ask oneDNN for its preferred weight layout at pack time.
constexpr int64_t kLayoutQueryM = 128;

// oneDNN's name of the instruction set its kernels use on this CPU.
const char* onednn_isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

}  // namespace

bool onednn_supports_bf16() {
  // The cpu_isa values are sets of feature bits; every AVX-512 core level contains avx512_core's.
  const auto bits = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return (bits & core) == core;
}

struct OneDnnMatmul::State {
  int64_t n = 0;
  int64_t k = 0;
  bool bf16 = false;
  dnnl::memory::desc weights_md;
  dnnl::memory weights;
  mutable std::mutex mutex;
  // Keyed by (m, accumulate, OpenMP threads): oneDNN fixes its thread count when a primitive is
  // created, so a change of omp_set_num_threads() needs a new one.
  mutable std::map<std::tuple<int64_t, bool, int>, dnnl::matmul> primitives;

  dt src_type() const { return bf16 ? dt::bf16 : dt::f32; }

  dnnl::matmul::primitive_desc make_pd(int64_t m, const dnnl::memory::desc& wei_md, bool accumulate) const {
    dnnl::memory::desc src_md({m, k}, src_type(), tag::ab);
    dnnl::memory::desc dst_md({m, n}, dt::f32, tag::ab);
    dnnl::matmul::desc desc(src_md, wei_md, dst_md);
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    return dnnl::matmul::primitive_desc(desc, attr, cpu_engine());
  }

  const dnnl::matmul& primitive(int64_t m, bool accumulate) const {
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(m, accumulate, omp_get_max_threads());
    auto it = primitives.find(key);
    if (it == primitives.end()) {
      // The weights are already packed: ask for exactly their layout.
      it = primitives.emplace(key, dnnl::matmul(make_pd(m, weights_md, accumulate))).first;
    }
    return it->second;
  }
};

OneDnnMatmul::OneDnnMatmul(const float* w_f32, const uint16_t* w_bf16, int64_t n, int64_t k, bool bf16_weights)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.n = n;
  s.k = k;
  s.bf16 = bf16_weights;
  if (n <= 0 || k <= 0) fail("oneDNN linear: weight shape [{}, {}] must be positive", n, k);
  if (bf16_weights && !onednn_supports_bf16()) {
    fail("oneDNN linear [{}, {}]: oneDNN has no bf16 matmul on this CPU (it needs AVX-512; oneDNN uses {} here): "
         "use the own kernels (--matmul own, the default) or f32 weights",
         n, k, onednn_isa_name(dnnl::get_effective_cpu_isa()));
  }
  try {
    // Source weights in the storage type, logical [k, n], physical row-major [n, k] = "ba".
    const size_t count = static_cast<size_t>(n) * static_cast<size_t>(k);
    std::vector<float> f32_copy;
    std::vector<uint16_t> bf16_copy;
    void* user_ptr = nullptr;
    if (bf16_weights) {
      if (w_bf16 != nullptr) {
        user_ptr = const_cast<uint16_t*>(w_bf16);
      } else {
        bf16_copy.resize(count);
        for (size_t i = 0; i < count; ++i) bf16_copy[i] = f32_to_bf16(w_f32[i]);
        user_ptr = bf16_copy.data();
      }
    } else {
      if (w_f32 != nullptr) {
        user_ptr = const_cast<float*>(w_f32);
      } else {
        f32_copy.resize(count);
        for (size_t i = 0; i < count; ++i) f32_copy[i] = bf16_to_f32(w_bf16[i]);
        user_ptr = f32_copy.data();
      }
    }
    const dt wei_type = bf16_weights ? dt::bf16 : dt::f32;
    dnnl::memory::desc user_md({k, n}, wei_type, tag::ba);
    dnnl::memory user(user_md, cpu_engine(), user_ptr);

    dnnl::memory::desc any_md({k, n}, wei_type, tag::any);
    auto pd = s.make_pd(kLayoutQueryM, any_md, false);
    s.weights_md = pd.weights_desc();
    s.weights = dnnl::memory(s.weights_md, cpu_engine());
    dnnl::reorder(user, s.weights).execute(thread_stream(), user, s.weights);
    thread_stream().wait();
  } catch (const dnnl::error& e) {
    fail("oneDNN linear [{}, {}] ({}): weight packing failed: {} (status {})", n, k, bf16_weights ? "bf16" : "f32",
         e.what(), static_cast<int>(e.status));
  }
}

OneDnnMatmul::~OneDnnMatmul() = default;

size_t OneDnnMatmul::weight_bytes() const { return state_->weights_md.get_size(); }

void OneDnnMatmul::forward(const float* x, int64_t m, float* y, bool accumulate) const {
  if (m <= 0) return;
  const State& s = *state_;
  try {
    const dnnl::matmul& prim = s.primitive(m, accumulate);
    std::vector<uint16_t> x_bf16;
    void* src_ptr = const_cast<float*>(x);
    if (s.bf16) {
      const int64_t count = m * s.k;
      x_bf16.resize(static_cast<size_t>(count));
#pragma omp parallel for schedule(static) if (count > (1 << 16))
      for (int64_t i = 0; i < count; ++i) x_bf16[i] = f32_to_bf16(x[i]);
      src_ptr = x_bf16.data();
    }
    dnnl::memory src({{m, s.k}, s.src_type(), tag::ab}, cpu_engine(), src_ptr);
    dnnl::memory dst({{m, s.n}, dt::f32, tag::ab}, cpu_engine(), y);
    dnnl::stream& stream = thread_stream();
    prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, dst}});
    stream.wait();
  } catch (const dnnl::error& e) {
    fail("oneDNN linear [{}, {}] forward with m = {} failed: {} (status {})", s.n, s.k, m, e.what(),
         static_cast<int>(e.status));
  }
}

}  // namespace shardlm
