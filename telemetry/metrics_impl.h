// Internals of telemetry::Metrics shared by its source files (metrics.cc: observations,
// metrics_serve.cc: the HTTP exposer). Not part of the API.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "telemetry/metrics.h"

namespace shardlm::telemetry {

// The series of one worker, created when Metrics is constructed (experts on first use).
struct WorkerSeries {
  std::string label;  // "0".."N-1"
  prometheus::Histogram* compute = nullptr;
  prometheus::Histogram* comm = nullptr;
  prometheus::Counter* compute_total = nullptr;
  prometheus::Counter* comm_total = nullptr;
  prometheus::Histogram* allreduce = nullptr;
  prometheus::Counter* allreduce_bytes = nullptr;
  prometheus::Gauge* kv_full_used = nullptr;
  prometheus::Gauge* kv_full_free = nullptr;
  prometheus::Gauge* kv_sliding_used = nullptr;
  prometheus::Gauge* kv_sliding_free = nullptr;
  prometheus::Gauge* up = nullptr;
  prometheus::Gauge* rss = nullptr;
  prometheus::Gauge* weights = nullptr;
  std::vector<prometheus::Counter*> experts;  // by global expert id; guarded by Impl::step_mutex
};

struct Metrics::Impl {
  std::string model_name;
  int num_workers = 0;
  std::shared_ptr<prometheus::Registry> registry;

  prometheus::Histogram* ttft = nullptr;
  prometheus::Histogram* inter_token = nullptr;
  prometheus::Histogram* e2e = nullptr;
  prometheus::Histogram* queue = nullptr;
  prometheus::Histogram* prefill = nullptr;
  prometheus::Histogram* decode = nullptr;
  prometheus::Histogram* prompt_len = nullptr;
  prometheus::Histogram* generation_len = nullptr;
  prometheus::Counter* prompt_tokens = nullptr;
  prometheus::Counter* generation_tokens = nullptr;
  prometheus::Family<prometheus::Counter>* success = nullptr;
  prometheus::Gauge* running = nullptr;
  prometheus::Gauge* waiting = nullptr;
  prometheus::Gauge* kv_usage = nullptr;
  prometheus::Counter* preemptions = nullptr;
  std::atomic<int64_t> preemptions_seen{0};  // set_scheduler runs on more than one thread

  prometheus::Histogram* skew = nullptr;
  prometheus::Histogram* step_duration = nullptr;
  prometheus::Counter* steps = nullptr;
  prometheus::Family<prometheus::Counter>* expert_tokens = nullptr;
  prometheus::Family<prometheus::Gauge>* batch_jobs = nullptr;
  std::vector<WorkerSeries> workers;

  std::mutex step_mutex;                     // guards the scratch vectors and WorkerSeries::experts
  std::vector<double> allreduce_increments;  // one slot per all-reduce bucket (+Inf), all 0
  std::vector<double> allreduce_bounds;
  std::vector<double> compute_times;

  std::mutex reasons_mutex;
  std::map<std::string, prometheus::Counter*, std::less<>> reasons;
  std::mutex batch_mutex;
  std::map<std::string, prometheus::Gauge*, std::less<>> batch_states;

  mutable std::mutex serve_mutex;
  std::unique_ptr<prometheus::Exposer> exposer;  // declared last: stopped before the rest goes
};

}  // namespace shardlm::telemetry
