// The Gemma 4 tokenizer: a Hugging Face `tokenizer.json` (BPE model with merges in rank order, byte
// fallback, added / special tokens, normalizer, pre-tokenizer, post-processor and decoder chain) read
// once and then used to turn text into token ids and back, with the same results as the Hugging Face
// `tokenizers` library. A StreamingDetokenizer turns generated tokens into text one token at a time,
// returning only complete UTF-8 characters.
//
// Supported pipeline components (anything else is rejected at load time with an Error naming the field):
//   normalizer:     null, Replace (literal pattern), Prepend, Sequence
//   pre_tokenizer:  null, Split (literal pattern, invert = false), Metaspace, Sequence
//   model:          BPE (merges as "a b" strings or [a, b] pairs; byte_fallback; unk / fuse_unk;
//                   ignore_merges)
//   post_processor: null, TemplateProcessing (its "single" template; see encode())
//   decoder:        null, Replace (literal), ByteFallback, Fuse, Strip, Metaspace, Sequence
// Decoding differs from Hugging Face only for invalid UTF-8 produced by byte-fallback tokens: every
// byte that is not part of a well-formed UTF-8 character becomes one U+FFFD.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a model folder holding one. A tokenizer_config.json next to
  // it, when present, names the BOS / EOS / PAD tokens. Throws Error naming the file and field on
  // any malformed or unsupported content.
  static Tokenizer load(const std::string& path);
  // Parses tokenizer.json text held in memory (config_json: tokenizer_config.json text, may be
  // empty). `origin` names the source in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             const std::string& origin = "tokenizer.json");

  // Token ids of `text` (UTF-8; invalid bytes are encoded through byte fallback). With add_bos,
  // the post-processor's prefix (the BOS token for Gemma) is added unless the text already begins
  // with it, so the result holds exactly one BOS; its suffix, if any, likewise.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const;

  // Text of the ids. Throws Error naming the first id that is not a token.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The bytes one token adds inside a text (the decoder chain's output, not made valid UTF-8: a
  // byte-fallback token is its one byte). Throws Error naming the id when it is not a token.
  std::string token_bytes(int32_t id) const;

  int32_t vocab_size() const;  // one past the largest token id (vocabulary and added tokens)
  int32_t bos_id() const;      // -1 when the tokenizer has none
  int32_t eos_id() const;      // tokenizer_config.json's eos_token, else "<eos>"; -1 when none
  int32_t pad_id() const;      // -1 when none
  int32_t unk_id() const;      // -1 when none

  // Exact lookup of a vocabulary piece or added token ("<bos>", "▁the", "<0x0A>").
  std::optional<int32_t> find_token(std::string_view content) const;
  // The piece / added-token text of an id. Throws Error naming the id when it is not a token.
  const std::string& piece(int32_t id) const;
  bool is_special(int32_t id) const;  // an added token marked "special" (false for invalid ids)
  bool is_valid(int32_t id) const;    // the id names a token

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after load: copies share it, all methods thread-safe
  friend class StreamingDetokenizer;
};

// Turns a stream of generated token ids into text. push() returns the text that became complete
// with this token (possibly empty: a character split over byte-fallback tokens is held back until
// its last byte arrives); flush() returns what is still held (invalid bytes as U+FFFD) and ends the
// text (the next push starts a new one). The concatenation of all returned pieces equals
// Tokenizer::decode() of the same ids (except for a decoder Strip of trailing characters, which
// Gemma does not have). Invalid ids throw Error naming the id. The tokenizer must outlive the
// detokenizer.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  bool first_token_ = true;     // the next token is the first one of the text
  size_t strip_left_ = 0;       // leading characters still to strip (decoder Strip after Fuse)
  std::string pending_;         // bytes of the byte-fallback tokens since the last other token
};

}  // namespace shardlm
