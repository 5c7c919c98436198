#include "telemetry/metrics.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <type_traits>

#include <prometheus/text_serializer.h>

#include "common/error.h"
#include "telemetry/catalogue.h"
#include "telemetry/metrics_impl.h"

namespace shardlm::telemetry {
namespace {

constexpr int kMaxWorkers = 4096;
constexpr int32_t kMaxExpertId = 1 << 16;

// Registers family NAME of the catalogue in REGISTRY with model_name as constant label.
template <typename T>
prometheus::Family<T>& add_family(prometheus::Registry& registry, const std::string& model_name,
                                  std::string_view name) {
  const MetricSpec& spec = metric_spec(name);
  auto configure = [&](auto builder) -> prometheus::Family<T>& {
    return builder.Name(std::string(spec.name))
        .Help(std::string(spec.help))
        .Labels({{"model_name", model_name}})
        .Register(registry);
  };
  if constexpr (std::is_same_v<T, prometheus::Counter>) {
    if (spec.type != MetricType::kCounter) fail("metric '{}' is not a counter", name);
    return configure(prometheus::BuildCounter());
  } else if constexpr (std::is_same_v<T, prometheus::Gauge>) {
    if (spec.type != MetricType::kGauge) fail("metric '{}' is not a gauge", name);
    return configure(prometheus::BuildGauge());
  } else {
    if (spec.type != MetricType::kHistogram) fail("metric '{}' is not a histogram", name);
    return configure(prometheus::BuildHistogram());
  }
}

std::vector<double> bucket_bounds(std::string_view name) {
  const MetricSpec& spec = metric_spec(name);
  return {spec.buckets.begin(), spec.buckets.end()};
}

bool valid_duration(double s) { return std::isfinite(s) && s >= 0; }

void observe(prometheus::Histogram* histogram, double value) {
  if (valid_duration(value)) histogram->Observe(value);
}

void add(prometheus::Counter* counter, double value) {
  if (valid_duration(value) && value > 0) counter->Increment(value);
}

}  // namespace

Metrics::Metrics(std::string model_name, int num_workers) : impl_(std::make_unique<Impl>()) {
  if (model_name.empty()) fail("metrics need a model name (the model_name label), got ''");
  if (num_workers < 0 || num_workers > kMaxWorkers) {
    fail("metrics: number of workers {} is outside 0..{}", num_workers, kMaxWorkers);
  }
  Impl& m = *impl_;
  m.model_name = std::move(model_name);
  m.num_workers = num_workers;
  m.registry = std::make_shared<prometheus::Registry>();
  prometheus::Registry& r = *m.registry;
  const std::string& model = m.model_name;
  using prometheus::Counter;
  using prometheus::Gauge;
  using prometheus::Histogram;

  auto histogram = [&](std::string_view name) {
    return &add_family<Histogram>(r, model, name).Add({}, bucket_bounds(name));
  };
  m.ttft = histogram("shardlm_time_to_first_token_seconds");
  m.inter_token = histogram("shardlm_inter_token_latency_seconds");
  m.e2e = histogram("shardlm_e2e_request_latency_seconds");
  m.queue = histogram("shardlm_request_queue_time_seconds");
  m.prefill = histogram("shardlm_request_prefill_time_seconds");
  m.decode = histogram("shardlm_request_decode_time_seconds");
  m.prompt_len = histogram("shardlm_request_prompt_tokens");
  m.generation_len = histogram("shardlm_request_generation_tokens");
  m.prompt_tokens = &add_family<Counter>(r, model, "shardlm_prompt_tokens_total").Add({});
  m.generation_tokens = &add_family<Counter>(r, model, "shardlm_generation_tokens_total").Add({});
  m.success = &add_family<Counter>(r, model, "shardlm_request_success_total");
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    m.reasons[reason] = &m.success->Add({{"finished_reason", reason}});
  }
  m.running = &add_family<Gauge>(r, model, "shardlm_num_requests_running").Add({});
  m.waiting = &add_family<Gauge>(r, model, "shardlm_num_requests_waiting").Add({});
  m.kv_usage = &add_family<Gauge>(r, model, "shardlm_kv_cache_usage_perc").Add({});
  m.preemptions = &add_family<Counter>(r, model, "shardlm_num_preemptions_total").Add({});

  m.skew = histogram("shardlm_step_straggler_skew_seconds");
  m.step_duration = histogram("shardlm_step_duration_seconds");
  m.steps = &add_family<Counter>(r, model, "shardlm_steps_total").Add({});
  m.expert_tokens = &add_family<Counter>(r, model, "shardlm_moe_expert_tokens_total");
  m.batch_jobs = &add_family<Gauge>(r, model, "shardlm_batch_jobs");

  auto& compute = add_family<Histogram>(r, model, "shardlm_worker_step_compute_seconds");
  auto& comm = add_family<Histogram>(r, model, "shardlm_worker_step_communication_seconds");
  auto& compute_total = add_family<Counter>(r, model, "shardlm_worker_step_compute_seconds_total");
  auto& comm_total =
      add_family<Counter>(r, model, "shardlm_worker_step_communication_seconds_total");
  auto& allreduce = add_family<Histogram>(r, model, "shardlm_allreduce_latency_seconds");
  auto& allreduce_bytes = add_family<Counter>(r, model, "shardlm_allreduce_bytes_total");
  auto& kv_used = add_family<Gauge>(r, model, "shardlm_kv_blocks_used");
  auto& kv_free = add_family<Gauge>(r, model, "shardlm_kv_blocks_free");
  auto& up = add_family<Gauge>(r, model, "shardlm_worker_up");
  auto& weights = add_family<Gauge>(r, model, "shardlm_worker_weight_bytes");
  auto& rss = add_family<Gauge>(r, model, "shardlm_worker_rss_bytes");
  const std::vector<double> step_bounds = bucket_bounds("shardlm_worker_step_compute_seconds");
  const std::vector<double> comm_bounds =
      bucket_bounds("shardlm_worker_step_communication_seconds");
  m.allreduce_bounds = bucket_bounds("shardlm_allreduce_latency_seconds");
  m.allreduce_increments.assign(m.allreduce_bounds.size() + 1, 0.0);
  m.compute_times.reserve(num_workers);
  m.workers.resize(num_workers);
  for (int i = 0; i < num_workers; ++i) {
    WorkerSeries& w = m.workers[i];
    w.label = std::to_string(i);
    const prometheus::Labels labels = {{"worker", w.label}};
    w.compute = &compute.Add(labels, step_bounds);
    w.comm = &comm.Add(labels, comm_bounds);
    w.compute_total = &compute_total.Add(labels);
    w.comm_total = &comm_total.Add(labels);
    w.allreduce = &allreduce.Add(labels, m.allreduce_bounds);
    w.allreduce_bytes = &allreduce_bytes.Add(labels);
    w.kv_full_used = &kv_used.Add({{"worker", w.label}, {"layer_type", "full"}});
    w.kv_sliding_used = &kv_used.Add({{"worker", w.label}, {"layer_type", "sliding"}});
    w.kv_full_free = &kv_free.Add({{"worker", w.label}, {"layer_type", "full"}});
    w.kv_sliding_free = &kv_free.Add({{"worker", w.label}, {"layer_type", "sliding"}});
    w.up = &up.Add(labels);
    w.weights = &weights.Add(labels);
    w.rss = &rss.Add(labels);
  }
}

Metrics::~Metrics() = default;

const std::string& Metrics::model_name() const { return impl_->model_name; }
int Metrics::num_workers() const { return impl_->num_workers; }

void Metrics::observe_request(const RequestRecord& request) {
  if (request.finished_reason.empty()) fail("observe_request: the finished_reason is empty");
  Impl& m = *impl_;
  observe(m.queue, request.queue_s);
  observe(m.prefill, request.prefill_s);
  observe(m.decode, request.decode_s);
  observe(m.e2e, request.e2e_s);
  if (request.prompt_tokens >= 0) m.prompt_len->Observe(static_cast<double>(request.prompt_tokens));
  if (request.generation_tokens >= 0) {
    m.generation_len->Observe(static_cast<double>(request.generation_tokens));
  }
  const std::string& reason = request.finished_reason;
  prometheus::Counter* counter = nullptr;
  {
    std::lock_guard lock(m.reasons_mutex);
    auto it = m.reasons.find(reason);
    if (it == m.reasons.end()) {
      it = m.reasons.emplace(reason, &m.success->Add({{"finished_reason", reason}})).first;
    }
    counter = it->second;
  }
  counter->Increment();
}

void Metrics::observe_first_token(double seconds) { observe(impl_->ttft, seconds); }

void Metrics::observe_inter_token(double seconds) { observe(impl_->inter_token, seconds); }

void Metrics::count_tokens(int64_t prompt_tokens, int64_t generation_tokens) {
  if (prompt_tokens > 0) impl_->prompt_tokens->Increment(static_cast<double>(prompt_tokens));
  if (generation_tokens > 0) {
    impl_->generation_tokens->Increment(static_cast<double>(generation_tokens));
  }
}

void Metrics::set_scheduler(int running, int waiting, double kv_usage, int64_t preemptions) {
  Impl& m = *impl_;
  m.running->Set(std::max(running, 0));
  m.waiting->Set(std::max(waiting, 0));
  if (!std::isnan(kv_usage)) m.kv_usage->Set(std::clamp(kv_usage, 0.0, 1.0));
  int64_t seen = m.preemptions_seen.load();
  while (preemptions > seen && !m.preemptions_seen.compare_exchange_weak(seen, preemptions)) {
  }
  if (preemptions > seen) m.preemptions->Increment(static_cast<double>(preemptions - seen));
}

void Metrics::observe_step(double step_s, const std::vector<WorkerStepRecord>& workers) {
  Impl& m = *impl_;
  if (static_cast<int64_t>(workers.size()) != m.num_workers) {
    fail("observe_step got {} worker reports for a cluster of {} workers", workers.size(),
         m.num_workers);
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    for (const auto& [expert, tokens] : workers[i].expert_tokens) {
      if (expert < 0 || expert >= kMaxExpertId) {
        fail("observe_step: worker {} reports expert id {}, outside 0..{}", i, expert,
             kMaxExpertId - 1);
      }
    }
  }
  observe(m.step_duration, step_s);
  m.steps->Increment();

  std::lock_guard lock(m.step_mutex);
  m.compute_times.clear();
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerStepRecord& r = workers[i];
    WorkerSeries& w = m.workers[i];
    w.up->Set(1);
    if (valid_duration(r.compute_s)) {
      w.compute->Observe(r.compute_s);
      add(w.compute_total, r.compute_s);
      m.compute_times.push_back(r.compute_s);
    }
    if (valid_duration(r.comm_s)) {
      w.comm->Observe(r.comm_s);
      add(w.comm_total, r.comm_s);
    }
    if (r.allreduce_count > 0 && valid_duration(r.allreduce_s) && r.allreduce_s > 0) {
      // Each all-reduce of the step is counted at the step's mean latency.
      const double mean = r.allreduce_s / static_cast<double>(r.allreduce_count);
      const size_t bucket = static_cast<size_t>(
          std::lower_bound(m.allreduce_bounds.begin(), m.allreduce_bounds.end(), mean) -
          m.allreduce_bounds.begin());
      m.allreduce_increments[bucket] = static_cast<double>(r.allreduce_count);
      w.allreduce->ObserveMultiple(m.allreduce_increments, r.allreduce_s);
      m.allreduce_increments[bucket] = 0;
    }
    if (r.allreduce_bytes > 0) w.allreduce_bytes->Increment(static_cast<double>(r.allreduce_bytes));
    w.kv_full_used->Set(static_cast<double>(std::max<int64_t>(r.kv_full_used, 0)));
    w.kv_full_free->Set(static_cast<double>(std::max<int64_t>(r.kv_full_free, 0)));
    w.kv_sliding_used->Set(static_cast<double>(std::max<int64_t>(r.kv_sliding_used, 0)));
    w.kv_sliding_free->Set(static_cast<double>(std::max<int64_t>(r.kv_sliding_free, 0)));
    for (const auto& [expert, tokens] : r.expert_tokens) {
      if (static_cast<size_t>(expert) >= w.experts.size()) w.experts.resize(expert + 1, nullptr);
      prometheus::Counter*& counter = w.experts[expert];
      if (counter == nullptr) {
        counter = &m.expert_tokens->Add({{"worker", w.label}, {"expert", std::to_string(expert)}});
      }
      if (tokens > 0) counter->Increment(static_cast<double>(tokens));
    }
    if (r.rss_bytes >= 0) w.rss->Set(static_cast<double>(r.rss_bytes));
    if (r.weight_bytes >= 0) w.weights->Set(static_cast<double>(r.weight_bytes));
  }
  if (!m.compute_times.empty()) {
    // Straggler skew: slowest worker minus the median (mean of the middle two for even counts).
    std::vector<double>& t = m.compute_times;
    const double slowest = *std::max_element(t.begin(), t.end());
    const size_t mid = t.size() / 2;
    std::nth_element(t.begin(), t.begin() + mid, t.end());
    double median = t[mid];
    if (t.size() % 2 == 0) median = (median + *std::max_element(t.begin(), t.begin() + mid)) / 2;
    m.skew->Observe(slowest - median);
  }
}

void Metrics::set_worker_state(const std::vector<WorkerStepRecord>& workers) {
  Impl& m = *impl_;
  if (static_cast<int64_t>(workers.size()) != m.num_workers) {
    fail("set_worker_state got {} worker reports for a cluster of {} workers", workers.size(), m.num_workers);
  }
  std::lock_guard lock(m.step_mutex);
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerStepRecord& r = workers[i];
    WorkerSeries& w = m.workers[i];
    w.up->Set(1);
    w.kv_full_used->Set(static_cast<double>(std::max<int64_t>(r.kv_full_used, 0)));
    w.kv_full_free->Set(static_cast<double>(std::max<int64_t>(r.kv_full_free, 0)));
    w.kv_sliding_used->Set(static_cast<double>(std::max<int64_t>(r.kv_sliding_used, 0)));
    w.kv_sliding_free->Set(static_cast<double>(std::max<int64_t>(r.kv_sliding_free, 0)));
    if (r.rss_bytes >= 0) w.rss->Set(static_cast<double>(r.rss_bytes));
    if (r.weight_bytes >= 0) w.weights->Set(static_cast<double>(r.weight_bytes));
  }
}

void Metrics::set_worker_up(int worker, bool up) {
  Impl& m = *impl_;
  if (worker < 0 || worker >= m.num_workers) {
    fail("set_worker_up: worker {} is outside 0..{}", worker, m.num_workers - 1);
  }
  m.workers[worker].up->Set(up ? 1 : 0);
}

void Metrics::set_batch_jobs(const std::map<std::string, int64_t>& by_state) {
  Impl& m = *impl_;
  for (const auto& [state, count] : by_state) {
    if (state.empty()) fail("set_batch_jobs: a batch job state is empty");
  }
  std::lock_guard lock(m.batch_mutex);
  for (const auto& [state, count] : by_state) {
    auto it = m.batch_states.find(state);
    if (it == m.batch_states.end()) {
      it = m.batch_states.emplace(state, &m.batch_jobs->Add({{"state", state}})).first;
    }
  }
  for (const auto& [state, gauge] : m.batch_states) {
    auto it = by_state.find(state);
    gauge->Set(it == by_state.end() ? 0.0 : static_cast<double>(std::max<int64_t>(it->second, 0)));
  }
}

std::string Metrics::text() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

std::vector<std::string> Metrics::catalogue() {
  std::vector<std::string> names;
  for (const MetricSpec& spec : metric_specs()) names.emplace_back(spec.name);
  return names;
}

}  // namespace shardlm::telemetry
