// OpenAI response bodies built from what the text service reports: the complete response of a
// non-streamed request (chat.completion / text_completion), the server-sent events of a streamed one
// (chat.completion.chunk / text_completion chunks, "data: [DONE]" at the end, an optional usage
// chunk with empty choices), log-probabilities in each endpoint's format, and /v1/models.
// JSON is written with invalid UTF-8 replaced by U+FFFD (a token may end inside a character; its
// exact bytes are in the log-probability entry's "bytes").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/http/api_error.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/text_service.h"

namespace shardlm::http {

// Compact JSON text; invalid UTF-8 in strings becomes U+FFFD.
std::string dump_json(const nlohmann::json& value);
// One server-sent event: "data: <json>\n\n".
std::string sse_event(const nlohmann::json& value);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// "<prefix><24 random letters and digits>", e.g. new_id("chatcmpl-"), new_id("call_").
std::string new_id(const std::string& prefix);
int64_t unix_time();

struct ResponseMeta {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  bool logprobs = false;       // the request asked for log-probabilities
  bool include_usage = false;  // stream: add the usage chunk
  int32_t n = 1;               // choices generated
  int32_t returned = 0;        // 0: every choice returned; else (best_of) this many, the best by mean token log-probability
  int32_t top_logprobs = -1;   // the request's (text.top_logprobs)
  bool echo = false;           // each choice's text begins with echo_text
  std::string echo_text;
  bool echo_logprobs = false;  // completions: echo_text comes with the prompt's log-probabilities
  bool prompt_logprobs = false;  // add vLLM's prompt_logprobs (completions: per choice; chat: top level)
};
// A fresh id and the current time for a parsed request.
ResponseMeta make_meta(const OpenAIRequest& request);

nlohmann::json usage_json(const TextFinish& finish);
// OpenAI tool call: {id: "call_...", type: "function", function: {name, arguments: "<json text>"}}.
nlohmann::json tool_call_json(const ChatToolCall& call);
// vLLM's prompt_logprobs: [null, {"<token id>": {logprob, rank, decoded_token}, ...}, ...], one entry
// per prompt token holding it and the best tokens at its position.
nlohmann::json prompt_logprobs_json(const std::vector<PromptTokenLogprob>& prompt);
// Chat: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}].
nlohmann::json chat_logprobs_content(const std::vector<TextTokenLogprob>& tokens);

// The error a finish reason other than stop / length / tool_calls stands for ("error" -> 500,
// "cancelled" -> 503).
ApiError finish_error(const TextFinish& finish);
bool finish_is_error(const TextFinish& finish);

// Collects the deltas of a non-streamed request and builds its response (one choice per index).
class CompletionBuilder {
 public:
  explicit CompletionBuilder(ResponseMeta meta);
  void add(const TextDelta& delta);
  // The response body; the finish must not be an error (see finish_is_error).
  nlohmann::json finish(const TextFinish& finish) const;

 private:
  struct Choice {
    std::shared_ptr<const std::vector<PromptTokenLogprob>> prompt;
    double logprob_sum = 0.0;  // of the generated tokens (not an echo's)
    int64_t tokens = 0;
    std::string content;
    std::string reasoning;
    std::vector<ChatToolCall> tool_calls;
    std::vector<TextTokenLogprob> logprobs;
    std::vector<int64_t> text_offsets;  // completions: each token's place in the text, in characters
    int64_t text_chars = 0;             // characters of content so far
  };
  // Choice `source` as the response's choice `index`.
  nlohmann::json choice_json(size_t source, size_t index, const TextFinish& finish) const;
  void add_text(Choice& c, const TextDelta& delta);
  ResponseMeta meta_;
  std::vector<Choice> choices_;
};

// Turns the deltas of a streamed request into server-sent events.
class ChunkStream {
 public:
  explicit ChunkStream(ResponseMeta meta);
  // The first events, sent before any token (chat: the assistant role with empty content, per choice).
  std::string start();
  // Events for one delta (empty when the delta carries nothing to show).
  std::string delta(const TextDelta& delta);
  // With n > 1: the final chunk of choice `index`, which has ended (TextObserver::on_choice_finish).
  std::string choice_finish(int32_t index, const TextFinish& finish);
  // The final chunk with finish_reason of each choice not yet ended, the usage chunk when asked for,
  // and [DONE]; for an error finish the error event {"error": {...}} instead (the stream then ends
  // without [DONE]).
  std::string finish(const TextFinish& finish);

 private:
  struct Choice {
    int tool_calls = 0;       // tool calls sent so far (their index)
    int64_t text_chars = 0;   // completions log-probabilities: characters of text sent so far
    bool ended = false;       // its final chunk is sent
  };
  nlohmann::json chunk(nlohmann::json choice) const;
  nlohmann::json text_choice(const TextDelta& d, Choice& c);
  std::string final_chunk(size_t index, const std::string& reason);
  Choice* choice_at(int32_t index);  // null for an index outside the request's choices
  ResponseMeta meta_;
  std::vector<Choice> choices_;
};

// GET /v1/models: {"object": "list", "data": [model_json(...)]}.
nlohmann::json model_json(const std::string& model, int64_t created, int64_t max_context);
nlohmann::json models_json(const std::string& model, int64_t created, int64_t max_context);

}  // namespace shardlm::http
