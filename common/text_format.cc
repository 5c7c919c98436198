#include "common/text_format.h"

#include <fmt/format.h>

namespace shardlm {

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return v < 0 ? "-" + out : out;
}

std::string decimal_bytes(uint64_t b) {
  if (b >= 1000000000ull) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1000000ull) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.1f} kB", b / 1e3);
}

}  // namespace shardlm
