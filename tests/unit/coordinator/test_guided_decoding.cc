// Guided decoding's constraints: the byte-level JSON reader, and the token masks over the tiny
// golden model's tokenizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/guided_decoding.h"
#include "coordinator/json_schema_acceptor.h"
#include "model/tokenizer.h"

namespace shardlm {
namespace {

bool accepts(const std::string& text, bool object_only = true) {
  JsonAcceptor a(object_only);
  return a.feed(text);
}

bool whole(const std::string& text, bool object_only = true) {
  JsonAcceptor a(object_only);
  return a.feed(text) && a.complete();
}

TEST(JsonAcceptor, WholeDocumentsAndTheirPrefixes) {
  const std::vector<std::string> docs = {
      "{}",
      "{\"a\": 1}",
      " {\n  \"name\": \"sea\",\n  \"depth\": -12.5e+3,\n  \"ok\": true,\n  \"none\": null,\n  \"list\": [1, 0, 2.0E-2, \"x\", [], {}]\n}",
      "{\"esc\": \"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\\ud7ff\"}",
      "{\"utf8\": \"\xc3\xa9\xe2\x82\xac\"}",
      "{\"n\":[0,-0,10,1.5,1e5,1E-5]}",
  };
  for (const std::string& d : docs) {
    EXPECT_TRUE(whole(d)) << d;
    EXPECT_TRUE(nlohmann::json::accept(d)) << d;
    for (size_t n = 0; n < d.size(); ++n) {
      JsonAcceptor a;
      EXPECT_TRUE(a.feed(d.substr(0, n))) << d.substr(0, n);
      EXPECT_FALSE(a.complete()) << d.substr(0, n);
    }
    // Nothing follows a whole document, not even a blank.
    EXPECT_FALSE(accepts(d + " ")) << d;
  }
}

TEST(JsonAcceptor, RefusesWhatIsNotJson) {
  for (const char* bad : {"[]", "\"s\"", "1", "true", "{a", "{\"a\" 1}", "{\"a\":}", "{\"a\":1,}", "{,", "{\"a\":01}",
                                 "{\"a\":1.}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":tru }", "{\"a\":nul", "{\"a\":\"\x01\"}",
                                 "{\"a\":\"\\x\"}", "{\"a\":\"\\u12G4\"}", "{\"a\":\"\\uD83D\"}", "{\"a\":\"\\uDE00\"}",
                                 "{\"a\":\"\\uD83Dx\"}", "{\"a\":\"\\uD83D\\n\"}", "{\"a\":\"\\uD83D\\u0041\"}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":1]", "{]", "}"}) {
    JsonAcceptor a;
    EXPECT_FALSE(a.feed(bad) && a.complete()) << bad;
  }
  // UTF-8 in strings: whole characters only.
  for (const char* bad : {"{\"a\":\"\xcf \"}", "{\"a\":\"\x80\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xe0\x80\xaf\"}",
                                 "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\"}", "{\"a\":\"\xe2\x82\"}"}) {
    EXPECT_FALSE(accepts(bad)) << bad;
  }
  EXPECT_TRUE(whole("{\"a\":\"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\"}"));
  EXPECT_FALSE(accepts("{\"a\":1,}"));
  EXPECT_FALSE(accepts("{\"a\":01"));
  EXPECT_FALSE(accepts("["));
  // Any value at the top when an object is not required.
  EXPECT_TRUE(whole("[1, {\"a\": []}]", false));
  EXPECT_TRUE(whole("\"s\"", false));
  EXPECT_TRUE(whole("-3.5", false));
  EXPECT_TRUE(whole("null", false));
}

TEST(JsonAcceptor, BlanksAndDepthAreBounded) {
  EXPECT_TRUE(accepts("{" + std::string(JsonAcceptor::kMaxBlanks, ' ')));
  EXPECT_FALSE(accepts("{" + std::string(JsonAcceptor::kMaxBlanks + 1, ' ')));
  EXPECT_TRUE(accepts("{\"a\":\"" + std::string(500, ' ') + "\"}"));  // inside strings they are text
  std::string deep = "{\"a\":";
  for (int i = 1; i < JsonAcceptor::kMaxDepth; ++i) deep += "[";
  EXPECT_TRUE(accepts(deep));
  EXPECT_FALSE(accepts(deep + "["));
}

const std::string kTiny = std::string(SHARDLM_TEST_DATA) + "/dense";

// The mask allows exactly the tokens whose bytes continue the text; never a special token.
TEST(GuidedDecoding, MasksFollowTheTokensBytes) {
  const Tokenizer tokenizer = Tokenizer::load(kTiny);
  auto table = std::make_shared<const TokenTable>(tokenizer);
  auto json = json_object_spec(table)->start();
  std::vector<uint8_t> allowed;
  EXPECT_FALSE(json->allowed_tokens(allowed));
  ASSERT_EQ(allowed.size(), static_cast<size_t>(tokenizer.vocab_size()));
  int count = 0;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const bool expect = tokenizer.is_valid(id) && !tokenizer.is_special(id) && !tokenizer.token_bytes(id).empty() &&
                        accepts(tokenizer.token_bytes(id));
    EXPECT_EQ(allowed[static_cast<size_t>(id)] != 0, expect) << id;
    count += expect;
  }
  EXPECT_GT(count, 0);
  EXPECT_FALSE(allowed[static_cast<size_t>(tokenizer.bos_id())]);
  // Feed "{}" token by token: then complete, and nothing more allowed.
  for (int32_t id : tokenizer.encode("{}", false)) json->accept(id);
  EXPECT_TRUE(json->allowed_tokens(allowed));
  for (uint8_t a : allowed) EXPECT_EQ(a, 0);

  auto choice = choice_spec(table, {"yes", "no", "yes please"})->start();
  choice->allowed_tokens(allowed);
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (!allowed[static_cast<size_t>(id)]) continue;
    const std::string b = tokenizer.token_bytes(id);
    EXPECT_TRUE(std::string("yes").rfind(b, 0) == 0 || std::string("no").rfind(b, 0) == 0 || std::string("yes please").rfind(b, 0) == 0) << b;
  }
  for (int32_t id : tokenizer.encode("yes", false)) choice->accept(id);
  EXPECT_TRUE(choice->complete());
  EXPECT_TRUE(choice->allowed_tokens(allowed));  // complete, and " please" may still follow
  bool more = false;
  for (uint8_t a : allowed) more = more || a;
  EXPECT_TRUE(more);
  EXPECT_THROW(choice_spec(table, {}), Error);
  EXPECT_THROW(choice_spec(table, {"a", ""}), Error);
}

}  // namespace
}  // namespace shardlm

namespace shardlm {
namespace {

using nlohmann::json;

const json kPersonSchema = json::parse(R"({
  "$defs": {
    "tag": {"type": "string", "description": "a label"},
    "tree": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}, "maxItems": 2}}, "required": ["v"]}
  },
  "type": "object",
  "title": "Person",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer"},
    "height": {"type": "number"},
    "kind": {"enum": ["cat", "dog", 3, null]},
    "nick": {"type": ["string", "null"]},
    "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1, "maxItems": 3},
    "ok": {"type": "boolean"},
    "any": {},
    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "object", "additionalProperties": {"type": "boolean"}}]},
    "tree": {"$ref": "#/$defs/tree"}
  },
  "required": ["name", "age", "tags", "tree"],
  "additionalProperties": false
})");

// The subset of JSON Schema validation the reader supports, written out for the test.
bool valid(const json& v, const json& s, const json& root) {
  if (s.is_boolean()) return s.get<bool>();
  if (s.contains("$ref")) return valid(v, root.at(json::json_pointer(s["$ref"].get<std::string>().substr(1))), root);
  if (s.contains("anyOf")) {
    return std::any_of(s["anyOf"].begin(), s["anyOf"].end(), [&](const json& b) { return valid(v, b, root); });
  }
  if (s.contains("enum")) return std::find(s["enum"].begin(), s["enum"].end(), v) != s["enum"].end();
  if (s.contains("type")) {
    const json types = s["type"].is_array() ? s["type"] : json::array({s["type"]});
    bool typed = false;
    for (const json& t : types) {
      const std::string name = t;
      typed = typed || (name == "object" && v.is_object()) || (name == "array" && v.is_array()) || (name == "string" && v.is_string()) ||
              (name == "integer" && v.is_number_integer()) || (name == "number" && v.is_number()) ||
              (name == "boolean" && v.is_boolean()) || (name == "null" && v.is_null());
    }
    if (!typed) return false;
  }
  if (v.is_object()) {
    const json props = s.value("properties", json::object());
    for (const json& r : s.value("required", json::array())) {
      if (!v.contains(r.get<std::string>())) return false;
    }
    for (const auto& [k, x] : v.items()) {
      if (props.contains(k)) {
        if (!valid(x, props[k], root)) return false;
      } else if (s.contains("additionalProperties") && !valid(x, s["additionalProperties"], root)) {
        return false;
      }
    }
  }
  if (v.is_array() && s.contains("items")) {
    for (const json& x : v) {
      if (!valid(x, s["items"], root)) return false;
    }
    if (v.size() < s.value("minItems", size_t{0}) || v.size() > s.value("maxItems", size_t{1000000})) return false;
  }
  return true;
}

bool schema_accepts(const json& schema, const std::string& text, bool* whole = nullptr) {
  SchemaAcceptor a(JsonSchema::compile(schema));
  const bool ok = a.feed(text);
  if (whole) *whole = ok && a.complete();
  return ok;
}

TEST(SchemaAcceptor, DocumentsOfTheSchema) {
  // Properties come in the order of their names (a parsed schema's objects keep no other).
  const std::string doc = R"({"age": -3, "any": {"x": [1, "y", null]}, "either": {"p": true}, "height": 1.5e2, "kind": 3,
    "name": "Ann", "nick": null, "ok": false, "tags": ["a", "b\u00e9"], "tree": {"kids": [{"v": 2}, {"kids": [], "v": 3}], "v": 1}})";
  bool whole = false;
  EXPECT_TRUE(schema_accepts(kPersonSchema, doc, &whole));
  EXPECT_TRUE(whole);
  EXPECT_TRUE(valid(json::parse(doc), kPersonSchema, kPersonSchema));
  EXPECT_TRUE(schema_accepts(kPersonSchema, R"({"age":0,"name":"A","tags":["t"],"tree":{"v":0}})", &whole) && whole);
  // What the schema refuses, and what the reader leaves out (order, properties it need not write).
  for (const char* bad : {
           R"({"name": "A")",                                // a required property (age) skipped
           R"({"age": 1, "age")",                            // twice
           R"({"age": 1, "name": 1)",                        // a number for a string
           R"({"age": 1.5)",                                 // a fraction for an integer
           R"({"age": 1, "kind": "cow")",                    // not in the enum
           R"({"age": 1, "name": "A", "tags": [])",          // fewer than minItems
           R"({"age": 1, "name": "A", "tags": ["a", "b", "c", "d")",  // more than maxItems
           R"({"age": 1, "name": "A", "tags": [1)",          // an item of another type
           R"({"age": 1, "extra")",                          // not a property
           R"({"age": 1, "name": "A", "tags": ["a"], "tree": {"kids": [{}]})",  // a nested required property
           R"({"age": 1, "name": "A", "tags": ["a"], "tree": {"v": 1}}})",  // one closing brace too many
           R"({"age": 1, "either": [)",                      // no branch begins so
           R"({"age": 1, "either": {"p": 1})",               // additionalProperties' schema
           R"({"name": "A", "age": 1)",                      // out of order
           R"([)"}) {
    EXPECT_FALSE(schema_accepts(kPersonSchema, bad)) << bad;
  }
  EXPECT_FALSE(schema_accepts(kPersonSchema, R"({"age":0,"name":"A","tags":["t"],"tree":{"v":0}} )"));  // nothing after it
  // Top-level scalars end with the document.
  EXPECT_TRUE(schema_accepts(json{{"type", "integer"}}, "42", &whole) && whole);
  EXPECT_FALSE(schema_accepts(json{{"type", "integer"}}, "42 "));
  EXPECT_TRUE(schema_accepts(json{{"enum", {1, 10}}}, "1", &whole) && whole);
  EXPECT_TRUE(schema_accepts(json{{"enum", {1, 10}}}, "10", &whole) && whole);
  EXPECT_FALSE(schema_accepts(json{{"enum", {1, 10}}}, "100"));
  EXPECT_TRUE(schema_accepts(json{{"type", "object"}, {"additionalProperties", false}}, "{}", &whole) && whole);
  EXPECT_FALSE(schema_accepts(json{{"type", "object"}, {"additionalProperties", false}}, "{\""));
  EXPECT_TRUE(schema_accepts(json{{"type", "object"}}, R"({"free": [1, {"a": null}]})", &whole) && whole);
}

TEST(SchemaAcceptor, UnsupportedSchemasAreRefusedByName) {
  auto message = [](const json& schema) {
    try {
      JsonSchema::compile(schema);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("compiled");
  };
  EXPECT_NE(message(json::parse(R"({"type": "string", "pattern": "a+"})")).find("'pattern'"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "string", "format": "date-time"})")).find("'format'"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}})")).find("#/properties/a"),
            std::string::npos);
  EXPECT_NE(message(json::parse(R"({"anyOf": [{"type": "string"}, {"enum": ["x"]}]})")).find("begin with the same"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "object", "properties": {}, "required": ["a"]})")).find("'a'"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"$ref": "http://example.com/s.json"})")).find("local"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "array", "items": [{"type": "string"}]})")).find("tuples"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "wizard"})")).find("wizard"), std::string::npos);
  EXPECT_NE(message(json(false)).find("no value"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"$ref": "#"})")).find("no value"), std::string::npos);
  EXPECT_EQ(message(json::parse(R"({"type": "string", "title": "t", "description": "d"})")), "compiled");
  // A oneOf branch whose type is implied also matches the other branches' values.
  EXPECT_NE(message(json::parse(R"({"oneOf": [{"items": {"type": "integer"}}, {"type": "null"}]})")).find("name its type"),
            std::string::npos);
  EXPECT_EQ(message(json::parse(R"({"oneOf": [{"type": "array"}, {"type": "null"}]})")), "compiled");
  // const and enum: the const only if the enum has it.
  EXPECT_NE(message(json::parse(R"({"const": "a", "enum": ["b", "c"]})")).find("no value"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "array", "minItems": 9223372036854775808})")).find("minItems"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"$ref": 5})")).find("must be a string"), std::string::npos);
  EXPECT_NE(message(json::parse(R"({"type": "object", "additionalProperties": "x"})")).find("additionalProperties"), std::string::npos);
  // Nesting (references followed) is bounded, not read recursively to the end.
  json deep = {{"$defs", json::object()}, {"$ref", "#/$defs/d0"}};
  for (int i = 0; i < 5000; ++i) {
    deep["$defs"]["d" + std::to_string(i)] = {{"type", "object"}, {"properties", {{"a", {{"$ref", "#/$defs/d" + std::to_string(i + 1)}}}}}};
  }
  deep["$defs"]["d5000"] = {{"type", "integer"}};
  EXPECT_NE(message(deep).find("deep"), std::string::npos);
}

// Schemas the reader takes in a narrower form: nullable objects, properties that may not be present,
// empty arrays only, integer-or-number, minItems without a type.
TEST(SchemaAcceptor, NarrowedForms) {
  const json nullable = json::parse(R"({"type": ["object", "null"], "properties": {"a": {"type": "integer"}}})");
  bool whole = false;
  EXPECT_TRUE(schema_accepts(nullable, "null", &whole) && whole);
  EXPECT_TRUE(schema_accepts(nullable, R"({"a": 1})", &whole) && whole);
  const json absent = json::parse(R"({"type": "object", "properties": {"a": false, "b": {"type": "integer"}}})");
  EXPECT_FALSE(schema_accepts(absent, R"({"a")"));
  EXPECT_TRUE(schema_accepts(absent, R"({"b": 2})", &whole) && whole);
  EXPECT_TRUE(schema_accepts(json::parse(R"({"type": "array", "items": false})"), "[]", &whole) && whole);
  EXPECT_FALSE(schema_accepts(json::parse(R"({"type": "array", "items": false})"), "[1"));
  EXPECT_TRUE(schema_accepts(json::parse(R"({"type": ["integer", "number"]})"), "1.5", &whole) && whole);
  const json two = json::parse(R"({"type": "object", "properties": {"l": {"minItems": 2, "maxItems": 2}}, "required": ["l"]})");
  EXPECT_FALSE(schema_accepts(two, R"({"l": []})"));
  EXPECT_FALSE(schema_accepts(two, R"({"l": [1]})"));
  EXPECT_FALSE(schema_accepts(two, R"({"l": [1, 2, 3)"));
  EXPECT_TRUE(schema_accepts(two, R"({"l": [1, [2]]})", &whole) && whole);
  // 64 levels, as a JSON object's.
  json nested = {{"type", "integer"}};
  for (int i = 0; i < 63; ++i) nested = {{"type", "array"}, {"items", nested}};
  EXPECT_TRUE(schema_accepts(nested, std::string(63, '[') + "1" + std::string(63, ']'), &whole) && whole);
}

// Random texts the reader lets through, byte by byte: each whole one is JSON the schema accepts.
TEST(SchemaAcceptor, RandomWalksEndInValidDocuments) {
  const auto schema = JsonSchema::compile(kPersonSchema);
  std::mt19937 rng(7);
  std::string alphabet = " \n{}[],:\"-.0123456789eEtrufalsn\\abcdxyzAGK";
  for (const auto& [k, v] : kPersonSchema["properties"].items()) alphabet += k;
  alphabet += "vkids";  // the tree's keys
  int whole_docs = 0;
  for (int walk = 0; walk < 300; ++walk) {
    SchemaAcceptor a(schema);
    std::string text;
    for (int step = 0; step < 3000; ++step) {
      if (a.complete() && rng() % 4 == 0) break;
      std::vector<uint8_t> next;
      for (char c : alphabet) {
        SchemaAcceptor b = a;
        if (b.feed(static_cast<uint8_t>(c))) next.push_back(static_cast<uint8_t>(c));
      }
      if (next.empty()) break;
      const uint8_t c = next[rng() % next.size()];
      ASSERT_TRUE(a.feed(c));
      text.push_back(static_cast<char>(c));
    }
    if (!a.complete()) continue;
    ++whole_docs;
    ASSERT_TRUE(json::accept(text)) << json(text).dump();
    EXPECT_TRUE(valid(json::parse(text), kPersonSchema, kPersonSchema)) << text;
  }
  EXPECT_GT(whole_docs, 50);
}

}  // namespace
}  // namespace shardlm
