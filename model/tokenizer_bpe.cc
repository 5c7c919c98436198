#include "model/tokenizer_bpe.h"

#include <algorithm>

#include "common/error.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_utf8.h"

namespace shardlm::tokenizer_detail {

// --- MergeTable -------------------------------------------------------------------------------

namespace {
uint64_t mix(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

void MergeTable::reserve(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  if (capacity <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  size_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmpty) insert(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xffffffffu), s.merge);
}

void MergeTable::grow() { reserve(std::max<size_t>(16, size_ * 2 + 2)); }

size_t MergeTable::slot_of(uint64_t key) const {
  const size_t mask = slots_.size() - 1;
  size_t i = mix(key) & mask;
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask;
  return i;
}

void MergeTable::insert(int32_t left, int32_t right, Merge merge) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = key_of(left, right);
  Slot& s = slots_[slot_of(key)];
  if (s.key == kEmpty) ++size_;
  s.key = key;
  s.merge = merge;
}

const MergeTable::Merge* MergeTable::find(int32_t left, int32_t right) const {
  if (slots_.empty()) return nullptr;
  const Slot& s = slots_[slot_of(key_of(left, right))];
  return s.key == kEmpty ? nullptr : &s.merge;
}

// --- PieceIndex -------------------------------------------------------------------------------

namespace {
uint64_t hash_piece(std::string_view s) { return mix(std::hash<std::string_view>{}(s)); }
}  // namespace

void PieceIndex::reserve(size_t count) {
  spans_.reserve(count);
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  if (capacity <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    const std::string_view piece = piece_of(s.id);
    slots_[probe(piece, hash_piece(piece))] = s;
  }
}

void PieceIndex::grow() { reserve(std::max<size_t>(16, size_ * 2 + 2)); }

std::string_view PieceIndex::piece_of(int32_t id) const {
  const auto [offset, length] = spans_[id];
  return std::string_view(arena_).substr(offset, length);
}

size_t PieceIndex::probe(std::string_view piece, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  const auto tag = static_cast<uint32_t>(hash >> 32);
  size_t i = hash & mask;
  while (slots_[i].id >= 0 && !(slots_[i].tag == tag && piece_of(slots_[i].id) == piece)) i = (i + 1) & mask;
  return i;
}

bool PieceIndex::insert(std::string_view piece, int32_t id) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t hash = hash_piece(piece);
  const size_t slot = probe(piece, hash);
  if (slots_[slot].id >= 0) return false;
  if (static_cast<size_t>(id) >= spans_.size()) spans_.resize(static_cast<size_t>(id) + 1, {0, 0});
  spans_[id] = {static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(piece.size())};
  arena_.append(piece);
  slots_[slot] = {static_cast<uint32_t>(hash >> 32), id};
  ++size_;
  return true;
}

std::optional<int32_t> PieceIndex::find(std::string_view piece) const {
  if (slots_.empty()) return std::nullopt;
  const Slot& s = slots_[probe(piece, hash_piece(piece))];
  if (s.id < 0) return std::nullopt;
  return s.id;
}

// --- parsing ----------------------------------------------------------------------------------

namespace {

void reject_if_set(const json& model, const char* key, std::string_view path) {
  const json* v = optional_field(model, key);
  if (!v) return;
  if (v->is_string() && v->get_ref<const std::string&>().empty()) return;
  if (v->is_number() && v->get<double>() == 0.0) return;
  fail("field '{}' = {} is not supported", json_path(path, key), v->dump());
}

}  // namespace

BpeModel BpeModel::parse(const json& model, std::string_view path, const BpeTables& tables,
                         std::vector<std::string>& pieces, std::vector<uint8_t>& assigned, int32_t max_id) {
  BpeModel bpe;
  expect_object(model, path);
  const std::string type = optional_string(model, "type", path, "BPE");
  if (type != "BPE") fail("field '{}' = '{}': only BPE models are supported", json_path(path, "type"), type);
  reject_if_set(model, "dropout", path);
  reject_if_set(model, "continuing_subword_prefix", path);
  reject_if_set(model, "end_of_word_suffix", path);

  // Vocabulary.
  const std::string vocab_path = json_path(path, "vocab");
  if (!tables.has_vocab) expect_object(require_field(model, "vocab", path), vocab_path);
  bpe.vocab_.reserve(tables.vocab.size());
  for (const BpeTables::VocabEntry& entry : tables.vocab) {
    const std::string_view piece = tables.text(entry.piece);
    const int64_t id = entry.id;
    if (id < 0 || id >= max_id) fail("field '{}' entry '{}': id {} is out of range [0, {})", vocab_path, piece, id, max_id);
    if (static_cast<size_t>(id) >= pieces.size()) {
      pieces.resize(static_cast<size_t>(id) + 1);
      assigned.resize(static_cast<size_t>(id) + 1, 0);
    }
    if (assigned[id]) fail("field '{}': id {} is used by both '{}' and '{}'", vocab_path, id, pieces[id], piece);
    if (!bpe.vocab_.insert(piece, static_cast<int32_t>(id))) {
      fail("field '{}': piece '{}' appears twice", vocab_path, piece);
    }
    pieces[id] = piece;
    assigned[id] = 1;
  }

  // Merges, in rank order; a repeated pair keeps its last rank (as the reference libraries do).
  const std::string merges_path = json_path(path, "merges");
  if (!tables.has_merges && optional_field(model, "merges")) expect_array(model["merges"], merges_path);
  bpe.merges_.reserve(tables.merges.size());
  std::string joined;
  for (size_t i = 0; i < tables.merges.size(); ++i) {
    const std::string_view left = tables.text(tables.merges[i].left);
    const std::string_view right = tables.text(tables.merges[i].right);
    const auto l = bpe.vocab_.find(left);
    if (!l) fail("field '{}': piece '{}' is not in {}", json_path(merges_path, i), left, vocab_path);
    const auto r = bpe.vocab_.find(right);
    if (!r) fail("field '{}': piece '{}' is not in {}", json_path(merges_path, i), right, vocab_path);
    joined.assign(left).append(right);
    const auto m = bpe.vocab_.find(joined);
    if (!m) fail("field '{}': merged piece '{}' is not in {}", json_path(merges_path, i), joined, vocab_path);
    bpe.merges_.insert(*l, *r, {static_cast<int32_t>(i), *m});
  }

  // Unknown token and byte fallback.
  const std::string unk = optional_string(model, "unk_token", path, "");
  if (!unk.empty()) {
    const auto id = bpe.vocab_.find(unk);
    if (!id) fail("field '{}' = '{}' is not in {}", json_path(path, "unk_token"), unk, vocab_path);
    bpe.unk_id_ = *id;
  }
  bpe.byte_fallback_ = optional_bool(model, "byte_fallback", path, false);
  bpe.fuse_unk_ = optional_bool(model, "fuse_unk", path, false);
  bpe.ignore_merges_ = optional_bool(model, "ignore_merges", path, false);
  for (int b = 0; b < 256; ++b) {
    bpe.byte_ids_[b] = bpe.vocab_.find(fmt::format("<0x{:02X}>", b)).value_or(-1);
  }
  for (int c = 0; c < 128; ++c) {
    const char ch = static_cast<char>(c);
    bpe.ascii_ids_[c] = bpe.vocab_.find(std::string_view(&ch, 1)).value_or(-1);
  }
  return bpe;
}

std::optional<int32_t> BpeModel::find(std::string_view piece) const { return vocab_.find(piece); }

// --- encoding ---------------------------------------------------------------------------------

void BpeModel::add_char_symbols(std::string_view ch, BpeScratch& scratch) const {
  auto add = [&](int32_t id) {
    const auto index = static_cast<int32_t>(scratch.symbols.size());
    scratch.symbols.push_back({id, index - 1, index + 1});
  };
  int32_t id = -1;
  if (ch.size() == 1 && static_cast<unsigned char>(ch[0]) < 0x80) {
    id = ascii_ids_[static_cast<unsigned char>(ch[0])];
  } else {
    id = vocab_.find(ch).value_or(-1);
  }
  if (id >= 0) {
    add(id);
    return;
  }
  if (byte_fallback_) {
    bool all_bytes = true;
    for (const char c : ch) all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
    if (all_bytes) {
      for (const char c : ch) add(byte_ids_[static_cast<unsigned char>(c)]);
      return;
    }
  }
  if (unk_id_ < 0) return;  // no unknown token: the character is dropped (as Hugging Face does)
  if (fuse_unk_ && !scratch.symbols.empty() && scratch.symbols.back().id == unk_id_) return;
  add(unk_id_);
}

void BpeModel::push_candidate(BpeScratch& scratch, int32_t left, int32_t right) const {
  const MergeTable::Merge* m = merges_.find(scratch.symbols[left].id, scratch.symbols[right].id);
  if (!m) return;
  scratch.heap.push_back({m->rank, left, right});
  std::push_heap(scratch.heap.begin(), scratch.heap.end(), std::greater<>{});
}

void BpeModel::encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = vocab_.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  auto& symbols = scratch.symbols;
  symbols.clear();
  for (size_t pos = 0; pos < word.size();) {
    size_t len = utf8_char_length(word, pos);
    if (len == 0) len = 1;  // an invalid byte is a character of its own (byte fallback encodes it)
    add_char_symbols(word.substr(pos, len), scratch);
    pos += len;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  symbols.front().prev = -1;

  auto& heap = scratch.heap;
  heap.clear();
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) {
    if (const MergeTable::Merge* m = merges_.find(symbols[i].id, symbols[i + 1].id)) heap.push_back({m->rank, i, i + 1});
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<>{});

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const BpeScratch::Candidate c = heap.back();
    heap.pop_back();
    BpeScratch::Symbol& left = symbols[c.left];
    if (left.id < 0 || left.next != c.right || symbols[c.right].id < 0) continue;  // stale
    const MergeTable::Merge* m = merges_.find(left.id, symbols[c.right].id);
    if (!m || m->rank != c.rank) continue;  // a neighbour changed since the candidate was made
    BpeScratch::Symbol& right = symbols[c.right];
    left.id = m->merged;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    if (left.prev >= 0) push_candidate(scratch, left.prev, c.left);
    if (left.next >= 0) push_candidate(scratch, c.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace shardlm::tokenizer_detail
