// Shared helpers of the kernel tests: the ISA paths this CPU can run, scoped ISA / prefetch tuning /
// thread count overrides, and
// seeded random data.
#pragma once

#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"

namespace shardlm::testing {

// Every compiled path that this CPU supports, lowest first.
inline std::vector<Isa> runnable_isas() {
  std::vector<Isa> isas{Isa::kScalar};
  if (detected_isa() >= Isa::kAvx2) isas.push_back(Isa::kAvx2);
  if (detected_isa() >= Isa::kAvx512) isas.push_back(Isa::kAvx512);
  return isas;
}

class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) { set_isa_override(isa); }
  ~ScopedIsa() { clear_isa_override(); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;
};

class ScopedPrefetchTuning {
 public:
  explicit ScopedPrefetchTuning(PrefetchTuning tuning) { set_prefetch_tuning(tuning); }
  ~ScopedPrefetchTuning() { clear_prefetch_tuning(); }
  ScopedPrefetchTuning(const ScopedPrefetchTuning&) = delete;
  ScopedPrefetchTuning& operator=(const ScopedPrefetchTuning&) = delete;
};

class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(saved_); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int saved_;
};

inline std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace shardlm::testing
