// Guided decoding by a JSON Schema (response_format json_schema, vLLM's guided_json): the schema is
// compiled into nodes, and a byte-level reader accepts exactly the JSON texts of a subset of what
// the schema allows — object properties in the schema's order, each at most once, the required
// ones always, no others — so that every whole text is valid against the schema. Supported: type
// (one or a list), object properties / required / additionalProperties (no properties: keys of any
// name with values of its schema), array items / minItems / maxItems, string, number, integer,
// boolean, null, enum, const, anyOf / oneOf whose branches begin with different characters, local
// $ref (#/$defs/..., #/definitions/..., #), and annotations (title, description, ...). A keyword
// that constrains values otherwise (pattern, format, minimum, minLength, ...) is refused by name.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/json_lexers.h"

namespace shardlm {

class JsonSchema {
 public:
  // Throws Error naming the unsupported keyword or malformed part and where it is ("#/properties/a").
  static std::shared_ptr<const JsonSchema> compile(const nlohmann::json& schema);

  enum class Kind : uint8_t { kAny, kObject, kArray, kString, kNumber, kInteger, kLiterals, kUnion };
  struct Node {
    Kind kind = Kind::kAny;
    std::vector<std::string> keys;      // object: each property's name as a JSON string ("\"name\"")
    std::vector<int32_t> values;        // object: each property's schema; kAny values: additional
    std::vector<bool> required;         // object
    bool free_keys = false;             // object without properties: keys of any name (values[0], or any)
    bool empty_only = false;            // object without properties and additionalProperties false
    int32_t items = -1;                 // array: the items' schema (-1: any value)
    int64_t min_items = 0, max_items = -1;
    std::vector<std::string> literals;  // enum / const / boolean / null: the JSON texts allowed
    std::vector<int32_t> branches;      // union
    std::bitset<256> first;             // the bytes a value of this node can begin with
  };
  const Node& node(int32_t i) const { return nodes_[static_cast<size_t>(i)]; }
  int32_t root() const { return root_; }

 private:
  friend class SchemaCompiler;
  std::vector<Node> nodes_;
  int32_t root_ = 0;
};

// The reader: feed returns false for a byte that cannot continue a text the schema (as above) allows.
class SchemaAcceptor {
 public:
  explicit SchemaAcceptor(std::shared_ptr<const JsonSchema> schema);
  SchemaAcceptor(const SchemaAcceptor& other) { *this = other; }
  SchemaAcceptor& operator=(const SchemaAcceptor& other);
  bool feed(uint8_t c);
  bool feed(std::string_view bytes) { return feed_bytes(*this, bytes); }
  // Whether feed(bytes) would succeed, without changing this reader (nor sharing its schema: the
  // probe borrows it).
  bool accepts(std::string_view bytes) const;
  bool complete() const;
  bool in_plain_string() const { return depth_ > 0 && stack_[static_cast<size_t>(depth_ - 1)].kind == F::kString && string_.plain(); }

  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxBlanks = 64;

 private:
  enum class F : uint8_t { kValue, kObject, kKey, kArray, kString, kNumber, kLiteral };
  enum class Phase : uint8_t { kFirst, kAfterValue, kNeedKey, kColon };
  // Trivial (value-initialise with {}: kValue, kFirst, zeros), so that a probe's stack is not
  // written before its frames are copied in.
  struct Frame {
    int32_t node;     // -1: any value
    F kind;
    Phase phase;
    bool key;         // a string frame reading a free key
    bool integer;     // a number frame of an integer
    int32_t count;    // object: the next property; array: items so far; key / literal: bytes matched
    int32_t current;  // object: the property whose value comes next (-1: a free key's)
    uint64_t mask;    // key / literal: the candidates still matching
  };
  bool step(uint8_t c);
  bool start_value(Frame& f, uint8_t c);
  bool blank(uint8_t c);
  void pop_value();
  bool push(const Frame& f);
  bool start_key(Frame& object);
  const std::vector<std::string>& literals_of(const Frame& f) const;

  SchemaAcceptor() = default;  // a probe's (accepts)
  void copy_state(const SchemaAcceptor& other);

  std::shared_ptr<const JsonSchema> owner_;  // null in a probe
  const JsonSchema* schema_ = nullptr;
  int depth_ = 0;
  std::array<Frame, kMaxDepth> stack_;
  uint8_t blanks_ = 0;
  JsonStringLexer string_;  // the string being read (only the top frame reads)
  JsonNumberLexer number_;
};

}  // namespace shardlm
