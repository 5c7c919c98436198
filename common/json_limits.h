// JSON from outside input (request bodies, batch lines, protocol fields) is parsed with a nesting
// limit: a deeper document is refused as a parse error (nlohmann::json::parse_error, like any
// syntax error) instead of exhausting the stack later in code that walks it recursively; so is an
// integer outside the 64-bit range, which would be rounded to a double without a word.
#pragma once

#include <algorithm>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace shardlm {

inline constexpr int kMaxJsonDepth = 64;

namespace json_detail {

// Whether the digits of an integer literal (no sign, no leading zeros but "0") exceed `limit`
// (both as decimal text).
inline bool exceeds(std::string_view digits, std::string_view limit) {
  return digits.size() > limit.size() || (digits.size() == limit.size() && digits > limit);
}

// Throws a parse_error for the first integer literal outside the 64-bit range, which nlohmann::json
// would keep as a rounded double (123456789012345678901234567890 read back as 1.2345678901234568e+29).
inline void check_integer_ranges(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {  // skip the string
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      ++i;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) {
      ++i;
      continue;
    }
    const size_t start = i;
    const bool negative = c == '-';
    if (negative) ++i;
    const size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    const std::string_view digits = text.substr(digits_start, i - digits_start);
    bool integer = true;
    while (i < text.size() && (text[i] == '.' || text[i] == 'e' || text[i] == 'E' || text[i] == '+' || text[i] == '-' ||
                               (text[i] >= '0' && text[i] <= '9'))) {
      integer = false;
      ++i;
    }
    if (integer && exceeds(digits, negative ? "9223372036854775808" : "18446744073709551615")) {
      throw nlohmann::json::parse_error::create(
          101, start + 1,
          fmt::format("the integer {} does not fit in 64 bits", text.substr(start, std::min<size_t>(i - start, 40))),
          nullptr);
    }
  }
}

}  // namespace json_detail

inline nlohmann::json parse_json_limited(std::string_view text, int max_depth = kMaxJsonDepth) {
  auto limit = [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) {
      throw nlohmann::json::parse_error::create(101, 0, fmt::format("JSON nested deeper than {} levels", max_depth), nullptr);
    }
    return true;
  };
  nlohmann::json value = nlohmann::json::parse(text, limit);
  json_detail::check_integer_ranges(text);  // on a document known to be well-formed
  return value;
}

}  // namespace shardlm
