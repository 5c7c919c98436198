// Paged KV cache of one worker. Positions are stored in fixed-size blocks; each sequence has a block
// table per pool. Two pools: full-attention layers (grows with the context, blocks from a free list)
// and sliding-window layers (a fixed ring of blocks per sequence, sized for window + one chunk, reused
// as the sequence advances). Layers that share KV (E2B/E4B) read their donor layer's storage.
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
};

class KvCache {
 public:
  KvCache(const ModelConfig& config, const ShardSpec& shard, const KvCacheOptions& options);

  // Sequence slots.
  int allocate_sequence();            // throws Error when all slots are in use
  void release_sequence(int seq);     // frees its blocks at once
  int32_t length(int seq) const;      // positions written so far (next position)

  // Makes room for positions [begin, end) of the sequence; end - begin <= max_chunk. Throws Error
  // naming the capacity when the full-attention pool has no free block left.
  void prepare(int seq, int32_t begin, int32_t end);

  // Storage of one position: [n_kv_heads, head_dim] floats for layer's own KV (layer must own KV).
  float* k_at(int layer, int seq, int32_t position);
  float* v_at(int layer, int seq, int32_t position);

  // Blocks holding the positions in [lo, hi] for the layer's KV (the donor's for a KV-sharing layer).
  void views(int layer, int seq, int32_t lo, int32_t hi, std::vector<KvBlockView>& out) const;

  int block_size() const { return options_.block_size; }
  int max_chunk() const { return options_.max_chunk; }
  int64_t full_blocks_total() const { return full_pool_blocks_; }
  int64_t full_blocks_free() const { return static_cast<int64_t>(full_free_.size()); }
  size_t bytes() const;

 private:
  struct LayerStore {
    bool owner = false;
    int source = -1;  // layer whose storage this layer reads
    bool sliding = false;
    int n_kv = 0;
    int head_dim = 0;
    AlignedBuffer<float> k, v;
    size_t position_floats() const { return static_cast<size_t>(n_kv) * head_dim; }
  };
  struct Sequence {
    bool in_use = false;
    int32_t length = 0;
    std::vector<int32_t> full_table;      // logical block -> full-pool block
    std::vector<int32_t> ring;            // ring slot -> sliding-pool block
    std::vector<int64_t> ring_logical;    // ring slot -> logical block it holds (-1 none)
  };

  float* slot(int layer, int seq, int32_t position, bool want_v);
  int32_t physical_block(const Sequence& s, bool sliding, int64_t logical) const;  // -1 if absent

  KvCacheOptions options_;
  int ring_blocks_ = 0;
  int64_t full_pool_blocks_ = 0;
  std::vector<LayerStore> layers_;
  std::vector<Sequence> sequences_;
  std::vector<int32_t> full_free_;
};

}  // namespace shardlm
