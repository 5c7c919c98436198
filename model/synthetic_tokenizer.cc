// Synthetic Gemma-4-style tokenizer: vocabulary layout, a small deterministic BPE trainer, and the
// Hugging Face JSON files.
//
// Id layout for vocab_size V:
//   0..107     the Gemma 4 special tokens at their real ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3,
//              <mask> 4, <|tool> 46 ... <|"|> 52, <|think|> 98, <|channel> 100, <channel|> 101,
//              <|turn> 105, <turn|> 106), the plain token "\n" at 107, <unusedN> for the other ids;
//   108..363   the byte tokens <0x00>..<0xFF>;
//   then       the corpus characters (most frequent first) and the learned merges, in merge order,
//              until V is full or no pair occurs twice;
//   the rest   <unusedN>, except the multimodal tokens at their real ids (<|image> 255999, <|audio>
//              256000, <|image|> 258880, <|audio|> 258881, <image|> 258882, <audio|> 258883,
//              <|video|> 258884) when V > 258884.
#include "model/synthetic_tokenizer.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace shardlm {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr int kBytesBegin = 108;
constexpr int kMinVocab = kBytesBegin + 256;
const std::string kSpace = "\xE2\x96\x81";  // U+2581, the normalizer's stand-in for ' '

const std::vector<std::pair<int, const char*>>& low_specials() {
  static const std::vector<std::pair<int, const char*>> v = {
      {0, "<pad>"},           {1, "<eos>"},           {2, "<bos>"},          {3, "<unk>"},       {4, "<mask>"},
      {46, "<|tool>"},        {47, "<tool|>"},        {48, "<|tool_call>"},  {49, "<tool_call|>"},
      {50, "<|tool_response>"}, {51, "<tool_response|>"}, {52, "<|\"|>"},   {98, "<|think|>"},
      {100, "<|channel>"},    {101, "<channel|>"},    {105, "<|turn>"},      {106, "<turn|>"}};
  return v;
}

const std::vector<std::pair<int, const char*>>& multimodal_specials() {
  static const std::vector<std::pair<int, const char*>> v = {
      {255999, "<|image>"}, {256000, "<|audio>"}, {258880, "<|image|>"}, {258881, "<|audio|>"},
      {258882, "<image|>"}, {258883, "<audio|>"}, {258884, "<|video|>"}};
  return v;
}

// Splits UTF-8 text into characters (the corpus is ASCII plus the ▁ marker).
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// Corpus words: whitespace becomes ▁, and every word starts at a ▁ (merges never cross words).
std::map<std::string, int> corpus_words() {
  std::string text = synthetic_tokenizer_corpus();
  std::map<std::string, int> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) ++words[word];
    word.clear();
  };
  bool space = false;
  for (char ch : text) {
    if (ch == ' ' || ch == '\n' || ch == '\t') {
      space = true;
      continue;
    }
    if (space) {
      flush();
      word = kSpace;
      space = false;
    }
    word.push_back(ch);
  }
  flush();
  return words;
}

class VocabBuilder {
 public:
  explicit VocabBuilder(int vocab_size) : tokens_(vocab_size), reserved_(vocab_size, false) {}

  void reserve(int id, std::string token) {
    tokens_[id] = std::move(token);
    reserved_[id] = true;
    index_[tokens_[id]] = id;
  }
  // Next free id, or -1 when the vocabulary is full.
  int add(const std::string& token) {
    while (next_ < static_cast<int>(tokens_.size()) && reserved_[next_]) ++next_;
    if (next_ >= static_cast<int>(tokens_.size())) return -1;
    tokens_[next_] = token;
    reserved_[next_] = true;
    index_[token] = next_;
    return next_++;
  }
  bool full() {
    while (next_ < static_cast<int>(tokens_.size()) && reserved_[next_]) ++next_;
    return next_ >= static_cast<int>(tokens_.size());
  }
  int find(const std::string& token) const {
    auto it = index_.find(token);
    return it == index_.end() ? -1 : it->second;
  }
  const std::string& token(int id) const { return tokens_[id]; }
  void set_next(int id) { next_ = id; }

  std::vector<std::string> finish() {
    int unused = 0;
    for (size_t id = 0; id < tokens_.size(); ++id) {
      if (reserved_[id]) continue;
      std::string name;
      do {
        name = fmt::format("<unused{}>", unused++);
      } while (index_.count(name));
      tokens_[id] = name;
    }
    return std::move(tokens_);
  }

 private:
  std::vector<std::string> tokens_;
  std::vector<bool> reserved_;
  std::unordered_map<std::string, int> index_;
  int next_ = 0;
};

// Byte-pair training over the corpus words until the vocabulary is full or no pair repeats.
void learn_merges(VocabBuilder& vocab, SyntheticTokenizer& out) {
  const std::map<std::string, int> words = corpus_words();

  // Alphabet: corpus characters, most frequent first (ties by the character), as far as they fit.
  std::map<std::string, int64_t> char_counts;
  for (const auto& [word, count] : words) {
    for (const std::string& ch : utf8_chars(word)) char_counts[ch] += count;
  }
  std::vector<std::pair<std::string, int64_t>> alphabet(char_counts.begin(), char_counts.end());
  std::stable_sort(alphabet.begin(), alphabet.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [ch, count] : alphabet) {
    if (vocab.find(ch) >= 0) continue;
    if (vocab.add(ch) < 0) return;
  }

  // Words as symbol-id sequences; characters outside the vocabulary are -1 (never merged).
  struct Word {
    std::vector<int> symbols;
    int count;
  };
  std::vector<Word> seqs;
  for (const auto& [word, count] : words) {
    Word w{{}, count};
    for (const std::string& ch : utf8_chars(word)) w.symbols.push_back(vocab.find(ch));
    seqs.push_back(std::move(w));
  }

  while (!vocab.full()) {
    std::unordered_map<uint64_t, int64_t> pair_counts;
    for (const Word& w : seqs) {
      for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
        if (w.symbols[i] < 0 || w.symbols[i + 1] < 0) continue;
        uint64_t key = (static_cast<uint64_t>(w.symbols[i]) << 32) | static_cast<uint32_t>(w.symbols[i + 1]);
        pair_counts[key] += w.count;
      }
    }
    // Most frequent pair; ties broken by the pair's strings, so the result never depends on hashing.
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [key, count] : pair_counts) {
      if (count < best_count) continue;
      if (count == best_count) {
        const std::string& a1 = vocab.token(static_cast<int>(key >> 32));
        const std::string& b1 = vocab.token(static_cast<int>(key & 0xffffffffu));
        const std::string& a0 = vocab.token(static_cast<int>(best >> 32));
        const std::string& b0 = vocab.token(static_cast<int>(best & 0xffffffffu));
        if (std::tie(a1, b1) >= std::tie(a0, b0)) continue;
      }
      best = key;
      best_count = count;
    }
    if (best_count < 2) break;
    const int left = static_cast<int>(best >> 32), right = static_cast<int>(best & 0xffffffffu);
    const std::string merged = vocab.token(left) + vocab.token(right);
    int id = vocab.find(merged);
    if (id < 0) id = vocab.add(merged);
    if (id < 0) break;
    out.merges.emplace_back(vocab.token(left), vocab.token(right));
    for (Word& w : seqs) {
      std::vector<int> next;
      next.reserve(w.symbols.size());
      for (size_t i = 0; i < w.symbols.size(); ++i) {
        if (i + 1 < w.symbols.size() && w.symbols[i] == left && w.symbols[i + 1] == right) {
          next.push_back(id);
          ++i;
        } else {
          next.push_back(w.symbols[i]);
        }
      }
      w.symbols = std::move(next);
    }
  }
}

ordered_json added_token(int id, const std::string& content) {
  ordered_json t;
  t["id"] = id;
  t["content"] = content;
  t["single_word"] = false;
  t["lstrip"] = false;
  t["rstrip"] = false;
  t["normalized"] = false;
  t["special"] = true;
  return t;
}

}  // namespace

SyntheticTokenizer build_synthetic_tokenizer(int vocab_size) {
  if (vocab_size < kMinVocab) {
    fail("synthetic tokenizer: vocab_size {} is too small (at least {}: {} reserved ids and 256 byte tokens)",
         vocab_size, kMinVocab, kBytesBegin);
  }
  SyntheticTokenizer out;
  VocabBuilder vocab(vocab_size);
  for (const auto& [id, name] : low_specials()) {
    vocab.reserve(id, name);
    out.special_ids.push_back(id);
  }
  vocab.reserve(107, "\n");
  if (vocab_size > 258884) {
    for (const auto& [id, name] : multimodal_specials()) {
      vocab.reserve(id, name);
      out.special_ids.push_back(id);
    }
  }
  // Ids 0..107 not named above stay free here and become <unusedN> fillers.
  for (int b = 0; b < 256; ++b) vocab.reserve(kBytesBegin + b, fmt::format("<0x{:02X}>", b));
  vocab.set_next(kMinVocab);
  learn_merges(vocab, out);
  // Low free ids must not be taken by merges: the builder's next id starts above them, and
  // finish() fills every free id (low or high) with <unusedN>.
  out.tokens = vocab.finish();
  return out;
}

std::string synthetic_tokenizer_json(const SyntheticTokenizer& tok) {
  ordered_json doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  ordered_json added = ordered_json::array();
  for (int id : tok.special_ids) added.push_back(added_token(id, tok.tokens[id]));
  doc["added_tokens"] = added;
  doc["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}};
  doc["pre_tokenizer"] = nullptr;
  ordered_json bos_special = {{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}};
  doc["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", ordered_json::array({bos_special, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", ordered_json::array({bos_special,
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens", {{"<bos>", {{"id", "<bos>"}, {"ids", {2}}, {"tokens", {"<bos>"}}}}}}};
  doc["decoder"] = {{"type", "Sequence"},
                    {"decoders", ordered_json::array({{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                                                      {{"type", "ByteFallback"}},
                                                      {{"type", "Fuse"}}})}};
  ordered_json model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = "<unk>";
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = true;
  model["byte_fallback"] = true;
  model["ignore_merges"] = false;
  // The vocabulary is spliced in as text: an ordered_json object looks keys up linearly on insert,
  // which is quadratic for 262144 entries.
  const std::string placeholder = "@@shardlm-vocab@@";
  model["vocab"] = placeholder;
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : tok.merges) merges.push_back(a + " " + b);
  model["merges"] = std::move(merges);
  doc["model"] = std::move(model);
  std::string text = doc.dump(1) + "\n";
  std::string vocab = "{\n";
  for (size_t id = 0; id < tok.tokens.size(); ++id) {
    vocab += "   ";
    vocab += ordered_json(tok.tokens[id]).dump();
    vocab += fmt::format(": {}{}\n", id, id + 1 < tok.tokens.size() ? "," : "");
  }
  vocab += "  }";
  const std::string quoted = "\"" + placeholder + "\"";
  text.replace(text.find(quoted), quoted.size(), vocab);
  return text;
}

std::string synthetic_tokenizer_config_json(const SyntheticTokenizer& tok) {
  ordered_json doc;
  doc["add_bos_token"] = true;
  doc["add_eos_token"] = false;
  doc["bos_token"] = "<bos>";
  doc["eos_token"] = "<eos>";
  doc["pad_token"] = "<pad>";
  doc["unk_token"] = "<unk>";
  doc["padding_side"] = "left";
  doc["tokenizer_class"] = "GemmaTokenizer";
  doc["model_max_length"] = 1000000000000000019884624838656.0;
  ordered_json decoder = ordered_json::object();
  for (int id : tok.special_ids) {
    ordered_json t = added_token(id, tok.tokens[id]);
    t.erase("id");
    decoder[std::to_string(id)] = t;
  }
  doc["added_tokens_decoder"] = decoder;
  return doc.dump(1) + "\n";
}

std::string special_tokens_map_json() {
  ordered_json doc;
  doc["bos_token"] = "<bos>";
  doc["eos_token"] = "<eos>";
  doc["pad_token"] = "<pad>";
  doc["unk_token"] = "<unk>";
  return doc.dump(1) + "\n";
}

}  // namespace shardlm
