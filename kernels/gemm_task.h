// How the own GEMMs (gemm_own.h and qgemm.h) split the 16-column panels of W between OpenMP threads:
// for one product (gemm) and for a group of products run in one parallel region (gemm_group).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/share_scheduler.h"

namespace shardlm {

// Below this many multiply-adds a product runs on the calling thread alone.
inline constexpr double kMinParallelWork = 65536.0;
// A thread of a decode takes this many bytes of weights at a time (ShareScheduler).
inline constexpr double kDecodeChunkBytes = 64.0 * 1024;

// Panels per tile of a decode of m rows (the unit a decode's ranges are multiples of): for a GEMV
// (m = 1) 1 where the level reads it as several streams (schedule_units), else `gemv_nr` where set;
// otherwise `widest` (the widest tile for m rows).
inline int decode_tile_width(int64_t m, int gemv_streams, int gemv_nr, int widest) {
  if (m == 1 && gemv_streams > 1) return 1;
  return m == 1 && gemv_nr > 0 ? gemv_nr : widest;
}

// The most streams a GEMV tile reads side by side (MicroKernelSet::gemv_streams).
inline constexpr int kMaxGemvStreams = 4;

// The distance d in panels between the streams of a GEMV read as S streams: n_panels / S, or where
// the kernel set places its streams (panel_bytes > 0: the panels' byte stride) and there are more
// than kStreamPlacementMinPanels panels per stream, the distance at most kStreamPlacementPanels below
// that whose byte distance lies closest to the middle of a 4 KiB page (2 KiB past a multiple of 4
// KiB). Measured on a Xeon with AMX (int8/q4, two streams per thread, alternated in the same runs):
// streams a multiple of 4 KiB apart read slower — q4 31B q (full) 0.91 / 0.89 (one / two threads)
// of the read bandwidth, q (sliding) 0.89-0.91 / 0.89-0.92 — than placed half a page apart, 0.95-0.96
// / 0.93-0.96 and 0.94-0.96 / 0.93-0.94. The 26B-A4B expert matrices (44-88 panels per stream) read
// no faster placed, and a MoE layer's eight per call were slower in one run, so they keep the even
// distance.
inline constexpr int64_t kStreamPlacementPanels = 8;
inline constexpr int64_t kStreamPlacementMinPanels = 128;
inline int64_t gemv_stream_distance(int64_t n_panels, int streams, int64_t panel_bytes) {
  const int64_t even = n_panels / streams;
  if (panel_bytes <= 0 || even <= kStreamPlacementMinPanels) return even;
  constexpr int64_t kPage = 4096;
  int64_t best = even, best_miss = kPage;
  for (int64_t d = even; d >= even - kStreamPlacementPanels; --d) {
    const int64_t off = d * panel_bytes % kPage, miss = off > kPage / 2 ? off - kPage / 2 : kPage / 2 - off;
    if (miss < best_miss) {
      best = d;
      best_miss = miss;
    }
  }
  return best;
}

// The units in which a product's panels are handed to threads: panels, or for a GEMV read as S > 1
// streams (m = 1 at a level whose gemv_streams is S) groups of S panels. Such a GEMV's panels lie in
// `blocks` contiguous blocks (one, or one per thread that shares a small product: see
// for_each_panel_range), and block b's are read as S streams a distance d_b apart
// (gemv_stream_distance over the block's panels; panel_bytes as there): its unit u < d_b is the
// panels p_b + u, p_b + u + d_b, .., p_b + u + (S - 1) d_b (p_b: the block's first panel), and the
// panels left at the block's end a unit each; block b's units follow block b - 1's. A thread's
// consecutive units are then S sequential streams a fraction of the block apart, however its share
// is cut into chunks (panels close together read slower).
inline int64_t gemv_block_begin(int64_t n_panels, int blocks, int b) { return n_panels * b / blocks; }

// The units of block b of such a GEMV (S = gemv_streams > 1).
inline int64_t gemv_block_units(int64_t n_panels, int blocks, int b, int gemv_streams, int64_t panel_bytes) {
  const int64_t panels = gemv_block_begin(n_panels, blocks, b + 1) - gemv_block_begin(n_panels, blocks, b);
  return panels - (gemv_streams - 1) * gemv_stream_distance(panels, gemv_streams, panel_bytes);
}

inline int64_t schedule_units(int64_t m, int gemv_streams, int64_t n_panels, int64_t panel_bytes = 0, int blocks = 1) {
  if (m != 1 || gemv_streams < 2) return n_panels;
  int64_t units = 0;
  for (int b = 0; b < blocks; ++b) units += gemv_block_units(n_panels, blocks, b, gemv_streams, panel_bytes);
  return units;
}

// A GEMV (one row of output y, 16 columns per panel) read as `streams` (2..kMaxGemvStreams) streams,
// over the units [u0, u1) of schedule_units (with the same panel_bytes and blocks): group(g, distance,
// ys, valid, next) computes the tile of the panels g, g + distance, .. into ys, a copy of their
// outputs (16 per panel; zeros unless accumulate) that is written back after (valid: the columns of
// the last panel; next: the first panel of the block's next unit, or -1, a hint for prefetching);
// single(g) takes one of the panels left at a block's end, adding its outputs to y (zeroed first
// unless accumulate).
template <class Group, class Single>
void gemv_streams(int streams, int64_t u0, int64_t u1, int64_t n_panels, int last_valid, float* y, bool accumulate,
                  Group group, Single single, int64_t panel_bytes = 0, int blocks = 1) {
  constexpr int64_t kPanelCols = 16;
  auto columns = [&](int64_t g) { return g + 1 == n_panels ? last_valid : static_cast<int>(kPanelCols); };
  alignas(32) float ys[kMaxGemvStreams * kPanelCols];
  int64_t first_unit = 0;  // of block b
  for (int b = 0; b < blocks && u0 < u1; ++b) {
    const int64_t p0 = gemv_block_begin(n_panels, blocks, b), panels = gemv_block_begin(n_panels, blocks, b + 1) - p0;
    const int64_t distance = gemv_stream_distance(panels, streams, panel_bytes);
    const int64_t end_unit = first_unit + panels - (streams - 1) * distance;
    for (; u0 < u1 && u0 < end_unit; ++u0) {
      const int64_t u = u0 - first_unit;  // within the block
      if (u >= distance) {
        const int64_t g = p0 + u + (streams - 1) * distance;
        if (!accumulate) std::fill_n(y + g * kPanelCols, columns(g), 0.0f);
        single(g);
        continue;
      }
      const int64_t g = p0 + u;
      const int valid = columns(g + (streams - 1) * distance);
      for (int s = 0; s < streams; ++s) {
        float* out = ys + s * kPanelCols;
        const int n = s + 1 == streams ? valid : static_cast<int>(kPanelCols);
        if (accumulate) {
          std::copy_n(y + (g + s * distance) * kPanelCols, n, out);
        } else {
          std::fill_n(out, n, 0.0f);
        }
      }
      group(g, distance, ys, valid, u + 1 < distance ? g + 1 : int64_t{-1});
      for (int s = 0; s < streams; ++s) {
        std::copy_n(ys + s * kPanelCols, s + 1 == streams ? valid : static_cast<int>(kPanelCols),
                    y + (g + s * distance) * kPanelCols);
      }
    }
    first_unit = end_unit;
  }
}

// Units per decode chunk: about kDecodeChunkBytes of weights, at least one unit.
inline int64_t decode_chunk_units(double bytes, int64_t n_units) {
  return std::max<int64_t>(1, static_cast<int64_t>(kDecodeChunkBytes * static_cast<double>(n_units) / std::max(bytes, 1.0)));
}

// A GEMV read as streams of at most this many bytes per thread is laid out in one block per thread
// (schedule_units). Measured on a Xeon with AMX (2 vCPUs, two threads, q4, alternated with one block
// in the same runs, four rounds, of the read bandwidth): the 26B-A4B expert gate+up (2.2 MB) 0.86-0.88
// -> 0.89-0.92 (the expert down, 1.1 MB, and int8 within the noise); the 31B matrices (25-116 MB) read
// 1-5% slower in blocks, also with block 1 placed a quarter of a page from block 0 (0.91 against
// 0.94-0.96 on the q projection), so they keep one block: thread 0 reads at 0 and 1/2 of the matrix,
// thread 1 at 1/4 and 3/4. In one block the threads' streams alternate through the matrix, each ending
// where the other's began.
inline constexpr double kBlockedGemvBytesPerThread = 2.0 * 1024 * 1024;

// Calls run(first unit, end unit, blocks) over the units of one product y[m, n] = x[m, k] · Wᵀ
// (n_panels panels, `bytes` of packed weights; the units are panels, or groups of panels for a GEMV
// read as gemv_streams streams placed by stream_panel_bytes, in `blocks` blocks: see schedule_units).
// Small work runs on the calling thread. A decode (decode = true) hands each thread chunks of its
// share (multiples of `granule` units, the decode tile's width) and lets a thread that is done take
// chunks from the back of another's (ShareScheduler), so that a core that gets less of the memory
// bandwidth for a while does less of the work instead of being waited for; a GEMV read as streams of
// at most kBlockedGemvBytesPerThread per thread is laid out in one block per thread, each thread's
// share its block. Otherwise each thread takes an even contiguous share. Each output column is
// computed the same way whichever thread takes it and however the panels are grouped, so the thread
// count never changes a result.
template <class Run>
void for_each_panel_range(int64_t m, int64_t n, int64_t k, int64_t n_panels, int gemv_streams, int64_t stream_panel_bytes,
                          size_t bytes, bool decode, int64_t granule, Run run) {
  const int64_t n_units = schedule_units(m, gemv_streams, n_panels, stream_panel_bytes);
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::max<int64_t>(k, 1));
  int threads = work < kMinParallelWork ? 1 : omp_get_max_threads();
  threads = static_cast<int>(std::min<int64_t>(threads, n_units));
  if (threads <= 1) {
    run(int64_t{0}, n_units, 1);
    return;
  }
  if (decode && m == 1 && gemv_streams > 1 && static_cast<double>(bytes) <= kBlockedGemvBytesPerThread * threads) {
    // One block per thread; its units are the thread's share (bounds on the stack up to 16 threads:
    // a decode calls this for every matrix).
    constexpr int kInlineThreads = 16;
    int64_t inline_bounds[kInlineThreads + 1];
    std::vector<int64_t> heap_bounds;
    if (threads > kInlineThreads) heap_bounds.resize(static_cast<size_t>(threads) + 1);
    const std::span<int64_t> bounds(threads > kInlineThreads ? heap_bounds.data() : inline_bounds, static_cast<size_t>(threads) + 1);
    bounds[0] = 0;
    for (int b = 0; b < threads; ++b) {
      bounds[static_cast<size_t>(b) + 1] =
          bounds[static_cast<size_t>(b)] + gemv_block_units(n_panels, threads, b, gemv_streams, stream_panel_bytes);
    }
    const int64_t units = bounds.back();
    ShareScheduler scheduler(std::span<const int64_t>(bounds), decode_chunk_units(static_cast<double>(bytes), units));
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t u0, u1;
      while (scheduler.next(t, u0, u1)) run(u0, u1, threads);
    }
    return;
  }
  if (decode) {
    granule = std::max<int64_t>(granule, 1);
    const int64_t granules = (n_units + granule - 1) / granule;
    ShareScheduler scheduler(granules, threads, decode_chunk_units(static_cast<double>(bytes), n_units) / granule);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t u0, u1;
      while (scheduler.next(t, u0, u1)) run(u0 * granule, std::min(u1 * granule, n_units), 1);
    }
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    run(n_units * t / nt, n_units * (t + 1) / nt, 1);
  }
}

template <class Weights>
struct GemmTaskOf {
  const Weights* w;
  const float* x;
  int64_t m;
  float* y;
};

// For for_each_task_share where a backend does not place its GEMV streams: every task's streams
// an even fraction of its matrix apart (panel_bytes 0, see schedule_units).
inline constexpr auto kEvenStreams = [](const auto&) { return int64_t{0}; };

// Calls run(task index, first unit, end unit) over the units of every non-empty task (its panels,
// or for a GEMV read as gemv_streams streams groups of panels, placed by the byte stride
// stream_panel_bytes(weights) returns, see schedule_units), in one parallel region (no barrier
// between tasks); one thread for small work. A decode (no task has more than mr_max rows, the
// kernels' tallest tile) schedules the tasks' units, one after the other, as for_each_panel_range
// does one product's; otherwise every thread takes its even share of each task.
template <class Weights, class StreamPanelBytes, class Run>
void for_each_task_share(const GemmTaskOf<Weights>* tasks, size_t count, int mr_max, int gemv_streams,
                         StreamPanelBytes stream_panel_bytes, Run run) {
  const auto units_of = [&](size_t i) {
    return schedule_units(tasks[i].m, gemv_streams, tasks[i].w->panels(), stream_panel_bytes(*tasks[i].w));
  };
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
    // Task i holds the units [offset[i], offset[i + 1]) of the sequence.
    std::vector<int64_t> offset(count + 1, 0);
    for (size_t i = 0; i < count; ++i) offset[i + 1] = offset[i] + (tasks[i].m > 0 ? units_of(i) : 0);
    ShareScheduler scheduler(offset[count], threads, decode_chunk_units(bytes, offset[count]));
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
      const int64_t n_units = units_of(i);
      run(i, n_units * t / nt, n_units * (t + 1) / nt);
    }
  }
}

}  // namespace shardlm
