#include "coordinator/json_lexers.h"

namespace shardlm {
namespace {

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

bool JsonStringLexer::feed(uint8_t c, bool& closed) {
  closed = false;
  if (utf8_left_ > 0) {
    if (c < utf8_lo_ || c > utf8_hi_) return false;
    --utf8_left_;
    utf8_lo_ = 0x80;
    utf8_hi_ = 0xBF;
    return true;
  }
  if (escape_ == 1) {
    if (c == 'u') {
      escape_ = 2;
      return true;
    }
    if (need_low_) return false;
    escape_ = 0;
    return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't';
  }
  if (escape_ >= 2) {
    if (!is_hex(c)) return false;
    const int digit = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    if (escape_ == 2) {
      surrogate_lead_ = digit == 0xD;
      if (need_low_ && !surrogate_lead_) return false;
    } else if (escape_ == 3) {
      const bool low = surrogate_lead_ && digit >= 0xC;                  // DC00-DFFF
      const bool high = surrogate_lead_ && digit >= 0x8 && digit < 0xC;  // D800-DBFF
      if (need_low_ ? !low : low) return false;  // a high half needs a low one; a low one alone is none
      pending_high_ = high;
    }
    if (++escape_ == 6) {
      escape_ = 0;
      need_low_ = surrogate_lead_ && pending_high_;
    }
    return true;
  }
  if (c >= 0x80) {
    if (need_low_) return false;
    utf8_lo_ = 0x80;
    utf8_hi_ = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      utf8_left_ = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      utf8_left_ = 2;
      if (c == 0xE0) utf8_lo_ = 0xA0;
      if (c == 0xED) utf8_hi_ = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      utf8_left_ = 3;
      if (c == 0xF0) utf8_lo_ = 0x90;
      if (c == 0xF4) utf8_hi_ = 0x8F;
    } else {
      return false;
    }
    return true;
  }
  if (need_low_ && c != '\\') return false;  // a high surrogate's \u escape needs its low half next
  if (c == '\\') {
    escape_ = 1;
    return true;
  }
  if (c == '"') {
    closed = true;
    return true;
  }
  return c >= 0x20;
}

namespace {

constexpr uint8_t kMaxIntDigits = 19, kMaxFracDigits = 20, kMaxExpDigits = 2;

}  // namespace

bool JsonNumberLexer::start(uint8_t c, bool integer) {
  integer_ = integer;
  digits_ = 1;
  if (c == '-') {
    state_ = kMinus;
    digits_ = 0;
    return true;
  }
  if (!is_digit(c)) return false;
  state_ = c == '0' ? kZero : kInt;
  return true;
}

bool JsonNumberLexer::feed(uint8_t c, bool& ended) {
  ended = false;
  switch (state_) {
    case kMinus:
      if (!is_digit(c)) return false;
      state_ = c == '0' ? kZero : kInt;
      digits_ = 1;
      return true;
    case kZero:
    case kInt:
      if (is_digit(c) && state_ == kInt) return ++digits_ <= kMaxIntDigits;
      if (!integer_ && c == '.') {
        state_ = kDot;
        digits_ = 0;
        return true;
      }
      if (!integer_ && (c == 'e' || c == 'E')) {
        state_ = kE;
        digits_ = 0;
        return true;
      }
      break;
    case kDot:
      if (!is_digit(c)) return false;
      state_ = kFrac;
      digits_ = 1;
      return true;
    case kFrac:
      if (is_digit(c)) return ++digits_ <= kMaxFracDigits;
      if (c == 'e' || c == 'E') {
        state_ = kE;
        digits_ = 0;
        return true;
      }
      break;
    case kE:
      if (c == '+' || c == '-') {
        state_ = kESign;
        return true;
      }
      if (!is_digit(c)) return false;
      state_ = kExp;
      digits_ = 1;
      return true;
    case kESign:
      if (!is_digit(c)) return false;
      state_ = kExp;
      digits_ = 1;
      return true;
    case kExp:
      if (is_digit(c)) return ++digits_ <= kMaxExpDigits;
      break;
  }
  ended = can_end();
  return false;
}

}  // namespace shardlm
