#include "model/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "model/foreign_file.h"
#include "model/tokenizer_added.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_pipeline.h"
#include "model/tokenizer_utf8.h"

namespace shardlm {

using namespace tokenizer_detail;

namespace {

constexpr int32_t kMaxTokenId = 1 << 24;  // far above any real vocabulary; guards against absurd ids

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}", path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read {}", path.string());
  check_not_foreign_text(text, path.string());
  return text;
}

json parse_json_text(std::string_view text, const std::string& origin) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", origin, e.what());
  }
}

AddedToken parse_added_token(const json& value, const std::string& path) {
  expect_object(value, path);
  AddedToken t;
  const int64_t id = require_int(value, "id", path);
  if (id < 0 || id >= kMaxTokenId) fail("field '{}' = {} is out of range [0, {})", json_path(path, "id"), id, kMaxTokenId);
  t.id = static_cast<int32_t>(id);
  t.content = require_string(value, "content", path);
  if (t.content.empty()) fail("field '{}' must not be empty", json_path(path, "content"));
  t.special = optional_bool(value, "special", path, false);
  t.lstrip = optional_bool(value, "lstrip", path, false);
  t.rstrip = optional_bool(value, "rstrip", path, false);
  t.single_word = optional_bool(value, "single_word", path, false);
  t.normalized = optional_bool(value, "normalized", path, !t.special);
  return t;
}

// A token named by tokenizer_config.json: "bos_token": "<bos>" or {"content": "<bos>", ...}.
std::optional<std::string> config_token_name(const json& config, const char* key) {
  const json* v = optional_field(config, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return require_string(*v, "content", key);
  fail("field '{}' must be a string or an object with \"content\", not {}", key, v->type_name());
}

}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> pieces;  // id -> vocabulary piece or added-token content
  std::vector<uint8_t> assigned;    // id names a token
  std::vector<uint8_t> special;     // id is a special added token
  std::vector<std::string> decoded; // id -> decoder output of its piece (not first in the text)
  std::vector<uint8_t> byte_piece;  // id decodes to one raw byte (ByteFallback of "<0xNN>")
  BpeModel bpe;
  PieceMap added_by_content;
  AddedTokenMatcher raw_matcher;         // added tokens matched in the raw input
  AddedTokenMatcher normalized_matcher;  // added tokens matched after normalization
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Decoder decoder;
  std::vector<int32_t> prefix;  // post-processor ids before the text (BOS)
  std::vector<int32_t> suffix;  // post-processor ids after the text
  int32_t bos = -1, eos = -1, pad = -1;

  std::optional<int32_t> find(std::string_view content) const {
    if (const auto it = added_by_content.find(content); it != added_by_content.end()) return it->second;
    return bpe.find(content);
  }
  bool valid(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < assigned.size() && assigned[id]; }
  void check_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= assigned.size()) {
      fail("token id {} is outside the vocabulary [0, {})", id, assigned.size());
    }
    if (!assigned[id]) fail("token id {} is not assigned to any token", id);
  }
  // Decoder output of one token; `first`: the first token of the text.
  std::string_view decoded_piece(int32_t id, bool first, std::string& buffer) const {
    if (first && decoder.first_token_differs()) {
      buffer = decoder.decode_piece(pieces[id], true);
      return buffer;
    }
    return decoded[id];
  }

  void encode_section(std::string_view text, bool at_text_start, BpeScratch& scratch, std::vector<int32_t>& out) const;
  void parse_post_processor(const json* value, std::string_view path);
};

void Tokenizer::Impl::encode_section(std::string_view text, bool at_text_start, BpeScratch& scratch,
                                     std::vector<int32_t>& out) const {
  const std::string normalized = normalizer.apply(text);
  std::vector<TextSection> parts;
  if (normalized_matcher.empty()) parts.push_back({normalized, -1, 0});
  else normalized_matcher.split(normalized, parts);
  for (const TextSection& part : parts) {
    if (part.token_id >= 0) {
      out.push_back(part.token_id);
      continue;
    }
    if (pre_tokenizer.is_identity()) {
      bpe.encode_word(part.text, scratch, out);
      continue;
    }
    for (const std::string& word : pre_tokenizer.apply(std::string(part.text), at_text_start && part.offset == 0)) {
      bpe.encode_word(word, scratch, out);
    }
  }
}

void Tokenizer::Impl::parse_post_processor(const json* value, std::string_view path) {
  if (!value) return;
  expect_object(*value, path);
  const std::string type = require_string(*value, "type", path);
  if (type == "Sequence") {
    const std::string list_path = json_path(path, "processors");
    const json& list = require_field(*value, "processors", path);
    expect_array(list, list_path);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string item_path = json_path(list_path, i);
      // ByteLevel post-processing only adjusts offsets, which this tokenizer does not report.
      if (require_string(list[i], "type", item_path) == "ByteLevel") continue;
      parse_post_processor(&list[i], item_path);
    }
    return;
  }
  if (type != "TemplateProcessing") fail("field '{}' = '{}': unsupported post-processor type", json_path(path, "type"), type);
  const std::string single_path = json_path(path, "single");
  const json& single = require_field(*value, "single", path);
  expect_array(single, single_path);
  const std::string specials_path = json_path(path, "special_tokens");
  const json* specials = optional_field(*value, "special_tokens");
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string item_path = json_path(single_path, i);
    expect_object(single[i], item_path);
    if (optional_field(single[i], "Sequence")) {
      seen_sequence = true;
      continue;
    }
    const json& special = require_field(single[i], "SpecialToken", item_path);
    const std::string name = require_string(special, "id", json_path(item_path, "SpecialToken"));
    std::vector<int32_t>& target = seen_sequence ? suffix : prefix;
    const json* entry = specials ? optional_field(*specials, name.c_str()) : nullptr;
    if (!entry) {
      const auto id = find(name);
      if (!id) fail("field '{}': special token '{}' is not in {} nor a token", item_path, name, specials_path);
      target.push_back(*id);
      continue;
    }
    const std::string entry_path = json_path(specials_path, name);
    const json& ids = require_field(*entry, "ids", entry_path);
    expect_array(ids, json_path(entry_path, "ids"));
    for (size_t k = 0; k < ids.size(); ++k) {
      if (!ids[k].is_number_integer() || !valid(ids[k].get<int32_t>())) {
        fail("field '{}' = {} is not a token id", json_path(json_path(entry_path, "ids"), k), ids[k].dump());
      }
      target.push_back(ids[k].get<int32_t>());
    }
  }
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  json doc;
  try {
    BpeTables tables;
    parse_tokenizer_document(tokenizer_json, doc, tables);
    expect_object(doc, "(top level)");
    t.bpe = BpeModel::parse(require_field(doc, "model", ""), "model", tables, t.pieces, t.assigned, kMaxTokenId);

    // Added tokens: they may reuse vocabulary ids or add new ones.
    std::vector<AddedToken> raw_tokens, normalized_tokens;
    if (const json* added = optional_field(doc, "added_tokens")) {
      expect_array(*added, "added_tokens");
      for (size_t i = 0; i < added->size(); ++i) {
        AddedToken token = parse_added_token((*added)[i], json_path("added_tokens", i));
        const size_t id = static_cast<size_t>(token.id);
        if (id >= t.pieces.size()) {
          t.pieces.resize(id + 1);
          t.assigned.resize(id + 1, 0);
        }
        t.pieces[id] = token.content;
        t.assigned[id] = 1;
        t.special.resize(t.pieces.size(), 0);
        t.special[id] = token.special;
        t.added_by_content[token.content] = token.id;
        (token.normalized ? normalized_tokens : raw_tokens).push_back(std::move(token));
      }
    }
    t.special.resize(t.pieces.size(), 0);
    if (t.pieces.empty()) fail("field 'model.vocab' holds no tokens");

    t.normalizer = Normalizer::parse(optional_field(doc, "normalizer"), "normalizer");
    t.pre_tokenizer = PreTokenizer::parse(optional_field(doc, "pre_tokenizer"), "pre_tokenizer");
    t.decoder = Decoder::parse(optional_field(doc, "decoder"), "decoder");
    for (AddedToken& token : normalized_tokens) token.content = t.normalizer.apply(token.content);
    t.raw_matcher = AddedTokenMatcher(std::move(raw_tokens));
    t.normalized_matcher = AddedTokenMatcher(std::move(normalized_tokens));
    t.parse_post_processor(optional_field(doc, "post_processor"), "post_processor");
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }

  // BOS / EOS / PAD: named by tokenizer_config.json when it is there, else the usual names.
  json config = json::object();
  const std::string config_origin = "tokenizer_config.json";
  if (!config_json.empty()) config = parse_json_text(config_json, config_origin);
  try {
    auto resolve = [&](const char* key, const char* fallback_name) -> int32_t {
      if (const auto name = config_token_name(config, key)) {
        const auto id = t.find(*name);
        if (!id) fail("field '{}' = '{}' is not a token of {}", key, *name, origin);
        return *id;
      }
      const auto id = t.find(fallback_name);
      return id ? *id : -1;
    };
    expect_object(config, "(top level)");
    // Without a config, the post-processor's first prefix token is the BOS.
    t.bos = !optional_field(config, "bos_token") && !t.prefix.empty() ? t.prefix.front() : resolve("bos_token", "<bos>");
    t.eos = resolve("eos_token", "<eos>");
    t.pad = resolve("pad_token", "<pad>");
  } catch (const Error& e) {
    fail("{}: {}", config_origin, e.what());
  }
  if (!optional_field(doc, "post_processor") && t.bos >= 0) t.prefix = {t.bos};

  t.decoded.resize(t.pieces.size());
  t.byte_piece.assign(t.pieces.size(), 0);
  const bool byte_fallback = t.decoder.byte_fallback();
  for (size_t id = 0; id < t.pieces.size(); ++id) {
    if (!t.assigned[id]) continue;
    t.decoded[id] = t.decoder.decode_piece(t.pieces[id], false);
    t.byte_piece[id] = byte_fallback && byte_token_value(t.pieces[id]) >= 0;
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  if (!fs::is_regular_file(file, ec)) fail("tokenizer file {} does not exist", file.string());
  const std::string text = read_text_file(file);
  const fs::path config_file = file.parent_path() / "tokenizer_config.json";
  std::string config_text;
  if (fs::is_regular_file(config_file, ec)) config_text = read_text_file(config_file);
  try {
    return from_json(text, config_text, file.string());
  } catch (const Error& e) {
    // Name the config file by its path when the problem is there.
    const std::string what = e.what();
    const std::string prefix = "tokenizer_config.json:";
    if (what.rfind(prefix, 0) == 0) fail("{}{}", config_file.string(), what.substr(prefix.size() - 1));
    throw;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  const Impl& t = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<TextSection> sections;
  t.raw_matcher.split(text, sections);
  BpeScratch scratch;
  for (const TextSection& s : sections) {
    if (s.token_id >= 0) ids.push_back(s.token_id);
    else t.encode_section(s.text, s.offset == 0, scratch, ids);
  }
  if (add_bos) {
    // Exactly one BOS: the text may already begin with it (a rendered chat template does).
    const bool has_prefix =
        ids.size() >= t.prefix.size() && std::equal(t.prefix.begin(), t.prefix.end(), ids.begin());
    if (!has_prefix) ids.insert(ids.begin(), t.prefix.begin(), t.prefix.end());
    const bool has_suffix =
        ids.size() >= t.suffix.size() && std::equal(t.suffix.begin(), t.suffix.end(), ids.end() - t.suffix.size());
    if (!has_suffix) ids.insert(ids.end(), t.suffix.begin(), t.suffix.end());
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::string raw;
  std::string run;  // the bytes of consecutive byte-fallback tokens
  std::string buffer;
  bool first = true;
  for (const int32_t id : ids) {
    t.check_id(id);
    if (skip_special_tokens && t.special[id]) continue;
    if (t.byte_piece[id]) {
      run += t.decoded_piece(id, first, buffer);
    } else {
      append_byte_run(run, raw);
      raw += t.decoded_piece(id, first, buffer);
    }
    first = false;
  }
  append_byte_run(run, raw);
  std::string text;
  append_sanitized_utf8(raw, text);
  t.decoder.strip_text(text);
  return text;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& t = *impl_;
  t.check_id(id);
  std::string buffer;
  return std::string(t.decoded_piece(id, false, buffer));
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->pieces.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
int32_t Tokenizer::unk_id() const { return impl_->bpe.unk_id(); }

std::optional<int32_t> Tokenizer::find_token(std::string_view content) const { return impl_->find(content); }

const std::string& Tokenizer::piece(int32_t id) const {
  impl_->check_id(id);
  return impl_->pieces[id];
}

bool Tokenizer::is_special(int32_t id) const { return impl_->valid(id) && impl_->special[id]; }
bool Tokenizer::is_valid(int32_t id) const { return impl_->valid(id); }

// --- StreamingDetokenizer ---------------------------------------------------------------------

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens),
      strip_left_(tokenizer.impl_->decoder.strip_start()) {}

namespace {
// Removes leading copies of `content` from text while `budget` lasts; the budget ends at the first
// other character (a Strip decoder after Fuse only strips the start of the whole text).
void strip_stream_start(std::string& text, const std::string& content, size_t& budget) {
  size_t begin = 0;
  while (budget > 0 && begin < text.size()) {
    if (text.compare(begin, content.size(), content) != 0) {
      budget = 0;
      break;
    }
    begin += content.size();
    --budget;
  }
  text.erase(0, begin);
}
}  // namespace

std::string StreamingDetokenizer::push(int32_t id) {
  const Tokenizer::Impl& t = *tokenizer_->impl_;
  t.check_id(id);
  if (skip_special_ && t.special[id]) return {};
  std::string buffer;
  const std::string_view piece = t.decoded_piece(id, first_token_, buffer);
  first_token_ = false;
  if (t.byte_piece[id]) {  // held until the run of byte tokens ends (its bytes are judged together)
    pending_ += piece;
    return {};
  }
  std::string text;
  append_byte_run(pending_, text);
  text += piece;
  std::string out;
  append_sanitized_utf8(text, out);
  if (strip_left_ > 0) strip_stream_start(out, t.decoder.strip_content(), strip_left_);
  return out;
}

std::string StreamingDetokenizer::flush() {
  const Tokenizer::Impl& t = *tokenizer_->impl_;
  std::string text;
  append_byte_run(pending_, text);
  std::string out;
  append_sanitized_utf8(text, out);
  if (strip_left_ > 0) strip_stream_start(out, t.decoder.strip_content(), strip_left_);
  // The text ends here: the next push starts a new one.
  first_token_ = true;
  strip_left_ = t.decoder.strip_start();
  return out;
}

}  // namespace shardlm
