// Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.cc): a check that aborts with the failed
// condition (so libFuzzer and the plain driver both record the input as a crash), splitting one input
// into several fields, and the location of the test data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// Aborts when `cond` is false, naming the condition and its place: a broken promise of the parser.
#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "fuzz check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace shardlm::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits `input` at every occurrence of `separator` into at most `max_parts` parts (the last part
// keeps any further separators). Missing parts are empty.
inline std::vector<std::string_view> split_fields(std::string_view input, std::string_view separator,
                                                  size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = input.find(separator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + separator.size());
  }
  parts.push_back(input);
  parts.resize(max_parts);
  return parts;
}

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
inline bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // continuation bytes are s[i + 1 .. i + n]
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// The folder of the test data (tests/data), fixed at build time; SHARDLM_FUZZ_DATA overrides it.
inline std::string test_data_dir() {
  if (const char* env = std::getenv("SHARDLM_FUZZ_DATA")) return env;
#ifdef SHARDLM_FUZZ_DATA_DIR
  return SHARDLM_FUZZ_DATA_DIR;
#else
  return "tests/data";
#endif
}

}  // namespace shardlm::fuzz
