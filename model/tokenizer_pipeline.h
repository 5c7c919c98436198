// The text stages of a Hugging Face tokenizer around its BPE model: the normalizer (applied to the
// text between added tokens), the pre-tokenizer (which cuts normalized text into words that BPE
// encodes separately) and the decoder (which turns token pieces back into text). Each is parsed
// from its tokenizer.json field; unsupported types are rejected with an Error naming the field.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::tokenizer_detail {

// --- normalizer -------------------------------------------------------------------------------

struct NormalizerStep {
  enum class Kind { kReplace, kPrepend };
  Kind kind = Kind::kReplace;
  std::string pattern;  // kReplace: the literal text replaced
  std::string content;  // kReplace: the replacement; kPrepend: the prefix
};

class Normalizer {
 public:
  static Normalizer parse(const nlohmann::json* value, std::string_view path);  // null: identity
  bool is_identity() const { return steps_.empty(); }
  std::string apply(std::string_view text) const;

 private:
  std::vector<NormalizerStep> steps_;
};

// --- pre-tokenizer ----------------------------------------------------------------------------

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
enum class PrependScheme { kAlways, kFirst, kNever };

struct PreTokenizerStep {
  enum class Kind { kSplit, kMetaspace };
  Kind kind = Kind::kSplit;
  std::string pattern;  // kSplit: literal delimiter
  SplitBehavior behavior = SplitBehavior::kRemoved;
  std::string replacement;  // kMetaspace: the character that replaces spaces ("▁")
  PrependScheme prepend = PrependScheme::kAlways;
  bool split = true;  // kMetaspace: cut before every replacement character
};

class PreTokenizer {
 public:
  static PreTokenizer parse(const nlohmann::json* value, std::string_view path);  // null: one word
  bool is_identity() const { return steps_.empty(); }
  // Words of a normalized section; `at_text_start`: the section begins the input text.
  std::vector<std::string> apply(std::string text, bool at_text_start) const;

 private:
  std::vector<PreTokenizerStep> steps_;
};

// Splits `text` at the non-overlapping occurrences of `delimiter` (non-empty) as Hugging Face's
// Split pre-tokenizer does for each behavior; appends the pieces to `out`.
void split_on_literal(std::string_view text, std::string_view delimiter, SplitBehavior behavior,
                      std::vector<std::string>& out);

// --- decoder ----------------------------------------------------------------------------------

struct DecoderStep {
  enum class Kind { kReplace, kByteFallback, kStrip, kMetaspace };
  Kind kind = Kind::kReplace;
  std::string pattern;  // kReplace
  std::string content;  // kReplace: replacement; kStrip: the character stripped (one UTF-8 char)
  size_t start = 0;     // kStrip: at most this many leading `content` characters
  size_t stop = 0;      // kStrip: at most this many trailing `content` characters
  std::string replacement;  // kMetaspace
  bool strip_first = true;  // kMetaspace: drop the replacement characters of the first token
};

class Decoder {
 public:
  static Decoder parse(const nlohmann::json* value, std::string_view path);  // null: concatenation

  // Text of one token piece after the per-token steps (all steps except a Strip after Fuse).
  // A byte-fallback token ("<0x41>") becomes its raw byte, which may be part of a multi-byte
  // character. `first`: the piece is the first token of the text (Metaspace).
  std::string decode_piece(std::string_view piece, bool first) const;
  // Whether the first token decodes differently from the others (Metaspace).
  bool first_token_differs() const;
  // Whether "<0xNN>" pieces decode to their byte (a ByteFallback step).
  bool byte_fallback() const;

  // A Strip after Fuse, applied to the whole text: `strip_start` leading and `strip_stop` trailing
  // copies of `strip_content` at most.
  size_t strip_start() const { return strip_start_; }
  size_t strip_stop() const { return strip_stop_; }
  const std::string& strip_content() const { return strip_content_; }
  void strip_text(std::string& text) const;

 private:
  std::vector<DecoderStep> per_token_;
  std::string strip_content_;
  size_t strip_start_ = 0;
  size_t strip_stop_ = 0;
};

// The byte of a "<0xNN>" piece, or -1.
int byte_token_value(std::string_view piece);

// Replaces every occurrence of `from` (non-empty) in `text` with `to`.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

}  // namespace shardlm::tokenizer_detail
