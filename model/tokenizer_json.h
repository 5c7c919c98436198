// Checked access to the fields of a tokenizer.json document: every helper names the JSON path of
// the field it reads ("model.merges[12]") in the Error it throws, so a malformed file is reported
// precisely and never crashes the loader.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::tokenizer_detail {

using nlohmann::json;

// "parent.key" (or "key" at the top level) / "parent[index]".
std::string json_path(std::string_view parent, std::string_view key);
std::string json_path(std::string_view parent, size_t index);

// The member `key` of object `obj` (which lives at `path`); throws when it is missing.
const json& require_field(const json& obj, const char* key, std::string_view path);
// The member, or nullptr when it is missing or null.
const json* optional_field(const json& obj, const char* key);

// Typed reads of a member; `optional_*` return the fallback when the member is missing or null.
std::string require_string(const json& obj, const char* key, std::string_view path);
std::string optional_string(const json& obj, const char* key, std::string_view path, std::string fallback);
bool optional_bool(const json& obj, const char* key, std::string_view path, bool fallback);
int64_t require_int(const json& obj, const char* key, std::string_view path);
int64_t optional_int(const json& obj, const char* key, std::string_view path, int64_t fallback);

// Throws unless `value` (at `path`) is an object / array.
void expect_object(const json& value, std::string_view path);
void expect_array(const json& value, std::string_view path);

// The literal text of a {"String": "..."} pattern, or of a {"Regex": "..."} pattern that holds no
// regular-expression syntax. Other regular expressions are rejected as unsupported.
std::string literal_pattern(const json& obj, const char* key, std::string_view path);

// The two large tables of a tokenizer.json (model.vocab and model.merges), read straight from the
// parser's events: building them as a JSON tree would cost most of the load time of the 262144-piece
// Gemma vocabulary. Piece texts live in one arena and are referred to by spans.
struct BpeTables {
  struct Span {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  struct VocabEntry {
    Span piece;
    int64_t id;
  };
  struct MergeEntry {
    Span left, right;
  };
  bool has_vocab = false;   // model.vocab was an object (when it was something else, it stays in the tree)
  bool has_merges = false;  // model.merges was an array
  std::string arena;
  std::vector<VocabEntry> vocab;  // in file order
  std::vector<MergeEntry> merges;  // in rank order

  std::string_view text(Span s) const { return std::string_view(arena).substr(s.offset, s.length); }
};

// Parses a tokenizer.json document: model.vocab and model.merges into `tables`, everything else
// into `tree`. Throws Error on invalid JSON or a malformed vocab / merges entry (naming it).
void parse_tokenizer_document(std::string_view text, json& tree, BpeTables& tables);

}  // namespace shardlm::tokenizer_detail
