// UTF-8 helpers of the tokenizer: well-formedness checks (Unicode table 3-7: no overlong forms,
// no surrogates, nothing above U+10FFFF), replacing invalid bytes with U+FFFD, and finding where a
// truncated character starts at the end of a byte stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace shardlm::tokenizer_detail {

// Length (1-4) of the well-formed UTF-8 character starting at s[pos], or 0 when the bytes there
// do not form one (invalid or truncated).
size_t utf8_char_length(std::string_view s, size_t pos);

// Number of bytes (0-3) at the end of s that are a proper prefix of a well-formed character, i.e.
// bytes that may still become valid when more bytes arrive.
size_t utf8_incomplete_tail(std::string_view s);

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
