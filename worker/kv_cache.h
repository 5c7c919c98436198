// Paged KV cache of one worker. Positions are stored in fixed-size blocks; each sequence has a block
// table per pool. Two pools: full-attention layers (grows with the context, blocks from a free list)
// and sliding-window layers (a fixed ring of blocks per sequence, sized for window + one chunk, reused
// as the sequence advances). Layers that share KV (E2B/E4B) read their donor layer's storage. When
// workers outnumber the KV heads, the full-attention layers' positions are split by block among the
// workers sharing a KV head (ShardSpec kv_seq_index/count): each stores every seq_count-th block.
// Values are stored as f32 or bf16 (KvCacheOptions::dtype; bf16 halves the bytes).
#pragma once

#include <cstdint>
#include <vector>

#include "common/aligned_buffer.h"
#include "kernels/attention.h"
#include "model/config.h"
#include "partition/shard_spec.h"

namespace shardlm {

struct KvCacheOptions {
  int block_size = 16;
  int64_t full_capacity_tokens = 4096;  // positions of full-attention KV for all sequences together
  int max_chunk = 512;                  // most positions of one sequence written in one step
  int max_sequences = 1;
  KvDtype dtype = KvDtype::kF32;        // how K and V values are stored
};

class KvCache {
 public:
  KvCache(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options);

  // Bytes a KvCache with these options allocates (without building it).
  static size_t planned_bytes(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options);

  // Sequence slots.
  int allocate_sequence();            // throws Error when all slots are in use
  void release_sequence(int seq);     // frees its blocks at once
  int32_t length(int seq) const;      // positions written so far (next position)

  // Makes room for positions [begin, end) of the sequence; end - begin <= max_chunk. Throws Error
  // naming the capacity when the full-attention pool has no free block left.
  void prepare(int seq, int32_t begin, int32_t end);

  // Stores one position's K and V, [n_kv_heads, head_dim] floats each, for the layer's own KV
  // (layer must own KV; the position prepared), converted to the cache's dtype.
  void write(int layer, int seq, int32_t position, const float* k, const float* v);
  // Storage of one position of an f32 cache, [n_kv_heads, head_dim] floats (throws Error for bf16).
  float* k_at(int layer, int seq, int32_t position);
  float* v_at(int layer, int seq, int32_t position);
  KvDtype dtype() const { return options_.dtype; }

  // Whether this worker stores the position's KV for the layer (false only for positions of blocks
  // that another worker of a sequence split holds).
  bool holds(int layer, int32_t position) const;
  // The sequence split of the full-attention layers: this worker's index among seq_count workers.
  int seq_index() const { return seq_index_; }
  int seq_count() const { return seq_count_; }

  // Blocks holding the positions in [lo, hi] for the layer's KV (the donor's for a KV-sharing layer).
  void views(int layer, int seq, int32_t lo, int32_t hi, std::vector<KvBlockView>& out) const;

  int block_size() const { return options_.block_size; }
  int max_chunk() const { return options_.max_chunk; }
  int64_t full_blocks_total() const { return full_pool_blocks_; }
  int64_t full_blocks_free() const { return static_cast<int64_t>(full_free_.size()); }
  // Sliding-window ring blocks: reserved per sequence slot, in use while the slot is.
  int64_t sliding_blocks_total() const { return static_cast<int64_t>(ring_blocks_) * options_.max_sequences; }
  int64_t sliding_blocks_used() const;
  size_t bytes() const;

 private:
  struct LayerStore {
    bool owner = false;
    int source = -1;  // layer whose storage this layer reads
    bool sliding = false;
    int n_kv = 0;
    int head_dim = 0;
    AlignedBuffer<uint8_t> k, v;  // values of the cache's dtype
    size_t position_values() const { return static_cast<size_t>(n_kv) * head_dim; }
  };
  struct Sequence {
    bool in_use = false;
    int32_t length = 0;
    std::vector<int32_t> full_table;      // logical block -> full-pool block
    std::vector<int32_t> ring;            // ring slot -> sliding-pool block
    std::vector<int64_t> ring_logical;    // ring slot -> logical block it holds (-1 none)
  };

  struct PoolSizes {
    int ring_blocks = 0;
    int64_t full_pool_blocks = 0;
    int seq_index = 0, seq_count = 1;
  };
  static PoolSizes pool_sizes(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options);

  // Byte offset of the position's storage in the layer's k and v arrays (the layer must own KV and
  // the position be prepared).
  size_t slot_offset(int layer, int seq, int32_t position) const;
  size_t position_bytes(const LayerStore& st) const { return st.position_values() * kv_dtype_bytes(options_.dtype); }
  int32_t physical_block(const Sequence& s, bool sliding, int64_t logical) const;  // -1 if absent

  KvCacheOptions options_;
  int ring_blocks_ = 0;
  int seq_index_ = 0, seq_count_ = 0;
  int64_t full_pool_blocks_ = 0;
  std::vector<LayerStore> layers_;
  std::vector<Sequence> sequences_;
  std::vector<int32_t> full_free_;
};

}  // namespace shardlm
