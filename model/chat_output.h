// Reading what a Gemma 4 model wrote in its turn: splits the generated text (decoded with special
// tokens kept) into the reasoning ("<|channel>thought\n...<channel|>"), the visible content, and the
// tool calls "<|tool_call>call:NAME{key:value,...}<tool_call|>" with their arguments as a JSON object
// (the inverse of the chat template's format: strings between <|"|> tokens, true/false, numbers,
// nested {...} and [...]; None/null become null). Never throws on model output: a tool call that does
// not parse is left in the content as text. The text ends at the first end-of-turn marker
// (<turn|>, <eos>) or at <|tool_response> (the stop after a tool call); what follows is ignored.
// Content is trimmed of ASCII whitespace at both ends; reasoning is kept exactly as written.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

struct ChatToolCall {
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();  // always an object
};

struct ChatOutput {
  std::string reasoning;  // texts of all thought blocks, concatenated
  std::string content;
  std::vector<ChatToolCall> tool_calls;
  bool ended = false;  // an end-of-turn (or tool-response) marker was seen
};

// Parses a complete model turn.
ChatOutput parse_chat_output(std::string_view text);

// Parses the text between <|tool_call> and <tool_call|>: "call:NAME{...}". nullopt when malformed.
std::optional<ChatToolCall> parse_tool_call(std::string_view body);

// Incremental variant for streaming: feed the generated text piece by piece (pieces may split
// markers anywhere); each call returns what became certain. Text that may still turn out to be part
// of a marker, a tool call or trailing whitespace is held back until it is decided. Concatenating
// all deltas (feed... then finish) gives exactly parse_chat_output of the whole text.
class ChatOutputStream {
 public:
  struct Delta {
    std::string reasoning;
    std::string content;
    std::vector<ChatToolCall> tool_calls;
    bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
  };

  Delta feed(std::string_view text);
  // End of generation: releases what was held back (an unfinished tool call becomes content).
  Delta finish();
  bool ended() const { return state_ == State::kEnded; }

 private:
  enum class State { kContent, kChannelHeader, kReasoning, kToolCall, kEnded };

  void run(Delta& delta, bool final);
  void emit_content(Delta& delta, std::string_view text);

  State state_ = State::kContent;
  std::string pending_;      // text received but not yet decided
  std::string held_space_;   // whitespace after the content emitted so far (dropped if nothing follows)
  bool content_started_ = false;
};

}  // namespace shardlm
