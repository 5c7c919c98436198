#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

#include "common/error.h"
#include "telemetry/catalogue.h"
#include "telemetry/metrics.h"
#include "tests/unit/telemetry/exposition.h"

namespace shardlm::telemetry {
namespace {

using test::LabelSet;
using test::sample_value;

const LabelSet kModel = {{"model_name", "gemma-test"}};

LabelSet with(LabelSet labels, const LabelSet& extra) {
  labels.insert(extra.begin(), extra.end());
  return labels;
}

double value(const std::string& text, const std::string& name, const LabelSet& labels) {
  auto v = sample_value(text, name, labels);
  if (!v) {
    ADD_FAILURE() << "no sample " << name << " with the expected labels in:\n" << text;
    return NAN;
  }
  return *v;
}

WorkerStepRecord worker_step(double compute, double comm) {
  WorkerStepRecord r;
  r.compute_s = compute;
  r.comm_s = comm;
  return r;
}

// A request that ended with "stop" after the phases given (seconds).
RequestRecord stopped_request(double queue, double prefill, double decode, int64_t prompt_tokens, int64_t generation_tokens) {
  RequestRecord r;
  r.queue_s = queue;
  r.prefill_s = prefill;
  r.decode_s = decode;
  r.e2e_s = queue + prefill + decode;
  r.prompt_tokens = prompt_tokens;
  r.generation_tokens = generation_tokens;
  r.finished_reason = "stop";
  return r;
}

// Queue and prefill times take the TTFT's buckets: a few milliseconds are told apart.
TEST(Metrics, QueueAndPrefillTimesHaveMillisecondBuckets) {
  Metrics m("gemma-test", 1);
  m.observe_request(stopped_request(0.003, 0.015, 0.2, 5, 4));
  const std::string t = m.text();
  EXPECT_EQ(value(t, "shardlm_request_queue_time_seconds_bucket", with(kModel, {{"le", "0.001"}})), 0);
  EXPECT_EQ(value(t, "shardlm_request_queue_time_seconds_bucket", with(kModel, {{"le", "0.005"}})), 1);
  EXPECT_EQ(value(t, "shardlm_request_prefill_time_seconds_bucket", with(kModel, {{"le", "0.01"}})), 0);
  EXPECT_EQ(value(t, "shardlm_request_prefill_time_seconds_bucket", with(kModel, {{"le", "0.02"}})), 1);
}

TEST(Metrics, RequestObservationsAppearInText) {
  Metrics m("gemma-test", 2);
  RequestRecord r = stopped_request(0.4, 0.9, 3.0, 37, 12);
  m.observe_request(r);
  r.finished_reason = "length";
  r.prompt_tokens = 300000;  // beyond the last bucket: only +Inf
  m.observe_request(r);
  m.observe_first_token(0.03);
  m.observe_inter_token(0.12);
  m.observe_inter_token(0.02);
  m.count_tokens(37, 12);
  m.count_tokens(5, 1);
  m.set_scheduler(3, 7, 0.25, 2);
  m.set_scheduler(3, 7, 0.25, 5);  // the scheduler's running total: the counter grows by 3

  const std::string t = m.text();
  EXPECT_EQ(value(t, "shardlm_num_preemptions_total", kModel), 5);
  EXPECT_EQ(value(t, "shardlm_request_success_total", with(kModel, {{"finished_reason", "stop"}})),
            1);
  EXPECT_EQ(
      value(t, "shardlm_request_success_total", with(kModel, {{"finished_reason", "length"}})), 1);
  EXPECT_EQ(value(t, "shardlm_request_success_total", with(kModel, {{"finished_reason", "abort"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_request_success_total", with(kModel, {{"finished_reason", "error"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_prompt_tokens_total", kModel), 42);
  EXPECT_EQ(value(t, "shardlm_generation_tokens_total", kModel), 13);
  EXPECT_EQ(value(t, "shardlm_num_requests_running", kModel), 3);
  EXPECT_EQ(value(t, "shardlm_num_requests_waiting", kModel), 7);
  EXPECT_EQ(value(t, "shardlm_kv_cache_usage_perc", kModel), 0.25);

  EXPECT_EQ(value(t, "shardlm_time_to_first_token_seconds_count", kModel), 1);
  EXPECT_DOUBLE_EQ(value(t, "shardlm_time_to_first_token_seconds_sum", kModel), 0.03);
  EXPECT_EQ(value(t, "shardlm_time_to_first_token_seconds_bucket", with(kModel, {{"le", "0.02"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_time_to_first_token_seconds_bucket", with(kModel, {{"le", "0.04"}})),
            1);
  EXPECT_EQ(value(t, "shardlm_inter_token_latency_seconds_count", kModel), 2);
  EXPECT_EQ(value(t, "shardlm_inter_token_latency_seconds_bucket", with(kModel, {{"le", "0.025"}})),
            1);
  EXPECT_EQ(value(t, "shardlm_inter_token_latency_seconds_bucket", with(kModel, {{"le", "0.15"}})),
            2);
  EXPECT_EQ(value(t, "shardlm_e2e_request_latency_seconds_count", kModel), 2);
  EXPECT_DOUBLE_EQ(value(t, "shardlm_e2e_request_latency_seconds_sum", kModel), 8.6);
  EXPECT_EQ(value(t, "shardlm_request_queue_time_seconds_bucket", with(kModel, {{"le", "0.25"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_request_queue_time_seconds_bucket", with(kModel, {{"le", "0.5"}})),
            2);
  EXPECT_EQ(value(t, "shardlm_request_prefill_time_seconds_bucket", with(kModel, {{"le", "1"}})),
            2);
  EXPECT_EQ(value(t, "shardlm_request_decode_time_seconds_bucket", with(kModel, {{"le", "2.5"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_request_decode_time_seconds_bucket", with(kModel, {{"le", "5"}})), 2);
  EXPECT_EQ(value(t, "shardlm_request_prompt_tokens_bucket", with(kModel, {{"le", "20"}})), 0);
  EXPECT_EQ(value(t, "shardlm_request_prompt_tokens_bucket", with(kModel, {{"le", "50"}})), 1);
  EXPECT_EQ(value(t, "shardlm_request_prompt_tokens_bucket", with(kModel, {{"le", "262144"}})), 1);
  EXPECT_EQ(value(t, "shardlm_request_prompt_tokens_bucket", with(kModel, {{"le", "+Inf"}})), 2);
  EXPECT_EQ(value(t, "shardlm_request_generation_tokens_bucket", with(kModel, {{"le", "20"}})), 2);
}

TEST(Metrics, OtherFinishReasonsGetTheirOwnSeries) {
  Metrics m("gemma-test", 0);
  RequestRecord r;
  r.finished_reason = "timeout";
  m.observe_request(r);
  m.observe_request(r);
  EXPECT_EQ(value(m.text(), "shardlm_request_success_total",
                  with(kModel, {{"finished_reason", "timeout"}})),
            2);
}

TEST(Metrics, StepObservationsPerWorker) {
  Metrics m("gemma-test", 4);
  std::vector<WorkerStepRecord> w = {worker_step(0.010, 0.002), worker_step(0.012, 0.001),
                                     worker_step(0.011, 0.003), worker_step(0.020, 0.0005)};
  w[1].allreduce_count = 4;
  w[1].allreduce_s = 0.0004;  // mean 0.0001 s
  w[1].allreduce_bytes = 4096;
  w[2].kv_full_used = 10;
  w[2].kv_full_free = 90;
  w[2].kv_sliding_used = 3;
  w[2].kv_sliding_free = 5;
  w[3].expert_tokens = {{96, 7}, {97, 0}, {100, 2}};
  w[3].rss_bytes = 123456789;
  w[3].weight_bytes = 100000000;
  m.observe_step(0.025, w);
  w[3].expert_tokens = {{96, 1}};
  w[3].rss_bytes = -1;  // unknown: keeps the last value
  m.observe_step(0.030, w);

  const std::string t = m.text();
  auto worker = [&](const std::string& id, LabelSet extra = {}) {
    return with(with(kModel, {{"worker", id}}), extra);
  };
  EXPECT_EQ(value(t, "shardlm_steps_total", kModel), 2);
  EXPECT_EQ(value(t, "shardlm_step_duration_seconds_count", kModel), 2);
  EXPECT_DOUBLE_EQ(value(t, "shardlm_step_duration_seconds_sum", kModel), 0.055);
  EXPECT_EQ(value(t, "shardlm_worker_step_compute_seconds_count", worker("3")), 2);
  EXPECT_EQ(value(t, "shardlm_worker_step_compute_seconds_bucket", worker("3", {{"le", "0.01"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_worker_step_compute_seconds_bucket", worker("3", {{"le", "0.025"}})),
            2);
  EXPECT_DOUBLE_EQ(value(t, "shardlm_worker_step_compute_seconds_total", worker("0")), 0.020);
  EXPECT_DOUBLE_EQ(value(t, "shardlm_worker_step_communication_seconds_total", worker("2")), 0.006);
  EXPECT_EQ(value(t, "shardlm_worker_step_communication_seconds_count", worker("1")), 2);
  // Each all-reduce counted once at the step's mean latency; the sum is the time spent.
  EXPECT_EQ(value(t, "shardlm_allreduce_latency_seconds_count", worker("1")), 8);
  EXPECT_DOUBLE_EQ(value(t, "shardlm_allreduce_latency_seconds_sum", worker("1")), 0.0008);
  EXPECT_EQ(value(t, "shardlm_allreduce_latency_seconds_bucket", worker("1", {{"le", "5e-05"}})),
            0);
  EXPECT_EQ(value(t, "shardlm_allreduce_latency_seconds_bucket", worker("1", {{"le", "0.0001"}})),
            8);
  EXPECT_EQ(value(t, "shardlm_allreduce_latency_seconds_count", worker("0")), 0);
  EXPECT_EQ(value(t, "shardlm_allreduce_bytes_total", worker("1")), 8192);
  EXPECT_EQ(value(t, "shardlm_kv_blocks_used", worker("2", {{"layer_type", "full"}})), 10);
  EXPECT_EQ(value(t, "shardlm_kv_blocks_free", worker("2", {{"layer_type", "full"}})), 90);
  EXPECT_EQ(value(t, "shardlm_kv_blocks_used", worker("2", {{"layer_type", "sliding"}})), 3);
  EXPECT_EQ(value(t, "shardlm_kv_blocks_free", worker("2", {{"layer_type", "sliding"}})), 5);
  EXPECT_EQ(value(t, "shardlm_moe_expert_tokens_total", worker("3", {{"expert", "96"}})), 8);
  EXPECT_EQ(value(t, "shardlm_moe_expert_tokens_total", worker("3", {{"expert", "97"}})), 0);
  EXPECT_EQ(value(t, "shardlm_moe_expert_tokens_total", worker("3", {{"expert", "100"}})), 2);
  EXPECT_FALSE(sample_value(t, "shardlm_moe_expert_tokens_total", worker("3", {{"expert", "98"}})));
  EXPECT_EQ(value(t, "shardlm_worker_rss_bytes", worker("3")), 123456789);
  EXPECT_EQ(value(t, "shardlm_worker_weight_bytes", worker("3")), 100000000);
  EXPECT_EQ(value(t, "shardlm_worker_up", worker("0")), 1);  // it answered a step
}

TEST(Metrics, StragglerSkewIsSlowestMinusMedian) {
  Metrics m("gemma-test", 4);
  // Compute times 10, 12, 11, 20 ms: median (11 + 12) / 2 = 11.5 ms, skew 8.5 ms.
  m.observe_step(0.03, {worker_step(0.010, 0), worker_step(0.012, 0), worker_step(0.011, 0),
                        worker_step(0.020, 0)});
  std::string t = m.text();
  EXPECT_EQ(value(t, "shardlm_step_straggler_skew_seconds_count", kModel), 1);
  EXPECT_NEAR(value(t, "shardlm_step_straggler_skew_seconds_sum", kModel), 0.0085, 1e-12);

  Metrics odd("gemma-test", 3);  // median of 5, 1, 2 ms is 2 ms: skew 3 ms
  odd.observe_step(0.01, {worker_step(0.005, 0), worker_step(0.001, 0), worker_step(0.002, 0)});
  t = odd.text();
  EXPECT_NEAR(value(t, "shardlm_step_straggler_skew_seconds_sum", kModel), 0.003, 1e-12);
  EXPECT_EQ(
      value(t, "shardlm_step_straggler_skew_seconds_bucket", with(kModel, {{"le", "0.0025"}})), 0);
  EXPECT_EQ(value(t, "shardlm_step_straggler_skew_seconds_bucket", with(kModel, {{"le", "0.005"}})),
            1);

  Metrics one("gemma-test", 1);
  one.observe_step(0.01, {worker_step(0.009, 0.001)});
  EXPECT_EQ(value(one.text(), "shardlm_step_straggler_skew_seconds_sum", kModel), 0);
}

TEST(Metrics, WorkerUpAndBatchJobs) {
  Metrics m("gemma-test", 2);
  const std::string before = m.text();
  EXPECT_EQ(value(before, "shardlm_worker_up", with(kModel, {{"worker", "1"}})), 0);
  m.set_worker_up(1, true);
  m.set_worker_up(0, false);
  m.set_batch_jobs({{"in_progress", 2}, {"completed", 5}});
  std::string t = m.text();
  EXPECT_EQ(value(t, "shardlm_worker_up", with(kModel, {{"worker", "1"}})), 1);
  EXPECT_EQ(value(t, "shardlm_worker_up", with(kModel, {{"worker", "0"}})), 0);
  EXPECT_EQ(value(t, "shardlm_batch_jobs", with(kModel, {{"state", "in_progress"}})), 2);
  EXPECT_EQ(value(t, "shardlm_batch_jobs", with(kModel, {{"state", "completed"}})), 5);
  m.set_batch_jobs({{"completed", 7}});
  t = m.text();
  EXPECT_EQ(value(t, "shardlm_batch_jobs", with(kModel, {{"state", "in_progress"}})), 0);
  EXPECT_EQ(value(t, "shardlm_batch_jobs", with(kModel, {{"state", "completed"}})), 7);
}

TEST(Metrics, BadInputIsRejectedOrIgnored) {
  EXPECT_THROW(Metrics("", 1), Error);
  EXPECT_THROW(Metrics("m", -1), Error);
  Metrics m("gemma-test", 2);
  try {
    m.observe_step(0.1, {worker_step(0.1, 0)});
    FAIL() << "expected an error for a missing worker report";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 worker reports for a cluster of 2"), std::string::npos)
        << e.what();
  }
  std::vector<WorkerStepRecord> w = {worker_step(0.1, 0), worker_step(0.1, 0)};
  w[1].expert_tokens = {{-3, 1}};
  EXPECT_THROW(m.observe_step(0.1, w), Error);
  EXPECT_THROW(m.set_worker_up(2, true), Error);
  EXPECT_THROW(m.set_worker_up(-1, true), Error);
  EXPECT_THROW(m.observe_request(RequestRecord{}), Error);  // no finish reason
  EXPECT_THROW(m.set_batch_jobs({{"", 1}}), Error);
  // Rejected calls record nothing.
  std::string t = m.text();
  EXPECT_EQ(value(t, "shardlm_steps_total", kModel), 0);
  EXPECT_EQ(value(t, "shardlm_e2e_request_latency_seconds_count", kModel), 0);

  // Negative or non-finite durations are dropped; usage is clamped to 0..1.
  m.observe_first_token(-1);
  m.observe_first_token(NAN);
  m.observe_inter_token(INFINITY);
  m.set_scheduler(-2, 1, 1.5);
  m.count_tokens(-5, -1);
  t = m.text();
  EXPECT_EQ(value(t, "shardlm_time_to_first_token_seconds_count", kModel), 0);
  EXPECT_EQ(value(t, "shardlm_time_to_first_token_seconds_sum", kModel), 0);
  EXPECT_EQ(value(t, "shardlm_inter_token_latency_seconds_count", kModel), 0);
  EXPECT_EQ(value(t, "shardlm_kv_cache_usage_perc", kModel), 1);
  EXPECT_EQ(value(t, "shardlm_num_requests_running", kModel), 0);
  EXPECT_EQ(value(t, "shardlm_prompt_tokens_total", kModel), 0);

  // A request that ended before its first token (cancelled in the queue) has no prefill or decode time.
  RequestRecord early;
  early.finished_reason = "abort";
  early.queue_s = 0.05;
  early.prefill_s = -1;
  early.decode_s = -1;
  m.observe_request(early);
  t = m.text();
  EXPECT_EQ(value(t, "shardlm_request_queue_time_seconds_count", kModel), 1);
  EXPECT_EQ(value(t, "shardlm_request_prefill_time_seconds_count", kModel), 0);
  EXPECT_EQ(value(t, "shardlm_request_decode_time_seconds_count", kModel), 0);
}

// Once every kind of observation has been made, the exposition declares exactly the catalogue's
// families, with the catalogue's types, and its samples use exactly the catalogue's series names.
TEST(Metrics, TextMatchesCatalogue) {
  Metrics m("gemma-test", 2);
  RequestRecord r;
  r.finished_reason = "stop";
  m.observe_request(r);
  std::vector<WorkerStepRecord> w = {worker_step(0.1, 0.01), worker_step(0.1, 0.01)};
  w[0].expert_tokens = {{0, 1}};
  m.observe_step(0.12, w);
  m.set_batch_jobs({{"queued", 1}});
  const std::string t = m.text();

  std::vector<std::string> catalogue = Metrics::catalogue();
  std::set<std::string> expected(catalogue.begin(), catalogue.end());
  EXPECT_EQ(expected.size(), catalogue.size()) << "the catalogue repeats a name";
  EXPECT_EQ(test::declared_families(t), expected);
  for (const MetricSpec& spec : metric_specs()) {
    EXPECT_NE(t.find(fmt::format("# TYPE {} {}\n", spec.name, type_name(spec.type))),
              std::string::npos)
        << spec.name;
  }
  std::set<std::string> sample_names;
  const auto samples = test::parse_exposition(t);
  ASSERT_TRUE(samples.has_value());
  for (const test::Sample& s : *samples) {
    sample_names.insert(s.name);
    EXPECT_EQ(s.labels.at("model_name"), "gemma-test") << s.name;
  }
  std::vector<std::string> series = all_series_names();
  EXPECT_EQ(sample_names, std::set<std::string>(series.begin(), series.end()));
}

TEST(Metrics, ConcurrentCallersLoseNothing) {
  Metrics m("gemma-test", 4);
  constexpr int kThreads = 4, kIterations = 2000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&m, i] {
      std::vector<WorkerStepRecord> w(4, worker_step(0.001, 0.0001));
      for (auto& r : w) r.expert_tokens = {{i, 1}, {8 + i * 3, 2}};
      RequestRecord r;
      r.finished_reason = i % 2 ? "stop" : "made_up_" + std::to_string(i);
      for (int k = 0; k < kIterations; ++k) {
        m.observe_step(0.002, w);
        m.observe_inter_token(0.05);
        m.count_tokens(1, 1);
        m.observe_request(r);
        m.set_worker_up(k % 4, true);
        m.set_batch_jobs({{"s" + std::to_string(i), k}});
        if (k % 100 == 0) (void)m.text();
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::string t = m.text();
  EXPECT_EQ(value(t, "shardlm_steps_total", kModel), kThreads * kIterations);
  EXPECT_EQ(value(t, "shardlm_inter_token_latency_seconds_count", kModel), kThreads * kIterations);
  EXPECT_EQ(value(t, "shardlm_generation_tokens_total", kModel), kThreads * kIterations);
  EXPECT_EQ(value(t, "shardlm_request_success_total", with(kModel, {{"finished_reason", "stop"}})),
            2 * kIterations);
  EXPECT_EQ(
      value(t, "shardlm_request_success_total", with(kModel, {{"finished_reason", "made_up_2"}})),
      kIterations);
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(value(t, "shardlm_moe_expert_tokens_total",
                    with(kModel, {{"worker", "2"}, {"expert", std::to_string(8 + i * 3)}})),
              2 * kIterations);
  }
  EXPECT_EQ(value(t, "shardlm_worker_step_compute_seconds_count", with(kModel, {{"worker", "3"}})),
            kThreads * kIterations);
}

}  // namespace
}  // namespace shardlm::telemetry
