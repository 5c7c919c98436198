// The text service on a real single-process engine (the golden tiny dense model): stop strings,
// the context limit, ignore_eos, tool_choice's forced calls and the model's sampling defaults.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <mutex>

#include "coordinator/guided_decoding.h"
#include "coordinator/json_schema_acceptor.h"
#include "coordinator/request_error.h"
#include "coordinator/scheduler.h"
#include "coordinator/text_service.h"
#include "model/generation_defaults.h"
#include "model/tokenizer.h"
#include "tests/unit/engine/tiny_engine.h"

namespace shardlm {
namespace {

// A text service over the tiny model in one process.
struct TinyService {
  explicit TinyService(int max_sequences, SchedulerOptions options = {}, int64_t kv_tokens = 4096)
      : engine(open_tiny(max_sequences, kv_tokens)),
        scheduler(*engine, options),
        tokenizer(Tokenizer::load(kTinyModel)),
        service(scheduler, tokenizer, engine->config(), "tiny") {}
  std::unique_ptr<StepEngine> engine;
  Scheduler scheduler;
  Tokenizer tokenizer;
  TextService service;
};

class TextCollector final : public TextObserver {
 public:
  void on_delta(const TextDelta& d) override {
    std::lock_guard<std::mutex> lock(mutex_);
    text += d.content;
    tool_calls.insert(tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
    if (texts.size() <= static_cast<size_t>(d.index)) texts.resize(static_cast<size_t>(d.index) + 1);
    texts[static_cast<size_t>(d.index)] += d.content;
  }
  void on_choice_finish(int32_t index, const TextFinish& f) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ended_before.emplace_back(index, f.finish_reason);
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
  std::string text;  // all choices' (one unless n > 1)
  std::vector<ChatToolCall> tool_calls;
  std::vector<std::string> texts;  // by choice
  std::vector<std::pair<int32_t, std::string>> ended_before;  // on_choice_finish: index, reason
  TextFinish finish;
  bool done = false;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

TEST(TextService, StopStringsEndTheTextBeforeThem) {
  TinyService tiny(2);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  // What the scheduler reports (the metrics' finish reasons): a stop string is a stop, not a cancel.
  std::mutex reasons_mutex;
  std::vector<FinishReason> reasons;
  SchedulerHooks hooks;
  hooks.finished = [&](const GenerationSummary& s) {
    std::lock_guard<std::mutex> lock(reasons_mutex);
    reasons.push_back(s.reason);
  };
  scheduler.set_hooks(hooks);
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

// include_stop_str_in_output ends the text with the stop string; min_tokens keeps stop strings from
// matching, and the end of the turn from being sampled, before that many tokens.
TEST(TextService, MinTokensAndIncludedStopStrings) {
  TinyService tiny(2);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  const auto generate = [&](const TextRequest& r) {
    auto out = std::make_shared<TextCollector>();
    service.submit(r, out);
    out->wait();
    return out;
  };
  TextRequest r;
  r.prompt = "The quick brown fox";
  r.max_tokens = 40;
  r.sampling.temperature = 0.0f;
  r.ignore_eos = true;
  const std::string full = generate(r)->text;
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(full.size() / 2, 3);
  r.stop = {stop};
  r.include_stop_str_in_output = true;
  auto with_stop = generate(r);
  EXPECT_EQ(with_stop->finish.finish_reason, "stop");
  EXPECT_EQ(with_stop->text, full.substr(0, full.find(stop) + stop.size()));
  r.include_stop_str_in_output = false;
  r.min_tokens = 40;  // the stop string may match only in the last token's text
  auto late = generate(r);
  EXPECT_EQ(late->text, full);
  EXPECT_EQ(late->finish.finish_reason, "length");
  r.min_tokens = 41;
  EXPECT_THROW(service.submit(r, late), RequestError);  // more than max_tokens

  // Chat turns that end early (sampled) run to min_tokens at least.
  int short_turns = 0;
  for (uint64_t seed : {1, 2, 3, 4, 5, 6}) {
    TextRequest chat;
    chat.chat = true;
    chat.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Hello"}}});
    chat.max_tokens = 120;
    chat.sampling.temperature = 1.0f;
    chat.sampling.seed = seed;
    const int64_t plain = generate(chat)->finish.completion_tokens;
    short_turns += plain < 30;
    chat.min_tokens = 30;
    auto held = generate(chat);
    EXPECT_GE(held->finish.completion_tokens, 30) << "seed " << seed;
    EXPECT_NE(held->finish.finish_reason, "error") << held->finish.error;
  }
  EXPECT_GT(short_turns, 0);  // without min_tokens some of these turns end before 30 tokens
}

// continue_final_message: the prompt ends with the assistant's unfinished text and the model's output
// continues it; refused with a new turn opened, a last message that is not the assistant's, or a
// forced tool call.
TEST(TextService, ContinueFinalMessage) {
  TinyService tiny(1);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  TextRequest r;
  r.chat = true;
  r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Name a colour."}}, {{"role", "assistant"}, {"content", "The colour is"}}});
  r.add_generation_prompt = false;
  r.continue_final_message = true;
  const std::string prompt = tokenizer.decode(service.prompt_tokens(r), /*skip_special_tokens=*/false);
  EXPECT_EQ(prompt, "<bos><|turn>user\nName a colour.<turn|>\n<|turn>model\nThe colour is");
  r.max_tokens = 8;
  r.ignore_eos = true;
  r.sampling.temperature = 0.0f;
  auto out = std::make_shared<TextCollector>();
  service.submit(r, out);
  out->wait();
  EXPECT_EQ(out->finish.completion_tokens, 8);
  EXPECT_EQ(out->finish.prompt_tokens, static_cast<int64_t>(service.prompt_tokens(r).size()));

  TextRequest both = r;
  both.add_generation_prompt = true;
  EXPECT_THROW(service.prompt_tokens(both), RequestError);
  TextRequest user_last = r;
  user_last.messages.erase(1);
  EXPECT_THROW(service.prompt_tokens(user_last), RequestError);
  TextRequest forced = r;
  forced.tools = nlohmann::json::parse(
      R"([{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");
  forced.tool_choice = "required";
  EXPECT_THROW(service.prompt_tokens(forced), RequestError);
}

// A sequence cannot outgrow the KV cache: where it is smaller than the model's context, the text
// service's context (and so a request's default max_tokens) is the cache's.
TEST(TextService, TheContextIsNoLargerThanTheKvCache) {
  TinyService tiny(2, SchedulerOptions{}, 512);
  auto& [engine, scheduler, tokenizer, service] = tiny;
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
  TinyService tiny(2);
  auto& [engine, scheduler, tokenizer, service] = tiny;
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

// A text service over a ScriptedEngine whose script is the tokens of `written`.
struct ScriptedService {
  ScriptedService(const Tokenizer& tokenizer, const std::string& written)
      : engine(open_tiny(1), tokenizer.encode(written, /*add_bos=*/false)),
        scheduler(engine, SchedulerOptions{}),
        service(scheduler, tokenizer, engine.config(), "tiny") {}
  ScriptedEngine engine;
  Scheduler scheduler;
  TextService service;
};

// tool_choice "required" or a named function makes the model's turn begin with a tool call: the
// prompt ends with its start, and what the model writes after it is read as the rest of the call. A
// function may be called "none" (the name is not the mode).
TEST(TextService, ToolChoiceMakesTheTurnBeginWithACall) {
  const Tokenizer tokenizer = Tokenizer::load(kTinyModel);
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
    ScriptedService scripted(tokenizer, c.written);
    ScriptedEngine& engine = scripted.engine;
    TextService& service = scripted.service;
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
  ScriptedService scripted(tokenizer, "");
  TextService& service = scripted.service;
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
  const Tokenizer tokenizer = Tokenizer::load(kTinyModel);
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
    ScriptedService scripted(tokenizer, "get_time{");
    TextService& service = scripted.service;
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

// The model's sampling defaults (generation_config.json) fill only the fields a request leaves out;
// without defaults a request keeps SamplingParams' own (temperature 1, no top-k/top-p).
TEST(TextService, GenerationDefaultsFillTheFieldsARequestLeavesOut) {
  TinyService tiny(1, SchedulerOptions{}, 512);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  TextRequest r;
  r.prompt = "The quick brown fox";
  PreparedText plain = service.prepare(r);
  EXPECT_EQ(plain.generation.sampling.temperature, 1.0f);
  EXPECT_EQ(plain.generation.sampling.top_k, 0);
  EXPECT_EQ(plain.generation.sampling.top_p, 1.0f);
  EXPECT_EQ(plain.generation.max_tokens, 512 - static_cast<int32_t>(plain.generation.prompt.size()));

  // The golden model's own file: temperature 1.0, top_k 64, top_p 0.95.
  service.set_generation_defaults(load_generation_defaults("auto", kTinyModel));
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
  g.repetition_penalty = 1.1f;
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
  EXPECT_EQ(mixed.generation.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(d.generation.sampling.repetition_penalty, 1.0f);  // the golden file has none
  TextRequest no_repetition = r;
  no_repetition.sampling_given.repetition_penalty = true;  // given as 1: off, whatever the model suggests
  EXPECT_EQ(service.prepare(no_repetition).generation.sampling.repetition_penalty, 1.0f);
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


// n choices are n requests with the seeds seed, seed + 1, ...: each choice's text is that request's;
// the usage counts the prompt once and every choice's tokens; every choice but the one reported last
// is reported as it ends; cancelling the request ends every choice.
TEST(TextService, ChoicesAreRequestsWithConsecutiveSeeds) {
  TinyService tiny(4);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  TextRequest r;
  r.prompt = "The quick brown fox";
  r.max_tokens = 12;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 7;
  r.n = 3;
  auto all = std::make_shared<TextCollector>();
  service.submit(r, all);
  all->wait();
  ASSERT_EQ(all->texts.size(), 3u);
  ASSERT_EQ(all->finish.choice_reasons.size(), 3u);
  int64_t completion = 0;
  for (int i = 0; i < 3; ++i) {
    TextRequest one = r;
    one.n = 1;
    one.sampling.seed = 7 + static_cast<uint64_t>(i);
    auto single = std::make_shared<TextCollector>();
    service.submit(one, single);
    single->wait();
    EXPECT_EQ(all->texts[static_cast<size_t>(i)], single->text) << "choice " << i;
    EXPECT_EQ(all->finish.choice_reasons[static_cast<size_t>(i)], single->finish.finish_reason) << "choice " << i;
    EXPECT_EQ(all->finish.prompt_tokens, single->finish.prompt_tokens);
    completion += single->finish.completion_tokens;
  }
  EXPECT_EQ(all->finish.completion_tokens, completion);
  EXPECT_EQ(all->finish.finish_reason, all->finish.choice_reasons[0]);
  EXPECT_TRUE(all->texts[0] != all->texts[1] || all->texts[1] != all->texts[2]) << "the seeds were not varied";
  EXPECT_EQ(all->ended_before.size(), 2u);
  for (const auto& [index, reason] : all->ended_before) {
    EXPECT_EQ(reason, all->finish.choice_reasons[static_cast<size_t>(index)]);
  }

  r.max_tokens = 500;
  r.ignore_eos = true;
  auto cancelled = std::make_shared<TextCollector>();
  const uint64_t id = service.submit(r, cancelled);
  service.cancel(id);
  cancelled->wait();
  EXPECT_EQ(cancelled->finish.finish_reason, "cancelled");
  EXPECT_EQ(cancelled->finish.choice_reasons, (std::vector<std::string>(3, "cancelled")));
  EXPECT_TRUE(cancelled->ended_before.empty());

  for (int32_t n : {0, kMaxChoices + 1}) {
    r.n = n;
    try {
      service.submit(r, cancelled);
      FAIL() << "n " << n << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
      EXPECT_NE(std::string(e.what()).find("n must be"), std::string::npos) << e.what();
    }
  }
}

// The choices are queued all or none: more than the queue's bound is refused as invalid, more than
// its room as a full queue, and nothing of a refused request is left queued.
TEST(TextService, ChoicesAreQueuedWholeOrNotAtAll) {
  SchedulerOptions options;
  options.max_waiting = 4;
  TinyService tiny(1, options);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  TextRequest r;
  r.prompt = "The quick brown fox";
  r.max_tokens = 300;
  r.ignore_eos = true;
  r.n = 5;
  auto out = std::make_shared<TextCollector>();
  try {
    service.submit(r, out);
    FAIL() << "5 choices fit a queue of 4";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
    EXPECT_EQ(e.param(), "n");
  }
  r.n = 3;
  auto first = std::make_shared<TextCollector>();
  const uint64_t id = service.submit(r, first);  // one runs, two wait (one sequence at a time)
  r.n = 4;
  try {
    service.submit(r, out);
    FAIL() << "4 more choices fit a queue of 4 holding 2 or 3";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kQueueFull);
  }
  EXPECT_LE(scheduler.stats().waiting, 3);  // the first request's choices only
  service.cancel(id);
  first->wait();
  EXPECT_FALSE(out->done);
  const uint64_t again = service.submit(r, out);  // 4 fit the emptied queue
  service.cancel(again);
  out->wait();
  EXPECT_EQ(out->finish.choice_reasons.size(), 4u);
}


// Guided decoding on the tiny model: every sampled text is one of the choices (and ends there), or a
// JSON object or a prefix of one (a whole one when the model ended it); per choice of n as well; not
// with thinking.
TEST(TextService, GuidedDecodingHoldsTheOutputToItsForm) {
  TinyService tiny(4);
  auto& [engine, scheduler, tokenizer, service] = tiny;
  const std::vector<std::string> choices = {"yes", "no", "maybe so"};
  TextRequest r;
  r.prompt = "Is the sea blue?";
  r.max_tokens = 20;
  r.sampling.temperature = 1.0f;
  r.guided.kind = TextRequest::Guided::Kind::kChoice;
  r.guided.choices = choices;
  r.n = 6;
  r.sampling.seed = 3;
  auto picked = std::make_shared<TextCollector>();
  service.submit(r, picked);
  picked->wait();
  ASSERT_EQ(picked->texts.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_NE(std::find(choices.begin(), choices.end(), picked->texts[i]), choices.end()) << picked->texts[i];
    EXPECT_EQ(picked->finish.choice_reasons[i], "stop");
  }

  r.guided.kind = TextRequest::Guided::Kind::kJsonObject;
  r.max_tokens = 60;
  r.n = 4;
  auto json_out = std::make_shared<TextCollector>();
  service.submit(r, json_out);
  json_out->wait();
  ASSERT_EQ(json_out->texts.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const std::string& text = json_out->texts[i];
    JsonAcceptor a;
    EXPECT_TRUE(a.feed(text)) << text;
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.find_first_not_of(" \t\r\n"), text.find('{')) << text;
    if (json_out->finish.choice_reasons[i] == "stop") {
      EXPECT_TRUE(a.complete()) << text;
      EXPECT_TRUE(nlohmann::json::parse(text).is_object()) << text;
    }
  }

  TextRequest chat;
  chat.chat = true;
  chat.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Answer in JSON."}}});
  chat.max_tokens = 40;
  chat.sampling.temperature = 0.0f;
  chat.guided.kind = TextRequest::Guided::Kind::kJsonObject;
  auto chat_out = std::make_shared<TextCollector>();
  service.submit(chat, chat_out);
  chat_out->wait();
  JsonAcceptor a;
  EXPECT_TRUE(a.feed(chat_out->text)) << chat_out->text;
  EXPECT_GT(chat_out->finish.completion_tokens, 0) << chat_out->finish.error;  // (the tiny model's greedy JSON may be all blanks, which the chat's content begins without)

  chat.enable_thinking = true;
  try {
    service.submit(chat, chat_out);
    FAIL() << "guided decoding with thinking was accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
    EXPECT_NE(std::string(e.what()).find("thinking"), std::string::npos);
  }
  r.guided.kind = TextRequest::Guided::Kind::kChoice;
  r.guided.choices = {};
  EXPECT_THROW(service.submit(r, chat_out), RequestError);

  // A JSON Schema: whole answers are valid against it; a schema it cannot hold to is refused by name.
  r.guided.kind = TextRequest::Guided::Kind::kJsonSchema;
  r.guided.schema = nlohmann::json::parse(
      R"({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}, "score": {"type": "integer"}}, "required": ["answer", "score"]})");
  r.max_tokens = 80;
  r.n = 4;
  auto schema_out = std::make_shared<TextCollector>();
  service.submit(r, schema_out);
  schema_out->wait();
  const auto schema = JsonSchema::compile(r.guided.schema);
  ASSERT_EQ(schema_out->texts.size(), 4u);
  for (size_t i = 0; i < schema_out->texts.size(); ++i) {
    const std::string& text = schema_out->texts[i];
    SchemaAcceptor reader(schema);
    EXPECT_TRUE(reader.feed(text)) << text;
    if (schema_out->finish.choice_reasons[i] != "stop") continue;
    const nlohmann::json v = nlohmann::json::parse(text);
    EXPECT_TRUE(v["answer"] == "yes" || v["answer"] == "no") << text;
    EXPECT_TRUE(v["score"].is_number_integer()) << text;
  }
  r.guided.schema = nlohmann::json::parse(R"({"type": "string", "pattern": "^a+$"})");
  try {
    service.submit(r, chat_out);
    FAIL() << "a pattern was accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
    EXPECT_NE(std::string(e.what()).find("'pattern'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shardlm
