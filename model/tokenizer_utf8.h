// UTF-8 helpers of the tokenizer, also used wherever text leaves the server: well-formedness checks
// (Unicode table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF) and replacing
// invalid bytes with U+FFFD.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace shardlm::tokenizer_detail {

// Length (1-4) of the well-formed UTF-8 character starting at s[pos], or 0 when the bytes there
// do not form one (invalid or truncated).
size_t utf8_char_length(std::string_view s, size_t pos);

// Offset of the first byte of s that is not part of a well-formed character, or npos.
size_t invalid_utf8_at(std::string_view s);

// Appends s to out, replacing every byte that is not part of a well-formed character with U+FFFD.
void append_sanitized_utf8(std::string_view s, std::string& out);

// Appends a run of bytes from consecutive byte-fallback tokens to out and clears it, as Hugging Face's
// ByteFallback decoder does: the bytes as they are when they are well-formed UTF-8 as a whole, else
// one U+FFFD per byte.
void append_byte_run(std::string& run, std::string& out);

// Code point of the well-formed character at s[pos] of length len (from utf8_char_length).
char32_t utf8_decode(std::string_view s, size_t pos, size_t len);

// Unicode White_Space (the characters an added token's lstrip / rstrip removes).
bool is_unicode_whitespace(char32_t c);

}  // namespace shardlm::tokenizer_detail
