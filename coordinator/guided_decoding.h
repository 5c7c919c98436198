// Guided decoding (vLLM's structured outputs): the output is held to a form — any JSON object
// (response_format json_object), a JSON Schema's (json_schema) or one of a list of strings
// (guided_choice). Each step the
// constraint says which tokens may come next: a token is allowed when its bytes continue the text
// so far into a text that can still become a whole answer; special tokens never are, the stop
// tokens only once the text is a whole answer (the scheduler's part). The scheduler masks the
// whole logits row with it before sampling.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/json_lexers.h"
#include "model/tokenizer.h"

namespace shardlm {

// Every token's bytes and whether generation may produce it as text (not a special or an unused id).
class TokenTable {
 public:
  explicit TokenTable(const Tokenizer& tokenizer);
  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
  bool text(int32_t id) const { return text_[static_cast<size_t>(id)] != 0; }
  // Whole UTF-8 characters without a quote, a backslash or a control character: plain string content.
  bool plain(int32_t id) const { return plain_[static_cast<size_t>(id)] != 0; }

 private:
  std::vector<std::string> bytes_;
  std::vector<uint8_t> text_;
  std::vector<uint8_t> plain_;
};

// One request's constraint as it generates.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // allowed[id] = 1 for every token that may come next (ids of the table; the stop tokens are the
  // scheduler's). Returns whether the text so far is a whole answer.
  bool allowed_tokens(std::vector<uint8_t>& allowed) const;
  // The token sampled (one allowed_tokens allowed).
  void accept(int32_t token) { accept_bytes(table_->bytes(token)); }
  virtual bool complete() const = 0;

 protected:
  explicit TokenConstraint(std::shared_ptr<const TokenTable> table) : table_(std::move(table)) {}
  virtual bool allows(std::string_view bytes) const = 0;  // the text followed by bytes can still be a whole answer
  // Inside a JSON string between characters: every plain token (TokenTable::plain) is allowed.
  virtual bool in_plain_string() const { return false; }
  virtual void accept_bytes(std::string_view bytes) = 0;
  std::shared_ptr<const TokenTable> table_;
};

// What a request asks for; starts a constraint for each sequence (each choice of n).
class GuidedSpec {
 public:
  virtual ~GuidedSpec() = default;
  virtual std::unique_ptr<TokenConstraint> start() const = 0;
  virtual std::string describe() const = 0;  // e.g. "a JSON object"
};

// Any JSON value (RFC 8259, strings in valid UTF-8) whose outermost value is an object, nested at
// most 64 deep, with at most 64 blanks in a row outside strings (a model held to JSON otherwise can pad it with blanks forever).
std::shared_ptr<const GuidedSpec> json_object_spec(std::shared_ptr<const TokenTable> table);
// A JSON text the schema allows (json_schema_acceptor.h: what is supported, in which form); throws
// Error naming what of the schema is not supported.
std::shared_ptr<const GuidedSpec> json_schema_spec(std::shared_ptr<const TokenTable> table, const nlohmann::json& schema);
// Exactly one of `choices` (at least one, none empty).
std::shared_ptr<const GuidedSpec> choice_spec(std::shared_ptr<const TokenTable> table, std::vector<std::string> choices);

// Byte-level JSON reader behind json_object_spec (exposed for tests): feed returns false for a byte
// that cannot continue a JSON text.
class JsonAcceptor {
 public:
  explicit JsonAcceptor(bool object_only = true) : object_only_(object_only) {}
  bool feed(uint8_t c);
  bool feed(std::string_view bytes) { return feed_bytes(*this, bytes); }
  bool accepts(std::string_view bytes) const {  // whether feed(bytes) would succeed
    JsonAcceptor probe = *this;
    return probe.feed(bytes);
  }
  bool complete() const;
  bool in_plain_string() const { return mode_ == Mode::kString && string_.plain(); }

  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxBlanks = 64;

 private:
  enum class Mode : uint8_t { kValue, kArrayFirst, kObjectFirstKey, kObjectKey, kColon, kAfterValue, kString, kNumber, kLiteral, kDone };
  bool blank(uint8_t c);
  bool start_value(uint8_t c);
  bool value_done();

  bool object_only_;
  Mode mode_ = Mode::kValue;
  bool key_ = false;               // the string being read is an object key
  JsonStringLexer string_;
  JsonNumberLexer number_;
  const char* literal_ = nullptr;  // the rest of true / false / null still to come
  uint8_t blanks_ = 0;             // blanks in a row
  uint8_t depth_ = 0;
  char stack_[kMaxDepth] = {};     // '{' or '['
};

}  // namespace shardlm
