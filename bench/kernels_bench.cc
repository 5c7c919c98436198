// Micro-benchmark of Linear: weight-streaming bandwidth (GB/s) of the GEMV (m = 1) and GFLOP/s
// of small/medium batches, for the own kernel (every ISA this CPU runs) and oneDNN, f32 and bf16
// weights, 1 and 2 threads; optionally attention (decode over 4096 positions, from memory, over
// 256 and 16, from the caches; prefill).
// Usage: shardlm_bench_kernels [--quick] [--prefill] [--attention]
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/half.h"
#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/linear.h"
#include "bench/read_bandwidth.h"

namespace {

using namespace shardlm;

double seconds_per_call(const Linear& lin, const float* x, int64_t m, float* y, double min_seconds) {
  lin.forward(x, m, y);  // warm-up (and oneDNN primitive creation)
  std::vector<double> times;
  double total = 0.0;
  while (total < min_seconds || times.size() < 5) {
    const auto t0 = std::chrono::steady_clock::now();
    lin.forward(x, m, y);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(t);
    total += t;
  }
  return bench::median(times);
}

void report_read_bandwidth(size_t bytes, double min_seconds) {
  for (const int threads : {1, 2}) {
    std::printf("read baseline %zu MB threads %d: %6.1f GB/s\n", bytes >> 20, threads,
                bench::read_bandwidth(bytes, threads, min_seconds) / 1e9);
  }
}

// Attention: 32 query heads on 16 KV heads, head_dim 256, keys in blocks of 256 positions (and a
// prefill over the KV cache's blocks of 16).
void report_attention(double min_seconds) {
  const int32_t hq = 32, hkv = 16, d = 256;
  std::vector<int32_t> map(hq);
  for (int32_t h = 0; h < hq; ++h) map[h] = h / (hq / hkv);
  const AttentionShape shape{hq, hkv, d, map.data()};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  struct Case {
    const char* name;
    int32_t n_q, context;
    int32_t block = 256;
  };
  for (const Case c : {Case{"decode ", 1, 4096}, Case{"decode ", 1, 256}, Case{"decode ", 1, 16}, Case{"prefill", 512, 512},
                       Case{"prefill", 512, 512, 16}}) {
    // Stored as the KV cache stores them (AlignedBuffer: huge pages from 2 MiB).
    AlignedBuffer<float> k(static_cast<size_t>(c.context) * hkv * d), v(k.size());
    for (size_t i = 0; i < k.size(); ++i) k[i] = dist(rng);
    for (size_t i = 0; i < v.size(); ++i) v[i] = dist(rng);
    std::vector<KvBlockView> blocks;
    for (int32_t p = 0; p < c.context; p += c.block) {
      const size_t off = static_cast<size_t>(p) * hkv * d;
      blocks.push_back({k.data() + off, v.data() + off, p, std::min(c.block, c.context - p)});
    }
    std::vector<float> q(static_cast<size_t>(c.n_q) * hq * d), out(q.size()), lse(static_cast<size_t>(c.n_q) * hq);
    for (auto& x : q) x = dist(rng);
    std::vector<int32_t> pos(c.n_q);
    for (int32_t i = 0; i < c.n_q; ++i) pos[i] = c.context - c.n_q + i;
    // visible (query, key) pairs under the causal mask
    double pairs = 0;
    for (int32_t i = 0; i < c.n_q; ++i) pairs += pos[i] + 1;
    for (const int threads : {1, 2}) {
      omp_set_num_threads(threads);
      auto call = [&] {
        attention_partial(q.data(), c.n_q, pos.data(), shape, blocks.data(), static_cast<int64_t>(blocks.size()), 0,
                          1.0f, out.data(), lse.data());
      };
      call();
      std::vector<double> times;
      double total = 0.0;
      while (total < min_seconds || times.size() < 5) {
        const auto t0 = std::chrono::steady_clock::now();
        call();
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        times.push_back(t);
        total += t;
      }
      const double t = bench::median(times);
      std::printf("attention %s n_q %4d context %5d blocks %3d threads %d: %8.3f ms  %6.1f GFLOP/s  %6.1f GB/s (K+V)\n",
                  c.name, c.n_q, c.context, c.block, threads, t * 1e3, pairs * hq * d * 4.0 / t / 1e9,
                  2.0 * static_cast<double>(k.size()) * sizeof(float) / t / 1e9);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, prefill = false, attention = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--attention") == 0) attention = true;
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--prefill") == 0) prefill = true;
  }
  const double min_seconds = quick ? 0.3 : 1.0;
  std::printf("detected ISA: %s, omp max threads: %d\n", isa_name(detected_isa()), omp_get_max_threads());
  if (attention) report_attention(min_seconds);
  struct Shape {
    int64_t n, k;
  };
  const Shape shapes[] = {{5376, 21504}, {21504, 5376}};
  report_read_bandwidth(static_cast<size_t>(5376) * 21504 * 2, min_seconds);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const Shape& s : shapes) {
    std::vector<uint16_t> w(static_cast<size_t>(s.n * s.k));
    for (auto& v : w) v = f32_to_bf16(dist(rng) * 0.05f);
    const int64_t m_max = 128;
    std::vector<float> x(static_cast<size_t>(m_max * s.k));
    for (auto& v : x) v = dist(rng);
    std::vector<float> y(static_cast<size_t>(m_max * s.n));
    for (const WeightFormat format : {WeightFormat::kBF16, WeightFormat::kF32}) {
      const char* fname = format == WeightFormat::kBF16 ? "bf16" : "f32";
      for (const MatmulBackend backend : {MatmulBackend::kOwn, MatmulBackend::kOneDnn}) {
        if (backend == MatmulBackend::kOneDnn && format == WeightFormat::kBF16 && !onednn_supports_bf16()) {
          std::printf("oneDNN bf16: not on this CPU (oneDNN 2.6 has bf16 matmuls from AVX-512 on)\n");
          continue;
        }
        const Linear lin = Linear::from_bf16(w.data(), s.n, s.k, format, backend);
        std::vector<Isa> isas;
        if (backend == MatmulBackend::kOwn) {
          for (int i = static_cast<int>(detected_isa()); i >= 1; --i) isas.push_back(static_cast<Isa>(i));
        } else {
          isas.push_back(detected_isa());
        }
        for (const Isa isa : isas) {
          set_isa_override(isa);
          for (const int threads : {1, 2}) {
            omp_set_num_threads(threads);
            const std::string name = backend == MatmulBackend::kOwn ? std::string("own/") + isa_name(isa) : "onednn";
            const double t = seconds_per_call(lin, x.data(), 1, y.data(), min_seconds);
            std::printf("GEMV m=1   W[%5lld x %5lld] %-4s %-11s threads %d: %8.3f ms  %6.1f GB/s\n",
                        static_cast<long long>(s.n), static_cast<long long>(s.k), fname, name.c_str(), threads,
                        t * 1e3, static_cast<double>(lin.weight_bytes()) / t / 1e9);
            std::fflush(stdout);
            if (prefill) {
              for (const int64_t m : {int64_t{8}, int64_t{17}, m_max}) {
                const double tm = seconds_per_call(lin, x.data(), m, y.data(), min_seconds);
                std::printf("GEMM m=%-3lld W[%5lld x %5lld] %-4s %-11s threads %d: %8.3f ms  %6.1f GFLOP/s\n",
                            static_cast<long long>(m), static_cast<long long>(s.n), static_cast<long long>(s.k), fname,
                            name.c_str(), threads, tm * 1e3, 2.0 * m * s.n * s.k / tm / 1e9);
                std::fflush(stdout);
              }
            }
          }
          clear_isa_override();
        }
      }
    }
  }
  return 0;
}
