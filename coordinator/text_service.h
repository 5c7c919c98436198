// Text in, text out: the service both front ends (OpenAI HTTP, TCP protocol) and batch jobs call.
// Renders chat conversations with the Gemma 4 chat template, tokenizes, submits to the scheduler,
// detokenizes the stream, splits reasoning / content / tool calls (chat), applies stop strings and
// reports token log-probabilities as text.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/generation.h"
#include "coordinator/guided_decoding.h"
#include "coordinator/scheduler.h"
#include "model/chat_output.h"
#include "model/config.h"
#include "model/generation_defaults.h"
#include "model/tokenizer.h"

namespace shardlm {

inline constexpr size_t kMaxLogitBias = 16384;  // tokens a request may bias
inline constexpr int32_t kMaxChoices = 128;      // choices (n) a request may ask for (OpenAI's limit)

struct TextRequest {
  bool chat = false;
  std::string prompt;                  // completion: prompt text (BOS is added)
  nlohmann::json messages;             // chat: OpenAI-style messages array
  nlohmann::json tools;                // chat: OpenAI tool declarations (null = none)
  // chat: "" or "auto": the model decides whether to call a tool; "none": the tools are not declared;
  // "required": the model's turn is made to begin with a tool call. tool_choice_function (when set,
  // tool_choice is not read): a function among the tools; only it is declared and the turn is made to
  // begin with a call of it. A forced call is a prefix of the turn ("<|tool_call>call:" and the name),
  // not a grammar: the arguments are the model's, and a call it does not finish comes back as text
  // (stop strings match only after the forced prefix).
  std::string tool_choice;
  std::string tool_choice_function;
  bool enable_thinking = false;        // chat: let the model think first (reasoning returned apart)
  bool add_generation_prompt = true;   // chat: end with the opening of the model's turn
  // chat: the last message (the assistant's) is left open and the model continues its text (vLLM's
  // and transformers' continue_final_message; needs add_generation_prompt false)
  bool continue_final_message = false;
  bool add_bos = true;                 // completion: begin with the BOS token (a chat's template writes it)
  int32_t max_tokens = -1;             // -1: the model's default (GenerationDefaults), else up to the end of the context
  SamplingParams sampling;
  // Which of sampling's fields the client gave: the others take the model's defaults where the
  // service has them (TextService::set_generation_defaults), else SamplingParams' own.
  struct SamplingGiven {
    bool temperature = false, top_k = false, top_p = false, min_p = false, repetition_penalty = false;
  } sampling_given;
  std::vector<std::string> stop;       // stop strings (at most 16; not included in the output)
  int32_t top_logprobs = -1;           // -1: none; 0: chosen tokens only; up to 20 alternatives
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // generation ends when one is sampled (not emitted), ignore_eos or not
  std::map<int32_t, float> logit_bias;  // token id -> added to its logit ([-100, 100]; at most kMaxLogitBias)
  int32_t min_tokens = 0;               // no end of sequence and no stop string before this many tokens (vLLM's)
  bool include_stop_str_in_output = false;  // a matched stop string ends the text (vLLM's)
  // -1: none; 0..20: each prompt token's log-probability and rank, with that many best tokens at its
  // position (TextDelta::prompt_logprobs)
  int32_t prompt_logprobs = -1;
  // Guided decoding (vLLM's structured outputs): the output is any JSON object, JSON of `schema`, or
  // one of `choices` exactly. Not with thinking, a forced tool call or continue_final_message.
  struct Guided {
    enum class Kind { kNone, kJsonObject, kJsonSchema, kChoice } kind = Kind::kNone;
    std::vector<std::string> choices;
    nlohmann::json schema;
  } guided;
  Priority priority = Priority::kInteractive;
  // Choices: n sequences sampled from the prompt, each as a request of its own with the seed
  // sampling.seed + its index (vLLM's), reported with their index (TextDelta::index).
  int32_t n = 1;
};

struct TextTokenLogprob {
  std::string token;    // the token's bytes (Tokenizer::token_bytes: may be part of a UTF-8 character)
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // best alternatives, best first
};

// One prompt token with its log-probability given the tokens before it (vLLM's prompt_logprobs).
struct PromptTokenLogprob {
  struct Alternative {
    int32_t id = 0;
    std::string token;  // its bytes
    float logprob = 0.0f;
  };
  int32_t id = 0;
  std::string token;  // its bytes (Tokenizer::token_bytes)
  float logprob = 0.0f;  // NaN for the first token (nothing before it)
  int64_t rank = 0;      // 1 = the most likely token there (ties count ahead); 0 for the first token
  std::vector<Alternative> top;  // the best tokens at its position, best first
};

struct TextDelta {
  int32_t index = 0;  // the choice (0 unless the request asked for n > 1)
  std::string content;
  std::string reasoning;                 // chat with thinking
  std::vector<ChatToolCall> tool_calls;  // chat: complete tool calls, as soon as each is parsed
  std::vector<TextTokenLogprob> logprobs;
  // With TextRequest::prompt_logprobs >= 0: every prompt token (the first without a log-probability),
  // in a delta of its own before any output.
  std::shared_ptr<const std::vector<PromptTokenLogprob>> prompt_logprobs;
  bool empty() const {
    return content.empty() && reasoning.empty() && tool_calls.empty() && logprobs.empty() && !prompt_logprobs;
  }
};

struct TextFinish {
  // "stop", "length", "tool_calls", "cancelled" or "error". With n > 1: "error" (or "cancelled") when
  // a choice ended so, else the first choice's; each choice's own is in choice_reasons.
  std::string finish_reason;
  std::string error;          // for "error"
  RequestErrorCode error_code = RequestErrorCode::kInternal;  // for "error"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // all choices' together
  GenerationTimings timings;      // with n > 1: the choice that ended last
  std::vector<std::string> choice_reasons;  // each choice's finish_reason, by index (one for n = 1)
};

// A request validated, rendered and tokenized (TextService::prepare), ready to be queued.
struct PreparedText {
  TextRequest request;
  GenerationRequest generation;
  std::string turn_start;  // chat: the forced start of the model's turn (tool_choice)
};

// Called on the scheduler thread: on_delta zero or more times, then on_finish exactly once. Must not
// block.
class TextObserver {
 public:
  virtual ~TextObserver() = default;
  virtual void on_delta(const TextDelta& delta) = 0;
  virtual void on_finish(const TextFinish& finish) = 0;
  // With n > 1: choice `index` has ended (finish describes it alone; it ends with no error). Called
  // before on_finish for each choice that ends before the last, which on_finish reports.
  virtual void on_choice_finish(int32_t index, const TextFinish& finish) {
    (void)index;
    (void)finish;
  }
};

class TextService {
 public:
  TextService(Scheduler& scheduler, const Tokenizer& tokenizer, const ModelConfig& config, std::string model_name);

  // Validates, renders and tokenizes, then queues. Throws RequestError naming what is wrong
  // (kInvalidRequest for malformed messages / fields, kContextLength, kQueueFull, kUnavailable).
  // max_prompt_tokens > 0: a longer prompt is refused (kContextLength) naming that limit.
  uint64_t submit(const TextRequest& request, std::shared_ptr<TextObserver> observer, int64_t max_prompt_tokens = 0);
  // submit in two parts: prepare (the costly part: rendering, tokenizing; throws as submit; safe on
  // any thread), then the queueing.
  PreparedText prepare(const TextRequest& request, int64_t max_prompt_tokens = 0) const;
  uint64_t submit_prepared(PreparedText prepared, std::shared_ptr<TextObserver> observer);
  // Ends a request (every choice of one with n > 1); unknown ids are ignored.
  void cancel(uint64_t id);

  // The sampling defaults of the model's generation_config.json, given to requests that leave those
  // fields out (call before requests arrive).
  void set_generation_defaults(const GenerationDefaults& defaults) { defaults_ = defaults; }
  const GenerationDefaults& generation_defaults() const { return defaults_; }

  const std::string& model_name() const { return model_name_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  int64_t max_context() const;  // positions a sequence may hold (prompt + generated)
  SchedulerStats stats() const { return scheduler_.stats(); }
  // Prompt token count of a request (after chat rendering), for clients that want to check first.
  std::vector<int32_t> prompt_tokens(const TextRequest& request) const;

 private:
  Scheduler& scheduler_;
  const Tokenizer& tokenizer_;
  const ModelConfig& config_;
  std::string model_name_;
  GenerationDefaults defaults_;
  std::vector<std::string> missing_chat_tokens_;  // chat control tokens the tokenizer lacks (chat refused)
  // Every token's bytes for guided decoding, made at its first request.
  std::shared_ptr<const TokenTable> token_table() const;
  mutable std::once_flag token_table_once_;
  mutable std::shared_ptr<const TokenTable> token_table_;
  // Requests with n > 1 running: the id returned (the first choice's) -> every choice's id.
  std::mutex groups_mutex_;
  std::map<uint64_t, std::vector<uint64_t>> groups_;
};

}  // namespace shardlm
