// The scheduler on a real single-process engine (the golden tiny dense model): continuous batching
// does not change results, cancel frees the KV cache, admission refuses what cannot fit.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <map>
#include <thread>
#include <mutex>

#include "common/error.h"
#include "coordinator/request_error.h"
#include "coordinator/scheduler.h"
#include "engine/engine.h"
#include "tests/unit/engine/tiny_engine.h"

namespace shardlm {
namespace {

class Collector final : public GenerationObserver {
 public:
  void on_token(const GeneratedToken& t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    tokens.push_back(t.token);
    logprobs.push_back(t);
  }
  void on_finish(const GenerationSummary& s) override {
    std::lock_guard<std::mutex> lock(mutex_);
    summary = s;
    done = true;
    cv_.notify_all();
  }
  void on_prompt_logprobs(const std::vector<GeneratedToken>& positions) override {
    std::lock_guard<std::mutex> lock(mutex_);
    prompt = positions;
    prompt_calls_before_tokens += tokens.empty();
    ++prompt_calls;
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(60), [&] { return done; }));
  }
  bool finished() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done;
  }
  std::vector<int32_t> tokens;
  std::vector<GeneratedToken> logprobs;
  std::vector<GeneratedToken> prompt;  // on_prompt_logprobs
  int prompt_calls = 0, prompt_calls_before_tokens = 0;
  GenerationSummary summary;
  bool done = false;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

std::vector<int32_t> prompt_of(int i, int length) {
  std::vector<int32_t> p = {2};
  for (int k = 1; k < length; ++k) p.push_back(10 + (i * 31 + k * 7) % 200);
  return p;
}

GenerationRequest greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  return r;
}

// Decoding by hand over whole rows with the formulas (vLLM's) written out: the logit bias added, the
// repetition penalty on every token of the prompt or the output, then frequency times the output
// count and presence on output tokens; the token from a Sampler without penalties on the changed row.
std::vector<int32_t> reference_decode(StepEngine& engine, const std::vector<int32_t>& prompt, int n, const SamplingParams& s,
                                         const std::map<int32_t, float>& logit_bias = {}) {
  SamplingParams plain = s;
  plain.presence_penalty = plain.frequency_penalty = 0.0f;
  plain.repetition_penalty = 1.0f;
  Sampler sampler(plain);
  const int64_t V = engine.config().vocab_size;
  std::vector<bool> in_prompt(static_cast<size_t>(V), false);
  for (int32_t t : prompt) in_prompt[static_cast<size_t>(t)] = true;
  std::vector<int32_t> count(static_cast<size_t>(V), 0);
  const int seq = engine.new_sequence();
  std::vector<float> logits;
  StepBatch b;
  b.add(seq, 0, prompt, false, true);
  engine.logits(b, logits);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    for (const auto& [t, bias] : logit_bias) logits[static_cast<size_t>(t)] += bias;
    for (int64_t v = 0; v < V; ++v) {
      float& x = logits[static_cast<size_t>(v)];
      const int32_t c = count[static_cast<size_t>(v)];
      if (in_prompt[static_cast<size_t>(v)] || c > 0) {
        if (s.repetition_penalty != 1.0f) x = x > 0.0f ? x / s.repetition_penalty : x * s.repetition_penalty;
        if (c > 0) {
          x -= s.frequency_penalty * static_cast<float>(c);
          x -= s.presence_penalty;
        }
      }
    }
    const int32_t t = sampler.sample(logits.data(), V);
    out.push_back(t);
    ++count[static_cast<size_t>(t)];
    StepBatch step;
    step.add(seq, static_cast<int32_t>(prompt.size()) + i, {t}, false, true);
    engine.logits(step, logits);
  }
  engine.free_sequence(seq);
  return out;
}

// Greedy decoding by hand with whole logits rows: the reference for the scheduler.
std::vector<int32_t> reference_greedy(StepEngine& engine, const std::vector<int32_t>& prompt, int n) {
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  return reference_decode(engine, prompt, n, greedy);
}

TEST(Scheduler, GreedyMatchesWholeRowArgmax) {
  auto engine = open_tiny(2);
  const std::vector<int32_t> prompt = prompt_of(1, 40);
  const std::vector<int32_t> expected = reference_greedy(*engine, prompt, 24);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto c = std::make_shared<Collector>();
  scheduler.submit(greedy(prompt, 24), c);
  c->wait();
  EXPECT_EQ(c->tokens, expected);
  EXPECT_EQ(c->summary.reason, FinishReason::kLength);
  EXPECT_EQ(c->summary.completion_tokens, 24);
  EXPECT_EQ(c->summary.prompt_tokens, 40);
}

// Each prompt position's log-probability, rank and best tokens, against whole rows by hand: over
// several steps (a prompt of more rows than a step takes), beside a request without them (whose
// tokens do not change), and for a prompt of one token (nothing before its first token).
TEST(Scheduler, PromptLogprobsMatchWholeRows) {
  auto engine = open_tiny(2);
  const std::vector<int32_t> prompt = prompt_of(3, 150);
  std::vector<float> logits;
  {
    const int seq = engine->new_sequence();
    StepBatch b;
    b.add(seq, 0, prompt, true, false);
    engine->logits(b, logits);
    engine->free_sequence(seq);
  }
  const int64_t V = engine->config().vocab_size;
  const std::vector<int32_t> other_prompt = prompt_of(4, 30);
  const std::vector<int32_t> other_expected = reference_greedy(*engine, other_prompt, 10);
  Scheduler scheduler(*engine, SchedulerOptions{});
  GenerationRequest r = greedy(prompt, 3);
  r.prompt_logprobs = 3;
  auto c = std::make_shared<Collector>();
  auto other = std::make_shared<Collector>();
  scheduler.submit(r, c);
  scheduler.submit(greedy(other_prompt, 10), other);
  c->wait();
  other->wait();
  EXPECT_EQ(other->tokens, other_expected);
  ASSERT_EQ(c->summary.reason, FinishReason::kLength) << c->summary.error;
  EXPECT_EQ(c->prompt_calls, 1);
  EXPECT_EQ(c->prompt_calls_before_tokens, 1);
  EXPECT_TRUE(other->prompt.empty());
  ASSERT_EQ(c->prompt.size(), prompt.size() - 1);
  for (size_t p = 1; p < prompt.size(); ++p) {
    const float* row = logits.data() + static_cast<int64_t>(p - 1) * V;
    double sum = 0;
    const float max = *std::max_element(row, row + V);
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
    const double lse = max + std::log(sum);
    const GeneratedToken& got = c->prompt[p - 1];
    const int32_t token = prompt[p];
    EXPECT_EQ(got.token, token);
    EXPECT_NEAR(got.logprob, row[token] - lse, 1e-4) << "position " << p;
    EXPECT_EQ(got.rank, std::count_if(row, row + V, [&](float x) { return x >= row[token]; })) << "position " << p;
    std::vector<int32_t> order(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) order[static_cast<size_t>(v)] = static_cast<int32_t>(v);
    std::partial_sort(order.begin(), order.begin() + 3, order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    ASSERT_EQ(got.top.size(), 3u);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(got.top[k].token, order[k]) << "position " << p;
      EXPECT_NEAR(got.top[k].logprob, row[order[k]] - lse, 1e-4);
    }
  }

  GenerationRequest one = greedy({2}, 2);
  one.prompt_logprobs = 0;
  auto single = std::make_shared<Collector>();
  scheduler.submit(one, single);
  single->wait();
  EXPECT_EQ(single->prompt_calls, 1);
  EXPECT_TRUE(single->prompt.empty());

  one.prompt_logprobs = 21;
  EXPECT_THROW(scheduler.submit(one, single), RequestError);
}

// Takes three tokens, then refuses the next (as a detokenizer refuses an id its tokenizer lacks).
class RefusingCollector final : public GenerationObserver {
 public:
  void on_token(const GeneratedToken& t) override {
    if (taken == 3) throw Error("token id " + std::to_string(t.token) + " is outside the vocabulary");
    ++taken;
  }
  void on_finish(const GenerationSummary& s) override { inner.on_finish(s); }
  int taken = 0;
  Collector inner;
};

TEST(Scheduler, ATokenTheOutputRefusesEndsTheRequestWithTheReason) {
  auto engine = open_tiny(2);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto c = std::make_shared<RefusingCollector>();
  scheduler.submit(greedy(prompt_of(2, 10), 12), c);
  c->inner.wait();
  EXPECT_EQ(c->taken, 3);
  EXPECT_EQ(c->inner.summary.reason, FinishReason::kError);
  EXPECT_NE(c->inner.summary.error.find("could not be delivered: token id"), std::string::npos) << c->inner.summary.error;
}

TEST(Scheduler, BatchingDoesNotChangeGreedyResults) {
  auto engine = open_tiny(17, 17 * 256);
  SchedulerOptions so;
  so.max_step_tokens = 48;  // prompts are chunked and interleaved with decoding
  Scheduler scheduler(*engine, so);
  const std::vector<int32_t> prompt = prompt_of(0, 90);
  auto alone = std::make_shared<Collector>();
  scheduler.submit(greedy(prompt, 20), alone);
  alone->wait();

  std::vector<std::shared_ptr<Collector>> others;
  for (int i = 1; i <= 16; ++i) {
    GenerationRequest r = greedy(prompt_of(i, 5 + 11 * i), 10 + i);
    if (i % 3 == 0) {
      r.sampling = SamplingParams{0.9f, 0, 0.95f, 0.0f, static_cast<uint64_t>(i)};
    }
    auto c = std::make_shared<Collector>();
    others.push_back(c);
    scheduler.submit(r, c);
    if (i == 8) {
      auto again = std::make_shared<Collector>();
      scheduler.submit(greedy(prompt, 20), again);
      others.push_back(again);
    }
  }
  for (auto& c : others) c->wait();
  EXPECT_EQ(others[8]->tokens, alone->tokens);  // the repeat, submitted among the others
  for (auto& c : others) EXPECT_NE(c->summary.reason, FinishReason::kError) << c->summary.error;
  EXPECT_GT(scheduler.stats().steps, 20);
}

TEST(Scheduler, CancelFreesTheKvCacheAtOnce) {
  auto engine = open_tiny(2);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto c = std::make_shared<Collector>();
  const uint64_t id = scheduler.submit(greedy(prompt_of(3, 20), 900), c);
  while (scheduler.stats().steps < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GT(scheduler.stats().kv_usage, 0.0);
  scheduler.cancel(id);
  c->wait();
  EXPECT_EQ(c->summary.reason, FinishReason::kCancelled);
  EXPECT_LT(c->summary.completion_tokens, 900);
  for (int i = 0; i < 100 && scheduler.stats().kv_usage > 0.0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(scheduler.stats().kv_usage, 0.0);
  EXPECT_EQ(scheduler.stats().running, 0);
}

// The real engine, whose workers can be "lost": from then on every call throws EngineUnavailable
// as RemoteEngine does once a worker stops answering. Counts the idle heartbeats.
class LosableEngine final : public StepEngine {
 public:
  explicit LosableEngine(std::unique_ptr<StepEngine> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> lost{false};
  std::atomic<int> heartbeats{0};

  const ModelConfig& config() const override { return inner_->config(); }
  int64_t max_sequence_tokens() const override { return inner_->max_sequence_tokens(); }
  int64_t kv_capacity_tokens() const override { return inner_->kv_capacity_tokens(); }
  int max_sequences() const override { return inner_->max_sequences(); }
  int kv_block() const override { return inner_->kv_block(); }
  int new_sequence() override {
    check();
    return inner_->new_sequence();
  }
  void free_sequence(int seq) override {
    check();
    inner_->free_sequence(seq);
  }
  void step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out) override {
    check();
    inner_->step(batch, rows, out);
  }
  void row_logits(int row, std::vector<float>& logits) override {
    check();
    inner_->row_logits(row, logits);
  }
  void logits(const StepBatch& batch, std::vector<float>& logits, const StepTraceFn& trace) override {
    check();
    inner_->logits(batch, logits, trace);
  }
  std::vector<WorkerStepFigures> last_step_figures() const override { return inner_->last_step_figures(); }
  std::vector<WorkerLoadInfo> load_info() const override { return inner_->load_info(); }
  void heartbeat() override {
    ++heartbeats;
    check();
  }

 private:
  void check() const {
    if (lost) throw EngineUnavailable("the model workers are unavailable: worker 1 (rank 1) did not answer within 5 s");
  }
  std::unique_ptr<StepEngine> inner_;
};

// New hooks get the workers' figures (KV blocks, memory) from a heartbeat at once, not a heartbeat
// period later (metrics would read 0 free KV blocks until then).
TEST(Scheduler, NewHooksGetAHeartbeatAtOnce) {
  LosableEngine engine(open_tiny(1));
  std::atomic<int> heartbeats{0};
  SchedulerOptions so;
  so.heartbeat_s = 1000;  // none from the period while the test runs
  Scheduler scheduler(engine, so);
  scheduler.set_hooks([&] {
    SchedulerHooks counting;
    counting.heartbeat = [&] { ++heartbeats; };
    return counting;
  }());
  for (int i = 0; i < 400 && heartbeats == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(heartbeats, 1);
  EXPECT_EQ(engine.heartbeats, 1);
}

TEST(Scheduler, LostWorkersFailEverythingAsUnavailable) {
  LosableEngine engine(open_tiny(4));
  Scheduler scheduler(engine, SchedulerOptions{});
  std::mutex mutex;
  std::vector<std::string> lost_reasons;
  SchedulerHooks hooks;
  hooks.engine_lost = [&](const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex);
    lost_reasons.push_back(reason);
  };
  scheduler.set_hooks(hooks);
  std::vector<std::shared_ptr<Collector>> running;
  for (int i = 0; i < 3; ++i) {
    running.push_back(std::make_shared<Collector>());
    scheduler.submit(greedy(prompt_of(i, 12), 900), running.back());
  }
  while (scheduler.stats().steps < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  engine.lost = true;
  for (auto& c : running) {
    c->wait();
    EXPECT_EQ(c->summary.reason, FinishReason::kError);
    EXPECT_EQ(c->summary.error_code, RequestErrorCode::kUnavailable);
    EXPECT_NE(c->summary.error.find("did not answer"), std::string::npos) << c->summary.error;
  }
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!lost_reasons.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    ASSERT_EQ(lost_reasons.size(), 1u);
  }
  try {
    scheduler.submit(greedy(prompt_of(9, 5), 4), std::make_shared<Collector>());
    FAIL() << "a request was accepted after the workers were lost";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("restarting"), std::string::npos) << e.what();
  }
  scheduler.stop(true);  // returns at once: nothing can run any more
}

TEST(Scheduler, IdleSchedulerChecksTheWorkersAndNoticesTheirLoss) {
  LosableEngine engine(open_tiny(2));
  SchedulerOptions options;
  options.heartbeat_s = 0.05;
  Scheduler scheduler(engine, options);
  std::atomic<int> lost_calls{0};
  SchedulerHooks hooks;
  hooks.engine_lost = [&](const std::string&) { ++lost_calls; };
  scheduler.set_hooks(hooks);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_GE(engine.heartbeats.load(), 3);
  EXPECT_EQ(lost_calls.load(), 0);
  // Busy: no heartbeats while requests run.
  auto c = std::make_shared<Collector>();
  scheduler.submit(greedy(prompt_of(1, 10), 40), c);
  c->wait();
  EXPECT_EQ(c->summary.reason, FinishReason::kLength);
  engine.lost = true;
  const auto t0 = std::chrono::steady_clock::now();
  while (lost_calls.load() == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(lost_calls.load(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

void expect_queue_full(Scheduler& scheduler, const GenerationRequest& request) {
  try {
    scheduler.submit(request, std::make_shared<Collector>());
    ADD_FAILURE() << "the queue bound was not enforced";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kQueueFull);
  }
}

TEST(Scheduler, AdmissionRefusesWhatCannotFit) {
  auto engine = open_tiny(1, 512);
  SchedulerOptions so;
  so.max_waiting = 2;
  Scheduler scheduler(*engine, so);
  auto c = std::make_shared<Collector>();
  try {
    scheduler.submit(greedy(prompt_of(1, 1000), 100), c);
    FAIL() << "a request beyond the context was accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kContextLength);
    EXPECT_NE(std::string(e.what()).find("1100"), std::string::npos) << e.what();
  }
  try {
    scheduler.submit(greedy(prompt_of(1, 500), 100), c);
    FAIL() << "a request beyond the KV capacity was accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kContextLength);
  }
  GenerationRequest bad = greedy(prompt_of(1, 5), 5);
  bad.sampling.top_p = 0.0f;
  EXPECT_THROW(scheduler.submit(bad, c), RequestError);
  bad = greedy({2, 999999}, 5);
  EXPECT_THROW(scheduler.submit(bad, c), RequestError);
  // The queue is bounded: with one slot busy on a long request, the third waiting one is refused.
  std::vector<std::shared_ptr<Collector>> cs;
  for (int i = 0; i < 3; ++i) cs.push_back(std::make_shared<Collector>());
  scheduler.submit(greedy(prompt_of(1, 10), 400), cs[0]);
  while (scheduler.stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  scheduler.submit(greedy(prompt_of(2, 10), 4), cs[1]);
  scheduler.submit(greedy(prompt_of(3, 10), 4), cs[2]);
  expect_queue_full(scheduler, greedy(prompt_of(4, 10), 4));
  for (auto& x : cs) x->wait();
  for (auto& x : cs) EXPECT_EQ(x->summary.reason, FinishReason::kLength);
}

// Batch lines waiting (a batch job's runner keeps some queued) do not fill the queue for interactive
// requests; a batch line counts everything waiting.
TEST(Scheduler, WaitingBatchLinesDoNotFillTheQueueForInteractiveRequests) {
  auto engine = open_tiny(1, 512);
  SchedulerOptions so;
  so.max_waiting = 2;
  Scheduler scheduler(*engine, so);
  std::vector<std::shared_ptr<Collector>> cs;
  for (int i = 0; i < 5; ++i) cs.push_back(std::make_shared<Collector>());
  scheduler.submit(greedy(prompt_of(1, 10), 300), cs[0]);  // holds the one slot
  while (scheduler.stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 1; i <= 2; ++i) {
    GenerationRequest line = greedy(prompt_of(i + 1, 10), 4);
    line.priority = Priority::kBatch;
    scheduler.submit(line, cs[i]);
  }
  GenerationRequest third = greedy(prompt_of(4, 10), 4);
  third.priority = Priority::kBatch;
  expect_queue_full(scheduler, third);
  scheduler.submit(greedy(prompt_of(5, 10), 4), cs[3]);  // interactive: two batch lines wait, none of its kind
  scheduler.submit(greedy(prompt_of(6, 10), 4), cs[4]);
  expect_queue_full(scheduler, greedy(prompt_of(7, 10), 4));
  for (auto& x : cs) x->wait();
  for (auto& x : cs) EXPECT_EQ(x->summary.reason, FinishReason::kLength);
}

// KV is reserved as sequences grow, not for their whole max_tokens up front: three requests whose
// maxima add up past the cache run together (the short one is not held behind the long ones), and
// when the cache fills up the most recently scheduled one is preempted and recomputed later, its
// tokens the same as alone.
TEST(Scheduler, KvGrowsWithTheSequencesAndAFullCachePreempts) {
  auto engine = open_tiny(4, 512);
  const std::vector<int32_t> pa = prompt_of(5, 10), pb = prompt_of(6, 12);
  const std::vector<int32_t> want_a = reference_greedy(*engine, pa, 400);
  const std::vector<int32_t> want_b = reference_greedy(*engine, pb, 300);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto a = std::make_shared<Collector>(), b = std::make_shared<Collector>(), c = std::make_shared<Collector>();
  scheduler.submit(greedy(pa, 400), a);
  scheduler.submit(greedy(pb, 300), b);
  scheduler.submit(greedy(prompt_of(7, 8), 6), c);
  c->wait();
  EXPECT_FALSE(a->finished());  // the short request was not held behind the long ones
  EXPECT_FALSE(b->finished());
  EXPECT_EQ(c->summary.reason, FinishReason::kLength);
  EXPECT_EQ(c->summary.completion_tokens, 6);
  a->wait();
  b->wait();
  EXPECT_EQ(a->summary.reason, FinishReason::kLength);
  EXPECT_EQ(b->summary.reason, FinishReason::kLength);
  EXPECT_EQ(a->tokens, want_a);
  EXPECT_EQ(b->tokens, want_b);
  EXPECT_EQ(b->summary.prompt_tokens, 12);
  EXPECT_GE(scheduler.stats().preemptions, 1);
  // The stats are updated once the step that ended them is through.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (scheduler.stats().kv_usage != 0.0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(scheduler.stats().kv_usage, 0.0);
}

TEST(Scheduler, LogprobsAreNormalised) {
  auto engine = open_tiny(1);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto c = std::make_shared<Collector>();
  GenerationRequest r = greedy(prompt_of(5, 12), 6);
  r.top_logprobs = 3;
  scheduler.submit(r, c);
  c->wait();
  ASSERT_EQ(c->logprobs.size(), 6u);
  for (const GeneratedToken& t : c->logprobs) {
    EXPECT_LE(t.logprob, 0.0f);
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_EQ(t.top[0].token, t.token);  // greedy: the chosen token is the best
    EXPECT_FLOAT_EQ(t.top[0].logprob, t.logprob);
    EXPECT_GE(t.top[0].logprob, t.top[1].logprob);
  }
}

// A full cache preempts batch-priority sequences before interactive ones, even older ones: the
// interactive request runs through, the batch line is recomputed and ends with its tokens unchanged.
TEST(Scheduler, AFullCachePreemptsBatchLinesFirst) {
  auto engine = open_tiny(4, 512);
  const std::vector<int32_t> pa = prompt_of(8, 10), pb = prompt_of(9, 12);
  const std::vector<int32_t> want_a = reference_greedy(*engine, pa, 400);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto a = std::make_shared<Collector>(), b = std::make_shared<Collector>();
  GenerationRequest batch = greedy(pa, 400);
  batch.priority = Priority::kBatch;
  scheduler.submit(batch, a);
  while (scheduler.stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  scheduler.submit(greedy(pb, 300), b);
  b->wait();
  EXPECT_FALSE(a->finished());  // the older batch line gave way
  EXPECT_EQ(b->summary.reason, FinishReason::kLength);
  a->wait();
  EXPECT_EQ(a->tokens, want_a);
  EXPECT_GE(scheduler.stats().preemptions, 1);
}

// --threads holds on the thread that runs the steps (a server's scheduler thread), not only on the
// one that opened the engine: OpenMP's thread count is per thread.
TEST(Scheduler, StepsRunWithTheEnginesThreadCount) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core: the default is one thread anyway";
  EngineOptions o;
  o.model_dir = kTinyModel;
  o.max_sequences = 1;
  o.kv_tokens = 256;
  o.max_context = 256;
  o.threads = 1;
  auto engine = open_engine(o);
  int seen = 0;
  std::thread stepper([&] {
    StepBatch b;
    b.add(engine->new_sequence(), 0, {2, 10, 11}, false, true);
    std::vector<RowCandidates> out;
    engine->step(b, {RowRequest{1, 0.0f}}, out);
    seen = omp_get_max_threads();
  });
  stepper.join();
  EXPECT_EQ(seen, 1);
}

// Presence, frequency and repetition penalties, greedy and sampled (top-k off, so that draws past
// the candidates take the whole penalised row): the scheduler's tokens are those decoded by hand.
TEST(Scheduler, PenaltiesMatchWholeRowDecodingByHand) {
  auto engine = open_tiny(2);
  const std::vector<int32_t> prompt = prompt_of(5, 14);
  const int n = 48;
  struct Case {
    float temperature, repetition, presence, frequency;
  };
  const std::vector<int32_t> unpenalised = reference_greedy(*engine, prompt, n);
  for (const Case& c : {Case{0.0f, 1.8f, 0.0f, 0.0f}, Case{0.0f, 1.0f, 1.5f, 0.0f}, Case{0.0f, 1.0f, 0.0f, 1.2f},
                        Case{0.0f, 1.3f, 0.4f, 0.6f}, Case{0.0f, 0.7f, -0.5f, 0.0f}, Case{1.0f, 1.2f, 0.5f, 0.5f},
                        Case{0.8f, 1.0f, 0.0f, 2.0f}}) {
    SCOPED_TRACE(::testing::Message() << "temperature " << c.temperature << " repetition " << c.repetition << " presence "
                                      << c.presence << " frequency " << c.frequency);
    GenerationRequest r = greedy(prompt, n);
    r.sampling.temperature = c.temperature;
    r.sampling.seed = 17;
    r.sampling.repetition_penalty = c.repetition;
    r.sampling.presence_penalty = c.presence;
    r.sampling.frequency_penalty = c.frequency;
    const std::vector<int32_t> want = reference_decode(*engine, prompt, n, r.sampling);
    if (c.temperature == 0.0f) {
      EXPECT_NE(want, unpenalised);
    }
    Scheduler scheduler(*engine, SchedulerOptions{});
    auto out = std::make_shared<Collector>();
    scheduler.submit(r, out);
    out->wait();
    EXPECT_EQ(out->tokens, want);
  }
  // A logit bias: -100 bans the greedy text's most frequent token, +5 favours another (with a
  // repetition penalty, so that the bias, prompt and output lists merge); out of range is refused.
  std::map<int32_t, int32_t> frequency;
  for (int32_t t : unpenalised) ++frequency[t];
  const int32_t banned = std::max_element(frequency.begin(), frequency.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; })->first;
  GenerationRequest r = greedy(prompt, n);
  r.logit_bias = {{banned, -100.0f}, {prompt[3], 5.0f}, {7, 2.5f}};
  r.sampling.repetition_penalty = 1.2f;
  const std::vector<int32_t> want = reference_decode(*engine, prompt, n, r.sampling, r.logit_bias);
  EXPECT_EQ(std::count(want.begin(), want.end(), banned), 0);
  Scheduler scheduler(*engine, SchedulerOptions{});
  auto out = std::make_shared<Collector>();
  scheduler.submit(r, out);
  out->wait();
  EXPECT_EQ(out->tokens, want);
  r.logit_bias = {{static_cast<int32_t>(engine->config().vocab_size), 1.0f}};
  EXPECT_THROW(scheduler.submit(r, out), RequestError);
  r.logit_bias = {{3, 101.0f}};
  EXPECT_THROW(scheduler.submit(r, out), RequestError);
}

}  // namespace
}  // namespace shardlm
