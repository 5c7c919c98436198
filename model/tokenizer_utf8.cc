#include "model/tokenizer_utf8.h"

namespace shardlm::tokenizer_detail {
namespace {

// Expected length of a character by its first byte (0: not a lead byte), and the valid range of
// its second byte (Unicode table 3-7).
struct LeadInfo {
  size_t length;
  unsigned char second_lo;
  unsigned char second_hi;
};

LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b >= 0xE1 && b <= 0xEC) return {3, 0x80, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xEE && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

bool is_continuation(unsigned char b) { return b >= 0x80 && b <= 0xBF; }

// Whether the bytes s[pos+1 .. pos+count) are valid continuation bytes of the lead at s[pos].
bool continuation_valid(std::string_view s, size_t pos, size_t count, const LeadInfo& info) {
  for (size_t k = 1; k < count; ++k) {
    const auto b = static_cast<unsigned char>(s[pos + k]);
    if (k == 1 ? (b < info.second_lo || b > info.second_hi) : !is_continuation(b)) return false;
  }
  return true;
}

}  // namespace

size_t utf8_char_length(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  const LeadInfo info = lead_info(static_cast<unsigned char>(s[pos]));
  if (info.length == 0 || info.length > s.size() - pos) return 0;
  return continuation_valid(s, pos, info.length, info) ? info.length : 0;
}

size_t invalid_utf8_at(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t len = utf8_char_length(s, pos);
    if (len == 0) return pos;
    pos += len;
  }
  return std::string_view::npos;
}

void append_sanitized_utf8(std::string_view s, std::string& out) {
  out.reserve(out.size() + s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    // Fast path for runs of ASCII.
    size_t run = pos;
    while (run < s.size() && static_cast<unsigned char>(s[run]) < 0x80) ++run;
    if (run > pos) {
      out.append(s.data() + pos, run - pos);
      pos = run;
      continue;
    }
    const size_t len = utf8_char_length(s, pos);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++pos;
    } else {
      out.append(s.data() + pos, len);
      pos += len;
    }
  }
}

void append_byte_run(std::string& run, std::string& out) {
  if (invalid_utf8_at(run) == std::string_view::npos) {
    out += run;
  } else {
    for (size_t i = 0; i < run.size(); ++i) out += "\xEF\xBF\xBD";
  }
  run.clear();
}

char32_t utf8_decode(std::string_view s, size_t pos, size_t len) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (len == 1) return b0;
  char32_t c = b0 & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  return c;
}

bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace shardlm::tokenizer_detail
