#include "coordinator/guided_decoding.h"

#include <algorithm>

#include "common/error.h"
#include "coordinator/json_schema_acceptor.h"

namespace shardlm {

TokenTable::TokenTable(const Tokenizer& tokenizer) {
  const int32_t n = tokenizer.vocab_size();
  bytes_.resize(static_cast<size_t>(n));
  text_.assign(static_cast<size_t>(n), 0);
  plain_.assign(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < n; ++id) {
    if (!tokenizer.is_valid(id) || tokenizer.is_special(id)) continue;
    const std::string& b = bytes_[static_cast<size_t>(id)] = tokenizer.token_bytes(id);
    text_[static_cast<size_t>(id)] = !b.empty();
    JsonStringLexer lexer;
    bool ok = !b.empty(), closed = false;
    for (size_t i = 0; ok && i < b.size(); ++i) {
      const auto c = static_cast<uint8_t>(b[i]);
      ok = c != '"' && c != '\\' && lexer.feed(c, closed);
    }
    plain_[static_cast<size_t>(id)] = ok && lexer.plain();
  }
}

bool TokenConstraint::allowed_tokens(std::vector<uint8_t>& allowed) const {
  const int32_t n = table_->size();
  allowed.assign(static_cast<size_t>(n), 0);
  // A token whose first byte cannot come next is out without reading the rest; inside a string,
  // plain content is in without reading it.
  bool first[256];
  for (int c = 0; c < 256; ++c) {
    const char byte = static_cast<char>(c);
    first[c] = allows(std::string_view(&byte, 1));
  }
  const bool plain_string = in_plain_string();
  for (int32_t id = 0; id < n; ++id) {
    if (!table_->text(id)) continue;
    const std::string& b = table_->bytes(id);
    if (!first[static_cast<uint8_t>(b[0])]) continue;
    allowed[static_cast<size_t>(id)] = b.size() == 1 || (plain_string && table_->plain(id)) || allows(b);
  }
  return complete();
}

// ---- JSON ---------------------------------------------------------------------------------------

namespace {

bool is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

bool JsonAcceptor::complete() const {
  if (mode_ == Mode::kDone) return true;
  return mode_ == Mode::kNumber && depth_ == 0 && number_.can_end();
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
      string_ = JsonStringLexer{};
      mode_ = Mode::kString;
      return true;
    case 't': literal_ = "rue"; mode_ = Mode::kLiteral; return true;
    case 'f': literal_ = "alse"; mode_ = Mode::kLiteral; return true;
    case 'n': literal_ = "ull"; mode_ = Mode::kLiteral; return true;
    default:
      mode_ = Mode::kNumber;
      return number_.start(c, false);
  }
}

bool JsonAcceptor::feed(uint8_t c) {
  switch (mode_) {
    case Mode::kString: {
      bool closed = false;
      if (!string_.feed(c, closed)) return false;
      if (!closed) return true;
      blanks_ = 0;
      if (key_) {
        mode_ = Mode::kColon;
        return true;
      }
      return value_done();
    }
    case Mode::kLiteral:
      if (c != static_cast<uint8_t>(*literal_)) return false;
      if (*++literal_ == '\0') {
        blanks_ = 0;
        return value_done();
      }
      return true;
    case Mode::kNumber: {
      bool ended = false;
      if (number_.feed(c, ended)) return true;
      // A byte after a whole number ends it and is read after the value.
      if (!ended || depth_ == 0) return false;
      blanks_ = 0;
      value_done();
      return feed(c);
    }
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
      string_ = JsonStringLexer{};
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

// A constraint of a byte reader (JsonAcceptor, SchemaAcceptor): a token is allowed when a copy of
// the reader takes its bytes.
template <typename Reader>
class ReaderConstraint final : public TokenConstraint {
 public:
  ReaderConstraint(std::shared_ptr<const TokenTable> table, Reader reader)
      : TokenConstraint(std::move(table)), reader_(std::move(reader)) {}
  bool complete() const override { return reader_.complete(); }

 protected:
  bool in_plain_string() const override { return reader_.in_plain_string(); }
  bool allows(std::string_view bytes) const override { return reader_.accepts(bytes); }
  void accept_bytes(std::string_view bytes) override {
    if (!reader_.feed(bytes)) fail("guided decoding: a token the JSON reader does not allow was accepted");
  }

 private:
  Reader reader_;
};

// A spec that starts each constraint from a copy of one reader.
template <typename Reader>
class ReaderSpec final : public GuidedSpec {
 public:
  ReaderSpec(std::shared_ptr<const TokenTable> table, Reader start, std::string description)
      : table_(std::move(table)), start_(std::move(start)), description_(std::move(description)) {}
  std::unique_ptr<TokenConstraint> start() const override { return std::make_unique<ReaderConstraint<Reader>>(table_, start_); }
  std::string describe() const override { return description_; }

 private:
  std::shared_ptr<const TokenTable> table_;
  Reader start_;
  std::string description_;
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
  return std::make_shared<ReaderSpec<JsonAcceptor>>(std::move(table), JsonAcceptor(), "a JSON object");
}

std::shared_ptr<const GuidedSpec> json_schema_spec(std::shared_ptr<const TokenTable> table, const nlohmann::json& schema) {
  return std::make_shared<ReaderSpec<SchemaAcceptor>>(std::move(table), SchemaAcceptor(JsonSchema::compile(schema)),
                                                      "JSON of the schema");
}

std::shared_ptr<const GuidedSpec> choice_spec(std::shared_ptr<const TokenTable> table, std::vector<std::string> choices) {
  if (choices.empty()) fail("guided_choice: at least one choice is needed");
  for (const std::string& c : choices) {
    if (c.empty()) fail("guided_choice: a choice is empty");
  }
  return std::make_shared<ChoiceSpec>(std::move(table), std::move(choices));
}

}  // namespace shardlm
