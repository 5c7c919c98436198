#include "coordinator/json_schema_acceptor.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"

namespace shardlm {

using json = nlohmann::json;

namespace {

constexpr size_t kMaxProperties = 64;  // an object's properties (a candidate mask of 64 bits)
constexpr size_t kMaxLiterals = 64;    // an enum's values
constexpr int kMaxCompileDepth = 128;  // schemas within schemas (references followed)
constexpr size_t kMaxNodes = 20000;    // compiled parts of one schema
constexpr int64_t kMaxItemsBound = 1000000;  // minItems / maxItems

// Keywords that describe without constraining.
const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$schema", "$id", "$comment",
                                            "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "strict"};
const std::set<std::string> kHandled = {"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
                                        "enum", "const", "anyOf", "oneOf", "$ref"};

const std::vector<std::string> kAnyLiterals = {"true", "false", "null"};

bool literal_has_type(const json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())));
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  return false;
}

void set_number_first(std::bitset<256>& first) {
  first.set('-');
  for (int d = '0'; d <= '9'; ++d) first.set(static_cast<size_t>(d));
}

}  // namespace

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const json& root) : root_(root) {}

  std::shared_ptr<const JsonSchema> run() {
    auto s = std::make_shared<JsonSchema>();
    out_ = s.get();
    out_->root_ = compile(root_, "#");
    first_sets();
    for (size_t i = 0; i < out_->nodes_.size(); ++i) {
      const JsonSchema::Node& n = out_->nodes_[i];
      if (n.first.none()) fail("json schema {}: allows no value", where_[i]);
      if (n.kind != JsonSchema::Kind::kUnion) continue;
      for (size_t a = 0; a < n.branches.size(); ++a) {
        for (size_t b = a + 1; b < n.branches.size(); ++b) {
          if ((out_->node(n.branches[a]).first & out_->node(n.branches[b]).first).any()) {
            fail("json schema {}: anyOf / oneOf / type branches that can begin with the same character are not supported", where_[i]);
          }
        }
      }
    }
    return s;
  }

 private:
  int32_t add(JsonSchema::Node n, const std::string& where) {
    out_->nodes_.push_back(std::move(n));
    where_.push_back(where);
    return static_cast<int32_t>(out_->nodes_.size() - 1);
  }

  int32_t compile(const json& s, const std::string& where) {
    // A schema nested (or referring) deeper than this is refused rather than read recursively to the end.
    if (depth_ >= kMaxCompileDepth) fail("json schema {}: nested more than {} deep", where, kMaxCompileDepth);
    if (out_->nodes_.size() >= kMaxNodes) fail("json schema {}: more than {} parts", where, kMaxNodes);
    struct Deeper {
      int& d;
      explicit Deeper(int& depth) : d(depth) { ++d; }
      ~Deeper() { --d; }
    } deeper(depth_);
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail("json schema {}: false allows no value", where);
      return add(JsonSchema::Node{}, where);
    }
    if (!s.is_object()) fail("json schema {}: a schema must be an object or a boolean", where);
    if (auto it = done_.find(&s); it != done_.end()) return it->second;
    for (const auto& [key, value] : s.items()) {
      if (kAnnotations.count(key) == 0 && kHandled.count(key) == 0) {
        fail("json schema {}: '{}' is not supported by guided decoding", where, key);
      }
    }
    const int32_t index = add(JsonSchema::Node{}, where);
    done_[&s] = index;
    JsonSchema::Node n;
    if (s.contains("$ref")) {
      for (const auto& [key, value] : s.items()) {
        if (key != "$ref" && kAnnotations.count(key) == 0) fail("json schema {}: '{}' beside $ref is not supported", where, key);
      }
      n.kind = JsonSchema::Kind::kUnion;
      const json& target = resolve(s["$ref"], where);  // checks that it is a string first
      n.branches = {compile(target, s["$ref"].get<std::string>())};
    } else if (s.contains("anyOf") || s.contains("oneOf")) {
      const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
      for (const auto& [k, value] : s.items()) {
        if (k != key && kAnnotations.count(k) == 0) fail("json schema {}: '{}' beside {} is not supported", where, k, key);
      }
      const json& list = s[key];
      if (!list.is_array() || list.empty()) fail("json schema {}: '{}' must be a non-empty array", where, key);
      // oneOf: exactly one branch may match. Branches of distinct first characters are of distinct
      // JSON types only where each names its type (a branch with properties alone also matches any
      // string, and the string branch's output would then match both).
      if (std::string(key) == "oneOf") {
        for (size_t i = 0; i < list.size(); ++i) {
          if (!names_its_type(list[i])) {
            fail("json schema {}/oneOf/{}: a oneOf branch must name its type (type, enum or const)", where, i);
          }
        }
      }
      n.kind = JsonSchema::Kind::kUnion;
      for (size_t i = 0; i < list.size(); ++i) n.branches.push_back(compile(list[i], where + "/" + key + "/" + std::to_string(i)));
    } else if (s.contains("enum") || s.contains("const")) {
      n = literals(s, where);
    } else {
      std::vector<std::string> types;
      if (const auto t = s.find("type"); t != s.end()) {
        if (t->is_string()) {
          types.push_back(t->get<std::string>());
        } else if (t->is_array() && !t->empty()) {
          for (const json& x : *t) {
            if (!x.is_string()) fail("json schema {}: 'type' must hold type names", where);
            types.push_back(x.get<std::string>());
          }
        } else {
          fail("json schema {}: 'type' must be a type name or a list of them", where);
        }
      } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
        types.push_back("object");
      } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
        types.push_back("array");
      }
      // A list naming both integer and number is number's (its values include integer's).
      if (std::count(types.begin(), types.end(), "number") > 0) {
        types.erase(std::remove(types.begin(), types.end(), "integer"), types.end());
      }
      if (types.empty()) {
        n.kind = JsonSchema::Kind::kAny;
      } else if (types.size() == 1) {
        n = typed(s, types[0], where);
      } else {
        n.kind = JsonSchema::Kind::kUnion;
        for (const std::string& t : types) n.branches.push_back(add(typed(s, t, where, true), where + " (" + t + ")"));
      }
    }
    out_->nodes_[static_cast<size_t>(index)] = std::move(n);
    return index;
  }

  // Whether a schema (its references followed) allows values of named types only.
  bool names_its_type(const json& s, int hops = 0) {
    if (!s.is_object() || hops > kMaxCompileDepth) return false;
    if (s.contains("type") || s.contains("enum") || s.contains("const")) return true;
    if (const auto r = s.find("$ref"); r != s.end() && r->is_string()) {
      try {
        return names_its_type(resolve(*r, "#"), hops + 1);
      } catch (const Error&) {
        return false;
      }
    }
    return false;
  }

  const json& resolve(const json& ref, const std::string& where) {
    if (!ref.is_string()) fail("json schema {}: '$ref' must be a string", where);
    const std::string r = ref.get<std::string>();
    if (r == "#") return root_;
    if (r.rfind("#/", 0) != 0) fail("json schema {}: only local references (#/...) are supported (got '{}')", where, r);
    try {
      return root_.at(json::json_pointer(r.substr(1)));
    } catch (const json::exception&) {
      fail("json schema {}: '$ref' {} names nothing in the schema", where, r);
    }
  }

  JsonSchema::Node literals(const json& s, const std::string& where) {
    JsonSchema::Node n;
    n.kind = JsonSchema::Kind::kLiterals;
    std::vector<json> values;
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) fail("json schema {}: 'enum' must be a non-empty array", where);
      for (const json& v : s["enum"]) {
        if (s.contains("const") && v != s["const"]) continue;  // both: the const, if the enum has it
        values.push_back(v);
      }
    } else {
      values.push_back(s["const"]);
    }
    std::vector<std::string> types;
    if (const auto t = s.find("type"); t != s.end()) {
      if (t->is_string()) types.push_back(t->get<std::string>());
      if (t->is_array()) {
        for (const json& x : *t) types.push_back(x.is_string() ? x.get<std::string>() : "");
      }
    }
    for (const json& v : values) {
      if (!types.empty() && std::none_of(types.begin(), types.end(), [&](const std::string& t) { return literal_has_type(v, t); })) continue;
      const std::string text = v.dump();
      if (std::find(n.literals.begin(), n.literals.end(), text) == n.literals.end()) n.literals.push_back(text);
    }
    for (const auto& [key, value] : s.items()) {
      if (key != "enum" && key != "const" && key != "type" && kAnnotations.count(key) == 0) {
        fail("json schema {}: '{}' beside enum / const is not supported", where, key);
      }
    }
    if (n.literals.empty()) fail("json schema {}: enum / const allow no value", where);
    if (n.literals.size() > kMaxLiterals) fail("json schema {}: at most {} enum values are supported", where, kMaxLiterals);
    return n;
  }

  // One type's node of s; with several types (several = true) the keywords of the others are theirs.
  JsonSchema::Node typed(const json& s, const std::string& type, const std::string& where, bool several = false) {
    JsonSchema::Node n;
    auto only = [&](std::initializer_list<const char*> allowed) {
      if (several) return;
      for (const auto& [key, value] : s.items()) {
        if (key == "type" || kAnnotations.count(key) != 0) continue;
        if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
          fail("json schema {}: '{}' does not apply to type '{}' (or is not supported with it)", where, key, type);
        }
      }
    };
    if (type == "object") {
      only({"properties", "required", "additionalProperties"});
      n.kind = JsonSchema::Kind::kObject;
      static const json kNone = json::object();
      const auto pit = s.find("properties");
      const json& props = pit != s.end() ? *pit : kNone;
      if (!props.is_object()) fail("json schema {}: 'properties' must be an object", where);
      if (props.size() > kMaxProperties) fail("json schema {}: at most {} properties are supported", where, kMaxProperties);
      std::set<std::string> required;
      if (const auto r = s.find("required"); r != s.end()) {
        if (!r->is_array()) fail("json schema {}: 'required' must be an array of names", where);
        for (const json& name : *r) {
          if (!name.is_string()) fail("json schema {}: 'required' must be an array of names", where);
          if (!props.contains(name.get<std::string>())) {
            fail("json schema {}: required property '{}' is not among the properties (not supported)", where, name.get<std::string>());
          }
          required.insert(name.get<std::string>());
        }
      }
      for (const auto& [name, sub] : props.items()) {
        if (sub.is_boolean() && !sub.get<bool>()) {  // a property that may not be present: left out
          if (required.count(name) != 0) fail("json schema {}: required property '{}' allows no value", where, name);
          continue;
        }
        n.keys.push_back(json(name).dump());
        n.values.push_back(compile(sub, where + "/properties/" + name));
        n.required.push_back(required.count(name) != 0);
      }
      const auto ap = s.find("additionalProperties");
      if (ap != s.end() && !ap->is_boolean() && !ap->is_object()) {
        fail("json schema {}: 'additionalProperties' must be a schema or a boolean", where);
      }
      if (n.keys.empty()) {
        n.free_keys = true;
        if (ap != s.end() && ap->is_boolean() && !ap->get<bool>()) {
          n.empty_only = true;
        } else if (ap != s.end() && ap->is_object()) {
          n.values.push_back(compile(*ap, where + "/additionalProperties"));
        }
      }
    } else if (type == "array") {
      only({"items", "minItems", "maxItems"});
      n.kind = JsonSchema::Kind::kArray;
      bool no_items = false;
      if (const auto it = s.find("items"); it != s.end()) {
        if (it->is_array()) fail("json schema {}: 'items' as a list (tuples) is not supported", where);
        no_items = it->is_boolean() && !it->get<bool>();  // items false: only the empty array
        if (!no_items) n.items = compile(*it, where + "/items");
      }
      auto count = [&](const char* key, int64_t fallback) {
        const auto it = s.find(key);
        if (it == s.end()) return fallback;
        if (!it->is_number_integer() || (it->is_number_integer() && !it->is_number_unsigned() && it->get<int64_t>() < 0)) {
          fail("json schema {}: '{}' must be a non-negative integer", where, key);
        }
        if (it->get<uint64_t>() > static_cast<uint64_t>(kMaxItemsBound)) {
          fail("json schema {}: '{}' above {} is not supported", where, key, kMaxItemsBound);
        }
        return static_cast<int64_t>(it->get<uint64_t>());
      };
      n.min_items = count("minItems", 0);
      n.max_items = no_items ? 0 : count("maxItems", -1);
      if (n.max_items >= 0 && n.max_items < n.min_items) fail("json schema {}: maxItems is below minItems", where);
    } else if (type == "string") {
      only({});
      n.kind = JsonSchema::Kind::kString;
    } else if (type == "number" || type == "integer") {
      only({});
      n.kind = type == "number" ? JsonSchema::Kind::kNumber : JsonSchema::Kind::kInteger;
    } else if (type == "boolean") {
      only({});
      n.kind = JsonSchema::Kind::kLiterals;
      n.literals = {"true", "false"};
    } else if (type == "null") {
      only({});
      n.kind = JsonSchema::Kind::kLiterals;
      n.literals = {"null"};
    } else {
      fail("json schema {}: unknown type '{}'", where, type);
    }
    return n;
  }

  // The bytes each node's values can begin with (unions and references: their branches', to a fixpoint).
  void first_sets() {
    for (JsonSchema::Node& n : out_->nodes_) {
      switch (n.kind) {
        case JsonSchema::Kind::kAny:
          n.first.set('{');
          n.first.set('[');
          n.first.set('"');
          n.first.set('t');
          n.first.set('f');
          n.first.set('n');
          set_number_first(n.first);
          break;
        case JsonSchema::Kind::kObject: n.first.set('{'); break;
        case JsonSchema::Kind::kArray: n.first.set('['); break;
        case JsonSchema::Kind::kString: n.first.set('"'); break;
        case JsonSchema::Kind::kNumber:
        case JsonSchema::Kind::kInteger: set_number_first(n.first); break;
        case JsonSchema::Kind::kLiterals:
          for (const std::string& l : n.literals) n.first.set(static_cast<uint8_t>(l[0]));
          break;
        case JsonSchema::Kind::kUnion: break;
      }
    }
    for (bool changed = true; changed;) {
      changed = false;
      for (JsonSchema::Node& n : out_->nodes_) {
        if (n.kind != JsonSchema::Kind::kUnion) continue;
        std::bitset<256> f = n.first;
        for (int32_t b : n.branches) f |= out_->nodes_[static_cast<size_t>(b)].first;
        if (f != n.first) {
          n.first = f;
          changed = true;
        }
      }
    }
  }

  const json& root_;
  int depth_ = 0;
  JsonSchema* out_ = nullptr;
  std::map<const json*, int32_t> done_;
  std::vector<std::string> where_;
};

std::shared_ptr<const JsonSchema> JsonSchema::compile(const json& schema) { return SchemaCompiler(schema).run(); }

// ---- the reader ---------------------------------------------------------------------------------

namespace {

bool is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

SchemaAcceptor::SchemaAcceptor(std::shared_ptr<const JsonSchema> schema) : owner_(std::move(schema)), schema_(owner_.get()) {
  Frame root{};
  root.node = schema_->root();
  stack_[0] = root;
  depth_ = 1;
}

SchemaAcceptor& SchemaAcceptor::operator=(const SchemaAcceptor& other) {
  if (this == &other) return *this;
  owner_ = other.owner_;
  copy_state(other);
  return *this;
}

void SchemaAcceptor::copy_state(const SchemaAcceptor& other) {
  schema_ = other.schema_;
  depth_ = other.depth_;
  std::copy_n(other.stack_.begin(), other.depth_, stack_.begin());  // only the frames in use
  blanks_ = other.blanks_;
  string_ = other.string_;
  number_ = other.number_;
}

bool SchemaAcceptor::accepts(std::string_view bytes) const {
  SchemaAcceptor probe;
  probe.copy_state(*this);
  return probe.feed(bytes);
}

bool SchemaAcceptor::complete() const {
  if (depth_ == 0) return true;
  if (depth_ != 1) return false;
  const Frame& f = stack_[0];
  if (f.kind == F::kNumber) return number_.can_end();
  if (f.kind == F::kLiteral) {
    const std::vector<std::string>& lits = literals_of(f);
    for (size_t i = 0; i < lits.size(); ++i) {
      if ((f.mask >> i & 1) != 0 && lits[i].size() == static_cast<size_t>(f.count)) return true;
    }
  }
  return false;
}

const std::vector<std::string>& SchemaAcceptor::literals_of(const Frame& f) const {
  return f.node < 0 ? kAnyLiterals : schema_->node(f.node).literals;
}

bool SchemaAcceptor::blank(uint8_t c) {
  if (!is_blank(c) || blanks_ >= kMaxBlanks) return false;
  ++blanks_;
  return true;
}

bool SchemaAcceptor::push(const Frame& f) {
  if (depth_ >= kMaxDepth) return false;
  stack_[static_cast<size_t>(depth_++)] = f;
  return true;
}

void SchemaAcceptor::pop_value() { --depth_; }

bool SchemaAcceptor::feed(uint8_t c) {
  if (depth_ == 0) return false;
  return step(c);
}

bool SchemaAcceptor::start_value(Frame& f, uint8_t c) {
  int32_t node = f.node;
  while (node >= 0 && schema_->node(node).kind == JsonSchema::Kind::kUnion) {
    const JsonSchema::Node& u = schema_->node(node);
    int32_t next = -2;
    for (int32_t b : u.branches) {
      if (schema_->node(b).first.test(c)) next = b;
    }
    if (next == -2) return false;
    node = next;
  }
  JsonSchema::Kind kind = node < 0 ? JsonSchema::Kind::kAny : schema_->node(node).kind;
  if (node >= 0 && !schema_->node(node).first.test(c)) return false;
  if (kind == JsonSchema::Kind::kAny) {
    if (c == '{') kind = JsonSchema::Kind::kObject;
    else if (c == '[') kind = JsonSchema::Kind::kArray;
    else if (c == '"') kind = JsonSchema::Kind::kString;
    else if (c == 't' || c == 'f' || c == 'n') kind = JsonSchema::Kind::kLiterals;
    else kind = JsonSchema::Kind::kNumber;
    node = -1;  // an any value: its parts are any values too
  }
  f = Frame{};
  f.node = node;
  switch (kind) {
    case JsonSchema::Kind::kObject: f.kind = F::kObject; return true;
    case JsonSchema::Kind::kArray: f.kind = F::kArray; return true;
    case JsonSchema::Kind::kString:
      f.kind = F::kString;
      string_ = JsonStringLexer{};
      return true;
    case JsonSchema::Kind::kNumber:
    case JsonSchema::Kind::kInteger:
      f.kind = F::kNumber;
      f.integer = kind == JsonSchema::Kind::kInteger;
      return number_.start(c, f.integer);
    case JsonSchema::Kind::kLiterals: {
      f.kind = F::kLiteral;
      const std::vector<std::string>& lits = literals_of(f);
      for (size_t i = 0; i < lits.size(); ++i) {
        if (static_cast<uint8_t>(lits[i][0]) == c) f.mask |= uint64_t{1} << i;
      }
      f.count = 1;
      return f.mask != 0;
    }
    case JsonSchema::Kind::kAny:
    case JsonSchema::Kind::kUnion: break;
  }
  return false;
}

// After '"' in an object: the key frame (the candidates: the properties from the next one up to the
// first required one), or a free key's string.
bool SchemaAcceptor::start_key(Frame& object) {
  const JsonSchema::Node* n = object.node >= 0 ? &schema_->node(object.node) : nullptr;
  if (n == nullptr || n->free_keys) {
    if (n != nullptr && n->empty_only) return false;
    Frame k{};
    k.kind = F::kString;
    k.key = true;
    string_ = JsonStringLexer{};
    return push(k);
  }
  uint64_t mask = 0;
  for (size_t p = static_cast<size_t>(object.count); p < n->keys.size(); ++p) {
    mask |= uint64_t{1} << p;
    if (n->required[p]) break;
  }
  if (mask == 0) return false;
  Frame k{};
  k.node = object.node;
  k.kind = F::kKey;
  k.count = 1;  // the opening quote
  k.mask = mask;
  return push(k);
}

bool SchemaAcceptor::step(uint8_t c) {
  Frame& f = stack_[static_cast<size_t>(depth_ - 1)];
  switch (f.kind) {
    case F::kValue:
      if (blank(c)) return true;
      blanks_ = 0;
      return start_value(f, c);
    case F::kString: {
      bool closed = false;
      if (!string_.feed(c, closed)) return false;
      if (!closed) return true;
      blanks_ = 0;
      const bool key = f.key;
      pop_value();
      if (key) {
        Frame& object = stack_[static_cast<size_t>(depth_ - 1)];
        object.phase = Phase::kColon;
        object.current = -1;
      }
      return true;
    }
    case F::kNumber: {
      bool ended = false;
      if (number_.feed(c, ended)) return true;
      if (!ended || depth_ == 1) return false;  // nothing follows a whole document
      blanks_ = 0;
      pop_value();
      return step(c);
    }
    case F::kLiteral: {
      const std::vector<std::string>& lits = literals_of(f);
      uint64_t next = 0;
      bool whole = false;
      for (size_t i = 0; i < lits.size(); ++i) {
        if ((f.mask >> i & 1) == 0) continue;
        if (lits[i].size() == static_cast<size_t>(f.count)) whole = true;
        if (lits[i].size() > static_cast<size_t>(f.count) && static_cast<uint8_t>(lits[i][static_cast<size_t>(f.count)]) == c) {
          next |= uint64_t{1} << i;
        }
      }
      if (next != 0) {
        f.mask = next;
        ++f.count;
        return true;
      }
      if (!whole || depth_ == 1) return false;
      blanks_ = 0;
      pop_value();
      return step(c);
    }
    case F::kKey: {
      const JsonSchema::Node& n = schema_->node(f.node);
      uint64_t next = 0;
      int32_t matched = -1;
      for (size_t p = 0; p < n.keys.size(); ++p) {
        if ((f.mask >> p & 1) == 0) continue;
        const std::string& k = n.keys[p];
        if (k.size() > static_cast<size_t>(f.count) && static_cast<uint8_t>(k[static_cast<size_t>(f.count)]) == c) {
          next |= uint64_t{1} << p;
          if (k.size() == static_cast<size_t>(f.count) + 1) matched = static_cast<int32_t>(p);
        }
      }
      if (next == 0) return false;
      f.mask = next;
      ++f.count;
      if (matched >= 0) {  // the closing quote: keys are prefix-free
        pop_value();
        Frame& object = stack_[static_cast<size_t>(depth_ - 1)];
        object.current = matched;
        object.count = matched + 1;
        object.phase = Phase::kColon;
      }
      return true;
    }
    case F::kObject: {
      if (blank(c)) return true;
      blanks_ = 0;
      const JsonSchema::Node* n = f.node >= 0 ? &schema_->node(f.node) : nullptr;
      const bool free = n == nullptr || n->free_keys;
      auto required_left = [&] {
        if (free) return false;
        for (size_t p = static_cast<size_t>(f.count); p < n->keys.size(); ++p) {
          if (n->required[p]) return true;
        }
        return false;
      };
      switch (f.phase) {
        case Phase::kFirst:
        case Phase::kAfterValue:
          if (c == '}') {
            if (required_left()) return false;
            pop_value();
            return true;
          }
          if (c == ',' && f.phase == Phase::kAfterValue) {
            if (free ? (n != nullptr && n->empty_only) : static_cast<size_t>(f.count) >= n->keys.size()) return false;
            f.phase = Phase::kNeedKey;
            return true;
          }
          if (c == '"' && f.phase == Phase::kFirst) return start_key(f);
          return false;
        case Phase::kNeedKey:
          if (c != '"') return false;
          return start_key(f);
        case Phase::kColon: {
          if (c != ':') return false;
          f.phase = Phase::kAfterValue;
          Frame v{};
          v.node = n == nullptr ? -1 : f.current >= 0 ? n->values[static_cast<size_t>(f.current)] : n->values.empty() ? -1 : n->values[0];
          return push(v);
        }
      }
      return false;
    }
    case F::kArray: {
      if (blank(c)) return true;
      blanks_ = 0;
      const JsonSchema::Node* n = f.node >= 0 ? &schema_->node(f.node) : nullptr;
      const int64_t min = n ? n->min_items : 0, max = n ? n->max_items : -1;
      Frame item{};
      item.node = n ? n->items : -1;
      if (c == ']') {
        if (f.count < min) return false;
        pop_value();
        return true;
      }
      if (f.phase == Phase::kFirst) {
        if (max == 0) return false;
        f.phase = Phase::kAfterValue;
        f.count = 1;
        if (!push(item)) return false;
        return step(c);
      }
      if (c != ',' || (max >= 0 && f.count >= max)) return false;
      ++f.count;
      return push(item);
    }
  }
  return false;
}

}  // namespace shardlm
