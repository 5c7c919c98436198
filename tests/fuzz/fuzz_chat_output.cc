// Fuzz target: reading a model's turn. parse_chat_output, parse_tool_call and ChatOutputStream take
// arbitrary text (model output is not trusted to be well formed) and never throw. Every tool call's
// arguments are a JSON object, and the stream fed in pieces (cut where the input's first byte says)
// gives exactly parse_chat_output of the whole text. Anything else (any exception, a crash, a
// sanitizer report, a stream that differs from the whole-text parse) is a bug.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/chat_output.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

bool same_calls(const std::vector<shardlm::ChatToolCall>& a, const std::vector<shardlm::ChatToolCall>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].arguments != b[i].arguments) return false;
  }
  return true;
}

void append(shardlm::ChatOutput& out, shardlm::ChatOutputStream::Delta&& d) {
  out.reasoning += d.reasoning;
  out.content += d.content;
  for (auto& c : d.tool_calls) out.tool_calls.push_back(std::move(c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  if (size == 0) return 0;
  const uint8_t cut = data[0];
  const std::string_view text = fuzz::as_text(data + 1, size - 1);

  const ChatOutput whole = parse_chat_output(text);
  for (const ChatToolCall& c : whole.tool_calls) {
    FUZZ_CHECK(c.arguments.is_object());
  }
  if (const auto call = parse_tool_call(text)) FUZZ_CHECK(call->arguments.is_object());

  // Pieces of 1..8 bytes following the bits of `cut` (0: the whole text at once).
  ChatOutputStream stream;
  ChatOutput streamed;
  std::string_view rest = text;
  size_t piece = 0;
  while (!rest.empty()) {
    const size_t n = cut == 0 ? rest.size() : std::min(rest.size(), size_t{1} + ((cut >> (piece++ % 6)) & 7));
    append(streamed, stream.feed(rest.substr(0, n)));
    rest.remove_prefix(n);
  }
  append(streamed, stream.finish());
  streamed.ended = stream.ended();
  FUZZ_CHECK(streamed.reasoning == whole.reasoning);
  FUZZ_CHECK(streamed.content == whole.content);
  FUZZ_CHECK(same_calls(streamed.tool_calls, whole.tool_calls));
  FUZZ_CHECK(streamed.ended == whole.ended);
  return 0;
}
