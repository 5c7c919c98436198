#include "partition/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "common/error.h"

namespace shardlm {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double unit_multiplier(const std::string& unit, const std::string& text) {
  const std::string u = lower(unit);
  if (u.empty() || u == "b") return 1.0;
  static const char* const kPrefixes = "kmgtp";
  for (int i = 0; kPrefixes[i] != 0; ++i) {
    const double binary = std::pow(1024.0, i + 1);
    const double decimal = std::pow(1000.0, i + 1);
    const std::string p(1, kPrefixes[i]);
    if (u == p || u == p + "i" || u == p + "ib") return binary;
    if (u == p + "b") return decimal;
  }
  fail("size '{}': unknown unit '{}' (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)", text, unit);
}

}  // namespace

int64_t parse_byte_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const size_t number_begin = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(number_begin, i - number_begin);
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) {
    fail("size '{}': expected a number followed by an optional unit such as GiB", text);
  }
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  size_t unit_end = text.size();
  while (unit_end > i && std::isspace(static_cast<unsigned char>(text[unit_end - 1]))) --unit_end;
  const std::string unit = text.substr(i, unit_end - i);
  const double value = std::strtod(number.c_str(), nullptr) * unit_multiplier(unit, text);
  if (!std::isfinite(value) || value >= 9.2e18) fail("size '{}' is too large", text);
  return static_cast<int64_t>(std::llround(value));
}

std::string format_bytes(int64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024 && bytes > -1024) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes) / 1024.0;
  int unit = 0;
  while (std::fabs(value) >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

}  // namespace shardlm
