// JSON from outside input (request bodies, batch lines, protocol fields) is parsed with a nesting
// limit: a deeper document is refused as a parse error (nlohmann::json::parse_error, like any
// syntax error) instead of exhausting the stack later in code that walks it recursively.
#pragma once

#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace shardlm {

inline constexpr int kMaxJsonDepth = 64;

inline nlohmann::json parse_json_limited(std::string_view text, int max_depth = kMaxJsonDepth) {
  auto limit = [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) {
      throw nlohmann::json::parse_error::create(101, 0, fmt::format("JSON nested deeper than {} levels", max_depth), nullptr);
    }
    return true;
  };
  return nlohmann::json::parse(text, limit);
}

}  // namespace shardlm
