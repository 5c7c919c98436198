#include "partition/shard_spec.h"

namespace shardlm {

ShardSpec full_shard(const ModelConfig& config) {
  ShardSpec spec;
  spec.layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    LayerShard& s = spec.layers[l];
    s.q_heads = {0, config.num_heads};
    s.kv_heads = {0, g.num_kv_heads};
    s.mlp_columns = {0, g.intermediate_size};
    if (config.enable_moe) {
      for (int e = 0; e < config.num_experts; ++e) s.experts.push_back(e);
    }
  }
  spec.vocab_rows = {0, config.vocab_size};
  return spec;
}

}  // namespace shardlm
