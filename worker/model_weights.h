// The weights one worker holds, packed for the kernels: per layer the attention projections of its
// heads, its dense-MLP columns, its experts, the norms, and its rows of the tied embedding / LM head.
// Loaded from a checkpoint by rectangle reads, so a worker touches only the bytes of its shard.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/linear.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "partition/shard_spec.h"
#include "worker/collectives.h"

namespace shardlm {

struct WeightLoadOptions {
  // Storage of matrices; empty = the checkpoint's own precision (BF16 -> bf16, F32/F16 -> f32).
  std::optional<WeightFormat> format;
  MatmulBackend backend = MatmulBackend::kOwn;
  int64_t lm_head_chunk_rows = 16384;  // LM head packed in row chunks (bounded load-time memory)
};

struct AttentionWeights {
  Linear q;  // [owned q heads * head_dim, H]
  Linear k;  // [owned kv heads * head_dim, H]; empty on KV-sharing layers
  Linear v;  // empty on K=V layers and KV-sharing layers
  Linear o;  // [H, owned q heads * head_dim]
  std::vector<float> q_norm, k_norm;
};

struct DenseMlpWeights {
  Linear gate_up;  // [2 * owned columns, H]: gate rows then up rows
  Linear down;     // [H, owned columns]
  int64_t columns = 0;
};

struct ExpertWeights {
  int32_t id = 0;
  Linear gate_up;  // [2 * moe_intermediate, H]
  Linear down;     // [H, moe_intermediate]
};

struct MoeWeights {
  Linear router;  // [num_experts, H] (every worker routes)
  std::vector<float> router_scale, per_expert_scale;
  std::vector<float> pre_norm_2, post_norm_1, post_norm_2;
  std::vector<ExpertWeights> experts;  // owned experts, ascending id
};

struct PleLayerWeights {
  Linear gate;  // [P, H]
  Linear proj;  // [H, P]
  std::vector<float> post_norm;
};

struct LayerWeights {
  std::vector<float> input_norm, post_attn_norm, pre_ffn_norm, post_ffn_norm;
  float layer_scalar = 1.0f;
  AttentionWeights attn;
  DenseMlpWeights mlp;
  std::optional<MoeWeights> moe;
  std::optional<PleLayerWeights> ple;
};

struct LmHeadChunk {
  int64_t first_row = 0;  // vocabulary id of the chunk's first row
  Linear rows;
};

struct ModelWeights {
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;
  std::vector<LmHeadChunk> lm_head;  // owned vocabulary rows, tied to the embedding
  // Per-layer embeddings (E2B/E4B).
  Linear ple_model_projection;       // [L * P, H]
  std::vector<float> ple_projection_norm;
  size_t bytes() const;
  size_t expert_bytes() const;  // the part of bytes() in MoE experts
};

// Reads the shard's weights from the checkpoint. collectives: the workers of a distributed model
// (null or one worker: none); with int8 weights the load is then collective (column-split matrices
// take their row scales from the whole rows).
ModelWeights load_model_weights(const Checkpoint& checkpoint, const ModelConfig& config, const ShardSpec& shard,
                                const WeightLoadOptions& options, StepCollectives* collectives = nullptr);

}  // namespace shardlm
