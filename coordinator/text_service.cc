#include "coordinator/text_service.h"

#include <chrono>
#include <functional>
#include <limits>
#include <mutex>
#include <utility>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "coordinator/request_error.h"
#include "coordinator/stop_strings.h"
#include "model/chat_template.h"

namespace shardlm {
namespace {

// The tools a chat prompt declares, and the text its model turn is made to begin with, per tool_choice.
struct ToolPlan {
  nlohmann::json tools;
  std::string turn_start;
};

ToolPlan plan_tools(const TextRequest& r) {
  static constexpr std::string_view kCallStart = "<|tool_call>call:";
  const bool has_tools = r.tools.is_array() && !r.tools.empty();
  const std::string& choice = r.tool_choice_function;
  if (choice.empty()) {
    const std::string& mode = r.tool_choice;
    if (mode.empty() || mode == "auto") return {r.tools, ""};
    if (mode == "none") return {nullptr, ""};
    if (mode != "required") {
      fail_request(RequestErrorCode::kInvalidRequest, "tool_choice must be 'auto', 'none' or 'required' (got '{}'; a function is named apart)",
                   mode);
    }
    if (!has_tools) fail_request(RequestErrorCode::kInvalidRequest, "tool_choice is 'required' but no tools were given");
    return {r.tools, std::string(kCallStart)};
  }
  if (has_tools) {
    for (const nlohmann::json& tool : r.tools) {
      const nlohmann::json* fn = tool.is_object() && tool.contains("function") ? &tool["function"] : nullptr;
      if (fn && fn->is_object() && fn->contains("name") && (*fn)["name"] == choice) {
        return {nlohmann::json::array({tool}), std::string(kCallStart) + choice + "{"};
      }
    }
  }
  fail_request(RequestErrorCode::kInvalidRequest, "tool_choice names the function '{}', which is not among the tools", choice);
}

// Turns one request's token stream into text deltas.
class TextStream final : public GenerationObserver {
 public:
  TextStream(const TextRequest& request, const std::string& turn_start, const Tokenizer& tokenizer,
             std::shared_ptr<TextObserver> observer, Scheduler& scheduler, int64_t prompt_tokens)
      : tokenizer_(tokenizer),
        detok_(tokenizer, /*skip_special_tokens=*/!request.chat),
        chat_(request.chat),
        ignore_eos_(request.ignore_eos),
        stops_(request.stop, request.include_stop_str_in_output),
        min_tokens_(request.min_tokens),
        observer_(std::move(observer)),
        scheduler_(scheduler),
        prompt_tokens_(prompt_tokens) {
    // A forced start of the turn (a tool call) is read as the beginning of the model's output.
    if (chat_ && !turn_start.empty()) {
      ChatOutputStream::Delta d = chat_stream_.feed(turn_start);
      carried_.reasoning = std::move(d.reasoning);
      carried_.content = stops_.feed(d.content);
      carried_.tool_calls = std::move(d.tool_calls);
      forced_prefix_ = turn_start;
    }
  }

  void set_id(uint64_t id) {
    bool cancel_now = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      id_ = id;
      cancel_now = cancel_wanted_;
    }
    if (cancel_now) scheduler_.end_early(id);
  }

  void on_token(const GeneratedToken& token) override {
    if (ended_) return;
    ++tokens_;
    stops_.set_suspended(tokens_ < min_tokens_);
    TextDelta delta;
    append_logprobs(token, delta);
    process(detok_.push(token.token), false, delta);
    emit(delta);
  }

  void on_prompt_logprobs(const std::vector<GeneratedToken>& positions) override {
    auto out = std::make_shared<std::vector<PromptTokenLogprob>>();
    out->reserve(positions.size() + 1);
    PromptTokenLogprob first;
    first.id = first_prompt_token_;
    first.token = tokenizer_.token_bytes(first_prompt_token_);
    first.logprob = std::numeric_limits<float>::quiet_NaN();
    out->push_back(std::move(first));
    for (const GeneratedToken& g : positions) {
      PromptTokenLogprob p;
      p.id = g.token;
      p.token = tokenizer_.token_bytes(g.token);
      p.logprob = g.logprob;
      p.rank = g.rank;
      for (const TokenLogprob& t : g.top) p.top.push_back({t.token, tokenizer_.token_bytes(t.token), t.logprob});
      out->push_back(std::move(p));
    }
    TextDelta delta;
    delta.prompt_logprobs = std::move(out);
    try {
      observer_->on_delta(delta);
    } catch (const std::exception& e) {
      spdlog::error("text observer failed: {}", e.what());
    }
  }

  void on_finish(const GenerationSummary& summary) override {
    TextDelta delta;
    if (!ended_) process(detok_.flush(), true, delta);
    emit(delta);
    TextFinish f;
    if (ended_by_text_) {
      f.finish_reason = saw_tool_call_ ? "tool_calls" : "stop";
    } else {
      switch (summary.reason) {
        case FinishReason::kStop: f.finish_reason = saw_tool_call_ ? "tool_calls" : "stop"; break;
        case FinishReason::kLength: f.finish_reason = "length"; break;
        case FinishReason::kCancelled: f.finish_reason = "cancelled"; break;
        case FinishReason::kError: f.finish_reason = "error"; break;
      }
    }
    f.error = summary.error;
    f.error_code = summary.error_code;
    f.prompt_tokens = prompt_tokens_;
    f.completion_tokens = ended_by_text_ ? tokens_ : summary.completion_tokens;
    f.timings = summary.timings;
    f.choice_reasons = {f.finish_reason};
    try {
      observer_->on_finish(f);
    } catch (const std::exception& e) {
      spdlog::error("text observer failed: {}", e.what());
    }
  }

  bool wants_logprobs_ = false;
  int32_t first_prompt_token_ = 0;

 private:
  void append_logprobs(const GeneratedToken& token, TextDelta& delta) {
    if (!wants_logprobs_) return;
    TextTokenLogprob lp;
    lp.token = tokenizer_.token_bytes(token.token);
    lp.logprob = token.logprob;
    for (const TokenLogprob& t : token.top) lp.top.emplace_back(tokenizer_.token_bytes(t.token), t.logprob);
    delta.logprobs.push_back(std::move(lp));
  }

  // Routes decoded text through the chat parser and the stop strings into delta.
  void process(const std::string& text, bool final, TextDelta& delta) {
    if (chat_) {
      ChatOutputStream::Delta d = chat_stream_.feed(text);
      if (final) {
        ChatOutputStream::Delta rest = chat_stream_.finish();
        d.reasoning += rest.reasoning;
        d.content += rest.content;
        d.tool_calls.insert(d.tool_calls.end(), rest.tool_calls.begin(), rest.tool_calls.end());
      }
      delta.reasoning += d.reasoning;
      delta.content += stop_filtered(d.content, !d.tool_calls.empty());
      if (final) delta.content += stops_.flush();
      if (!stops_.stopped()) {
        for (ChatToolCall& c : d.tool_calls) delta.tool_calls.push_back(std::move(c));
        saw_tool_call_ = saw_tool_call_ || !d.tool_calls.empty();
      }
      // With ignore_eos generation goes on past the end of the turn (its text is not parsed); so it
      // does up to min_tokens where the turn ended in the text (a tool response marker).
      if (!final && ((chat_stream_.ended() && !ignore_eos_ && tokens_ >= min_tokens_) || stops_.stopped())) end_early(delta);
    } else {
      delta.content += stops_.feed(text);
      if (final) delta.content += stops_.flush();
      if (!final && stops_.stopped()) end_early(delta);
    }
  }

  // Chat content through the stop strings. A forced tool call the model did not finish comes back as
  // text beginning with the forced start, which is the prompt's, not the model's: no stop string
  // matches in it (stop "call:" cut a required call to "<|tool_call>").
  std::string stop_filtered(const std::string& content, bool call_parsed) {
    if (!forced_prefix_.empty() && (call_parsed || !content.empty())) {
      const std::string prefix = std::exchange(forced_prefix_, std::string());
      if (content.compare(0, prefix.size(), prefix) == 0) return prefix + stops_.feed(std::string_view(content).substr(prefix.size()));
    }
    return stops_.feed(content);
  }

  // The text ended (stop string, end of turn) before the scheduler stopped: cancel the rest.
  void end_early(TextDelta& delta) {
    if (chat_ && !stops_.stopped()) {
      ChatOutputStream::Delta rest = chat_stream_.finish();
      delta.reasoning += rest.reasoning;
      delta.content += stop_filtered(rest.content, !rest.tool_calls.empty()) + stops_.flush();
      saw_tool_call_ = saw_tool_call_ || !rest.tool_calls.empty();
      for (ChatToolCall& c : rest.tool_calls) delta.tool_calls.push_back(std::move(c));
    }
    ended_ = true;
    ended_by_text_ = true;
    uint64_t id = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      id = id_;
      if (id == 0) cancel_wanted_ = true;
    }
    if (id != 0) scheduler_.end_early(id);
  }

  void emit(TextDelta& delta) {
    if (!carried_.empty()) {
      delta.reasoning = carried_.reasoning + delta.reasoning;
      delta.content = carried_.content + delta.content;
      delta.tool_calls.insert(delta.tool_calls.begin(), carried_.tool_calls.begin(), carried_.tool_calls.end());
      carried_ = TextDelta{};
    }
    if (delta.empty()) return;
    try {
      observer_->on_delta(delta);
    } catch (const std::exception& e) {
      spdlog::error("text observer failed: {}", e.what());
    }
  }

  const Tokenizer& tokenizer_;
  StreamingDetokenizer detok_;
  bool chat_;
  bool ignore_eos_;
  ChatOutputStream chat_stream_;
  StopStringMatcher stops_;
  int32_t min_tokens_;  // stop strings match from this many tokens on
  TextDelta carried_;  // what the forced start of the turn gave, sent with the first delta
  std::string forced_prefix_;  // the forced start, until the model's output has gone past it
  std::shared_ptr<TextObserver> observer_;
  Scheduler& scheduler_;
  int64_t prompt_tokens_;
  int64_t tokens_ = 0;
  bool ended_ = false, ended_by_text_ = false, saw_tool_call_ = false;
  std::mutex mutex_;
  uint64_t id_ = 0;
  bool cancel_wanted_ = false;
};

}  // namespace

TextService::TextService(Scheduler& scheduler, const Tokenizer& tokenizer, const ModelConfig& config, std::string model_name)
    : scheduler_(scheduler), tokenizer_(tokenizer), config_(config), model_name_(std::move(model_name)) {
  missing_chat_tokens_ = missing_chat_tokens(tokenizer_);
  if (!missing_chat_tokens_.empty()) {
    spdlog::warn("the tokenizer lacks the Gemma 4 chat tokens {} (is tokenizer.json the model's own?): chat requests are "
                 "refused, completions are served",
                 fmt::join(missing_chat_tokens_, " "));
  }
  if (tokenizer_.vocab_size() < config_.vocab_size) {
    spdlog::warn("the tokenizer holds {} tokens, fewer than the model's vocab_size {}: a request that generates an id past "
                 "them ends with an error (is tokenizer.json the model's own?)",
                 tokenizer_.vocab_size(), config_.vocab_size);
  }
}

int64_t TextService::max_context() const {
  // A sequence cannot outgrow the KV cache either (where it is smaller than the model's context).
  return std::min(scheduler_.engine().max_sequence_tokens(), scheduler_.engine().kv_capacity_tokens());
}

std::vector<int32_t> TextService::prompt_tokens(const TextRequest& r) const {
  if (!r.chat) return tokenizer_.encode(r.prompt, r.add_bos);
  if (!missing_chat_tokens_.empty()) {
    fail_request(RequestErrorCode::kInvalidRequest,
                 "chat requests need the Gemma 4 chat tokens, and this model's tokenizer lacks {}: send a completion (a "
                 "prompt text) instead",
                 fmt::join(missing_chat_tokens_, " "));
  }
  if (!r.messages.is_array() || r.messages.empty()) {
    fail_request(RequestErrorCode::kInvalidRequest, "messages must be a non-empty array");
  }
  ChatOptions co;
  co.enable_thinking = r.enable_thinking;
  co.empty_thought_block = !config_.has_ple();
  co.add_generation_prompt = r.add_generation_prompt;
  ToolPlan plan = plan_tools(r);
  co.tools = std::move(plan.tools);
  if (r.continue_final_message) {
    if (r.add_generation_prompt) {
      fail_request(RequestErrorCode::kInvalidRequest, "continue_final_message needs add_generation_prompt false");
    }
    if (!plan.turn_start.empty()) {
      fail_request(RequestErrorCode::kInvalidRequest,
                   "continue_final_message continues the assistant's text: a tool_choice that forces a call cannot begin the turn");
    }
  }
  std::string text;
  try {
    text = render_chat(r.messages, co);
    if (r.continue_final_message) text = continue_final_message(text, r.messages);
  } catch (const RequestError&) {
    throw;
  } catch (const Error& e) {
    throw RequestError(RequestErrorCode::kInvalidRequest, e.what());
  }
  return tokenizer_.encode(text + plan.turn_start, /*add_bos=*/false);
}

namespace {

// The choices of a request with n > 1: passes each choice's deltas on with its index, reports each
// choice that ends (on_choice_finish) and, once all have, the request's end. A choice that fails
// cancels the others (the request has failed). Its members' callbacks come on the scheduler thread.
class ChoiceGroup final : public std::enable_shared_from_this<ChoiceGroup> {
 public:
  ChoiceGroup(std::shared_ptr<TextObserver> observer, int32_t n, std::function<void()> on_end,
              std::function<void(size_t except)> cancel_others)
      : observer_(std::move(observer)),
        reasons_(static_cast<size_t>(n)),
        remaining_(n),
        on_end_(std::move(on_end)),
        cancel_others_(std::move(cancel_others)) {}

  // The observer of choice `index`.
  std::shared_ptr<TextObserver> member(int32_t index);

  // Submission failed: nothing is reported.
  void abandon() {
    std::lock_guard lock(mutex_);
    abandoned_ = true;
  }

  void delta(int32_t index, const TextDelta& d) {
    {
      std::lock_guard lock(mutex_);
      if (abandoned_) return;
    }
    TextDelta tagged = d;
    tagged.index = index;
    observer_->on_delta(tagged);
  }

  void finished(int32_t index, const TextFinish& f) {
    bool last = false, failed_first = false;
    {
      std::lock_guard lock(mutex_);
      if (abandoned_) return;
      reasons_[static_cast<size_t>(index)] = f.finish_reason;
      completion_tokens_ += f.completion_tokens;
      prompt_tokens_ = f.prompt_tokens;
      timings_ = f.timings;
      const bool error = f.finish_reason == "error", cancelled = f.finish_reason == "cancelled";
      if ((error && failure_.finish_reason != "error") || (cancelled && failure_.finish_reason.empty())) {
        failed_first = failure_.finish_reason.empty();
        failure_ = f;
      }
      last = --remaining_ == 0;
    }
    if (failed_first && !last) cancel_others_(static_cast<size_t>(index));
    if (!last) {
      if (f.finish_reason != "error" && f.finish_reason != "cancelled") observer_->on_choice_finish(index, f);
      return;
    }
    on_end_();
    TextFinish total = failure_.finish_reason.empty() ? f : failure_;
    if (failure_.finish_reason.empty()) total.finish_reason = reasons_.front();
    total.prompt_tokens = prompt_tokens_;
    total.completion_tokens = completion_tokens_;
    total.timings = timings_;
    total.choice_reasons = reasons_;
    observer_->on_finish(total);
  }

 private:
  std::shared_ptr<TextObserver> observer_;
  std::mutex mutex_;
  bool abandoned_ = false;
  std::vector<std::string> reasons_;
  int32_t remaining_;
  int64_t completion_tokens_ = 0, prompt_tokens_ = 0;
  GenerationTimings timings_;
  TextFinish failure_;  // the first error, else the first cancellation
  std::function<void()> on_end_;
  std::function<void(size_t)> cancel_others_;
};

class ChoiceObserver final : public TextObserver {
 public:
  ChoiceObserver(std::shared_ptr<ChoiceGroup> group, int32_t index) : group_(std::move(group)), index_(index) {}
  void on_delta(const TextDelta& delta) override { group_->delta(index_, delta); }
  void on_finish(const TextFinish& finish) override { group_->finished(index_, finish); }

 private:
  std::shared_ptr<ChoiceGroup> group_;
  int32_t index_;
};

std::shared_ptr<TextObserver> ChoiceGroup::member(int32_t index) { return std::make_shared<ChoiceObserver>(shared_from_this(), index); }

void check_choices(int32_t n) {
  if (n < 1 || n > kMaxChoices) {
    throw RequestError(RequestErrorCode::kInvalidRequest, fmt::format("n must be in [1, {}] (got {})", kMaxChoices, n), "n");
  }
}

}  // namespace

uint64_t TextService::submit(const TextRequest& r, std::shared_ptr<TextObserver> observer, int64_t max_prompt_tokens) {
  return submit_prepared(prepare(r, max_prompt_tokens), std::move(observer));
}

PreparedText TextService::prepare(const TextRequest& r, int64_t max_prompt_tokens) const {
  if (r.stop.size() > 16) fail_request(RequestErrorCode::kInvalidRequest, "stop: at most 16 stop strings (got {})", r.stop.size());
  for (const std::string& s : r.stop) {
    if (s.empty()) fail_request(RequestErrorCode::kInvalidRequest, "stop: stop strings must not be empty");
  }
  if (r.top_logprobs > 20) fail_request(RequestErrorCode::kInvalidRequest, "top_logprobs must be at most 20 (got {})", r.top_logprobs);
  check_choices(r.n);
  if (r.n > scheduler_.max_waiting()) {
    throw RequestError(RequestErrorCode::kInvalidRequest,
                       fmt::format("n is {}, more sequences than this server queues ({})", r.n, scheduler_.max_waiting()), "n");
  }
  GenerationRequest g;
  g.prompt = prompt_tokens(r);
  if (g.prompt.empty()) fail_request(RequestErrorCode::kInvalidRequest, "the prompt is empty");
  if (max_prompt_tokens > 0 && static_cast<int64_t>(g.prompt.size()) > max_prompt_tokens) {
    fail_request(RequestErrorCode::kContextLength, "the prompt has {} tokens, more than this server's limit of {} prompt tokens",
                 g.prompt.size(), max_prompt_tokens);
  }
  const int64_t room = max_context() - static_cast<int64_t>(g.prompt.size());
  if (r.max_tokens < -1 || r.max_tokens == 0) {
    fail_request(RequestErrorCode::kInvalidRequest, "max_tokens must be at least 1 (got {})", r.max_tokens);
  }
  if (room < 1) {
    fail_request(RequestErrorCode::kContextLength, "the prompt has {} tokens; the context holds {}", g.prompt.size(), max_context());
  }
  // The model's max_new_tokens limits every request's output (as vLLM's), whatever it asks for.
  const int64_t wanted = r.max_tokens > 0 ? r.max_tokens : std::min<int64_t>(room, INT32_MAX);
  g.max_tokens = static_cast<int32_t>(std::min<int64_t>(wanted, defaults_.max_tokens.value_or(INT32_MAX)));
  g.sampling = r.sampling;
  if (!r.sampling_given.temperature && defaults_.temperature) g.sampling.temperature = *defaults_.temperature;
  if (!r.sampling_given.top_k && defaults_.top_k) g.sampling.top_k = *defaults_.top_k;
  if (!r.sampling_given.top_p && defaults_.top_p) g.sampling.top_p = *defaults_.top_p;
  if (!r.sampling_given.min_p && defaults_.min_p) g.sampling.min_p = *defaults_.min_p;
  if (!r.sampling_given.repetition_penalty && defaults_.repetition_penalty) {
    g.sampling.repetition_penalty = *defaults_.repetition_penalty;
  }
  g.top_logprobs = r.top_logprobs;
  g.prompt_logprobs = r.prompt_logprobs;
  g.priority = r.priority;
  g.min_tokens = r.min_tokens;
  for (int32_t id : r.stop_token_ids) {
    if (id < 0 || id >= config_.vocab_size) {
      fail_request(RequestErrorCode::kInvalidRequest, "stop_token_ids: {} is outside the vocabulary (size {})", id, config_.vocab_size);
    }
    g.stop_token_ids.push_back(id);
  }
  if (r.logit_bias.size() > kMaxLogitBias) {
    fail_request(RequestErrorCode::kInvalidRequest, "logit_bias holds {} tokens; at most {} are allowed", r.logit_bias.size(), kMaxLogitBias);
  }
  g.logit_bias = r.logit_bias;  // each entry is checked by the scheduler
  if (!r.ignore_eos) {
    for (int id : config_.eos_token_ids) g.stop_token_ids.push_back(id);
    if (tokenizer_.eos_id() >= 0) g.stop_token_ids.push_back(tokenizer_.eos_id());
  }
  PreparedText p;
  p.request = r;
  p.turn_start = r.chat ? plan_tools(r).turn_start : std::string();
  if (r.guided.kind != TextRequest::Guided::Kind::kNone) {
    if (r.chat && r.enable_thinking) {
      fail_request(RequestErrorCode::kInvalidRequest, "guided decoding holds the whole output to its form: it cannot be used with thinking");
    }
    if (!p.turn_start.empty()) {
      fail_request(RequestErrorCode::kInvalidRequest, "guided decoding cannot be used with a tool_choice that forces a call");
    }
    if (r.continue_final_message) {
      fail_request(RequestErrorCode::kInvalidRequest, "guided decoding cannot continue a message (continue_final_message)");
    }
    try {
      switch (r.guided.kind) {
        case TextRequest::Guided::Kind::kJsonObject: g.guided = json_object_spec(token_table()); break;
        case TextRequest::Guided::Kind::kJsonSchema: g.guided = json_schema_spec(token_table(), r.guided.schema); break;
        case TextRequest::Guided::Kind::kChoice: g.guided = choice_spec(token_table(), r.guided.choices); break;
        case TextRequest::Guided::Kind::kNone: break;
      }
    } catch (const RequestError&) {
      throw;
    } catch (const Error& e) {
      throw RequestError(RequestErrorCode::kInvalidRequest, e.what());
    }
  }
  p.generation = std::move(g);
  return p;
}

std::shared_ptr<const TokenTable> TextService::token_table() const {
  std::call_once(token_table_once_, [&] { token_table_ = std::make_shared<const TokenTable>(tokenizer_); });
  return token_table_;
}

uint64_t TextService::submit_prepared(PreparedText p, std::shared_ptr<TextObserver> observer) {
  if (!observer) fail("text service: a request needs an observer");
  const int64_t prompt_size = static_cast<int64_t>(p.generation.prompt.size());
  const int32_t n = p.request.n;
  check_choices(n);  // also of a PreparedText built without prepare()
  if (n == 1) {
    auto stream = std::make_shared<TextStream>(p.request, p.turn_start, tokenizer_, std::move(observer), scheduler_, prompt_size);
    stream->wants_logprobs_ = p.request.top_logprobs >= 0;
    stream->first_prompt_token_ = p.generation.prompt.front();
    const uint64_t id = scheduler_.submit(std::move(p.generation), stream);
    stream->set_id(id);
    return id;
  }
  auto ids = std::make_shared<std::vector<uint64_t>>();  // written before any choice can end (groups_mutex_)
  auto group = std::make_shared<ChoiceGroup>(
      std::move(observer), n,
      [this, ids] {
        std::lock_guard lock(groups_mutex_);
        groups_.erase(ids->front());
      },
      [this, ids](size_t except) {
        std::vector<uint64_t> all;
        {
          std::lock_guard lock(groups_mutex_);
          all = *ids;
        }
        for (size_t i = 0; i < all.size(); ++i) {
          if (i != except) scheduler_.cancel(all[i]);
        }
      });
  std::vector<std::shared_ptr<TextStream>> streams;
  std::vector<Scheduler::Submission> submissions;
  for (int32_t i = 0; i < n; ++i) {
    auto stream = std::make_shared<TextStream>(p.request, p.turn_start, tokenizer_, group->member(i), scheduler_, prompt_size);
    stream->wants_logprobs_ = p.request.top_logprobs >= 0;
    stream->first_prompt_token_ = p.generation.prompt.front();
    GenerationRequest g = p.generation;
    g.sampling.seed = p.generation.sampling.seed + static_cast<uint64_t>(i);
    submissions.push_back(Scheduler::Submission{std::move(g), stream});
    streams.push_back(std::move(stream));
  }
  std::lock_guard lock(groups_mutex_);  // held until the ids are known: a choice's end takes it
  try {
    *ids = scheduler_.submit_group(std::move(submissions));
  } catch (...) {
    group->abandon();
    throw;
  }
  for (int32_t i = 0; i < n; ++i) streams[static_cast<size_t>(i)]->set_id((*ids)[static_cast<size_t>(i)]);
  groups_[ids->front()] = *ids;
  return ids->front();
}

void TextService::cancel(uint64_t id) {
  std::vector<uint64_t> ids{id};
  {
    std::lock_guard lock(groups_mutex_);
    if (auto it = groups_.find(id); it != groups_.end()) ids = it->second;
  }
  for (uint64_t i : ids) scheduler_.cancel(i);
}

}  // namespace shardlm
