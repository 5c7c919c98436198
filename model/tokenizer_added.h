// Added tokens of a tokenizer.json (`added_tokens`: special tokens such as <bos> or <start_of_turn>
// and user-defined pieces such as <unused0>): matched whole in the input text before normalization
// and BPE, leftmost-longest like the Hugging Face library, with the lstrip / rstrip / single_word
// options of each token.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardlm::tokenizer_detail {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;      // a control token: skipped by decode(skip_special_tokens)
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // the match swallows whitespace on its right
  bool single_word = false;  // only matches where it is not part of a longer word
  bool normalized = false;   // matched in normalized text instead of the raw input
};

// One piece of input text: an added token (token_id >= 0) or text for the BPE model.
struct TextSection {
  std::string_view text;
  int32_t token_id = -1;
  size_t offset = 0;  // byte offset of `text` in the string that was split
};

class AddedTokenMatcher {
 public:
  // Matches the given tokens (their content as given; empty contents are ignored).
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens = {});
  bool empty() const { return tokens_.empty(); }

  // Cuts `text` into sections at the added tokens it holds (appended to `out`). Whitespace taken
  // by lstrip / rstrip is dropped; empty text sections are not emitted.
  void split(std::string_view text, std::vector<TextSection>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // byte -> node
    int32_t token = -1;                                        // index into tokens_ ending here
  };
  // Index into tokens_ of the longest token starting at text[pos] and its length; (-1, 0) if none.
  std::pair<int32_t, size_t> longest_match(std::string_view text, size_t pos) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;                // nodes_[0] is the root
  std::array<int32_t, 256> root_next_{};   // first byte -> node (0: none)
};

}  // namespace shardlm::tokenizer_detail
