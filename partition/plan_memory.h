// Memory estimate of one worker of a plan: weight bytes of its reads in the plan's weight format, KV
// bytes at the plan's context (full layers: its KV heads' position blocks; sliding layers: window +
// one chunk; KV-shared layers: none), and a small activation estimate for one prefill chunk.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "partition/shard_spec.h"
#include "partition/tensor_slices.h"
#include "partition/weight_encoding.h"

namespace shardlm {

struct KvSizing {
  int64_t context_tokens = 0;  // per sequence
  int kv_bytes_per_value = 4;
  int max_sequences = 1;
  int kv_block = 16;
};

// Matrices in `encoding`, vectors in f32.
int64_t weight_bytes_of(const std::vector<TensorSlice>& reads, WeightEncoding encoding);

// Positions of one sequence a worker stores for a layer: full layers the blocks b < ceil(context /
// block) with b % kv_seq_count == kv_seq_index (whole blocks); sliding layers window + one chunk,
// rounded up to whole blocks; 0 for KV-shared layers.
int64_t kv_positions(const LayerGeometry& g, const LayerShard& s, int sliding_window, const KvSizing& sizing);

// KV bytes of the shard, all layers, all sequences (K and V).
int64_t kv_bytes_of(const ModelConfig& config, const ShardSpec& shard, const KvSizing& sizing);

// Activations of one kChunkTokens-token step in f32 for the shard's widest layer, plus one logits row
// of its vocabulary slice per sequence.
int64_t activation_bytes_of(const ModelConfig& config, const ShardSpec& shard, int max_sequences);

}  // namespace shardlm
