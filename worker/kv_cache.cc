#include "worker/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "common/error.h"
#include "common/half.h"
#include "common/text_format.h"
#include "worker/process_memory.h"

namespace shardlm {

KvCache::PoolSizes KvCache::pool_sizes(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options) {
  PoolSizes p;
  const int bs = options.block_size;
  // A step writes up to max_chunk positions while its first query still needs window-1 older ones.
  p.ring_blocks = (config.sliding_window + options.max_chunk + bs - 1) / bs + 1;
  // Sequence split of the full-attention layers (all of them share one split): this worker stores
  // the blocks b with b % seq_count == seq_index, so it needs 1/seq_count of the blocks, plus one
  // per sequence for the rounding.
  p.seq_count = 0;
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    if (g.type == LayerType::kSliding) continue;
    const LayerShard& ls = shard.layers[l];
    const int count = std::max<int32_t>(1, ls.kv_seq_count);
    if (p.seq_count == 0) {
      p.seq_count = count;
      p.seq_index = ls.kv_seq_index;
    } else if (p.seq_count != count || p.seq_index != ls.kv_seq_index) {
      fail("KV cache: full-attention layers split by sequence differently (layer {}: {}/{}, earlier {}/{})", l,
           ls.kv_seq_index, count, p.seq_index, p.seq_count);
    }
  }
  if (p.seq_count == 0) p.seq_count = 1;
  if (p.seq_index < 0 || p.seq_index >= p.seq_count) fail("KV cache: sequence split index {} of {}", p.seq_index, p.seq_count);
  const int64_t total_blocks = (options.full_capacity_tokens + bs - 1) / bs;
  p.full_pool_blocks =
      p.seq_count == 1 ? total_blocks : (total_blocks + p.seq_count - 1) / p.seq_count + options.max_sequences;
  return p;
}

size_t KvCache::planned_bytes(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options) {
  const PoolSizes p = pool_sizes(config, shard, options);
  size_t total = 0;
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    const int source = g.kv_source_layer >= 0 ? g.kv_source_layer : l;
    if (source != l) continue;
    const int64_t blocks = g.type == LayerType::kSliding ? static_cast<int64_t>(p.ring_blocks) * options.max_sequences
                                                         : p.full_pool_blocks;
    total += 2 * static_cast<size_t>(blocks) * options.block_size * shard.layers[l].kv_heads.size() * g.head_dim *
             kv_dtype_bytes(options.dtype);
  }
  return total;
}

KvCache::KvCache(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options)
    : options_(options) {
  if (options_.block_size <= 0) fail("KV cache: block size must be positive (got {})", options_.block_size);
  if (options_.max_chunk <= 0) fail("KV cache: max chunk must be positive (got {})", options_.max_chunk);
  if (options_.max_sequences <= 0) fail("KV cache: max sequences must be positive (got {})", options_.max_sequences);
  if (options_.dtype != KvDtype::kF32 && options_.dtype != KvDtype::kBf16) {
    fail("KV cache: unknown dtype {}", static_cast<int>(options_.dtype));
  }
  const int bs = options_.block_size;
  const PoolSizes sizes = pool_sizes(config, shard, options_);
  ring_blocks_ = sizes.ring_blocks;
  full_pool_blocks_ = sizes.full_pool_blocks;
  seq_index_ = sizes.seq_index;
  seq_count_ = sizes.seq_count;
  const int64_t sliding_pool_blocks = static_cast<int64_t>(ring_blocks_) * options_.max_sequences;
  // The pools take memory as they fill: a capacity this machine could never back is refused now
  // rather than met by the out-of-memory killer under load.
  const size_t planned = planned_bytes(config, shard, options_);
  const int64_t available = available_memory_bytes();
  if (available > 0 && planned > static_cast<size_t>(available)) {
    fail("KV cache: {} positions of full-attention KV for all sequences need {} here, more than the {} of memory this "
         "machine has available; lower --max-context or --max-sequences, or set --kv-memory-per-worker",
         options_.full_capacity_tokens, decimal_bytes(planned), decimal_bytes(static_cast<uint64_t>(available)));
  }

  layers_.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    LayerStore& st = layers_[l];
    st.sliding = g.type == LayerType::kSliding;
    st.source = g.kv_source_layer >= 0 ? g.kv_source_layer : l;
    st.owner = st.source == l;
    st.n_kv = static_cast<int>(shard.layers[l].kv_heads.size());
    st.head_dim = g.head_dim;
    if (!st.owner) continue;
    const int64_t blocks = st.sliding ? sliding_pool_blocks : full_pool_blocks_;
    const size_t bytes = static_cast<size_t>(blocks) * bs * position_bytes(st);
    // Pools sized for their most positions take memory as blocks are first written.
    try {
      st.k = AlignedBuffer<uint8_t>::lazily_committed(bytes);
      st.v = AlignedBuffer<uint8_t>::lazily_committed(bytes);
    } catch (const std::bad_alloc&) {
      fail("KV cache: the system refused {} for the KV cache ({} positions of full-attention KV for all sequences); lower "
           "--max-context or --max-sequences, or set --kv-memory-per-worker",
           decimal_bytes(planned), options_.full_capacity_tokens);
    }
  }
  sequences_.resize(options_.max_sequences);
  full_free_.reserve(full_pool_blocks_);
  for (int64_t b = full_pool_blocks_ - 1; b >= 0; --b) full_free_.push_back(static_cast<int32_t>(b));
}

int KvCache::allocate_sequence() {
  for (size_t i = 0; i < sequences_.size(); ++i) {
    Sequence& s = sequences_[i];
    if (s.in_use) continue;
    s = Sequence{};
    s.in_use = true;
    s.ring.resize(ring_blocks_);
    s.ring_logical.assign(ring_blocks_, -1);
    for (int r = 0; r < ring_blocks_; ++r) s.ring[r] = static_cast<int32_t>(i * ring_blocks_ + r);
    return static_cast<int>(i);
  }
  fail("KV cache: all {} sequence slots are in use", sequences_.size());
}

void KvCache::release_sequence(int seq) {
  Sequence& s = sequences_.at(seq);
  if (!s.in_use) return;
  for (int32_t b : s.full_table) {
    if (b >= 0) full_free_.push_back(b);
  }
  s = Sequence{};
}

int32_t KvCache::length(int seq) const { return sequences_.at(seq).length; }

void KvCache::prepare(int seq, int32_t begin, int32_t end) {
  Sequence& s = sequences_.at(seq);
  if (!s.in_use) fail("KV cache: sequence {} is not allocated", seq);
  if (begin < 0 || end < begin) fail("KV cache: bad position range [{}, {})", begin, end);
  if (end - begin > options_.max_chunk) {
    fail("KV cache: {} positions in one step exceed the chunk limit {}", end - begin, options_.max_chunk);
  }
  const int bs = options_.block_size;
  if (end == begin) return;
  const int64_t need_blocks = (static_cast<int64_t>(end) + bs - 1) / bs;
  int64_t missing = 0;
  for (int64_t b = static_cast<int64_t>(s.full_table.size()); b < need_blocks; ++b) missing += b % seq_count_ == seq_index_;
  if (missing > static_cast<int64_t>(full_free_.size())) {
    fail("KV cache full: sequence needs {} more blocks of {} positions, {} of {} free", missing, bs, full_free_.size(),
         full_pool_blocks_);
  }
  for (int64_t b = static_cast<int64_t>(s.full_table.size()); b < need_blocks; ++b) {
    if (b % seq_count_ == seq_index_) {
      s.full_table.push_back(full_free_.back());
      full_free_.pop_back();
    } else {
      s.full_table.push_back(-1);  // held by another worker of the sequence split
    }
  }
  for (int64_t logical = begin / bs; logical <= (end - 1) / bs; ++logical) {
    s.ring_logical[logical % ring_blocks_] = logical;
  }
  s.length = std::max(s.length, end);
}

int32_t KvCache::physical_block(const Sequence& s, bool sliding, int64_t logical) const {
  if (sliding) {
    const int64_t slot = logical % ring_blocks_;
    return s.ring_logical[slot] == logical ? s.ring[slot] : -1;
  }
  return logical < static_cast<int64_t>(s.full_table.size()) ? s.full_table[logical] : -1;
}

size_t KvCache::slot_offset(int layer, int seq, int32_t position) const {
  const LayerStore& st = layers_.at(layer);
  if (!st.owner) fail("KV cache: layer {} reads layer {}'s KV and stores none", layer, st.source);
  const Sequence& s = sequences_.at(seq);
  const int bs = options_.block_size;
  const int32_t block = physical_block(s, st.sliding, position / bs);
  if (block < 0) fail("KV cache: position {} of sequence {} was not prepared", position, seq);
  return (static_cast<size_t>(block) * bs + position % bs) * position_bytes(st);
}

void KvCache::write(int layer, int seq, int32_t position, const float* k, const float* v) {
  const size_t offset = slot_offset(layer, seq, position);
  LayerStore& st = layers_[layer];
  uint8_t* k_slot = st.k.data() + offset;
  uint8_t* v_slot = st.v.data() + offset;
  const size_t n = st.position_values();
  if (options_.dtype == KvDtype::kBf16) {
    f32_to_bf16_row(k, reinterpret_cast<uint16_t*>(k_slot), n);
    f32_to_bf16_row(v, reinterpret_cast<uint16_t*>(v_slot), n);
  } else {
    std::memcpy(k_slot, k, n * sizeof(float));
    std::memcpy(v_slot, v, n * sizeof(float));
  }
}

float* KvCache::k_at(int layer, int seq, int32_t position) {
  if (options_.dtype != KvDtype::kF32) fail("KV cache: k_at needs an f32 cache (this one holds {})", kv_dtype_name(options_.dtype));
  const size_t offset = slot_offset(layer, seq, position);  // checks the layer first
  return reinterpret_cast<float*>(layers_[layer].k.data() + offset);
}
float* KvCache::v_at(int layer, int seq, int32_t position) {
  if (options_.dtype != KvDtype::kF32) fail("KV cache: v_at needs an f32 cache (this one holds {})", kv_dtype_name(options_.dtype));
  const size_t offset = slot_offset(layer, seq, position);  // checks the layer first
  return reinterpret_cast<float*>(layers_[layer].v.data() + offset);
}

void KvCache::views(int layer, int seq, int32_t lo, int32_t hi, std::vector<KvBlockView>& out) const {
  out.clear();
  const LayerStore& st = layers_.at(layers_.at(layer).source);
  const Sequence& s = sequences_.at(seq);
  const int bs = options_.block_size;
  lo = std::max(lo, 0);
  hi = std::min(hi, s.length - 1);
  if (hi < lo) return;
  const size_t block_bytes = static_cast<size_t>(bs) * position_bytes(st);
  for (int64_t logical = lo / bs; logical <= hi / bs; ++logical) {
    const int32_t block = physical_block(s, st.sliding, logical);
    if (block < 0) continue;
    KvBlockView v;
    v.k = st.k.data() + block * block_bytes;
    v.v = st.v.data() + block * block_bytes;
    v.dtype = options_.dtype;
    v.first_position = static_cast<int32_t>(logical * bs);
    v.count = std::min<int32_t>(bs, s.length - v.first_position);
    out.push_back(v);
  }
}

int64_t KvCache::sliding_blocks_used() const {
  int64_t n = 0;
  for (const Sequence& s : sequences_) n += s.in_use ? ring_blocks_ : 0;
  return n;
}

bool KvCache::holds(int layer, int32_t position) const {
  const LayerStore& st = layers_.at(layers_.at(layer).source);
  if (st.sliding || seq_count_ == 1) return true;
  return (position / options_.block_size) % seq_count_ == seq_index_;
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (const LayerStore& st : layers_) total += st.k.size() + st.v.size();
  return total;
}

}  // namespace shardlm
