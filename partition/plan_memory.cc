#include "partition/plan_memory.h"

#include <algorithm>

#include "partition/plan.h"

namespace shardlm {

int64_t weight_bytes_of(const std::vector<TensorSlice>& reads, WeightEncoding encoding) {
  int64_t bytes = 0;
  for (const TensorSlice& r : reads) {
    bytes += r.matrix ? matrix_bytes(encoding, r.elements()) : r.elements() * 4;
  }
  return bytes;
}

int64_t kv_positions(const LayerGeometry& g, const LayerShard& s, int sliding_window, const KvSizing& sizing) {
  if (g.shares_kv()) return 0;
  const int64_t block = sizing.kv_block;
  if (g.type == LayerType::kSliding) {
    return (sliding_window + kChunkTokens + block - 1) / block * block;
  }
  const int64_t blocks = (sizing.context_tokens + block - 1) / block;
  const int64_t index = s.kv_seq_index;
  const int64_t count = std::max<int32_t>(1, s.kv_seq_count);
  const int64_t stored = blocks > index ? (blocks - 1 - index) / count + 1 : 0;
  return stored * block;
}

int64_t kv_bytes_of(const ModelConfig& config, const ShardSpec& shard, const KvSizing& sizing) {
  int64_t bytes = 0;
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    const LayerShard& s = shard.layers[l];
    const int64_t per_position = s.kv_heads.size() * g.head_dim * 2 * sizing.kv_bytes_per_value;
    bytes += kv_positions(g, s, config.sliding_window, sizing) * per_position;
  }
  return bytes * sizing.max_sequences;
}

int64_t activation_bytes_of(const ModelConfig& config, const ShardSpec& shard, int max_sequences) {
  int64_t widest = 0;  // f32 values per token in the widest layer, beyond the residual-stream vectors
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    const LayerShard& s = shard.layers[l];
    const int64_t attention = (s.q_heads.size() + 2 * s.kv_heads.size()) * g.head_dim;
    const int64_t mlp = 2 * s.mlp_columns.size();
    const int64_t experts =
        config.enable_moe
            ? std::min<int64_t>(config.top_k_experts, static_cast<int64_t>(s.experts.size())) * 2 *
                  config.moe_intermediate_size
            : 0;
    widest = std::max(widest, std::max(attention, mlp + experts));
  }
  const int64_t ple = config.has_ple() ? 2LL * config.num_layers * config.hidden_size_per_layer_input : 0;
  const int64_t per_token = 4LL * config.hidden_size + widest + ple;
  return kChunkTokens * per_token * 4 + static_cast<int64_t>(max_sequences) * shard.vocab_rows.size() * 4;
}

}  // namespace shardlm
