// Metrics: the Prometheus metrics of one shardlm server (catalogue in telemetry/catalogue.h and
// docs/metrics.md) and the HTTP exposer that serves them on /metrics. Every method may be called
// from any thread; per-worker series are created up front, so a step costs about a microsecond.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace shardlm::telemetry {

// One request at its end (finished, aborted or failed). Durations in seconds.
struct RequestRecord {
  double queue_s = 0;    // arrival -> first scheduled step
  // Negative (not observed) for a request that generated no token (cancelled, refused or failed first).
  double prefill_s = 0;  // first scheduled step -> first generated token
  double decode_s = 0;   // first generated token -> last generated token
  double e2e_s = 0;      // arrival -> end
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  std::string finished_reason;  // "stop", "length", "abort", "error", ... (not empty)
};

// What one worker reports for one step (piggy-backed on its step result).
struct WorkerStepRecord {
  double compute_s = 0;  // step time minus comm_s
  double comm_s = 0;     // time in collectives, waits included
  // Time in the all-reduces of this step (part of comm_s) and how many there were; each is
  // counted in allreduce_latency_seconds at the mean. allreduce_s = 0: not measured.
  double allreduce_s = 0;
  int64_t allreduce_count = 0;
  int64_t allreduce_bytes = 0;
  int64_t kv_full_used = 0, kv_full_free = 0;
  int64_t kv_sliding_used = 0, kv_sliding_free = 0;
  std::vector<std::pair<int32_t, int64_t>> expert_tokens;  // (global expert id, tokens this step)
  int64_t rss_bytes = -1;     // < 0: unknown, the gauge keeps its last value
  int64_t weight_bytes = -1;  // < 0: unknown, the gauge keeps its last value
};

class Metrics {
 public:
  // Every family carries model_name=MODEL_NAME; workers are labelled "0".."NUM_WORKERS-1".
  Metrics(std::string model_name, int num_workers);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Starts serving GET /metrics on HOST:PORT (an IPv4 address such as 0.0.0.0 or 127.0.0.1, or
  // "localhost"; port 0 = a free port). Throws Error naming the address and the reason (e.g. the
  // port is in use). Stopping the server (the destructor) can take up to 2 s (civetweb's poll).
  void serve(const std::string& host, int port);
  // The port being served (the real one when serve() was given 0); 0 before serve().
  int bound_port() const;

  // Request histograms (queue, prefill, decode, e2e, prompt and generation lengths) and
  // request_success_total{finished_reason}. Token counters are not touched: see count_tokens().
  void observe_request(const RequestRecord& request);
  // TTFT of one request, when its first token is produced.
  void observe_first_token(double seconds);
  // Time between two consecutive tokens of one request, as each token is produced.
  void observe_inter_token(double seconds);
  // Adds to prompt_tokens_total / generation_tokens_total, as steps process them (per step).
  void count_tokens(int64_t prompt_tokens, int64_t generation_tokens);

  // Scheduler gauges; kv_usage is clamped to 0..1. preemptions: the scheduler's running total (the
  // counter takes what it grew by; < 0: not given).
  void set_scheduler(int running, int waiting, double kv_usage, int64_t preemptions = -1);

  // One cluster step: STEP_S is its wall time at the coordinator; WORKERS[i] is worker i's report
  // (size must be num_workers). Also derives the straggler skew (max - median compute time) and
  // marks every worker up. Throws Error on a wrong report count or an expert id < 0 or >= 65536.
  void observe_step(double step_s, const std::vector<WorkerStepRecord>& workers);
  void set_worker_up(int worker, bool up);
  // Between steps (an idle cluster's heartbeat): the workers' KV blocks, resident memory and weight
  // bytes from their reports, every worker marked up; nothing is observed or counted.
  void set_worker_state(const std::vector<WorkerStepRecord>& workers);
  // Sets batch_jobs{state} for each entry; states seen before but absent now are set to 0.
  void set_batch_jobs(const std::map<std::string, int64_t>& by_state);

  // The text exposition of every shardlm family (what /metrics serves, less the exposer's own
  // exposer_* families).
  std::string text() const;

  const std::string& model_name() const;
  int num_workers() const;

  // Every family name exported, with the shardlm_ prefix (see telemetry/catalogue.h for types).
  static std::vector<std::string> catalogue();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm::telemetry
