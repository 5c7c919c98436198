#include "model/tokenizer_pipeline.h"

#include <algorithm>
#include <functional>

#include "common/error.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_utf8.h"

namespace shardlm::tokenizer_detail {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t found = text.find(from, pos);
    if (found == std::string_view::npos) break;
    out.append(text.data() + pos, found - pos);
    out.append(to);
    pos = found + from.size();
  }
  out.append(text.data() + pos, text.size() - pos);
  return out;
}

int byte_token_value(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

namespace {

std::string nonempty_literal_pattern(const json& obj, std::string_view path) {
  std::string pattern = literal_pattern(obj, "pattern", path);
  if (pattern.empty()) fail("field '{}' must not be empty", json_path(path, "pattern"));
  return pattern;
}

PrependScheme parse_prepend_scheme(const json& obj, std::string_view path) {
  if (const json* scheme = optional_field(obj, "prepend_scheme")) {
    const std::string s = optional_string(obj, "prepend_scheme", path, "always");
    if (s == "always") return PrependScheme::kAlways;
    if (s == "first") return PrependScheme::kFirst;
    if (s == "never") return PrependScheme::kNever;
    fail("field '{}' = {}: expected \"always\", \"first\" or \"never\"", json_path(path, "prepend_scheme"),
         scheme->dump());
  }
  // Older files: add_prefix_space.
  return optional_bool(obj, "add_prefix_space", path, true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

// One UTF-8 character (the Strip decoder's `content`).
std::string single_character(const json& obj, const char* key, std::string_view path) {
  std::string s = require_string(obj, key, path);
  if (s.empty() || utf8_char_length(s, 0) != s.size()) {
    fail("field '{}' must be exactly one character, not '{}'", json_path(path, key), s);
  }
  return s;
}

size_t count_field(const json& obj, const char* key, std::string_view path) {
  const int64_t v = optional_int(obj, key, path, 0);
  if (v < 0 || v > (1 << 20)) fail("field '{}' = {} is out of range", json_path(path, key), v);
  return static_cast<size_t>(v);
}

// Removes up to `start` leading and `stop` trailing copies of `content` from text.
void strip_copies(std::string& text, std::string_view content, size_t start, size_t stop) {
  size_t begin = 0;
  for (size_t i = 0; i < start && text.compare(begin, content.size(), content) == 0; ++i) begin += content.size();
  size_t end = text.size();
  for (size_t i = 0; i < stop && end >= begin + content.size() &&
                     text.compare(end - content.size(), content.size(), content) == 0;
       ++i) {
    end -= content.size();
  }
  text = text.substr(begin, end - begin);
}

void parse_normalizer_into(const json& value, std::string_view path, std::vector<NormalizerStep>& steps) {
  expect_object(value, path);
  const std::string type = require_string(value, "type", path);
  if (type == "Sequence") {
    const std::string list_path = json_path(path, "normalizers");
    const json& list = require_field(value, "normalizers", path);
    expect_array(list, list_path);
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_null()) continue;
      parse_normalizer_into(list[i], json_path(list_path, i), steps);
    }
  } else if (type == "Replace") {
    steps.push_back({NormalizerStep::Kind::kReplace, nonempty_literal_pattern(value, path),
                     require_string(value, "content", path)});
  } else if (type == "Prepend") {
    steps.push_back({NormalizerStep::Kind::kPrepend, "", require_string(value, "prepend", path)});
  } else {
    fail("field '{}' = '{}': unsupported normalizer type", json_path(path, "type"), type);
  }
}

SplitBehavior parse_split_behavior(const json& value, std::string_view path) {
  const std::string b = require_string(value, "behavior", path);
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail("field '{}' = '{}': unknown split behavior", json_path(path, "behavior"), b);
}

void parse_pre_tokenizer_into(const json& value, std::string_view path, std::vector<PreTokenizerStep>& steps) {
  expect_object(value, path);
  const std::string type = require_string(value, "type", path);
  if (type == "Sequence") {
    const std::string list_path = json_path(path, "pretokenizers");
    const json& list = require_field(value, "pretokenizers", path);
    expect_array(list, list_path);
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_null()) continue;
      parse_pre_tokenizer_into(list[i], json_path(list_path, i), steps);
    }
  } else if (type == "Split") {
    if (optional_bool(value, "invert", path, false)) {
      fail("field '{}' = true: inverted Split pre-tokenizers are not supported", json_path(path, "invert"));
    }
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kSplit;
    step.pattern = nonempty_literal_pattern(value, path);
    step.behavior = parse_split_behavior(value, path);
    steps.push_back(std::move(step));
  } else if (type == "Metaspace") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    step.replacement = optional_string(value, "replacement", path, "\xE2\x96\x81");
    if (step.replacement.empty() || utf8_char_length(step.replacement, 0) != step.replacement.size()) {
      fail("field '{}' must be exactly one character", json_path(path, "replacement"));
    }
    step.prepend = parse_prepend_scheme(value, path);
    step.split = optional_bool(value, "split", path, true);
    steps.push_back(std::move(step));
  } else {
    fail("field '{}' = '{}': unsupported pre-tokenizer type", json_path(path, "type"), type);
  }
}

}  // namespace

// --- normalizer -------------------------------------------------------------------------------

Normalizer Normalizer::parse(const json* value, std::string_view path) {
  Normalizer n;
  if (value && !value->is_null()) parse_normalizer_into(*value, path, n.steps_);
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const NormalizerStep& step : steps_) {
    if (step.kind == NormalizerStep::Kind::kReplace) {
      if (s.find(step.pattern) != std::string::npos) s = replace_all(s, step.pattern, step.content);
    } else if (!s.empty()) {
      s.insert(0, step.content);
    }
  }
  return s;
}

// --- pre-tokenizer ----------------------------------------------------------------------------

void split_on_literal(std::string_view text, std::string_view delimiter, SplitBehavior behavior,
                      std::vector<std::string>& out) {
  struct Piece {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Piece> pieces;
  size_t pos = 0;
  while (true) {
    const size_t found = text.find(delimiter, pos);
    if (found == std::string_view::npos) break;
    if (found > pos) pieces.push_back({pos, found, false});
    pieces.push_back({found, found + delimiter.size(), true});
    pos = found + delimiter.size();
  }
  if (pos < text.size()) pieces.push_back({pos, text.size(), false});

  // Combine pieces following the behavior (the rules of Hugging Face's SplitDelimiterBehavior).
  std::vector<std::pair<size_t, size_t>> ranges;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Piece& p : pieces)
        if (!p.is_match) ranges.emplace_back(p.begin, p.end);
      break;
    case SplitBehavior::kIsolated:
      for (const Piece& p : pieces) ranges.emplace_back(p.begin, p.end);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Piece& p : pieces) {
        if (p.is_match && !previous_match && !ranges.empty()) ranges.back().second = p.end;
        else ranges.emplace_back(p.begin, p.end);
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->is_match && !previous_match && !ranges.empty()) ranges.back().first = it->begin;
        else ranges.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (i > 0 && pieces[i].is_match == previous_match) ranges.back().second = pieces[i].end;
        else ranges.emplace_back(pieces[i].begin, pieces[i].end);
        previous_match = pieces[i].is_match;
      }
      break;
  }
  for (const auto& [b, e] : ranges)
    if (e > b) out.emplace_back(text.substr(b, e - b));
}

PreTokenizer PreTokenizer::parse(const json* value, std::string_view path) {
  PreTokenizer p;
  if (value && !value->is_null()) parse_pre_tokenizer_into(*value, path, p.steps_);
  return p;
}

std::vector<std::string> PreTokenizer::apply(std::string text, bool at_text_start) const {
  std::vector<std::string> words;
  if (text.empty()) return words;
  words.push_back(std::move(text));
  for (const PreTokenizerStep& step : steps_) {
    std::vector<std::string> next;
    for (size_t i = 0; i < words.size(); ++i) {
      if (step.kind == PreTokenizerStep::Kind::kSplit) {
        split_on_literal(words[i], step.pattern, step.behavior, next);
        continue;
      }
      std::string w = replace_all(words[i], " ", step.replacement);
      const bool prepend = step.prepend == PrependScheme::kAlways ||
                           (step.prepend == PrependScheme::kFirst && at_text_start && i == 0);
      if (prepend && w.compare(0, step.replacement.size(), step.replacement) != 0) w.insert(0, step.replacement);
      if (step.split) split_on_literal(w, step.replacement, SplitBehavior::kMergedWithNext, next);
      else if (!w.empty()) next.push_back(std::move(w));
    }
    words = std::move(next);
  }
  return words;
}

// --- decoder ----------------------------------------------------------------------------------

Decoder Decoder::parse(const json* value, std::string_view path) {
  Decoder d;
  if (!value || value->is_null()) return d;
  bool after_fuse = false;
  // Flattens nested sequences; steps after a Fuse see the whole text.
  std::function<void(const json&, const std::string&)> add = [&](const json& v, const std::string& p) {
    expect_object(v, p);
    const std::string type = require_string(v, "type", p);
    DecoderStep step;
    if (type == "Sequence") {
      const std::string list_path = json_path(p, "decoders");
      const json& list = require_field(v, "decoders", p);
      expect_array(list, list_path);
      for (size_t i = 0; i < list.size(); ++i) add(list[i], json_path(list_path, i));
      return;
    } else if (type == "Fuse") {
      after_fuse = true;
      return;
    } else if (type == "Replace") {
      step.kind = DecoderStep::Kind::kReplace;
      step.pattern = nonempty_literal_pattern(v, p);
      step.content = require_string(v, "content", p);
    } else if (type == "ByteFallback") {
      step.kind = DecoderStep::Kind::kByteFallback;
    } else if (type == "Strip") {
      step.kind = DecoderStep::Kind::kStrip;
      step.content = single_character(v, "content", p);
      step.start = count_field(v, "start", p);
      step.stop = count_field(v, "stop", p);
      if (after_fuse) {
        if (!d.strip_content_.empty()) fail("field '{}': only one Strip after Fuse is supported", p);
        d.strip_content_ = step.content;
        d.strip_start_ = step.start;
        d.strip_stop_ = step.stop;
        return;
      }
    } else if (type == "Metaspace") {
      step.kind = DecoderStep::Kind::kMetaspace;
      step.replacement = optional_string(v, "replacement", p, "\xE2\x96\x81");
      if (step.replacement.empty()) fail("field '{}' must not be empty", json_path(p, "replacement"));
      step.strip_first = parse_prepend_scheme(v, p) != PrependScheme::kNever;
    } else {
      fail("field '{}' = '{}': unsupported decoder type", json_path(p, "type"), type);
    }
    d.per_token_.push_back(std::move(step));
  };
  add(*value, std::string(path));
  return d;
}

std::string Decoder::decode_piece(std::string_view piece, bool first) const {
  std::string s(piece);
  for (const DecoderStep& step : per_token_) {
    switch (step.kind) {
      case DecoderStep::Kind::kReplace:
        if (s.find(step.pattern) != std::string::npos) s = replace_all(s, step.pattern, step.content);
        break;
      case DecoderStep::Kind::kByteFallback:
        if (const int b = byte_token_value(s); b >= 0) s.assign(1, static_cast<char>(b));
        break;
      case DecoderStep::Kind::kStrip:
        strip_copies(s, step.content, step.start, step.stop);
        break;
      case DecoderStep::Kind::kMetaspace:
        if (s.find(step.replacement) != std::string::npos) {
          s = replace_all(s, step.replacement, first && step.strip_first ? "" : " ");
        }
        break;
    }
  }
  return s;
}

bool Decoder::first_token_differs() const {
  for (const DecoderStep& step : per_token_)
    if (step.kind == DecoderStep::Kind::kMetaspace && step.strip_first) return true;
  return false;
}

bool Decoder::byte_fallback() const {
  for (const DecoderStep& step : per_token_)
    if (step.kind == DecoderStep::Kind::kByteFallback) return true;
  return false;
}

void Decoder::strip_text(std::string& text) const {
  if (!strip_content_.empty()) strip_copies(text, strip_content_, strip_start_, strip_stop_);
}

}  // namespace shardlm::tokenizer_detail
