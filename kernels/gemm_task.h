// How the own GEMMs (gemm_own.h and qgemm.h) split the 16-column panels of W between OpenMP threads:
// for one product (gemm) and for a group of products run in one parallel region (gemm_group).
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shardlm {

// Below this many multiply-adds a product runs on the calling thread alone.
inline constexpr double kMinParallelWork = 65536.0;
// Decode of a matrix from this size on hands panel chunks to the threads dynamically.
inline constexpr double kDynamicSplitBytes = 16.0 * 1024 * 1024;

// Calls run(first panel, end panel) over the n_panels panels (`bytes` of packed weights) of one
// product y[m, n] = x[m, k] · Wᵀ. Small work runs on the calling thread. Decode (decode = true) of a
// matrix of kDynamicSplitBytes or more hands chunks of panels (~32 per thread, each >= 256 KiB, a
// multiple of `granule` panels) to the threads as they go, so that a core that gets less of the
// memory bandwidth for a while does less of the work instead of being waited for; otherwise each
// thread takes an even contiguous share (a chunk would be a large part of a small matrix). Each
// output column is computed the same way whichever thread takes it, so the thread count never
// changes a result.
template <class Run>
void for_each_panel_range(int64_t m, int64_t n, int64_t k, int64_t n_panels, size_t bytes, bool decode, int64_t granule,
                          Run run) {
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::max<int64_t>(k, 1));
  int threads = work < kMinParallelWork ? 1 : omp_get_max_threads();
  threads = static_cast<int>(std::min<int64_t>(threads, n_panels));
  if (threads <= 1) {
    run(int64_t{0}, n_panels);
    return;
  }
  if (decode && static_cast<double>(bytes) >= kDynamicSplitBytes) {
    const int64_t min_panels = (256 * 1024) / std::max<int64_t>(1, static_cast<int64_t>(bytes) / n_panels) + 1;
    const int64_t per_chunk = std::max(n_panels / (threads * 32), min_panels);
    const int64_t chunk = (per_chunk + granule - 1) / granule * granule;
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(threads)
    for (;;) {
      const int64_t p0 = next.fetch_add(chunk, std::memory_order_relaxed);
      if (p0 >= n_panels) break;
      run(p0, std::min(p0 + chunk, n_panels));
    }
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    run(n_panels * t / nt, n_panels * (t + 1) / nt);
  }
}

template <class Weights>
struct GemmTaskOf {
  const Weights* w;
  const float* x;
  int64_t m;
  float* y;
};

// Calls run(task index, first panel, end panel) with every thread's even share of the panels of
// each non-empty task, in one parallel region (no barrier between tasks); one thread for small work.
template <class Weights, class Run>
void for_each_task_share(const GemmTaskOf<Weights>* tasks, size_t count, Run run) {
  double work = 0.0;
  for (size_t i = 0; i < count; ++i) {
    work += static_cast<double>(std::max<int64_t>(tasks[i].m, 0)) * static_cast<double>(tasks[i].w->n) *
            static_cast<double>(std::max<int64_t>(tasks[i].w->k, 1));
  }
  const int threads = work < kMinParallelWork ? 1 : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    for (size_t i = 0; i < count; ++i) {
      if (tasks[i].m <= 0 || tasks[i].w->n == 0) continue;
      const int64_t n_panels = tasks[i].w->panels();
      run(i, n_panels * t / nt, n_panels * (t + 1) / nt);
    }
  }
}

}  // namespace shardlm
