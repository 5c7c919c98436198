// Parsing of OpenAI API request bodies (POST /v1/chat/completions and /v1/completions) into a
// TextRequest for the text service. Every malformed or unsupported field is refused with a 400
// ApiException naming the field. Supported:
//   model (required), messages (chat; roles system/developer/user/assistant/tool, text content
//   parts), prompt (completions; a string or an array of one string), max_completion_tokens /
//   max_tokens (>= 1), temperature, top_p, top_k (-1 = off), min_p, seed, presence_penalty and
//   frequency_penalty ([-2, 2]), repetition_penalty (vLLM's, > 0), logit_bias (token id strings to
//   [-100, 100]), stop (string or array of
//   at most 16), n (1..128 choices; seed + index each), stream, stream_options.include_usage, logprobs (chat: bool with
//   top_logprobs 0..20; completions: int 0..5), tools, tool_choice, chat_template_kwargs
//   .enable_thinking, reasoning_effort, ignore_eos and stop_token_ids (vLLM extensions),
//   response_format {"type":"text"}, add_special_tokens (completions: false leaves out the BOS),
//   min_tokens, include_stop_str_in_output, add_generation_prompt and continue_final_message
//   (vLLM's), prompt_logprobs (vLLM's, 0..20), echo (completions: the prompt before the output, its
//   tokens in the log-probabilities when asked for; chat, vLLM's: the last message, when it is the
//   assistant's, before each choice's content), guided decoding (response_format, guided_json,
//   guided_choice, structured_outputs), best_of (completions, not streamed). Refused: guided_regex,
//   guided_grammar.
// tool_choice: "none" removes the tools from the prompt; "auto" (or absent) keeps them; "required"
// keeps them and makes the model's turn begin with a tool call; a named function keeps only that
// tool's declaration and makes the turn begin with a call of it (TextRequest::tool_choice).
// Thinking: chat_template_kwargs.enable_thinking when given, else reasoning_effort (any value but
// "none" turns thinking on); off by default.
// Accepted and ignored: user, metadata, store, service_tier, parallel_tool_calls.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/text_service.h"

namespace shardlm::http {

enum class Endpoint { kChat, kCompletions };

struct OpenAIRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool seed_given = false;     // false: the caller should draw a random seed
  // completions: the prompt begins each choice's text (and its logprobs); chat: the last message's
  // content, when the assistant's, begins each choice's content
  bool echo = false;
  bool prompt_logprobs = false;  // vLLM's prompt_logprobs was asked for (text.prompt_logprobs its count)
  // completions' best_of > n: text.n = best_of choices are generated and the best_of_returned (the
  // request's n) with the highest mean log-probability per token are returned, best first
  int32_t best_of_returned = 0;
  bool logprobs_hidden = false;  // text.top_logprobs set only to rank best_of's choices: not returned
  TextRequest text;            // text.top_logprobs >= 0 when log-probabilities were asked for
};

// Parses a request body: must be a JSON object (400 naming the parse error otherwise).
nlohmann::json parse_json_body(std::string_view body);

OpenAIRequest parse_chat_request(const nlohmann::json& body);
OpenAIRequest parse_completion_request(const nlohmann::json& body);

// POST /tokenize (vLLM's extension): either prompt (a text; add_special_tokens, default true, begins
// it with the BOS token) or messages (a conversation as in chat completions, with tools,
// tool_choice, chat_template_kwargs.enable_thinking / reasoning_effort and add_generation_prompt,
// default true: the tokens a chat completion of the same body would see);
// model optional (the caller checks it when given); return_token_strs.
struct TokenizeRequest {
  std::string model;  // "" when absent
  TextRequest text;
  bool return_token_strs = false;
};
TokenizeRequest parse_tokenize_request(const nlohmann::json& body);

// POST /detokenize: tokens (an array of token ids), model optional.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};
DetokenizeRequest parse_detokenize_request(const nlohmann::json& body);

}  // namespace shardlm::http
