// Error type of shardlm: every failure that reaches a user is an Error with a message that names
// what is wrong (the file, the field, the value). Thrown, caught at the CLI / server boundary.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace shardlm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace shardlm
