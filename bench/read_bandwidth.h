// The machine's memory read bandwidth as the benchmarks' baseline: a plain streaming read (AVX2
// loads summed into accumulators, OpenMP threads over contiguous slices) of a buffer, timed by the
// median of repeated runs — the ceiling a weight-streaming kernel can reach at the moment. Each
// thread reads its slice as 1, 2, 3, 4, 6 and 8 streams side by side (the parts of the slice read
// 128 bytes of each in turn); the baseline is the fastest. How many streams a core reads fastest
// differs between CPUs: on Zen 5 one; on Zen 3 three (one thread: 1 stream ~22.5 GB/s, 2 ~24.5,
// 3 ~32, 4 ~27, 8 ~27). The buffer is an AlignedBuffer, in huge pages as the weights are, of
// stream_bytes(): larger than the last-level cache can hold a useful part of.
#pragma once

#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <thread>
#include <vector>

#include "bench/median.h"
#include "common/aligned_buffer.h"
#include "common/huge_page_arena.h"

namespace shardlm::bench {

// One thread's slice [b, e) as kStreams parts read side by side, 128 bytes of each in turn (1:
// sequential). The stream count is a template argument: with a run-time count the inner loop cost
// a Xeon ~9% of its read rate (one thread, 1 GiB: 17.7 against 19.3 GB/s).
template <int kStreams>
__attribute__((target("avx2"))) inline float read_slice(const float* p, int64_t b, int64_t e) {
  const int64_t part = (e - b) / kStreams / 32 * 32;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < part; i += 32) {
#pragma GCC unroll 8
    for (int s = 0; s < kStreams; ++s) {
      const float* q = p + b + s * part + i;
      a0 = _mm256_add_ps(a0, _mm256_loadu_ps(q));
      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(q + 8));
      a2 = _mm256_add_ps(a2, _mm256_loadu_ps(q + 16));
      a3 = _mm256_add_ps(a3, _mm256_loadu_ps(q + 24));
    }
  }
  for (int64_t i = b + kStreams * part; i < e; i += 32) {  // what the parts left over
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  float tmp[8];
  _mm256_storeu_ps(tmp, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float total = 0.0f;
  for (float v : tmp) total += v;
  return total;
}

// Reads p[0, n) with the OpenMP threads over contiguous slices, each as `streams` (1, 2, 3, 4, 6
// or 8) parts side by side.
inline float read_stream(const float* p, int64_t n, int streams = 1) {
  float total = 0.0f;
#pragma omp parallel reduction(+ : total)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t b = n * t / nt / 32 * 32, e = n * (t + 1) / nt / 32 * 32;
    switch (streams) {
      case 2: total += read_slice<2>(p, b, e); break;
      case 3: total += read_slice<3>(p, b, e); break;
      case 4: total += read_slice<4>(p, b, e); break;
      case 6: total += read_slice<6>(p, b, e); break;
      case 8: total += read_slice<8>(p, b, e); break;
      default: total += read_slice<1>(p, b, e); break;
    }
  }
  return total;
}

// Bytes a streaming measurement covers (the baseline's buffer, the weights a GEMV case cycles
// through) so that the last-level cache holds no useful part of it: four times the L3, at least 256
// MiB and at most 1 GiB. On a Xeon with a 480 MiB L3 (of which one VM gets an unknown share) one
// thread read 16-64 MiB at 29.6-31.4 GB/s, 256 MiB at 19.9 (two threads 40.8), 1 and 4 GiB at
// 19.2-19.4 (36.9-37.6): 256 MiB, enough on CPUs with 32 MiB L3s, was partly served by the cache
// there.
inline size_t stream_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  const size_t four = l3 > 0 ? 4 * static_cast<size_t>(l3) : 0;
  return std::clamp(four, size_t{256} << 20, size_t{1} << 30);
}

// A buffer of `bytes` of ones to read.
inline AlignedBuffer<float> read_buffer(size_t bytes) {
  AlignedBuffer<float> buf(bytes / sizeof(float));
  std::fill(buf.begin(), buf.end(), 1.0f);
  return buf;
}

// Reads p[0, n) (n a multiple of 32) in calls of `call` floats (a multiple of 32; the last call
// what is left), each call its own parallel region as read_stream reads a buffer: how a decode
// GEMV whose weights are `call` floats' bytes reads them, one product per call.
inline float read_in_calls(const float* p, int64_t n, int64_t call, int streams) {
  float total = 0.0f;
  for (int64_t c0 = 0; c0 < n; c0 += call) total += read_stream(p + c0, std::min(call, n - c0), streams);
  return total;
}

// The stream counts per thread the baseline tries.
inline constexpr int kReadStreamCounts[] = {1, 2, 3, 4, 6, 8};

// Median read bandwidth in bytes/s of reading buf over at least min_seconds (and min_runs runs) with
// `threads` threads, for the fastest number of streams per thread (kReadStreamCounts).
inline double read_bandwidth(const AlignedBuffer<float>& buf, int threads, double min_seconds, size_t min_runs = 5) {
  omp_set_num_threads(threads);
  double best = 0.0;
  for (int streams : kReadStreamCounts) {
    volatile float sink = read_stream(buf.data(), static_cast<int64_t>(buf.size()), streams);
    std::vector<double> times;
    double total = 0.0;
    while (total < min_seconds / std::size(kReadStreamCounts) || times.size() < min_runs) {
      const auto t0 = std::chrono::steady_clock::now();
      sink = read_stream(buf.data(), static_cast<int64_t>(buf.size()), streams);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      times.push_back(t);
      total += t;
    }
    (void)sink;
    best = std::max(best, static_cast<double>(buf.size() * sizeof(float)) / median(times));
  }
  return best;
}

// Read bandwidth in bytes/s of reading buf in calls of call_bytes (read_in_calls, rounded down to
// a multiple of 128 bytes, at least 128) with `threads` threads, for each stream count per thread of
// kReadStreamCounts (in that order): one pass each, so buf should be warm (just measured by
// read_bandwidth), and a caller takes medians over several before the fastest count. A small call
// pays what any product of its size pays: entering the parallel region, each thread's streams
// starting cold, the threads finishing unevenly.
inline std::vector<double> call_read_rates(const AlignedBuffer<float>& buf, int threads, size_t call_bytes) {
  omp_set_num_threads(threads);
  const int64_t n = static_cast<int64_t>(buf.size()) / 32 * 32;
  const int64_t call = std::max<int64_t>(32, static_cast<int64_t>(call_bytes / sizeof(float)) / 32 * 32);
  std::vector<double> rates;
  for (int streams : kReadStreamCounts) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = read_in_calls(buf.data(), n, call, streams);
    (void)sink;
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(n * sizeof(float)) / t);
  }
  return rates;
}

// Seconds the first touch of a 2 MiB region of buf takes (one float read per region, one thread)
// after the whole buffer sat untouched for idle_seconds: the median of `runs` passes. Right after a
// touch (idle_seconds = 0) that is a cache or TLB miss; on bare metal it stays so after any idle
// time, but a VM whose host reclaims or tracks guest memory charges a fault per region that grows
// with the time the memory was left alone (docs/performance.md: ~45 µs after 1 s on the Xeon VM).
inline double idle_touch_seconds(const AlignedBuffer<float>& buf, double idle_seconds, int runs = 3) {
  constexpr size_t kRegionFloats = huge_page_arena::kHugePage / sizeof(float);
  volatile float sink = 0.0f;
  auto touch = [&] {
    float total = 0.0f;
    for (size_t i = 0; i < buf.size(); i += kRegionFloats) total += buf.data()[i];
    sink = sink + total;
  };
  const size_t regions = (buf.size() + kRegionFloats - 1) / kRegionFloats;
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    touch();
    std::this_thread::sleep_for(std::chrono::duration<double>(idle_seconds));
    const auto t0 = std::chrono::steady_clock::now();
    touch();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(regions));
  }
  return median(times);
}

// The same over a fresh buffer of `bytes`.
inline double read_bandwidth(size_t bytes, int threads, double min_seconds) {
  return read_bandwidth(read_buffer(bytes), threads, min_seconds);
}

}  // namespace shardlm::bench
