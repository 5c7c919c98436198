// Byte-level readers of a JSON string's and a JSON number's bytes (RFC 8259), shared by guided
// decoding's JSON readers. Strings are read after their opening quote up to the closing one, in
// valid UTF-8 (each lead byte's continuation bytes, no overlong form, surrogate or code point past
// U+10FFFF), escapes checked, UTF-16 surrogate escapes in pairs; numbers from their first byte, with
// at most 19 integer digits, 20 fraction digits and 2 exponent digits (so that readers take them as
// 64-bit integers or finite doubles: JSON's grammar alone allows 1e999999, which they refuse).
#pragma once

#include <cstdint>
#include <string_view>

namespace shardlm {

// Feeds a reader (anything with bool feed(uint8_t)) each byte; false at the first it refuses.
template <typename Reader>
bool feed_bytes(Reader& reader, std::string_view bytes) {
  for (char c : bytes) {
    if (!reader.feed(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

class JsonStringLexer {
 public:
  // false: the byte cannot continue the string. closed: it was the closing quote.
  bool feed(uint8_t c, bool& closed);
  // Between characters: no escape, UTF-8 character or surrogate pair unfinished. From here, bytes of
  // whole UTF-8 characters without a quote, a backslash or a control character leave it so.
  bool plain() const { return escape_ == 0 && utf8_left_ == 0 && !need_low_; }

 private:
  uint8_t escape_ = 0;     // 0: none; 1: after '\'; 2..5: the \u escape's digits read + 2
  uint8_t utf8_left_ = 0;  // continuation bytes of a UTF-8 character still to come
  uint8_t utf8_lo_ = 0x80, utf8_hi_ = 0xBF;  // the range of the next continuation byte
  bool surrogate_lead_ = false;  // this \u escape begins with D
  bool pending_high_ = false;    // this \u escape is a high surrogate (D800-DBFF)
  bool need_low_ = false;        // a high surrogate was read: a low one must follow
};

class JsonNumberLexer {
 public:
  // Starts at the number's first byte ('-' or a digit; false otherwise). integer: no fraction or exponent.
  bool start(uint8_t c, bool integer);
  // false with ended = true: the byte is not the number's and the number before it is whole (the
  // byte belongs to what follows); false with ended = false: the byte cannot follow.
  bool feed(uint8_t c, bool& ended);
  bool can_end() const { return state_ == kZero || state_ == kInt || state_ == kFrac || state_ == kExp; }

 private:
  enum State : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kE, kESign, kExp };
  State state_ = kMinus;
  bool integer_ = false;
  uint8_t digits_ = 0;  // of the part being read
};

}  // namespace shardlm
