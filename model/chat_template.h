// The Gemma 4 chat prompt: turns an OpenAI-style conversation (messages, tool declarations) into the
// exact prompt text that Google's official Jinja chat template (gemma-4-31B-it chat_template.jinja)
// produces, without a Jinja engine. The reference semantics are Python Jinja2 as used by Hugging Face
// transformers' apply_chat_template (bos_token "<bos>"): dictsort is case-insensitive, None prints
// "None", floats print like Python's repr ("1.0", "1e-05"), `| trim` strips like str.strip().
//
// Before rendering, three OpenAI API conventions the template does not understand are normalised
// (normalize_chat_messages below); everything after that is the template, byte for byte.
//
// Known differences from Python Jinja2, all for inputs that do not occur in practice: keys that differ
// only in letter case sort in byte order instead of document order (nlohmann::json objects do not
// keep document order; the same holds for Python-repr'd dicts); `| upper` and dictsort's case folding
// are ASCII-only; the Python repr of a string escapes only ASCII / Latin-1 control characters.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

namespace shardlm {

struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = false;
  // The 31B / 26B templates append the empty thought block "<|channel>thought\n<channel|>" after the
  // generation prompt when thinking is off; the E2B / E4B templates do not.
  bool empty_thought_block = true;
  // OpenAI-style tool list: [{type: "function", function: {name, description, parameters}}].
  nlohmann::json tools = nullptr;
  // Fold OpenAI `tool` messages into the template's tool-response form (see normalize_chat_messages).
  // When false, a `tool` message is rendered as the template renders any role: "<|turn>tool\n...".
  bool fold_tool_messages = true;
};

// Renders the prompt. `messages` is an OpenAI-style JSON array; each message is an object:
//   role:              "system" | "developer" | "user" | "assistant" | "tool"
//   content:           string, array of {type: "text", text: string}, or null/absent
//                      (a tool message may also hold a JSON object: its structured result)
//   tool_calls:        assistant only: [{id, type: "function", function: {name, arguments}}];
//                      arguments is a JSON object or a string holding one (or null: no arguments)
//   tool_call_id, name: tool messages
//   reasoning_content: assistant, optional string; the template shows it only on tool-call messages
//                      after the last user message
//   tool_responses:    the template's own form of tool results, [{name, response}] (optional)
// The first message's system/developer role becomes the system turn; assistant becomes "model";
// other roles keep their name, as in the template. Throws Error naming the message index and field
// for malformed input (unknown role, content of the wrong type, arguments that are not a JSON object,
// a tool message that answers no tool call, malformed tool declarations, ...).
std::string render_chat(const nlohmann::json& messages, const ChatOptions& options);

// continue_final_message (transformers' apply_chat_template): `rendered` (rendered without the
// generation prompt) cut right after the text of the last message, so that the model continues it.
// The text is the message's content, or the last text part of an array of parts; the template trims
// it, so the cut follows transformers: after the last occurrence of the stripped text before the end
// of its turn (transformers' search would also look inside the closing marker), keeping trailing
// spaces where the template kept them. Throws Error when the last message is not the
// assistant's or holds no text, or when the rendered prompt does not contain it.
std::string continue_final_message(const std::string& rendered, const nlohmann::json& messages);

// The control tokens every Gemma 4 chat prompt holds (<bos>, <|turn>, <turn|>, <|channel>,
// <channel|>) that `tokenizer` does not have as single tokens: a tokenizer of another model family
// (Gemma 3's <start_of_turn>) would read a rendered chat as plain text. Empty when all are there.
std::vector<std::string> missing_chat_tokens(const Tokenizer& tokenizer);

// The OpenAI-to-template normalisation render_chat applies first (exposed for tests and tools):
//  1. tool_calls[].function.arguments given as a string is parsed as JSON and must be an object
//     (an empty or all-blank string means no arguments: {}).
//  2. With fold_tool_messages, each run of `tool` messages is removed and appended, in order, to the
//     `tool_responses` of the assistant message with tool_calls just before the run, as
//     {name, response}: name is the function name of the tool call whose id equals tool_call_id,
//     else the message's `name`; response is the content: a string as is, text parts joined, a JSON
//     object as is. (This is how Google's later Gemma 4 templates treat tool messages.)
//  3. A leading system/developer message whose content is an array of text parts gets the parts'
//     trimmed texts joined (the template would print the Python repr of the array).
// Also validates every message as render_chat does; the result is still a messages array.
nlohmann::json normalize_chat_messages(const nlohmann::json& messages, bool fold_tool_messages = true);

}  // namespace shardlm
