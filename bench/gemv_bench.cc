// google-benchmark of the decode GEMV (m = 1) and prefill GEMM of Linear for each weight format
// (bf16, int8, q4) on the Gemma 4 31B layer shapes and the 26B-A4B expert shapes, at 1 and 2
// threads. The machine's read bandwidth (a plain streaming read of a buffer far larger than the
// caches) is measured right before and right after each ~0.1 s slice of a GEMV's timed loop, and
// every GEMV reports its weight-stream rate in GB/s, the median slice's read bandwidth
// ("read_GB/s") and the median of the slices' ratios ("of_read_bw"); beside them a plain read of the
// same buffer in calls of the product's bytes, each call its own parallel region ("call_read_GB/s",
// the fastest stream count by its median over the measurements) and the GEMV against it
// ("of_call_read" = of_read_bw x read_GB/s / call_read_GB/s): what a product of that size can read
// here, below the baseline for small matrices. Prefill GEMMs report GFLOP/s.
// Each case cycles through enough copies of the matrix (bench::stream_bytes(), >= 256 MB and four
// times the L3 up to 1 GiB) that the caches hold no useful part of them.
// Also: the 26B-A4B experts 8 at a time as one group, as a MoE layer runs a token's routed experts
// ("gemv8/..."), and packing (quantising) a bf16 matrix at load, in weights per second ("pack/...").
// Prefill GEMMs are also printed as a ratio to the machine's bf16 peak ("of_bf16_peak"), measured at
// start: AMX's where the CPU has it, else vdpbf16ps's, else the f32 FMA peak. Where there is AMX,
// the rate of the AMX kernel's inner step with its tile loads is printed beside the peak.
// Each format runs with the prefetch tuning a worker of that format would choose here (measured at
// start on two threads, kernels/gemv_tuning.h, printed; SHARDLM_PREFETCH=zen|intel|streams sets one
// for every case instead); the label names it.
// Usage: shardlm_bench_gemv [--benchmark_filter=REGEX] [other google-benchmark flags]
// GCC 12 reports _mm512_undefined_*() inside its own AVX-512 intrinsics as uninitialised reads.
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_amx.h"
#include "kernels/gemv_tuning.h"
#include "kernels/linear.h"
#include "bench/read_bandwidth.h"

namespace {

using namespace shardlm;

double g_read_bw[3] = {0, 0, 0};  // by thread count
double g_bf16_peak = 0;            // FLOP/s of bf16 arithmetic on every thread (vdpbf16ps, else f32 FMA)

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

// The machine's AMX bf16 peak, measured: every thread runs 4 independent tdpbf16ps (16 x 16 x 32
// products = 16384 FLOP each) over operands held in tiles, for ~0.5 s.
__attribute__((target("amx-tile,amx-bf16"))) double measure_amx_bf16_peak(int threads) {
  omp_set_num_threads(threads);
  constexpr int64_t kSteps = 20000000;  // of 4 tdpbf16ps, ~16 cycles each: ~0.5 s
  const auto t0 = std::chrono::steady_clock::now();
  float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
  {
    const amx::TileConfig config;  // tiles 0-3 accumulators, 4-5 and 6-7 operands
    _tile_loadconfig(&config);
    alignas(64) uint16_t operand[16 * 32];
    std::fill(std::begin(operand), std::end(operand), uint16_t{0x3c00});  // bf16 0.0078125
    _tile_loadd(4, operand, 64);
    _tile_loadd(5, operand, 64);
    _tile_loadd(6, operand, 64);
    _tile_loadd(7, operand, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t i = 0; i < kSteps; ++i) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    alignas(64) float out[16 * 16];
    _tile_stored(0, out, 64);
    sink += out[0];
    _tile_release();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(sink);
  return static_cast<double>(threads) * kSteps * 4 * 16384 / s;
}

// What AMX reaches with its operands loaded, measured: every thread runs the AMX kernel's 2 x 2
// step (tile loads of two activation and two weight tiles, four tdpbf16ps into accumulators loaded
// and stored around each block of 8 steps) for ~0.5 s, over random bf16 of both signs: the
// activation tiles of a row pair (16 KiB, in L1) against 8 column blocks of weight tiles (128 KiB, in
// L2), as a prefill's k block runs them. Operands that are zero run faster than real values, so the
// buffers hold random ones.
__attribute__((target("amx-tile,amx-bf16"))) double measure_amx_tile_loop(int threads) {
  omp_set_num_threads(threads);
  constexpr int64_t kSteps = 8, kBlocks = 8, kTile = 16 * 32;  // bf16 elements of a tile
  constexpr int64_t kRounds = 30000;                            // ~0.5 s at ~2 TFLOP/s per thread
  const auto t0 = std::chrono::steady_clock::now();
  float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
  {
    AlignedBuffer<uint16_t> a(2 * kSteps * kTile), b(kBlocks * 2 * kSteps * kTile);
    AlignedBuffer<float> c(kBlocks * 4 * 16 * 16);
    std::mt19937 rng(static_cast<unsigned>(1 + omp_get_thread_num()));
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = f32_to_bf16(value(rng));
    for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16(value(rng));
    const amx::TileConfig config;  // tiles 0-3 accumulators, 4-5 activations, 6-7 weights
    _tile_loadconfig(&config);
    for (int64_t round = 0; round < kRounds; ++round) {
      for (int64_t block = 0; block < kBlocks; ++block) {
        const uint16_t* b0 = b.data() + block * 2 * kSteps * kTile;
        const uint16_t* b1 = b0 + kSteps * kTile;
        float* acc = c.data() + block * 4 * 16 * 16;
        _tile_loadd(0, acc, 64);
        _tile_loadd(1, acc + 256, 64);
        _tile_loadd(2, acc + 512, 64);
        _tile_loadd(3, acc + 768, 64);
        for (int64_t s = 0; s < kSteps; ++s) {
          _tile_loadd(4, a.data() + s * kTile, 64);
          _tile_loadd(6, b0 + s * kTile, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_loadd(7, b1 + s * kTile, 64);
          _tile_dpbf16ps(1, 4, 7);
          _tile_loadd(5, a.data() + (kSteps + s) * kTile, 64);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, acc, 64);
        _tile_stored(1, acc + 256, 64);
        _tile_stored(2, acc + 512, 64);
        _tile_stored(3, acc + 768, 64);
      }
    }
    _tile_release();
    sink += c[0];
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(sink);
  return static_cast<double>(threads) * kRounds * kBlocks * kSteps * 4 * 16384 / s;
}

// Without bf16 dot products the bf16 weights are widened and multiplied in f32, so the machine's
// bf16 peak is its f32 FMA peak: every thread runs 12 independent chains of vfmadd231ps (AVX-512:
// 16 lanes, AVX2: 8; 2 FLOP per lane) for ~0.5 s. `chains` runs them on one thread and returns
// their sum; the wrapper times all threads.
double time_fma_chains(int threads, int64_t iters, int lanes, float (*chains)(int64_t)) {
  omp_set_num_threads(threads);
  const auto t0 = std::chrono::steady_clock::now();
  float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
  sink += chains(iters);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(sink);
  return static_cast<double>(threads) * iters * 12 * lanes * 2 / s;
}
__attribute__((target("avx512f"))) float fma512_chains(int64_t iters) {
  __m512 acc[12];
  for (auto& c : acc) c = _mm512_setzero_ps();
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& c : acc) c = _mm512_fmadd_ps(c, a, b);
  }
  for (int j = 1; j < 12; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return _mm512_reduce_add_ps(acc[0]);
}
__attribute__((target("avx2,fma"))) float fma256_chains(int64_t iters) {
  __m256 acc[12];
  for (auto& c : acc) c = _mm256_setzero_ps();
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& c : acc) c = _mm256_fmadd_ps(c, a, b);
  }
  for (int j = 1; j < 12; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  float t[8];
  _mm256_storeu_ps(t, acc[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

struct Shape {
  const char* name;
  int64_t n, k;
  // In a MoE layer's group (gemv8) every expert reads the same input (gate+up: the token's normed
  // hidden state, quantised once for all), else each its own (down: each expert's activation).
  bool group_shares_input = false;
};
const Shape kShapes[] = {
    {"31b.mlp_up", 21504, 5376},  {"31b.mlp_down", 5376, 21504}, {"31b.q_full", 8192, 5376},
    {"31b.o_full", 5376, 8192},   {"31b.q_slide", 16384, 5376},  {"a4b.expert_gate_up", 1408, 2816, true},
    {"a4b.expert_down", 2816, 704},
};
const WeightFormat kFormats[] = {WeightFormat::kBF16, WeightFormat::kInt8, WeightFormat::kQ4};

// The prefetch tuning measured for each format at start (gemv_tuning.h), set before its cases.
std::map<WeightFormat, PrefetchTuning> g_tuning;

void use_tuning_of(WeightFormat format) {
  const auto it = g_tuning.find(format);
  if (it != g_tuning.end()) set_prefetch_tuning(it->second);
}

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
  const size_t count = std::max<size_t>(1, (bench::stream_bytes() + bytes - 1) / bytes);
  while (m.copies.size() < count) m.copies.push_back(Linear::from_bf16(w.data(), s.n, s.k, format, backend));
  m.shape = shape;
  m.format = format;
  m.backend = backend;
  return m;
}

// The baseline's buffer, shared by every case.
const AlignedBuffer<float>& baseline_buffer() {
  static const AlignedBuffer<float> buffer = bench::read_buffer(bench::stream_bytes());
  return buffer;
}
double read_bandwidth_now(int threads) { return bench::read_bandwidth(baseline_buffer(), threads, 0.05); }
// Beside it, a plain read of the same buffer in calls of a product's bytes, one pass per stream count
// (bench::call_read_rates; right after read_bandwidth_now, so the buffer is warm).
std::vector<double> call_read_rates_now(int threads, double call_bytes) {
  return bench::call_read_rates(baseline_buffer(), threads, static_cast<size_t>(call_bytes));
}

// This VM's bandwidth drifts from minute to minute (and between two regimes at two threads, within
// seconds): a GEMV's timed loop is cut into slices of ~0.1 s, each compared with the read bandwidth
// measured right before and right after it (short measurements over one shared buffer, outside the
// timed time; they leave `threads` OpenMP threads set), and the case reports the median of the
// slices' ratios — one slice that straddles a change of regime does not decide the result.
// Each measurement of the baseline (and the call read after it) is followed by one untimed pass over
// the case's weights: on VMs whose host ages guest memory (the Xeon in docs/performance.md), memory
// left untouched for the ~2 s a measurement takes pays a fault per 2 MiB on its next touch, and the
// slice would time those faults, not the kernel; the baseline's own runs are warm (it times the
// median of several).
class WeightStreamSlices {
 public:
  // warm_pass: one pass over every weight the case cycles through.
  WeightStreamSlices(benchmark::State& state, int threads, double bytes_per_iteration, std::function<void()> warm_pass)
      : state_(state), threads_(threads), bytes_(bytes_per_iteration), warm_pass_(std::move(warm_pass)) {
    read_before_ = read_bandwidth_now(threads_);
    add_call_rates();
    warm_pass_();
    start_ = std::chrono::steady_clock::now();
  }
  // After each iteration of the timed loop.
  void iteration_done() {
    ++iterations_;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (seconds < kSliceSeconds) return;
    state_.PauseTiming();
    add_slice(iterations_ * bytes_ / seconds, read_bandwidth_now(threads_));
    add_call_rates();
    iterations_ = 0;
    warm_pass_();
    state_.ResumeTiming();
    start_ = std::chrono::steady_clock::now();
  }
  // The counters: GB/s of the whole loop, the median slice's read bandwidth and the median ratio
  // (a loop too short for one slice: the ratio of the whole loop to the bandwidth around it).
  void report() {
    if (ratios_.empty()) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      if (iterations_ == 0 || seconds <= 0) return;
      add_slice(iterations_ * bytes_ / seconds, read_bandwidth_now(threads_));
    }
    state_.counters["GB/s"] = benchmark::Counter(bytes_ / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    const double read_bw = bench::median(read_bws_), of_read_bw = bench::median(ratios_);
    state_.counters["read_GB/s"] = read_bw / 1e9;
    state_.counters["of_read_bw"] = of_read_bw;
    // The call read: the fastest stream count by its median pass.
    double call_bw = 0;
    for (const auto& rates : call_rates_) call_bw = std::max(call_bw, bench::median(rates));
    state_.counters["call_read_GB/s"] = call_bw / 1e9;
    state_.counters["of_call_read"] = of_read_bw * read_bw / call_bw;
    state_.counters["slices"] = static_cast<double>(ratios_.size());
  }

 private:
  static constexpr double kSliceSeconds = 0.1;
  // A slice that streamed at `rate`, against the read bandwidth measured before it and after it.
  void add_slice(double rate, double read_after) {
    const double read_bw = (read_before_ + read_after) / 2;
    ratios_.push_back(rate / read_bw);
    read_bws_.push_back(read_bw);
    read_before_ = read_after;
  }
  void add_call_rates() {
    const std::vector<double> rates = call_read_rates_now(threads_, bytes_);
    call_rates_.resize(rates.size());
    for (size_t i = 0; i < rates.size(); ++i) call_rates_[i].push_back(rates[i]);
  }
  benchmark::State& state_;
  const int threads_;
  const double bytes_;
  const std::function<void()> warm_pass_;
  double read_before_ = 0;
  std::chrono::steady_clock::time_point start_;
  int64_t iterations_ = 0;
  std::vector<double> ratios_, read_bws_;
  std::vector<std::vector<double>> call_rates_;  // by stream count, one per measurement
};

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
  use_tuning_of(format);
  auto warm_pass = [&] {
    for (const Linear& lin : mats.copies) lin.forward(x.data(), rows, y.data());
  };
  warm_pass();
  const double bytes = static_cast<double>(mats.copies.front().weight_bytes());
  std::unique_ptr<WeightStreamSlices> slices;
  if (rows == 1) slices = std::make_unique<WeightStreamSlices>(state, threads, bytes, warm_pass);
  size_t next = 0;
  for (auto _ : state) {
    mats.copies[next].forward(x.data(), rows, y.data());
    benchmark::DoNotOptimize(y.data());
    next = (next + 1) % mats.copies.size();
    if (slices) slices->iteration_done();
  }
  state.SetLabel(std::string(s.name) + " W[" + std::to_string(s.n) + "x" + std::to_string(s.k) + "] " +
                 weight_format_name(format) + " " +
                 (backend == MatmulBackend::kOneDnn ? "onednn" : backend == MatmulBackend::kAmx ? "amx" : isa_name(active_isa())) +
                 (backend == MatmulBackend::kOwn && rows == 1 ? std::string(" ") + prefetch_tuning_name(prefetch_tuning()) : ""));
  if (slices) {
    slices->report();
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
// as the worker does), with one shared input or each its own as in the worker (group_shares_input);
// 8 different copies per call, cycling through all.
void run_group_case(benchmark::State& state, int shape, WeightFormat format, int threads) {
  constexpr int kRouted = 8;
  const Shape& s = kShapes[shape];
  Matrices& mats = matrices(shape, format, MatmulBackend::kOwn);
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kRouted * s.k)), y(static_cast<size_t>(kRouted * s.n));
  for (auto& v : x) v = dist(rng);
  use_tuning_of(format);
  const size_t groups = std::max<size_t>(1, mats.copies.size() / kRouted);
  auto products = [&](size_t g) {
    std::vector<Linear::Product> p;
    for (int e = 0; e < kRouted; ++e) {
      const float* in = x.data() + (s.group_shares_input ? 0 : e * s.k);
      p.push_back(Linear::Product{&mats.copies[(g * kRouted + e) % mats.copies.size()], in, 1, y.data() + e * s.n});
    }
    return p;
  };
  std::vector<std::vector<Linear::Product>> all;
  for (size_t g = 0; g < groups; ++g) all.push_back(products(g));
  omp_set_num_threads(threads);
  auto warm_pass = [&] {
    for (const auto& p : all) Linear::forward_group(p);
  };
  warm_pass();
  const double bytes = static_cast<double>(kRouted) * static_cast<double>(mats.copies.front().weight_bytes());
  WeightStreamSlices slices(state, threads, bytes, warm_pass);
  size_t next = 0;
  for (auto _ : state) {
    Linear::forward_group(all[next]);
    benchmark::DoNotOptimize(y.data());
    next = (next + 1) % all.size();
    slices.iteration_done();
  }
  state.SetLabel(std::string(s.name) + " x8 W[" + std::to_string(s.n) + "x" + std::to_string(s.k) + "] " + weight_format_name(format) +
                 (s.group_shares_input ? " one input" : " 8 inputs") + " " + prefetch_tuning_name(prefetch_tuning()));
  slices.report();
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
  for (int threads : {1, 2}) g_read_bw[threads] = bench::read_bandwidth(bench::stream_bytes(), threads, 1.0);
  __builtin_cpu_init();
  const char* peak_how = "none";
  double vector_bf16_peak = 0;
  if (has_amx_bf16()) {
    // The machine's bf16 peak is AMX's (oneDNN's bf16 GEMM uses it); the vector one is printed too.
    g_bf16_peak = measure_amx_bf16_peak(2);
    peak_how = "AMX tdpbf16ps";
    if (__builtin_cpu_supports("avx512bf16")) vector_bf16_peak = measure_bf16_peak(2);
  } else if (__builtin_cpu_supports("avx512bf16")) {
    g_bf16_peak = measure_bf16_peak(2);
    peak_how = "vdpbf16ps";
  } else if (__builtin_cpu_supports("avx512f")) {
    g_bf16_peak = time_fma_chains(2, 20000000, 16, &fma512_chains);
    peak_how = "no bf16 instructions: f32 FMA, zmm";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    g_bf16_peak = time_fma_chains(2, 40000000, 8, &fma256_chains);
    peak_how = "no bf16 instructions: f32 FMA, ymm";
  }
  std::printf("detected ISA: %s (AVX-512 VNNI: %s); read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads); "
              "bf16 peak (%s, 2 threads): %.0f GFLOP/s\n",
              isa_name(detected_isa()), has_avx512_vnni() ? "yes" : "no", g_read_bw[1] / 1e9, g_read_bw[2] / 1e9,
              peak_how, g_bf16_peak / 1e9);
  for (WeightFormat format : kFormats) {
    omp_set_num_threads(2);
    const GemvTuningChoice choice = calibrate_gemv_tuning(format);
    std::printf("GEMV prefetch tuning for %s: %s", weight_format_name(format), prefetch_tuning_name(choice.tuning));
    if (!choice.measured) std::printf(" (%s)", prefetch_tuning_from_env() ? "SHARDLM_PREFETCH" : "not measured below AVX-512");
    for (const GemvTuningRate& r : choice.rates) std::printf(", %s %.1f GB/s", prefetch_tuning_name(r.tuning), r.bytes_per_second / 1e9);
    std::printf("\n");
    if (choice.measured) g_tuning[format] = choice.tuning;
  }
  if (vector_bf16_peak > 0) std::printf("bf16 peak of the vector unit (vdpbf16ps, 2 threads): %.0f GFLOP/s\n", vector_bf16_peak / 1e9);
  if (has_amx_bf16()) {
    const double loop = measure_amx_tile_loop(2);
    std::printf("AMX 2 x 2 tile loop with its operand loads (weights from L2, random bf16, 2 threads): %.0f GFLOP/s = "
                "%.2f of the AMX peak\n",
                loop / 1e9, loop / g_bf16_peak);
  }
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
    // bf16 weights on the AMX tiles (--matmul amx), where the CPU has them.
    for (int threads : {1, 2}) {
      const std::string name = std::string("gemv/") + kShapes[shape].name + "/bf16-amx/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        if (!amx_supported()) {
          st.SkipWithError("no AMX-BF16 on this CPU");
          return;
        }
        run_case(st, shape, WeightFormat::kBF16, threads, 1, MatmulBackend::kAmx);
      })
          ->MinTime(0.5)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
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
  // Prefill: 512-token chunks on the MLP shapes; bf16 also through oneDNN and the AMX tiles (both bf16
  // activations).
  for (int shape : {0, 1}) {
    for (const MatmulBackend backend : {MatmulBackend::kOneDnn, MatmulBackend::kAmx}) {
      const bool amx = backend == MatmulBackend::kAmx;
      const std::string name = std::string("prefill512/") + kShapes[shape].name + (amx ? "/bf16-amx" : "/bf16-onednn") + "/threads:2";
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        if (amx ? !amx_supported() : !onednn_supports_bf16()) {
          st.SkipWithError(amx ? "no AMX-BF16 on this CPU" : "oneDNN 2.6 has bf16 matmuls only from AVX-512 on");
          return;
        }
        run_case(st, shape, WeightFormat::kBF16, 2, 512, backend);
      })
          ->MinTime(1.0)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
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
