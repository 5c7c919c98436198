// A synthetic Gemma-4-style tokenizer for generated models: the Gemma 4 special tokens at their real
// ids (where the vocabulary is large enough), the 256 byte-fallback tokens, and BPE merges learned
// deterministically from a small embedded English corpus, padded with <unusedN> tokens to exactly
// vocab_size entries. Written in the Hugging Face tokenizer.json format of tests/data/dense
// (normalizer Replace " " -> "▁", no pre-tokenizer, BPE with byte fallback, decoder
// Replace/ByteFallback/Fuse, post-processor adding <bos>).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace shardlm {

struct SyntheticTokenizer {
  std::vector<std::string> tokens;                         // tokens[id], exactly vocab_size entries
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<int> special_ids;                             // ids of the named special tokens
};

// Builds the vocabulary. Throws Error when vocab_size < 364 (108 reserved ids + 256 byte tokens).
SyntheticTokenizer build_synthetic_tokenizer(int vocab_size);

// tokenizer.json / tokenizer_config.json / special_tokens_map.json texts for it.
std::string synthetic_tokenizer_json(const SyntheticTokenizer& tokenizer);
std::string synthetic_tokenizer_config_json(const SyntheticTokenizer& tokenizer);
std::string special_tokens_map_json();

// The plain English text the merges are learned from (a few KB).
const char* synthetic_tokenizer_corpus();

}  // namespace shardlm
