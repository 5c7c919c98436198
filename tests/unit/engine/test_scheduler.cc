// The scheduler on a real single-process engine (the golden tiny dense model): continuous batching
// does not change results, cancel frees the KV cache, admission refuses what cannot fit.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <condition_variable>
#include <thread>
#include <mutex>

#include "common/error.h"
#include "coordinator/request_error.h"
#include "coordinator/scheduler.h"
#include "coordinator/text_service.h"
#include "engine/engine.h"
#include "model/generation_defaults.h"
#include "model/tokenizer.h"

namespace shardlm {
namespace {

const std::string kModel = std::string(SHARDLM_TEST_DATA) + "/dense";

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
  GenerationSummary summary;
  bool done = false;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

std::unique_ptr<StepEngine> open_tiny(int max_sequences, int64_t kv_tokens = 4096) {
  EngineOptions o;
  o.model_dir = kModel;
  o.max_sequences = max_sequences;
  o.kv_tokens = kv_tokens;
  o.max_context = 1024;
  o.max_chunk = 64;
  return open_engine(o);
}

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

// Greedy decoding by hand with whole logits rows: the reference for the scheduler.
std::vector<int32_t> reference_greedy(StepEngine& engine, const std::vector<int32_t>& prompt, int n) {
  const int seq = engine.new_sequence();
  std::vector<float> logits;
  StepBatch b;
  b.add(seq, 0, prompt, false, true);
  engine.logits(b, logits);
  std::vector<int32_t> out;
  const int64_t V = engine.config().vocab_size;
  for (int i = 0; i < n; ++i) {
    const int32_t t = argmax(logits.data(), V);
    out.push_back(t);
    StepBatch s;
    s.add(seq, static_cast<int32_t>(prompt.size()) + i, {t}, false, true);
    engine.logits(s, logits);
  }
  engine.free_sequence(seq);
  return out;
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

class TextCollector final : public TextObserver {
 public:
  void on_delta(const TextDelta& d) override {
    std::lock_guard<std::mutex> lock(mutex_);
    text += d.content;
    tool_calls.insert(tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  }
  void on_finish(const TextFinish& f) override {
    std::lock_guard<std::mutex> lock(mutex_);
    finish = f;
    done = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(60), [&] { return done; }));
  }
  std::string text;
  std::vector<ChatToolCall> tool_calls;
  TextFinish finish;
  bool done = false;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

TEST(TextService, StopStringsEndTheTextBeforeThem) {
  auto engine = open_tiny(2);
  Scheduler scheduler(*engine, SchedulerOptions{});
  // What the scheduler reports (the metrics' finish reasons): a stop string is a stop, not a cancel.
  std::mutex reasons_mutex;
  std::vector<FinishReason> reasons;
  SchedulerHooks hooks;
  hooks.finished = [&](const GenerationSummary& s) {
    std::lock_guard<std::mutex> lock(reasons_mutex);
    reasons.push_back(s.reason);
  };
  scheduler.set_hooks(hooks);
  const Tokenizer tokenizer = Tokenizer::load(kModel);
  TextService service(scheduler, tokenizer, engine->config(), "tiny");
  TextRequest r;
  r.prompt = "The quick brown fox";
  r.max_tokens = 40;
  r.sampling.temperature = 0.0f;
  r.ignore_eos = true;
  auto full = std::make_shared<TextCollector>();
  service.submit(r, full);
  full->wait();
  ASSERT_EQ(full->finish.finish_reason, "length");
  ASSERT_GT(full->text.size(), 12u);
  // Stop at a piece from the middle of the greedy text.
  const std::string stop = full->text.substr(full->text.size() / 2, 3);
  r.stop = {stop};
  auto cut = std::make_shared<TextCollector>();
  service.submit(r, cut);
  cut->wait();
  EXPECT_EQ(cut->finish.finish_reason, "stop");
  EXPECT_EQ(cut->text, full->text.substr(0, full->text.find(stop)));
  EXPECT_LT(cut->finish.completion_tokens, 40);
  {
    std::lock_guard<std::mutex> lock(reasons_mutex);
    EXPECT_EQ(reasons, (std::vector<FinishReason>{FinishReason::kLength, FinishReason::kStop}));
  }

  r.stop = {""};
  EXPECT_THROW(service.submit(r, cut), RequestError);
  TextRequest chat;
  chat.chat = true;
  chat.messages = nlohmann::json::array({{{"role", "wizard"}, {"content", "hi"}}});
  try {
    service.submit(chat, cut);
    FAIL() << "a bad role was accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
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

// A sequence cannot outgrow the KV cache: where it is smaller than the model's context, the text
// service's context (and so a request's default max_tokens) is the cache's.
TEST(TextService, TheContextIsNoLargerThanTheKvCache) {
  auto engine = open_tiny(2, 512);
  Scheduler scheduler(*engine, SchedulerOptions{});
  const Tokenizer tokenizer = Tokenizer::load(kModel);
  TextService service(scheduler, tokenizer, engine->config(), "tiny");
  EXPECT_EQ(service.max_context(), 512);
  TextRequest r;
  r.prompt = "The quick brown fox";
  r.sampling.temperature = 0.0f;
  r.ignore_eos = true;
  auto out = std::make_shared<TextCollector>();
  service.submit(r, out);  // no max_tokens: up to the end of the cache
  out->wait();
  EXPECT_EQ(out->finish.finish_reason, "length");
  EXPECT_EQ(out->finish.prompt_tokens + out->finish.completion_tokens, 512);
}

// ignore_eos on a chat request: generation goes on past the end of the turn up to max_tokens (it ended
// at the first end-of-turn marker the sampled text held).
TEST(TextService, ChatWithIgnoreEosRunsToMaxTokens) {
  auto engine = open_tiny(2);
  Scheduler scheduler(*engine, SchedulerOptions{});
  const Tokenizer tokenizer = Tokenizer::load(kModel);
  TextService service(scheduler, tokenizer, engine->config(), "tiny");
  int ended_early = 0;
  for (uint64_t seed : {1, 2, 3, 4}) {
    TextRequest r;
    r.chat = true;
    r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Hello"}}});
    r.max_tokens = 200;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    auto plain = std::make_shared<TextCollector>();
    service.submit(r, plain);
    plain->wait();
    ended_early += plain->finish.finish_reason == "stop";
    r.ignore_eos = true;
    auto all = std::make_shared<TextCollector>();
    service.submit(r, all);
    all->wait();
    EXPECT_EQ(all->finish.finish_reason, "length") << "seed " << seed;
    EXPECT_EQ(all->finish.completion_tokens, 200) << "seed " << seed;
  }
  EXPECT_GT(ended_early, 0);  // without ignore_eos some of these turns end early
}

// The real engine, whose sampled tokens are replaced by a script (one request at a time): each row
// of a step offers only the script's next token. Records every token the steps were fed.
class ScriptedEngine final : public StepEngine {
 public:
  ScriptedEngine(std::unique_ptr<StepEngine> inner, std::vector<int32_t> script)
      : inner_(std::move(inner)), script_(std::move(script)) {}
  std::vector<int32_t> fed;

  const ModelConfig& config() const override { return inner_->config(); }
  int64_t max_sequence_tokens() const override { return inner_->max_sequence_tokens(); }
  int64_t kv_capacity_tokens() const override { return inner_->kv_capacity_tokens(); }
  int max_sequences() const override { return inner_->max_sequences(); }
  int kv_block() const override { return inner_->kv_block(); }
  int new_sequence() override { return inner_->new_sequence(); }
  void free_sequence(int seq) override { inner_->free_sequence(seq); }
  void step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out) override {
    fed.insert(fed.end(), batch.tokens.begin(), batch.tokens.end());
    inner_->step(batch, rows, out);
    for (RowCandidates& row : out) {
      const int32_t token = next_ < script_.size() ? script_[next_++] : 1;  // then <eos>
      row.top = {TokenLogit{0.0f, token}};
      row.bound = -std::numeric_limits<float>::infinity();
      row.lse = 0.0f;
      row.lse_t_rel = 0.0f;
    }
  }
  void row_logits(int row, std::vector<float>& logits) override { inner_->row_logits(row, logits); }
  void logits(const StepBatch& batch, std::vector<float>& logits, const StepTraceFn& trace) override {
    inner_->logits(batch, logits, trace);
  }
  std::vector<WorkerStepFigures> last_step_figures() const override { return inner_->last_step_figures(); }
  std::vector<WorkerLoadInfo> load_info() const override { return inner_->load_info(); }

 private:
  std::unique_ptr<StepEngine> inner_;
  std::vector<int32_t> script_;
  size_t next_ = 0;
};

// tool_choice "required" or a named function makes the model's turn begin with a tool call: the
// prompt ends with its start, and what the model writes after it is read as the rest of the call. A
// function may be called "none" (the name is not the mode).
TEST(TextService, ToolChoiceMakesTheTurnBeginWithACall) {
  const Tokenizer tokenizer = Tokenizer::load(kModel);
  const nlohmann::json tools = nlohmann::json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "none", "parameters": {"type": "object", "properties": {}}}}])");
  struct Case {
    std::string mode, function, written, name;
    nlohmann::json arguments;
  };
  for (const Case& c : {Case{"", "get_weather", "city:<|\"|>Paris<|\"|>}<tool_call|>", "get_weather", {{"city", "Paris"}}},
                        Case{"required", "", "get_time{}<tool_call|>", "get_time", nlohmann::json::object()},
                        Case{"auto", "none", "}<tool_call|>", "none", nlohmann::json::object()}}) {
    SCOPED_TRACE(c.mode + "/" + c.function);
    ScriptedEngine engine(open_tiny(1), tokenizer.encode(c.written, /*add_bos=*/false));
    Scheduler scheduler(engine, SchedulerOptions{});
    TextService service(scheduler, tokenizer, engine.config(), "tiny");
    TextRequest r;
    r.chat = true;
    r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}});
    r.tools = tools;
    r.tool_choice = c.mode;
    r.tool_choice_function = c.function;
    r.max_tokens = 40;
    const std::vector<int32_t> prompt = service.prompt_tokens(r);
    const std::string expected_end = "<|tool_call>call:" + (c.function.empty() ? std::string() : c.function + "{");
    const std::string prompt_text = tokenizer.decode(prompt, /*skip_special_tokens=*/false);
    ASSERT_GE(prompt_text.size(), expected_end.size());
    EXPECT_EQ(prompt_text.substr(prompt_text.size() - expected_end.size()), expected_end);
    // A named function is the only one declared; "required" declares both.
    EXPECT_EQ(prompt_text.find("get_time") != std::string::npos, c.function.empty());
    auto out = std::make_shared<TextCollector>();
    service.submit(r, out);
    out->wait();
    ASSERT_GE(engine.fed.size(), prompt.size());
    EXPECT_EQ(std::vector<int32_t>(engine.fed.begin(), engine.fed.begin() + prompt.size()), prompt);
    EXPECT_EQ(out->finish.finish_reason, "tool_calls");
    EXPECT_EQ(out->text, "");
    ASSERT_EQ(out->tool_calls.size(), 1u);
    EXPECT_EQ(out->tool_calls[0].name, c.name);
    EXPECT_EQ(out->tool_calls[0].arguments, c.arguments);
  }
  // Refused by name: "required" without tools, a function that is not among them.
  ScriptedEngine engine(open_tiny(1), {});
  Scheduler scheduler(engine, SchedulerOptions{});
  TextService service(scheduler, tokenizer, engine.config(), "tiny");
  TextRequest r;
  r.chat = true;
  r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Hi"}}});
  r.tool_choice = "required";
  EXPECT_THROW(service.prompt_tokens(r), RequestError);
  r.tools = tools;
  r.tool_choice = "get_weather";  // a name where the mode goes
  EXPECT_THROW(service.prompt_tokens(r), RequestError);
  r.tool_choice_function = "get_news";
  try {
    service.prompt_tokens(r);
    ADD_FAILURE() << "a function not among the tools was accepted";
  } catch (const RequestError& e) {
    EXPECT_NE(std::string(e.what()).find("get_news"), std::string::npos) << e.what();
  }
  r.tool_choice_function.clear();
  r.tool_choice = "none";
  EXPECT_EQ(tokenizer.decode(service.prompt_tokens(r), false).find("get_weather"), std::string::npos);
}

// A forced call the model does not finish comes back as text that begins with the forced start; stop
// strings match only in what the model wrote (stop "call:" cut it to "<|tool_call>").
TEST(TextService, StopStringsDoNotMatchInTheForcedStartOfACall) {
  const Tokenizer tokenizer = Tokenizer::load(kModel);
  const nlohmann::json tools = nlohmann::json::parse(
      R"([{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");
  struct Case {
    std::vector<std::string> stop;
    std::string content;
  };
  for (const Case& c : {Case{{"call:"}, "<|tool_call>call:get_time{"}, Case{{"time"}, "<|tool_call>call:get_"},
                        Case{{}, "<|tool_call>call:get_time{"}}) {
    SCOPED_TRACE(c.stop.empty() ? "no stop" : c.stop[0]);
    // The model writes the name and an opening brace, then ends the turn without closing the call.
    ScriptedEngine engine(open_tiny(1), tokenizer.encode("get_time{", /*add_bos=*/false));
    Scheduler scheduler(engine, SchedulerOptions{});
    TextService service(scheduler, tokenizer, engine.config(), "tiny");
    TextRequest r;
    r.chat = true;
    r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Time?"}}});
    r.tools = tools;
    r.tool_choice = "required";
    r.stop = c.stop;
    r.max_tokens = 40;
    auto out = std::make_shared<TextCollector>();
    service.submit(r, out);
    out->wait();
    EXPECT_TRUE(out->tool_calls.empty());
    EXPECT_EQ(out->text, c.content);
  }
}

// --threads holds on the thread that runs the steps (a server's scheduler thread), not only on the
// one that opened the engine: OpenMP's thread count is per thread.
TEST(Scheduler, StepsRunWithTheEnginesThreadCount) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core: the default is one thread anyway";
  EngineOptions o;
  o.model_dir = kModel;
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


// The model's sampling defaults (generation_config.json) fill only the fields a request leaves out;
// without defaults a request keeps SamplingParams' own (temperature 1, no top-k/top-p).
TEST(TextService, GenerationDefaultsFillTheFieldsARequestLeavesOut) {
  auto engine = open_tiny(1, 512);
  Scheduler scheduler(*engine, SchedulerOptions{});
  const Tokenizer tokenizer = Tokenizer::load(kModel);
  TextService service(scheduler, tokenizer, engine->config(), "tiny");
  TextRequest r;
  r.prompt = "The quick brown fox";
  PreparedText plain = service.prepare(r);
  EXPECT_EQ(plain.generation.sampling.temperature, 1.0f);
  EXPECT_EQ(plain.generation.sampling.top_k, 0);
  EXPECT_EQ(plain.generation.sampling.top_p, 1.0f);
  EXPECT_EQ(plain.generation.max_tokens, 512 - static_cast<int32_t>(plain.generation.prompt.size()));

  // The golden model's own file: temperature 1.0, top_k 64, top_p 0.95.
  service.set_generation_defaults(load_generation_defaults("auto", kModel));
  PreparedText d = service.prepare(r);
  EXPECT_EQ(d.generation.sampling.temperature, 1.0f);
  EXPECT_EQ(d.generation.sampling.top_k, 64);
  EXPECT_EQ(d.generation.sampling.top_p, 0.95f);
  EXPECT_EQ(d.generation.sampling.min_p, 0.0f);

  GenerationDefaults g;
  g.temperature = 0.7f;
  g.top_k = 40;
  g.top_p = 0.9f;
  g.min_p = 0.05f;
  g.max_tokens = 7;
  service.set_generation_defaults(g);
  r.sampling.temperature = 0.0f;  // given: greedy, whatever the model suggests
  r.sampling_given.temperature = true;
  r.sampling.top_k = 0;  // given as off
  r.sampling_given.top_k = true;
  PreparedText mixed = service.prepare(r);
  EXPECT_EQ(mixed.generation.sampling.temperature, 0.0f);
  EXPECT_EQ(mixed.generation.sampling.top_k, 0);
  EXPECT_EQ(mixed.generation.sampling.top_p, 0.9f);
  EXPECT_EQ(mixed.generation.sampling.min_p, 0.05f);
  EXPECT_EQ(mixed.generation.max_tokens, 7);  // max_new_tokens when the request gives none
  r.max_tokens = 20;
  EXPECT_EQ(service.prepare(r).generation.max_tokens, 7);  // and a limit when it asks for more (as vLLM's)
  r.max_tokens = 5;
  EXPECT_EQ(service.prepare(r).generation.max_tokens, 5);
  g.max_tokens = 100000;  // never past the context
  service.set_generation_defaults(g);
  r.max_tokens = -1;
  EXPECT_EQ(service.prepare(r).generation.max_tokens, 512 - static_cast<int32_t>(plain.generation.prompt.size()));

  // Generated: with a default top_k of 1 a request that gives no sampling fields samples the greedy text.
  const auto generate = [&](const TextRequest& req) {
    auto out = std::make_shared<TextCollector>();
    service.submit(req, out);
    out->wait();
    return out->text;
  };
  TextRequest greedy;
  greedy.prompt = "The quick brown fox";
  greedy.max_tokens = 24;
  greedy.ignore_eos = true;
  greedy.sampling.temperature = 0.0f;
  greedy.sampling_given.temperature = true;
  service.set_generation_defaults({});
  const std::string expected = generate(greedy);
  TextRequest sampled = greedy;
  sampled.sampling = SamplingParams{};
  sampled.sampling.seed = 3;
  sampled.sampling_given = {};
  EXPECT_NE(generate(sampled), expected);  // temperature 1 over the whole row: not the greedy text
  GenerationDefaults top1;
  top1.top_k = 1;
  service.set_generation_defaults(top1);
  EXPECT_EQ(generate(sampled), expected);
}

}  // namespace
}  // namespace shardlm
