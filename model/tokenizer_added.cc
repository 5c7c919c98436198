#include "model/tokenizer_added.h"

#include "model/tokenizer_utf8.h"

namespace shardlm::tokenizer_detail {
namespace {

// The character ending just before text[end] (0 when there is none or it is not well-formed).
char32_t char_before(std::string_view text, size_t end, size_t* length) {
  *length = 0;
  size_t start = end;
  for (size_t k = 0; k < 4 && start > 0; ++k) {
    --start;
    if ((static_cast<unsigned char>(text[start]) & 0xC0) != 0x80) break;
  }
  if (start == end) return 0;
  const size_t len = utf8_char_length(text, start);
  if (len == 0 || start + len != end) {
    *length = 1;  // a stray byte: step over it alone
    return 0xFFFD;
  }
  *length = len;
  return utf8_decode(text, start, len);
}

char32_t char_at(std::string_view text, size_t pos, size_t* length) {
  const size_t len = utf8_char_length(text, pos);
  if (len == 0) {
    *length = pos < text.size() ? 1 : 0;
    return pos < text.size() ? 0xFFFD : 0;
  }
  *length = len;
  return utf8_decode(text, pos, len);
}

// Part of a word for single_word tokens: ASCII letters, digits and '_', and any non-ASCII
// character that is not whitespace (an approximation of Unicode alphanumerics).
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return !is_unicode_whitespace(c);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) {
  nodes_.emplace_back();
  root_next_.fill(0);
  for (AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    const int32_t index = static_cast<int32_t>(tokens_.size());
    int32_t node = 0;
    for (size_t i = 0; i < t.content.size(); ++i) {
      const auto byte = static_cast<unsigned char>(t.content[i]);
      int32_t next = 0;
      if (node == 0) {
        next = root_next_[byte];
      } else {
        for (const auto& [b, n] : nodes_[node].children)
          if (b == byte) next = n;
      }
      if (next == 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        if (node == 0) root_next_[byte] = next;
        else nodes_[node].children.emplace_back(byte, next);
      }
      node = next;
    }
    // A later token with the same content replaces the earlier one.
    nodes_[node].token = index;
    tokens_.push_back(std::move(t));
  }
}

std::pair<int32_t, size_t> AddedTokenMatcher::longest_match(std::string_view text, size_t pos) const {
  int32_t node = root_next_[static_cast<unsigned char>(text[pos])];
  std::pair<int32_t, size_t> best{-1, 0};
  size_t i = pos;
  while (node != 0) {
    ++i;
    if (nodes_[node].token >= 0) best = {nodes_[node].token, i - pos};
    if (i == text.size()) break;
    const auto byte = static_cast<unsigned char>(text[i]);
    int32_t next = 0;
    for (const auto& [b, n] : nodes_[node].children)
      if (b == byte) next = n;
    node = next;
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSection>& out) const {
  size_t section_start = 0;
  size_t pos = 0;
  auto emit_text = [&](size_t begin, size_t end) {
    if (end > begin) out.push_back({text.substr(begin, end - begin), -1, begin});
  };
  while (pos < text.size()) {
    if (root_next_[static_cast<unsigned char>(text[pos])] == 0) {
      ++pos;
      continue;
    }
    const auto [index, length] = longest_match(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t match_begin = pos;
    size_t match_end = pos + length;
    if (token.single_word) {
      size_t len;
      const bool word_before = match_begin > 0 && is_word_char(char_before(text, match_begin, &len));
      const bool word_after = match_end < text.size() && is_word_char(char_at(text, match_end, &len));
      if (word_before || word_after) {
        pos = match_end;  // like Hugging Face: the rejected match is skipped as a whole
        continue;
      }
    }
    if (token.lstrip) {
      size_t len;
      while (match_begin > section_start && is_unicode_whitespace(char_before(text, match_begin, &len))) {
        match_begin -= len;
      }
    }
    if (token.rstrip) {
      size_t len;
      while (match_end < text.size() && is_unicode_whitespace(char_at(text, match_end, &len))) match_end += len;
    }
    emit_text(section_start, match_begin);
    out.push_back({text.substr(match_begin, match_end - match_begin), token.id, match_begin});
    section_start = pos = match_end;
  }
  emit_text(section_start, text.size());
}

}  // namespace shardlm::tokenizer_detail
