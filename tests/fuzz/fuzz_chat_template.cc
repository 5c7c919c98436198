// Fuzz target: render_chat and normalize_chat_messages on arbitrary JSON. The input is a JSON
// document: a messages array, or an object {"messages": [...], "tools": [...], and optionally the
// booleans "enable_thinking", "add_generation_prompt", "empty_thought_block", "fold_tool_messages"}.
// Both functions must either throw shardlm::Error (naming the message and field) or succeed; a
// conversation that renders must also normalise. Anything else (a json exception escaping, another
// exception, a crash, a sanitizer report) is a bug.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/chat_template.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void read_flag(const nlohmann::json& doc, const char* key, bool& flag) {
  auto it = doc.find(key);
  if (it != doc.end() && it->is_boolean()) flag = it->get<bool>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  using nlohmann::json;
  json doc = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  // Moved, not copied: a copy of a deeply nested document would overflow the stack here rather than
  // in the code under test.
  json messages;
  ChatOptions options;
  if (doc.is_object()) {
    if (auto it = doc.find("messages"); it != doc.end()) messages = std::move(*it);
    if (auto it = doc.find("tools"); it != doc.end()) options.tools = std::move(*it);
    read_flag(doc, "enable_thinking", options.enable_thinking);
    read_flag(doc, "add_generation_prompt", options.add_generation_prompt);
    read_flag(doc, "empty_thought_block", options.empty_thought_block);
    read_flag(doc, "fold_tool_messages", options.fold_tool_messages);
  } else {
    messages = std::move(doc);
  }
  bool rendered = false;
  try {
    (void)render_chat(messages, options);
    rendered = true;
  } catch (const Error&) {
  }
  try {
    const json normalized = normalize_chat_messages(messages, options.fold_tool_messages);
    FUZZ_CHECK(normalized.is_array());
  } catch (const Error&) {
    FUZZ_CHECK(!rendered);
  }
  return 0;
}
