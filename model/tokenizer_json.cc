#include "model/tokenizer_json.h"

#include "common/error.h"

namespace shardlm::tokenizer_detail {

std::string json_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string json_path(std::string_view parent, size_t index) { return fmt::format("{}[{}]", parent, index); }

void expect_object(const json& value, std::string_view path) {
  if (!value.is_object()) fail("field '{}' must be an object, not {}", path, value.type_name());
}

void expect_array(const json& value, std::string_view path) {
  if (!value.is_array()) fail("field '{}' must be an array, not {}", path, value.type_name());
}

const json& require_field(const json& obj, const char* key, std::string_view path) {
  expect_object(obj, path.empty() ? std::string_view("(top level)") : path);
  auto it = obj.find(key);
  if (it == obj.end()) fail("missing field '{}'", json_path(path, key));
  return *it;
}

const json* optional_field(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string require_string(const json& obj, const char* key, std::string_view path) {
  const json& v = require_field(obj, key, path);
  if (!v.is_string()) fail("field '{}' must be a string, not {}", json_path(path, key), v.type_name());
  return v.get<std::string>();
}

std::string optional_string(const json& obj, const char* key, std::string_view path, std::string fallback) {
  const json* v = optional_field(obj, key);
  if (!v) return fallback;
  if (!v->is_string()) fail("field '{}' must be a string, not {}", json_path(path, key), v->type_name());
  return v->get<std::string>();
}

bool optional_bool(const json& obj, const char* key, std::string_view path, bool fallback) {
  const json* v = optional_field(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail("field '{}' must be true or false, not {}", json_path(path, key), v->type_name());
  return v->get<bool>();
}

int64_t require_int(const json& obj, const char* key, std::string_view path) {
  const json& v = require_field(obj, key, path);
  if (!v.is_number_integer()) fail("field '{}' must be an integer, not {}", json_path(path, key), v.dump());
  return v.get<int64_t>();
}

int64_t optional_int(const json& obj, const char* key, std::string_view path, int64_t fallback) {
  const json* v = optional_field(obj, key);
  if (!v) return fallback;
  if (!v->is_number_integer()) fail("field '{}' must be an integer, not {}", json_path(path, key), v->dump());
  return v->get<int64_t>();
}

std::string literal_pattern(const json& obj, const char* key, std::string_view path) {
  const std::string pattern_path = json_path(path, key);
  const json& pattern = require_field(obj, key, path);
  expect_object(pattern, pattern_path);
  if (const json* s = optional_field(pattern, "String")) {
    if (!s->is_string()) fail("field '{}.String' must be a string", pattern_path);
    return s->get<std::string>();
  }
  if (const json* r = optional_field(pattern, "Regex")) {
    if (!r->is_string()) fail("field '{}.Regex' must be a string", pattern_path);
    const std::string regex = r->get<std::string>();
    if (regex.find_first_of("\\^$.|?*+()[]{}") != std::string::npos) {
      fail("field '{}.Regex' = '{}': regular-expression patterns are not supported", pattern_path, regex);
    }
    return regex;
  }
  fail("field '{}' must hold \"String\" or \"Regex\"", pattern_path);
}

}  // namespace shardlm::tokenizer_detail

// --- streaming document parser ------------------------------------------------------------------

namespace shardlm::tokenizer_detail {
namespace {

// nlohmann SAX handler: builds the JSON tree like the library's DOM parser, except for the
// contents of model.vocab / model.merges, which go into BpeTables.
class DocumentSax {
 public:
  DocumentSax(json& tree, BpeTables& tables) : tree_(tree), tables_(tables) {}

  bool null() { return scalar(json(nullptr), "null"); }
  bool boolean(bool v) { return scalar(json(v), "a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (mode_ == Mode::kVocab) return vocab_id(v);
    return scalar(json(v), "a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (mode_ == Mode::kVocab) return vocab_id(v > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v));
    return scalar(json(v), "a number");
  }
  bool number_float(json::number_float_t v, const std::string&) { return scalar(json(v), "a number"); }
  bool binary(json::binary_t& v) { return scalar(json(v), "binary data"); }

  bool string(std::string& v) {
    switch (mode_) {
      case Mode::kTree:
        return insert(json(std::move(v))) != nullptr;
      case Mode::kVocab:
        return bad_vocab_value("a string");
      case Mode::kMerges: {
        const size_t space = v.find(' ');
        if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos) {
          fail("field 'model.merges[{}]' = '{}' must be two pieces separated by one space", tables_.merges.size(), v);
        }
        const BpeTables::Span all = append(v);
        tables_.merges.push_back({{all.offset, static_cast<uint32_t>(space)},
                                  {static_cast<uint32_t>(all.offset + space + 1), static_cast<uint32_t>(v.size() - space - 1)}});
        return true;
      }
      case Mode::kMergePair:
        if (pair_size_ == 2) bad_merge();
        pair_[pair_size_++] = append(v);
        return true;
    }
    return false;
  }

  bool start_object(size_t) {
    if (mode_ != Mode::kTree) return mode_ == Mode::kVocab ? bad_vocab_value("an object") : bad_merge();
    if (at_model_field("vocab")) {
      mode_ = Mode::kVocab;
      tables_.has_vocab = true;
      tables_.vocab.clear();
      return true;
    }
    json* obj = insert(json::object());
    stack_.push_back({obj, {}});
    return true;
  }

  bool key(std::string& k) {
    if (mode_ == Mode::kVocab) {
      pending_key_ = append(k);
      return true;
    }
    stack_.back().key = std::move(k);
    return true;
  }

  bool end_object() {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kTree;
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool start_array(size_t) {
    switch (mode_) {
      case Mode::kVocab:
        return bad_vocab_value("an array");
      case Mode::kMerges:
        mode_ = Mode::kMergePair;
        pair_size_ = 0;
        return true;
      case Mode::kMergePair:
        return bad_merge();
      case Mode::kTree:
        break;
    }
    if (at_model_field("merges")) {
      mode_ = Mode::kMerges;
      tables_.has_merges = true;
      tables_.merges.clear();
      return true;
    }
    json* arr = insert(json::array());
    stack_.push_back({arr, {}});
    return true;
  }

  bool end_array() {
    if (mode_ == Mode::kMergePair) {
      if (pair_size_ != 2) bad_merge();
      tables_.merges.push_back({pair_[0], pair_[1]});
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kTree;
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool parse_error(size_t position, const std::string& last_token, const nlohmann::detail::exception& e) {
    fail("invalid JSON at byte {} (near '{}'): {}", position, last_token.substr(0, 40), e.what());
  }

 private:
  enum class Mode { kTree, kVocab, kMerges, kMergePair };
  struct Frame {
    json* container;
    std::string key;  // current member name when the container is an object
  };

  // Inside the object root["model"], about to read member `field`.
  bool at_model_field(const char* field) const {
    return stack_.size() == 2 && stack_[0].key == "model" && stack_[1].container->is_object() &&
           stack_[1].key == field;
  }

  json* insert(json&& value) {
    if (stack_.empty()) {
      tree_ = std::move(value);
      return &tree_;
    }
    json& parent = *stack_.back().container;
    if (parent.is_object()) {
      json& slot = parent[stack_.back().key];
      slot = std::move(value);
      return &slot;
    }
    parent.push_back(std::move(value));
    return &parent.back();
  }

  bool scalar(json&& value, const char* what) {
    if (mode_ == Mode::kVocab) return bad_vocab_value(what);
    if (mode_ != Mode::kTree) return bad_merge();
    return insert(std::move(value)) != nullptr;
  }

  BpeTables::Span append(std::string_view s) {
    if (tables_.arena.size() + s.size() > UINT32_MAX) fail("tokenizer tables exceed 4 GiB");
    const BpeTables::Span span{static_cast<uint32_t>(tables_.arena.size()), static_cast<uint32_t>(s.size())};
    tables_.arena.append(s);
    return span;
  }

  bool vocab_id(int64_t id) {
    tables_.vocab.push_back({pending_key_, id});
    return true;
  }

  bool bad_vocab_value(const char* what) {
    fail("field 'model.vocab' entry '{}' must have an integer id, not {}", tables_.text(pending_key_), what);
  }

  bool bad_merge() {
    fail("field 'model.merges[{}]' must be a string \"a b\" or a pair [\"a\", \"b\"]", tables_.merges.size());
  }

  json& tree_;
  BpeTables& tables_;
  std::vector<Frame> stack_;
  Mode mode_ = Mode::kTree;
  BpeTables::Span pending_key_;
  BpeTables::Span pair_[2];
  int pair_size_ = 0;
};

}  // namespace

void parse_tokenizer_document(std::string_view text, json& tree, BpeTables& tables) {
  DocumentSax sax(tree, tables);
  json::sax_parse(text.begin(), text.end(), &sax);
}

}  // namespace shardlm::tokenizer_detail
