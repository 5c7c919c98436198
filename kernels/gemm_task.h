// One product y[m, n] = x[m, k] · Wᵀ of a group run in a single parallel region (gemm_group of
// gemm_own.h and qgemm.h), and the even split of each product's panels between the threads.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace shardlm {

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
  const int threads = work < 65536.0 ? 1 : omp_get_max_threads();
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
