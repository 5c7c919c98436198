// The machine's memory read bandwidth as the benchmarks' baseline: a plain streaming read (AVX2
// loads summed into accumulators, OpenMP threads over contiguous slices) of a buffer, timed by the
// median of repeated runs — the ceiling a weight-streaming kernel can reach at the moment. Each
// thread reads its slice as 1, 2, 3, 4, 6 and 8 streams side by side (the parts of the slice read
// 128 bytes of each in turn); the baseline is the fastest. How many streams a core reads fastest
// differs between CPUs: on Zen 5 one; on Zen 3 three (one thread: 1 stream ~22.5 GB/s, 2 ~24.5,
// 3 ~32, 4 ~27, 8 ~27). The buffer is an AlignedBuffer, in huge pages as the weights are.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <vector>

#include "common/aligned_buffer.h"

namespace shardlm::bench {

__attribute__((target("avx2"))) inline float read_stream(const float* p, int64_t n, int streams = 1) {
  float total = 0.0f;
#pragma omp parallel reduction(+ : total)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t b = n * t / nt / 32 * 32, e = n * (t + 1) / nt / 32 * 32;
    // The slice as `streams` parts read side by side, 128 bytes of each in turn (1: sequential).
    const int64_t part = (e - b) / streams / 32 * 32;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < part; i += 32) {
      for (int s = 0; s < streams; ++s) {
        const float* q = p + b + s * part + i;
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(q));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(q + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(q + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(q + 24));
      }
    }
    for (int64_t i = b + streams * part; i < e; i += 32) {  // what the parts left over
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

// A buffer of `bytes` of ones to read.
inline AlignedBuffer<float> read_buffer(size_t bytes) {
  AlignedBuffer<float> buf(bytes / sizeof(float));
  std::fill(buf.begin(), buf.end(), 1.0f);
  return buf;
}

// The stream counts per thread the baseline tries.
inline constexpr int kReadStreamCounts[] = {1, 2, 3, 4, 6, 8};

// Median read bandwidth in bytes/s of reading buf over at least min_seconds (and 5 runs) with
// `threads` threads, for the fastest number of streams per thread (kReadStreamCounts).
inline double read_bandwidth(const AlignedBuffer<float>& buf, int threads, double min_seconds) {
  omp_set_num_threads(threads);
  double best = 0.0;
  for (int streams : kReadStreamCounts) {
    volatile float sink = read_stream(buf.data(), static_cast<int64_t>(buf.size()), streams);
    std::vector<double> times;
    double total = 0.0;
    while (total < min_seconds / std::size(kReadStreamCounts) || times.size() < 5) {
      const auto t0 = std::chrono::steady_clock::now();
      sink = read_stream(buf.data(), static_cast<int64_t>(buf.size()), streams);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      times.push_back(t);
      total += t;
    }
    (void)sink;
    std::sort(times.begin(), times.end());
    best = std::max(best, static_cast<double>(buf.size() * sizeof(float)) / times[times.size() / 2]);
  }
  return best;
}

// The same over a fresh buffer of `bytes`.
inline double read_bandwidth(size_t bytes, int threads, double min_seconds) {
  return read_bandwidth(read_buffer(bytes), threads, min_seconds);
}

}  // namespace shardlm::bench
