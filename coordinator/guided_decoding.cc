#include "coordinator/guided_decoding.h"

#include <algorithm>

#include "common/error.h"

namespace shardlm {

TokenTable::TokenTable(const Tokenizer& tokenizer) {
  const int32_t n = tokenizer.vocab_size();
  bytes_.resize(static_cast<size_t>(n));
  text_.assign(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < n; ++id) {
    if (!tokenizer.is_valid(id) || tokenizer.is_special(id)) continue;
    bytes_[static_cast<size_t>(id)] = tokenizer.token_bytes(id);
    text_[static_cast<size_t>(id)] = !bytes_[static_cast<size_t>(id)].empty();
  }
}

bool TokenConstraint::allowed_tokens(std::vector<uint8_t>& allowed) const {
  const int32_t n = table_->size();
  allowed.assign(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < n; ++id) {
    if (table_->text(id)) allowed[static_cast<size_t>(id)] = allows(table_->bytes(id));
  }
  return complete();
}

// ---- JSON ---------------------------------------------------------------------------------------

namespace {

bool is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

bool JsonAcceptor::complete() const {
  if (mode_ == Mode::kDone) return true;
  return mode_ == Mode::kNumber && depth_ == 0 && number_can_end();
}

bool JsonAcceptor::blank(uint8_t c) {
  if (!is_blank(c)) return false;
  if (blanks_ >= kMaxBlanks) return false;
  ++blanks_;
  return true;
}

bool JsonAcceptor::value_done() {
  mode_ = depth_ == 0 ? Mode::kDone : Mode::kAfterValue;
  return true;
}

bool JsonAcceptor::start_value(uint8_t c) {
  if (object_only_ && depth_ == 0 && c != '{') return false;
  switch (c) {
    case '{':
    case '[':
      if (depth_ >= kMaxDepth) return false;
      stack_[depth_++] = static_cast<char>(c);
      mode_ = c == '{' ? Mode::kObjectFirstKey : Mode::kArrayFirst;
      return true;
    case '"':
      key_ = false;
      mode_ = Mode::kString;
      return true;
    case 't': literal_ = "rue"; mode_ = Mode::kLiteral; return true;
    case 'f': literal_ = "alse"; mode_ = Mode::kLiteral; return true;
    case 'n': literal_ = "ull"; mode_ = Mode::kLiteral; return true;
    case '-': num_ = Num::kMinus; mode_ = Mode::kNumber; return true;
    default:
      if (!is_digit(c)) return false;
      num_ = c == '0' ? Num::kZero : Num::kInt;
      mode_ = Mode::kNumber;
      return true;
  }
}

bool JsonAcceptor::feed(uint8_t c) {
  switch (mode_) {
    case Mode::kString:
      // Strings are UTF-8 (a tokenizer's byte tokens can spell any byte; the text is decoded with
      // invalid runs replaced): each lead byte's continuation bytes, no overlong form, surrogate or
      // code point past U+10FFFF.
      if (utf8_left_ > 0) {
        if (c < utf8_lo_ || c > utf8_hi_) return false;
        --utf8_left_;
        utf8_lo_ = 0x80;
        utf8_hi_ = 0xBF;
        return true;
      }
      if (c >= 0x80) {
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
        return !need_low_;
      }
      if (need_low_ && c != '\\') return false;  // a high surrogate's \u escape needs its low half next
      if (c == '"') {
        blanks_ = 0;
        if (key_) {
          mode_ = Mode::kColon;
          return true;
        }
        return value_done();
      }
      if (c == '\\') mode_ = Mode::kEscape;
      return c >= 0x20;
    case Mode::kEscape:
      if (c == 'u') {
        hex_left_ = 4;
        mode_ = Mode::kUnicode;
        return true;
      }
      if (need_low_) return false;
      mode_ = Mode::kString;
      return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't';
    case Mode::kUnicode: {
      if (!is_hex(c)) return false;
      // UTF-16 surrogates come in pairs (strict readers refuse a lone half): the first two digits
      // decide whether this escape is one.
      const int digit = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
      if (hex_left_ == 4) {
        surrogate_lead_ = digit == 0xD;
        if (need_low_ && !surrogate_lead_) return false;
      } else if (hex_left_ == 3) {
        const bool low = surrogate_lead_ && digit >= 0xC;                  // DC00-DFFF
        const bool high = surrogate_lead_ && digit >= 0x8 && digit < 0xC;  // D800-DBFF
        if (need_low_ ? !low : low) return false;  // a high half needs a low one; a low one alone is none
        pending_high_ = high;
      }
      if (--hex_left_ == 0) {
        need_low_ = surrogate_lead_ && pending_high_;
        mode_ = Mode::kString;
      }
      return true;
    }
    case Mode::kLiteral:
      if (c != static_cast<uint8_t>(*literal_)) return false;
      if (*++literal_ == '\0') {
        blanks_ = 0;
        return value_done();
      }
      return true;
    case Mode::kNumber:
      switch (num_) {
        case Num::kMinus:
          if (!is_digit(c)) return false;
          num_ = c == '0' ? Num::kZero : Num::kInt;
          return true;
        case Num::kZero:
        case Num::kInt:
          if (is_digit(c) && num_ == Num::kInt) return true;
          if (c == '.') {
            num_ = Num::kDot;
            return true;
          }
          if (c == 'e' || c == 'E') {
            num_ = Num::kE;
            return true;
          }
          break;
        case Num::kDot:
          if (!is_digit(c)) return false;
          num_ = Num::kFrac;
          return true;
        case Num::kFrac:
          if (is_digit(c)) return true;
          if (c == 'e' || c == 'E') {
            num_ = Num::kE;
            return true;
          }
          break;
        case Num::kE:
          if (c == '+' || c == '-') {
            num_ = Num::kESign;
            return true;
          }
          if (!is_digit(c)) return false;
          num_ = Num::kExp;
          return true;
        case Num::kESign:
          if (!is_digit(c)) return false;
          num_ = Num::kExp;
          return true;
        case Num::kExp:
          if (is_digit(c)) return true;
          break;
      }
      // A byte after a whole number ends it and is read after the value.
      if (!number_can_end() || depth_ == 0) return false;
      blanks_ = 0;
      value_done();
      return feed(c);
    case Mode::kValue:
      if (blank(c)) return true;
      blanks_ = 0;
      return start_value(c);
    case Mode::kArrayFirst:
      if (blank(c)) return true;
      blanks_ = 0;
      if (c == ']') {
        --depth_;
        return value_done();
      }
      return start_value(c);
    case Mode::kObjectFirstKey:
    case Mode::kObjectKey:
      if (blank(c)) return true;
      blanks_ = 0;
      if (c == '}' && mode_ == Mode::kObjectFirstKey) {
        --depth_;
        return value_done();
      }
      if (c != '"') return false;
      key_ = true;
      mode_ = Mode::kString;
      return true;
    case Mode::kColon:
      if (blank(c)) return true;
      blanks_ = 0;
      if (c != ':') return false;
      mode_ = Mode::kValue;
      return true;
    case Mode::kAfterValue: {
      if (blank(c)) return true;
      blanks_ = 0;
      const char top = stack_[depth_ - 1];
      if (c == ',') {
        mode_ = top == '{' ? Mode::kObjectKey : Mode::kValue;
        return true;
      }
      if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
        --depth_;
        return value_done();
      }
      return false;
    }
    case Mode::kDone:
      return false;
  }
  return false;
}

namespace {

class JsonConstraint final : public TokenConstraint {
 public:
  explicit JsonConstraint(std::shared_ptr<const TokenTable> table) : TokenConstraint(std::move(table)) {}
  bool complete() const override { return json_.complete(); }

 protected:
  bool allows(std::string_view bytes) const override {
    JsonAcceptor next = json_;
    return next.feed(bytes);
  }
  void accept_bytes(std::string_view bytes) override {
    if (!json_.feed(bytes)) fail("guided decoding: a token the JSON constraint does not allow was accepted");
  }

 private:
  JsonAcceptor json_;
};

class JsonObjectSpec final : public GuidedSpec {
 public:
  explicit JsonObjectSpec(std::shared_ptr<const TokenTable> table) : table_(std::move(table)) {}
  std::unique_ptr<TokenConstraint> start() const override { return std::make_unique<JsonConstraint>(table_); }
  std::string describe() const override { return "a JSON object"; }

 private:
  std::shared_ptr<const TokenTable> table_;
};

// ---- choice -------------------------------------------------------------------------------------

using Choices = std::shared_ptr<const std::vector<std::string>>;

class ChoiceConstraint final : public TokenConstraint {
 public:
  ChoiceConstraint(std::shared_ptr<const TokenTable> table, Choices choices)
      : TokenConstraint(std::move(table)), choices_(std::move(choices)) {}
  bool complete() const override {
    return std::find(choices_->begin(), choices_->end(), text_) != choices_->end();
  }

 protected:
  bool allows(std::string_view bytes) const override {
    for (const std::string& c : *choices_) {
      if (c.size() >= text_.size() + bytes.size() && c.compare(text_.size(), bytes.size(), bytes) == 0 &&
          c.compare(0, text_.size(), text_) == 0) {
        return true;
      }
    }
    return false;
  }
  void accept_bytes(std::string_view bytes) override {
    if (!allows(bytes)) fail("guided decoding: a token none of the choices continues with was accepted");
    text_ += bytes;
  }

 private:
  Choices choices_;
  std::string text_;
};

class ChoiceSpec final : public GuidedSpec {
 public:
  ChoiceSpec(std::shared_ptr<const TokenTable> table, std::vector<std::string> choices)
      : table_(std::move(table)), choices_(std::make_shared<const std::vector<std::string>>(std::move(choices))) {}
  std::unique_ptr<TokenConstraint> start() const override { return std::make_unique<ChoiceConstraint>(table_, choices_); }
  std::string describe() const override { return "one of " + std::to_string(choices_->size()) + " choices"; }

 private:
  std::shared_ptr<const TokenTable> table_;
  Choices choices_;
};

}  // namespace

std::shared_ptr<const GuidedSpec> json_object_spec(std::shared_ptr<const TokenTable> table) {
  return std::make_shared<JsonObjectSpec>(std::move(table));
}

std::shared_ptr<const GuidedSpec> choice_spec(std::shared_ptr<const TokenTable> table, std::vector<std::string> choices) {
  if (choices.empty()) fail("guided_choice: at least one choice is needed");
  for (const std::string& c : choices) {
    if (c.empty()) fail("guided_choice: a choice is empty");
  }
  return std::make_shared<ChoiceSpec>(std::move(table), std::move(choices));
}

}  // namespace shardlm
