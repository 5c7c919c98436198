// How the own GEMMs (gemm_own.h and qgemm.h) split the 16-column panels of W between OpenMP threads:
// for one product (gemm) and for a group of products run in one parallel region (gemm_group).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/share_scheduler.h"

namespace shardlm {

// Below this many multiply-adds a product runs on the calling thread alone.
inline constexpr double kMinParallelWork = 65536.0;
// A thread of a decode takes this many bytes of weights at a time (ShareScheduler).
inline constexpr double kDecodeChunkBytes = 64.0 * 1024;

// Panels per tile of a decode of m rows (the unit a decode's ranges are multiples of): for a GEMV
// (m = 1) 1 where the level reads a range as two streams (any range splits), else `gemv_nr` where
// set; otherwise `widest` (the widest tile for m rows).
inline int decode_tile_width(int64_t m, bool gemv_two_streams, int gemv_nr, int widest) {
  if (m == 1 && gemv_two_streams) return 1;
  return m == 1 && gemv_nr > 0 ? gemv_nr : widest;
}

// A GEMV (one row of output y, 16 columns per panel) over the panels [p0, p1) as two sequential
// streams side by side: pair(g, distance, y2, valid) computes the tile of panels g and g + distance
// (g from the range's first half, its partner from the second) into y2, a copy of their 2 x 16
// outputs that is written back after (valid: the columns of the second panel); single(g) takes an
// odd range's last panel. A range of one panel is single.
template <class Pair, class Single>
void gemv_two_streams(int64_t p0, int64_t p1, int64_t n_panels, int last_valid, float* y, Pair pair, Single single) {
  constexpr int64_t kPanelCols = 16;
  const int64_t half = (p1 - p0) / 2;
  alignas(32) float y2[2 * kPanelCols];
  for (int64_t i = 0; i < half; ++i) {
    const int64_t ga = p0 + i, gb = p0 + half + i;
    const int valid = gb + 1 == n_panels ? last_valid : static_cast<int>(kPanelCols);
    std::copy_n(y + ga * kPanelCols, kPanelCols, y2);
    std::copy_n(y + gb * kPanelCols, valid, y2 + kPanelCols);
    pair(ga, half, y2, valid);
    std::copy_n(y2, kPanelCols, y + ga * kPanelCols);
    std::copy_n(y2 + kPanelCols, valid, y + gb * kPanelCols);
  }
  if ((p1 - p0) % 2 != 0) single(p1 - 1);
}

// Panels per decode chunk: about kDecodeChunkBytes of weights, at least one panel.
inline int64_t decode_chunk_panels(double bytes, int64_t n_panels) {
  return std::max<int64_t>(1, static_cast<int64_t>(kDecodeChunkBytes * static_cast<double>(n_panels) / std::max(bytes, 1.0)));
}

// Calls run(first panel, end panel) over the n_panels panels (`bytes` of packed weights) of one
// product y[m, n] = x[m, k] · Wᵀ. Small work runs on the calling thread. A decode (decode = true)
// hands each thread chunks of its share (multiples of `granule` panels, the decode tile's width) and
// lets a thread that is done take chunks from the back of another's (ShareScheduler), so that a core
// that gets less of the memory bandwidth for a while does less of the work instead of being waited
// for; otherwise each thread takes an even contiguous share. Each output column is computed the same
// way whichever thread takes it, so the thread count never changes a result.
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
  if (decode) {
    granule = std::max<int64_t>(granule, 1);
    const int64_t units = (n_panels + granule - 1) / granule;
    ShareScheduler scheduler(units, threads, decode_chunk_panels(static_cast<double>(bytes), n_panels) / granule);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t u0, u1;
      while (scheduler.next(t, u0, u1)) run(u0 * granule, std::min(u1 * granule, n_panels));
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

// Calls run(task index, first panel, end panel) over the panels of every non-empty task, in one
// parallel region (no barrier between tasks); one thread for small work. A decode (no task has more
// than mr_max rows, the kernels' tallest tile) schedules the tasks' panels, one after the other, as
// for_each_panel_range does one product's; otherwise every thread takes its even share of each task.
template <class Weights, class Run>
void for_each_task_share(const GemmTaskOf<Weights>* tasks, size_t count, int mr_max, Run run) {
  double work = 0.0, bytes = 0.0;
  bool decode = true;
  for (size_t i = 0; i < count; ++i) {
    decode = decode && tasks[i].m <= mr_max;
    if (tasks[i].m <= 0) continue;
    work += static_cast<double>(tasks[i].m) * static_cast<double>(tasks[i].w->n) *
            static_cast<double>(std::max<int64_t>(tasks[i].w->k, 1));
    bytes += static_cast<double>(tasks[i].w->bytes());
  }
  const int threads = work < kMinParallelWork ? 1 : omp_get_max_threads();
  if (decode && threads > 1) {
    // Task i holds the panels [offset[i], offset[i + 1]) of the sequence.
    std::vector<int64_t> offset(count + 1, 0);
    for (size_t i = 0; i < count; ++i) offset[i + 1] = offset[i] + (tasks[i].m > 0 ? tasks[i].w->panels() : 0);
    ShareScheduler scheduler(offset[count], threads, decode_chunk_panels(bytes, offset[count]));
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t g0, g1;
      while (scheduler.next(t, g0, g1)) {
        size_t i = static_cast<size_t>(std::upper_bound(offset.begin(), offset.end(), g0) - offset.begin()) - 1;
        for (; g0 < g1; ++i) {
          const int64_t e = std::min(g1, offset[i + 1]);
          if (e > g0) run(i, g0 - offset[i], e - offset[i]);
          g0 = e;
        }
      }
    }
    return;
  }
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
