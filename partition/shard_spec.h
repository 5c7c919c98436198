// What one worker owns of the model: per layer its query heads, KV heads, dense-MLP columns and
// experts, and its rows of the vocabulary. The layer program reads only this, so the same code runs
// a single process (which owns everything) and a worker of a distributed plan.
#pragma once

#include <cstdint>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"

namespace shardlm {

struct LayerShard {
  Range q_heads;               // query heads owned
  Range kv_heads;              // KV heads needed by the owned query heads
  Range mlp_columns;           // dense-MLP intermediate columns owned
  std::vector<int32_t> experts;  // experts owned, ascending
  // Sequence split of this layer's KV (full-attention layers when workers outnumber KV heads): this
  // worker stores the position blocks b with b % kv_seq_count == kv_seq_index of its KV heads. The
  // workers sharing a KV head are consecutive: worker - kv_seq_index ... + kv_seq_count - 1.
  int32_t kv_seq_index = 0;
  int32_t kv_seq_count = 1;
};

struct ShardSpec {
  int worker = 0;
  int num_workers = 1;
  std::vector<LayerShard> layers;
  Range vocab_rows;  // rows of the embedding / LM head owned
};

// The shard of a single process: everything.
ShardSpec full_shard(const ModelConfig& config);

}  // namespace shardlm
