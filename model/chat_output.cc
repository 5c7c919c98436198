// Splitting a generated Gemma 4 model turn into reasoning, content and tool calls (see chat_output.h).
#include "model/chat_output.h"

#include <array>
#include <charconv>
#include <cstdint>

namespace shardlm {
namespace {

using nlohmann::json;

constexpr std::string_view kQuote = "<|\"|>";
constexpr std::string_view kChannelOpen = "<|channel>";
constexpr std::string_view kChannelClose = "<channel|>";
constexpr std::string_view kToolCallOpen = "<|tool_call>";
constexpr std::string_view kToolCallClose = "<tool_call|>";
constexpr std::string_view kTurnEnd = "<turn|>";
constexpr std::string_view kEos = "<eos>";
constexpr std::string_view kToolResponse = "<|tool_response>";
constexpr size_t kMaxChannelName = 32;
constexpr int kMaxDepth = 64;

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The earliest of `markers` in `text`: {position, marker index}; position npos when none occurs.
template <size_t N>
std::pair<size_t, size_t> find_first(std::string_view text, const std::array<std::string_view, N>& markers) {
  std::pair<size_t, size_t> best{std::string_view::npos, 0};
  for (size_t k = 0; k < N; ++k) {
    const size_t pos = text.find(markers[k]);
    if (pos < best.first) best = {pos, k};
  }
  return best;
}

// Length of the longest end of `text` that is the beginning of one of `markers` (it may become a
// marker when more text arrives).
template <size_t N>
size_t partial_marker(std::string_view text, const std::array<std::string_view, N>& markers) {
  size_t best = 0;
  for (std::string_view m : markers) {
    for (size_t k = std::min(m.size() - 1, text.size()); k > best; --k) {
      if (text.substr(text.size() - k) == m.substr(0, k)) {
        best = k;
        break;
      }
    }
  }
  return best;
}

// Recursive-descent reader of the template's argument syntax.
class ArgumentReader {
 public:
  explicit ArgumentReader(std::string_view text) : s_(text) {}

  bool object(json& out) {
    if (!eat('{') || ++depth_ > kMaxDepth) return false;
    out = json::object();
    skip_space();
    if (eat('}')) return --depth_, true;
    while (true) {
      skip_space();
      std::string key;
      if (!read_key(key)) return false;
      json value;
      if (!this->value(value)) return false;
      out[key] = std::move(value);
      skip_space();
      if (eat(',')) continue;
      if (eat('}')) return --depth_, true;
      return false;
    }
  }

  bool at_end() {
    skip_space();
    return pos_ == s_.size();
  }

 private:
  bool value(json& out) {
    skip_space();
    if (pos_ >= s_.size()) return false;
    if (s_.substr(pos_, kQuote.size()) == kQuote) {
      std::string text;
      if (!read_quoted(text)) return false;
      out = std::move(text);
      return true;
    }
    if (s_[pos_] == '{') return object(out);
    if (s_[pos_] == '[') return array(out);
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '}' && s_[pos_] != ']') ++pos_;
    return scalar(trim(s_.substr(start, pos_ - start)), out);
  }

  bool array(json& out) {
    if (!eat('[') || ++depth_ > kMaxDepth) return false;
    out = json::array();
    skip_space();
    if (eat(']')) return --depth_, true;
    while (true) {
      json element;
      if (!value(element)) return false;
      out.push_back(std::move(element));
      skip_space();
      if (eat(',')) continue;
      if (eat(']')) return --depth_, true;
      return false;
    }
  }

  static bool scalar(std::string_view token, json& out) {
    if (token == "true" || token == "True") return out = true, true;
    if (token == "false" || token == "False") return out = false, true;
    if (token == "null" || token == "None") return out = nullptr, true;
    const size_t digits_at = !token.empty() && token[0] == '-' ? 1 : 0;
    if (token.size() <= digits_at || token[digits_at] < '0' || token[digits_at] > '9') return false;
    const char* first = token.data();
    const char* last = token.data() + token.size();
    bool integral = true;
    for (char c : token.substr(digits_at)) integral = integral && c >= '0' && c <= '9';
    if (integral) {
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) return out = i, true;
      uint64_t u = 0;
      r = std::from_chars(first, last, u);
      if (r.ec == std::errc() && r.ptr == last) return out = u, true;
    }
    for (char c : token.substr(digits_at)) {
      if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) return false;
    }
    double d = 0;
    auto r = std::from_chars(first, last, d);
    if (r.ec != std::errc() || r.ptr != last) return false;
    out = d;
    return true;
  }

  bool read_quoted(std::string& out) {
    const size_t begin = pos_ + kQuote.size();
    const size_t end = s_.find(kQuote, begin);
    if (end == std::string_view::npos) return false;
    out.assign(s_.substr(begin, end - begin));
    pos_ = end + kQuote.size();
    return true;
  }

  bool read_key(std::string& key) {
    if (s_.substr(pos_, kQuote.size()) == kQuote) {
      if (!read_quoted(key)) return false;
      skip_space();
      return eat(':');
    }
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ':') {
      const char c = s_[pos_];
      if (c == '{' || c == '}' || c == '[' || c == ']' || c == ',') return false;
      ++pos_;
    }
    if (pos_ >= s_.size()) return false;
    key.assign(trim(s_.substr(start, pos_ - start)));
    ++pos_;  // ':'
    return !key.empty();
  }

  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void skip_space() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::optional<ChatToolCall> parse_tool_call(std::string_view body) {
  body = trim(body);
  constexpr std::string_view kCall = "call:";
  if (body.substr(0, kCall.size()) != kCall) return std::nullopt;
  body.remove_prefix(kCall.size());
  const size_t brace = body.find('{');
  if (brace == std::string_view::npos) return std::nullopt;
  const std::string_view name = trim(body.substr(0, brace));
  if (name.empty()) return std::nullopt;
  for (char c : name) {
    if (is_space(c) || c == '<' || c == '>' || c == '}' || c == ':' || c == ',') return std::nullopt;
  }
  ChatToolCall call;
  call.name.assign(name);
  ArgumentReader reader(body.substr(brace));
  if (!reader.object(call.arguments) || !reader.at_end()) return std::nullopt;
  return call;
}

void ChatOutputStream::emit_content(Delta& delta, std::string_view text) {
  if (!content_started_) {
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    if (text.empty()) return;
    content_started_ = true;
  }
  size_t last = text.size();
  while (last > 0 && is_space(text[last - 1])) --last;
  if (last == 0) {
    held_space_ += text;
    return;
  }
  delta.content += held_space_;
  delta.content += text.substr(0, last);
  held_space_.assign(text.substr(last));
}

void ChatOutputStream::run(Delta& delta, bool final) {
  static constexpr std::array<std::string_view, 5> kContentMarkers = {kChannelOpen, kToolCallOpen, kTurnEnd, kEos,
                                                                      kToolResponse};
  static constexpr std::array<std::string_view, 4> kReasoningMarkers = {kChannelClose, kTurnEnd, kEos, kToolResponse};
  static constexpr std::array<std::string_view, 4> kToolCallMarkers = {kToolCallClose, kTurnEnd, kEos, kToolResponse};
  while (true) {
    const std::string_view text = pending_;
    switch (state_) {
      case State::kEnded:
        pending_.clear();
        return;
      case State::kContent: {
        const auto [pos, which] = find_first(text, kContentMarkers);
        if (pos == std::string_view::npos) {
          const size_t hold = final ? 0 : partial_marker(text, kContentMarkers);
          emit_content(delta, text.substr(0, text.size() - hold));
          pending_.erase(0, text.size() - hold);
          return;
        }
        emit_content(delta, text.substr(0, pos));
        pending_.erase(0, pos + kContentMarkers[which].size());
        state_ = which == 0 ? State::kChannelHeader : which == 1 ? State::kToolCall : State::kEnded;
        break;
      }
      case State::kChannelHeader: {
        // "<|channel>" is followed by a channel name line ("thought\n"). A name is letters and '_'
        // (at most kMaxChannelName); anything else means there is no name line and all is reasoning.
        size_t n = 0;
        while (n < text.size() && n < kMaxChannelName && is_name_char(text[n])) ++n;
        const std::string_view rest = text.substr(n);
        if (rest.empty() && n < kMaxChannelName) {
          if (!final) return;  // the name may go on
          pending_.clear();    // only a name: an empty block
          return;
        }
        if (!rest.empty() && rest[0] == '\n') {
          pending_.erase(0, n + 1);
          state_ = State::kReasoning;
        } else if (rest.substr(0, kChannelClose.size()) == kChannelClose) {
          pending_.erase(0, n + kChannelClose.size());  // "<|channel>thought<channel|>": no text
          state_ = State::kContent;
        } else if (!final && rest.size() < kChannelClose.size() && kChannelClose.substr(0, rest.size()) == rest) {
          return;  // may become "<channel|>"
        } else {
          state_ = State::kReasoning;  // no name line: keep everything as reasoning
        }
        break;
      }
      case State::kReasoning: {
        const auto [pos, which] = find_first(text, kReasoningMarkers);
        if (pos == std::string_view::npos) {
          const size_t hold = final ? 0 : partial_marker(text, kReasoningMarkers);
          delta.reasoning += text.substr(0, text.size() - hold);
          pending_.erase(0, text.size() - hold);
          return;
        }
        delta.reasoning += text.substr(0, pos);
        pending_.erase(0, pos + kReasoningMarkers[which].size());
        state_ = which == 0 ? State::kContent : State::kEnded;
        break;
      }
      case State::kToolCall: {
        const auto [pos, which] = find_first(text, kToolCallMarkers);
        if (pos == std::string_view::npos) {
          if (!final) return;  // hold the whole call until it closes
          emit_content(delta, std::string(kToolCallOpen) + pending_);
          pending_.clear();
          state_ = State::kContent;
          return;
        }
        const std::string_view body = text.substr(0, pos);
        if (which == 0) {
          if (auto call = parse_tool_call(body)) {
            delta.tool_calls.push_back(std::move(*call));
          } else {
            emit_content(delta, std::string(kToolCallOpen) + std::string(body) + std::string(kToolCallClose));
          }
          state_ = State::kContent;
        } else {
          emit_content(delta, std::string(kToolCallOpen) + std::string(body));
          state_ = State::kEnded;
        }
        pending_.erase(0, pos + kToolCallMarkers[which].size());
        break;
      }
    }
  }
}

ChatOutputStream::Delta ChatOutputStream::feed(std::string_view text) {
  Delta delta;
  if (state_ == State::kEnded) return delta;
  pending_ += text;
  run(delta, false);
  return delta;
}

ChatOutputStream::Delta ChatOutputStream::finish() {
  Delta delta;
  run(delta, true);
  held_space_.clear();
  return delta;
}

ChatOutput parse_chat_output(std::string_view text) {
  ChatOutputStream stream;
  ChatOutputStream::Delta a = stream.feed(text);
  ChatOutputStream::Delta b = stream.finish();
  ChatOutput out;
  out.reasoning = a.reasoning + b.reasoning;
  out.content = a.content + b.content;
  out.tool_calls = std::move(a.tool_calls);
  for (auto& call : b.tool_calls) out.tool_calls.push_back(std::move(call));
  out.ended = stream.ended();
  return out;
}

}  // namespace shardlm
