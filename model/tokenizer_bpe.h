// The BPE model of a tokenizer.json: vocabulary, merges in rank order, byte fallback and the
// unknown token. Encodes one pre-tokenized word the way the Hugging Face library does: the word
// starts as its characters (a character missing from the vocabulary becomes its <0xNN> byte tokens,
// or <unk>), then the adjacent pair with the lowest merge rank (leftmost on ties) is merged until no
// pair has a merge. A priority queue over a linked list keeps this O(n log n) in the word length,
// which matters because Gemma does not pre-split its input: a whole paragraph is one word.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer_json.h"

namespace shardlm::tokenizer_detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using PieceMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Vocabulary piece -> id: the pieces live in one byte arena and an open-addressing table of ids
// indexes them (compact and cache-friendly for the 262144 pieces of Gemma).
class PieceIndex {
 public:
  void reserve(size_t count);
  // Adds a piece; returns false (and changes nothing) when the piece is already there.
  bool insert(std::string_view piece, int32_t id);
  std::optional<int32_t> find(std::string_view piece) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t tag = 0;  // high hash bits, to skip most string compares
    int32_t id = -1;   // -1: empty
  };
  std::string_view piece_of(int32_t id) const;
  size_t probe(std::string_view piece, uint64_t hash) const;  // slot holding the piece or an empty one
  void grow();

  std::string arena_;
  std::vector<std::pair<uint32_t, uint32_t>> spans_;  // id -> (offset, length) in arena_
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Open-addressing hash table: (left id, right id) -> (rank, merged id).
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  void reserve(size_t count);
  void insert(int32_t left, int32_t right, Merge merge);  // replaces an existing entry
  const Merge* find(int32_t left, int32_t right) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key_of(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  size_t slot_of(uint64_t key) const;
  void grow();
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Working memory of encode_word, reused across the words of one encode call.
struct BpeScratch {
  struct Symbol {
    int32_t id;    // -1 once merged into its left neighbour
    int32_t prev;  // index of the previous live symbol, -1 at the start
    int32_t next;  // index of the next live symbol, -1 at the end
  };
  struct Candidate {
    int32_t rank;
    int32_t left;   // symbol index of the left side
    int32_t right;  // symbol index of the right side when the candidate was made
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

class BpeModel {
 public:
  // Parses the "model" object at `path` (its vocab and merges already read into `tables`).
  // Vocabulary pieces are stored into `pieces` by id (grown as needed; ids must be below `max_id`).
  static BpeModel parse(const nlohmann::json& model, std::string_view path, const BpeTables& tables,
                        std::vector<std::string>& pieces, std::vector<uint8_t>& assigned, int32_t max_id);

  // Appends the token ids of one word.
  void encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& out) const;

  std::optional<int32_t> find(std::string_view piece) const;
  int32_t unk_id() const { return unk_id_; }
  size_t vocab_count() const { return vocab_.size(); }
  size_t merge_count() const { return merges_.size(); }

 private:
  // Appends the symbols of one character (its id, its byte tokens, or <unk>).
  void add_char_symbols(std::string_view ch, BpeScratch& scratch) const;
  void push_candidate(BpeScratch& scratch, int32_t left, int32_t right) const;

  PieceIndex vocab_;
  MergeTable merges_;
  std::array<int32_t, 128> ascii_ids_{};  // id of each ASCII character, -1 if not in the vocabulary
  std::array<int32_t, 256> byte_ids_{};   // id of "<0xNN>", -1 if missing
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
};

}  // namespace shardlm::tokenizer_detail
