// The Gemma 4 layer program on one worker's shard: embedding (vocabulary-parallel), per layer
// attention -> post-attention norm -> residual -> MLP / MoE -> norms -> residual -> PLE -> layer_scalar,
// final norm, tied LM head and soft-cap. A prefill chunk and a decode token take the same path.
// The all-reduces of tensor/expert/vocabulary parallelism go through StepCollectives.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "worker/collectives.h"
#include "worker/kv_cache.h"
#include "worker/model_weights.h"
#include "partition/shard_spec.h"
#include "proto/step_batch.h"

namespace shardlm {

// Receives named intermediates ("embed", "L3.attn_out", "L3.out", "final_norm", ...) as [rows, cols].
using TraceFn = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;

struct RunnerOptions {
  KvCacheOptions kv;
  WeightLoadOptions weights;
};

class ModelRunner {
 public:
  // collectives may be null for a single process.
  ModelRunner(ModelConfig config, std::shared_ptr<const Checkpoint> checkpoint, ShardSpec shard,
              const RunnerOptions& options, StepCollectives* collectives = nullptr);
  ~ModelRunner();

  const ModelConfig& config() const { return config_; }
  const ShardSpec& shard() const { return shard_; }
  KvCache& kv_cache() { return kv_; }
  const ModelWeights& weights() const { return weights_; }

  // Runs one step. logits receives [batch.logit_rows.size(), owned vocab rows] soft-capped logits.
  // Segments longer than the KV cache's chunk limit are run as several consecutive steps.
  void forward(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace = {});

  // Tokens routed to each expert this worker computes (indexed by global expert id, num_experts long),
  // summed over the MoE layers since the last call; the counters restart at zero.
  const std::vector<int64_t>& take_expert_tokens();

 private:
  struct Scratch;
  void forward_step(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace);
  void embed(const StepBatch& batch, float* x, const TraceFn& trace);
  void per_layer_inputs(const StepBatch& batch, const float* h0, std::vector<float>& ple);
  void attention_block(int layer, const StepBatch& batch, float* x, Scratch& s, const TraceFn& trace);
  void split_attention(int layer, const StepBatch& batch, const AttentionShape& shape, Scratch& s);
  void ffn_block(int layer, int64_t T, float* x, Scratch& s, const TraceFn& trace);
  void ple_block(int layer, int64_t T, float* x, const std::vector<float>& ple, Scratch& s);
  void lm_head(const StepBatch& batch, const float* x, std::vector<float>& logits, const TraceFn& trace);

  ModelConfig config_;
  std::shared_ptr<const Checkpoint> checkpoint_;
  ShardSpec shard_;
  ModelWeights weights_;
  KvCache kv_;
  LocalCollectives local_;
  StepCollectives* coll_;
  bool embed_from_lm_head_ = false;  // quantised weights: embedding rows come from the packed LM head
  std::vector<std::vector<float>> inv_freq_;          // per layer
  std::vector<std::vector<int32_t>> kv_head_of_q_;    // per layer, local indices
  std::vector<int64_t> expert_tokens_, expert_tokens_taken_;
  std::vector<float> lm_head_part_;  // one LM head chunk's [rows, n] result, kept from step to step
};

}  // namespace shardlm
