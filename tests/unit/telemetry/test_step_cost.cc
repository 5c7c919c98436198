// The cost of Metrics::observe_step on the coordinator's step loop: 4 workers, 8 experts each,
// every field filled. Prints ns per step; fails only if it is far above the expected few hundred
// ns (e.g. a family lookup or an allocation per series crept into the hot path).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "telemetry/metrics.h"

namespace shardlm::telemetry {
namespace {

TEST(MetricsStepCost, FourWorkersEightExpertsEach) {
  constexpr int kWorkers = 4, kExpertsPerWorker = 8;
  Metrics m("cost-model", kWorkers);
  std::vector<WorkerStepRecord> workers(kWorkers);
  for (int w = 0; w < kWorkers; ++w) {
    WorkerStepRecord& r = workers[w];
    r.compute_s = 0.010 + 0.001 * w;
    r.comm_s = 0.002;
    r.allreduce_s = 0.0012;
    r.allreduce_count = 60;
    r.allreduce_bytes = 60 * 4 * 2816;
    r.kv_full_used = 100 + w;
    r.kv_full_free = 900;
    r.kv_sliding_used = 40;
    r.kv_sliding_free = 60;
    for (int e = 0; e < kExpertsPerWorker; ++e) {
      r.expert_tokens.emplace_back(w * kExpertsPerWorker + e, 3 + e);
    }
    r.rss_bytes = int64_t{20} << 30;
    r.weight_bytes = int64_t{14} << 30;
  }
  m.observe_step(0.015, workers);  // creates the expert series

  constexpr int kSteps = 20000;
  double best_ns = 1e30;
  for (int round = 0; round < 5; ++round) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kSteps; ++i) m.observe_step(0.015, workers);
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    best_ns = std::min(best_ns, ns / kSteps);
  }
  std::printf("observe_step, %d workers x %d experts: %.0f ns per step\n", kWorkers,
              kExpertsPerWorker, best_ns);
  RecordProperty("ns_per_observe_step", static_cast<int>(best_ns));
  EXPECT_LT(best_ns, 50000.0);
  EXPECT_NE(m.text().find("shardlm_steps_total{model_name=\"cost-model\"} 100001"),
            std::string::npos);
}

}  // namespace
}  // namespace shardlm::telemetry
