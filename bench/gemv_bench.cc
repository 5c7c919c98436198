// google-benchmark of the decode GEMV (m = 1) and prefill GEMM of Linear for each weight format
// (bf16, int8, q4) on the Gemma 4 31B layer shapes and the 26B-A4B expert shapes, at 1 and 2
// threads. The machine's read bandwidth (a plain streaming read of a buffer far larger than the
// caches) is measured right before and right after each GEMV, and every GEMV reports its
// weight-stream rate in GB/s, that read bandwidth ("read_GB/s", the mean of the two) and their ratio
// ("of_read_bw"); prefill GEMMs report GFLOP/s.
// Each case cycles through enough copies of the matrix (>= 256 MB) that nothing stays in cache.
// Also: the 26B-A4B experts 8 at a time as one group, as a MoE layer runs a token's routed experts
// ("gemv8/..."), and packing (quantising) a bf16 matrix at load, in weights per second ("pack/...").
// Usage: shardlm_bench_gemv [--benchmark_filter=REGEX] [other google-benchmark flags]
// GCC 12 reports _mm512_undefined_*() inside its own AVX-512 intrinsics as uninitialised reads.
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/cpu_features.h"
#include "kernels/linear.h"
#include "bench/read_bandwidth.h"

namespace {

using namespace shardlm;

constexpr size_t kMinStreamBytes = size_t{256} << 20;

double g_read_bw[3] = {0, 0, 0};  // by thread count
double g_bf16_peak = 0;            // FLOP/s of vdpbf16ps on every thread (0: no AVX512_BF16)

// The machine's bf16 dot-product peak, measured: every thread runs independent chains of
// vdpbf16ps (16 lanes x 2 products = 64 FLOP each) for ~0.5 s.
__attribute__((target("avx512f,avx512bf16"))) double measure_bf16_peak(int threads) {
  omp_set_num_threads(threads);
  constexpr int64_t kIters = 20000000;
  const auto t0 = std::chrono::steady_clock::now();
  float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
  {
    __m512 acc[12];
    for (auto& a : acc) a = _mm512_setzero_ps();
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3c00);
    for (int64_t i = 0; i < kIters; ++i) {
#pragma GCC unroll 12
      for (auto& c : acc) c = _mm512_dpbf16_ps(c, a, b);
    }
    __m512 t = acc[0];
    for (int j = 1; j < 12; ++j) t = _mm512_add_ps(t, acc[j]);
    sink += _mm512_reduce_add_ps(t);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(sink);
  return static_cast<double>(threads) * kIters * 12 * 64 / s;
}

struct Shape {
  const char* name;
  int64_t n, k;
};
const Shape kShapes[] = {
    {"31b.mlp_up", 21504, 5376},  {"31b.mlp_down", 5376, 21504}, {"31b.q_full", 8192, 5376},
    {"31b.o_full", 5376, 8192},   {"31b.q_slide", 16384, 5376},  {"a4b.expert_gate_up", 1408, 2816},
    {"a4b.expert_down", 2816, 704},
};
const WeightFormat kFormats[] = {WeightFormat::kBF16, WeightFormat::kInt8, WeightFormat::kQ4};

// The packed copies of the current (shape, format, backend); rebuilt when one changes.
struct Matrices {
  int shape = -1;
  WeightFormat format = WeightFormat::kF32;
  MatmulBackend backend = MatmulBackend::kOwn;
  std::vector<Linear> copies;
};
Matrices& matrices(int shape, WeightFormat format, MatmulBackend backend) {
  static Matrices m;
  if (m.shape == shape && m.format == format && m.backend == backend) return m;
  m.copies.clear();
  const Shape& s = kShapes[shape];
  std::mt19937 rng(static_cast<unsigned>(shape * 7 + 1));
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<uint16_t> w(static_cast<size_t>(s.n * s.k));
  for (auto& v : w) v = f32_to_bf16(dist(rng));
  m.copies.push_back(Linear::from_bf16(w.data(), s.n, s.k, format, backend));
  const size_t bytes = m.copies.front().weight_bytes();
  const size_t count = std::max<size_t>(1, (kMinStreamBytes + bytes - 1) / bytes);
  while (m.copies.size() < count) m.copies.push_back(Linear::from_bf16(w.data(), s.n, s.k, format, backend));
  m.shape = shape;
  m.format = format;
  m.backend = backend;
  return m;
}

// This VM's bandwidth drifts from minute to minute: a GEMV is compared with the read bandwidth
// measured right before and right after it (short measurements over one shared buffer; they leave
// `threads` OpenMP threads set).
double read_bandwidth_now(int threads) {
  static const AlignedBuffer<float> buffer = bench::read_buffer(size_t{256} << 20);
  return bench::read_bandwidth(buffer, threads, 0.2);
}

// The weight-stream counters of a GEMV case: GB/s, the read bandwidth around it and their ratio.
void report_weight_stream(benchmark::State& state, double bytes, double read_before, int threads) {
  const double read_bw = (read_before + read_bandwidth_now(threads)) / 2;
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["read_GB/s"] = read_bw / 1e9;
  state.counters["of_read_bw"] = benchmark::Counter(bytes / read_bw, benchmark::Counter::kIsIterationInvariantRate);
}

void run_case(benchmark::State& state, int shape, WeightFormat format, int threads, int64_t rows,
              MatmulBackend backend = MatmulBackend::kOwn) {
  const Shape& s = kShapes[shape];
  Matrices& mats = matrices(shape, format, backend);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * s.k));
  for (auto& v : x) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(rows * s.n));
  omp_set_num_threads(threads);
  for (const Linear& lin : mats.copies) lin.forward(x.data(), rows, y.data());  // warm-up
  const double read_before = rows == 1 ? read_bandwidth_now(threads) : 0.0;
  size_t next = 0;
  for (auto _ : state) {
    mats.copies[next].forward(x.data(), rows, y.data());
    benchmark::DoNotOptimize(y.data());
    next = (next + 1) % mats.copies.size();
  }
  const double bytes = static_cast<double>(mats.copies.front().weight_bytes());
  state.SetLabel(std::string(s.name) + " W[" + std::to_string(s.n) + "x" + std::to_string(s.k) + "] " +
                 weight_format_name(format) + " " + (backend == MatmulBackend::kOneDnn ? "onednn" : isa_name(active_isa())));
  if (rows == 1) {
    report_weight_stream(state, bytes, read_before, threads);
  } else {
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * rows * s.n * s.k / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    if (g_bf16_peak > 0) {
      state.counters["of_bf16_peak"] =
          benchmark::Counter(2.0 * rows * s.n * s.k / g_bf16_peak, benchmark::Counter::kIsIterationInvariantRate);
    }
  }
}

// A MoE layer's decode: the 8 experts a token is routed to, run as one group (Linear::forward_group,
// as the worker does), each with its own input; 8 different copies per call, cycling through all.
void run_group_case(benchmark::State& state, int shape, WeightFormat format, int threads) {
  constexpr int kRouted = 8;
  const Shape& s = kShapes[shape];
  Matrices& mats = matrices(shape, format, MatmulBackend::kOwn);
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kRouted * s.k)), y(static_cast<size_t>(kRouted * s.n));
  for (auto& v : x) v = dist(rng);
  const size_t groups = std::max<size_t>(1, mats.copies.size() / kRouted);
  auto products = [&](size_t g) {
    std::vector<Linear::Product> p;
    for (int e = 0; e < kRouted; ++e) {
      p.push_back(Linear::Product{&mats.copies[(g * kRouted + e) % mats.copies.size()], x.data() + e * s.k, 1, y.data() + e * s.n});
    }
    return p;
  };
  std::vector<std::vector<Linear::Product>> all;
  for (size_t g = 0; g < groups; ++g) all.push_back(products(g));
  omp_set_num_threads(threads);
  for (const auto& p : all) Linear::forward_group(p);  // warm-up
  const double read_before = read_bandwidth_now(threads);
  size_t next = 0;
  for (auto _ : state) {
    Linear::forward_group(all[next]);
    benchmark::DoNotOptimize(y.data());
    next = (next + 1) % all.size();
  }
  const double bytes = static_cast<double>(kRouted) * static_cast<double>(mats.copies.front().weight_bytes());
  state.SetLabel(std::string(s.name) + " x8 W[" + std::to_string(s.n) + "x" + std::to_string(s.k) + "] " + weight_format_name(format));
  report_weight_stream(state, bytes, read_before, threads);
}

// Loading: quantising and packing a bf16 matrix (what a worker does for every weight it holds), in
// millions of weights per second.
void pack_case(benchmark::State& state, int shape, WeightFormat format, int threads) {
  const Shape& s = kShapes[shape];
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<uint16_t> w(static_cast<size_t>(s.n * s.k));
  for (auto& v : w) v = f32_to_bf16(dist(rng));
  omp_set_num_threads(threads);
  for (auto _ : state) {
    Linear lin = Linear::from_bf16(w.data(), s.n, s.k, format, MatmulBackend::kOwn);
    benchmark::DoNotOptimize(lin.weight_bytes());
  }
  const double weights = static_cast<double>(s.n) * static_cast<double>(s.k);
  state.SetLabel(std::string(s.name) + " " + weight_format_name(format));
  state.counters["Mweights/s"] = benchmark::Counter(weights / 1e6, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  for (int threads : {1, 2}) g_read_bw[threads] = bench::read_bandwidth(size_t{512} << 20, threads, 1.0);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) g_bf16_peak = measure_bf16_peak(2);
  std::printf("detected ISA: %s (AVX-512 VNNI: %s); read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads); "
              "bf16 peak (vdpbf16ps, 2 threads): %.0f GFLOP/s\n",
              isa_name(detected_isa()), has_avx512_vnni() ? "yes" : "no", g_read_bw[1] / 1e9, g_read_bw[2] / 1e9,
              g_bf16_peak / 1e9);
  for (int shape = 0; shape < static_cast<int>(std::size(kShapes)); ++shape) {
    for (WeightFormat format : kFormats) {
      for (int threads : {1, 2}) {
        const std::string name = std::string("gemv/") + kShapes[shape].name + "/" + weight_format_name(format) +
                                 "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_case(st, shape, format, threads, 1); })
            ->MinTime(0.5)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  // The 26B-A4B experts as a MoE layer runs them: 8 routed experts per call.
  for (int shape : {5, 6}) {
    for (WeightFormat format : kFormats) {
      for (int threads : {1, 2}) {
        const std::string name = std::string("gemv8/") + kShapes[shape].name + "/" + weight_format_name(format) +
                                 "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_group_case(st, shape, format, threads); })
            ->MinTime(0.5)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  // Prefill: 512-token chunks on the MLP shapes; bf16 also through oneDNN (bf16 activations).
  for (int shape : {0, 1}) {
    const std::string dnn = std::string("prefill512/") + kShapes[shape].name + "/bf16-onednn/threads:2";
    benchmark::RegisterBenchmark(dnn.c_str(), [=](benchmark::State& st) {
      run_case(st, shape, WeightFormat::kBF16, 2, 512, MatmulBackend::kOneDnn);
    })
        ->MinTime(1.0)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    for (WeightFormat format : kFormats) {
      const std::string name = std::string("prefill512/") + kShapes[shape].name + "/" + weight_format_name(format) + "/threads:2";
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_case(st, shape, format, 2, 512); })
          ->MinTime(1.0)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (WeightFormat format : kFormats) {
    for (int threads : {1, 2}) {
      const std::string name = std::string("pack/31b.mlp_up/") + weight_format_name(format) + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { pack_case(st, 0, format, threads); })
          ->MinTime(1.0)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
