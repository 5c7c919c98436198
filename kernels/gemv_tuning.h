// Chooses, on the machine a process runs on, how the AVX-512 GEMV tiles read their weight stream
// (PrefetchTuning): the same CPU model behaves differently from one host or VM to the next (one
// Zen 5 VM streamed q4 at 0.94 of its read bandwidth with one stream per thread prefetched 6.75 KiB
// ahead, another at 0.51-0.56 that way and 0.90-0.94 with four streams prefetched 1.5 KiB ahead), so
// the candidates are timed on a decode GEMV of the format in use, over a matrix larger than the
// last-level cache, alternated in rounds, and the fastest is set (set_prefetch_tuning). The choice
// never changes a result, only the speed. Skipped where SHARDLM_PREFETCH names a tuning or the
// kernels do not run at the AVX-512 level (where the tuning does not apply).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/linear.h"

namespace shardlm {

struct GemvTuningRate {
  PrefetchTuning tuning;
  double bytes_per_second;  // median of the rounds
};

struct GemvTuningChoice {
  PrefetchTuning tuning;              // the one set
  bool measured = false;              // false: taken from SHARDLM_PREFETCH, or not applicable
  std::vector<GemvTuningRate> rates;  // per candidate, when measured
};

// The candidates timed: the CPU vendor's tuning (kZen or kIntel) and kStreams.
std::vector<PrefetchTuning> gemv_tuning_candidates();

// Times each candidate on a GEMV of `format` weights (about `bytes` of them; 0: four times the L3,
// 64-256 MiB) with the current OpenMP thread count, `rounds` times alternated, sets the fastest and
// returns what was measured. Takes ~0.1-0.3 s and `bytes` of memory while it runs.
GemvTuningChoice calibrate_gemv_tuning(WeightFormat format, int64_t bytes = 0, int rounds = 5);

// calibrate_gemv_tuning once per process (later calls return the first call's choice), logged.
const GemvTuningChoice& calibrate_gemv_tuning_once(WeightFormat format);

}  // namespace shardlm
