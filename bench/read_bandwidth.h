// The machine's memory read bandwidth as the benchmarks' baseline: a plain streaming read (AVX2
// loads summed into four accumulators, OpenMP threads over contiguous slices) of a buffer, timed by
// the median of repeated runs — the ceiling a weight-streaming kernel can reach at the moment.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace shardlm::bench {

__attribute__((target("avx2"))) inline float read_stream(const float* p, int64_t n) {
  float total = 0.0f;
#pragma omp parallel reduction(+ : total)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t b = n * t / nt / 32 * 32, e = n * (t + 1) / nt / 32 * 32;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = b; i < e; i += 32) {
      a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
      a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
      a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    }
    float tmp[8];
    _mm256_storeu_ps(tmp, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (float v : tmp) total += v;
  }
  return total;
}

// Median read bandwidth in bytes/s over at least min_seconds (and 5 runs) with `threads` threads.
inline double read_bandwidth(size_t bytes, int threads, double min_seconds) {
  std::vector<float> buf(bytes / sizeof(float), 1.0f);
  omp_set_num_threads(threads);
  volatile float sink = read_stream(buf.data(), static_cast<int64_t>(buf.size()));
  std::vector<double> times;
  double total = 0.0;
  while (total < min_seconds || times.size() < 5) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = read_stream(buf.data(), static_cast<int64_t>(buf.size()));
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(t);
    total += t;
  }
  (void)sink;
  std::sort(times.begin(), times.end());
  return static_cast<double>(buf.size() * sizeof(float)) / times[times.size() / 2];
}

}  // namespace shardlm::bench
