// The planner: a pure function from (model config, worker count, per-worker memory, options) to what
// every worker owns — a ShardSpec per worker — plus the checkpoint rectangles it must read and its
// memory estimate. Everything else reads the plan; nothing else decides placement.
//
// Placement rules (see docs/architecture.md, "Parallelism"):
// - attention: whole KV groups while workers <= KV heads of the layer type; beyond that a group's
//   query heads are split and its KV is split by sequence (full layers) or duplicated (sliding);
// - dense MLP: contiguous column ranges in granules of 32 columns (quantisation block / SIMD width),
//   extras rotated over the layers so every worker's total is balanced too;
// - experts: whole experts, contiguous ids (one contiguous read of the fused expert tensors per
//   layer), extras rotated over the layers;
// - vocabulary (embedding = LM head, PLE table): contiguous row ranges in granules of 16 rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "partition/shard_spec.h"
#include "partition/tensor_slices.h"
#include "partition/weight_encoding.h"

namespace shardlm {

struct PlanOptions {
  int num_workers = 1;
  int64_t memory_per_worker_bytes = 0;  // 0 = unlimited
  int64_t context_tokens = 0;           // per sequence; 0 = the model's max_position_embeddings
  std::string weights = "bf16";         // bf16 | int8 | q4 | f32
  int kv_bytes_per_value = 4;           // 4 for an f32 KV cache (--kv-dtype f32), 2 for bf16
  int max_sequences = 1;
  int kv_block = 16;                    // positions per KV block (the unit of the sequence split)
};

// Granules of the splits (what "balanced" means).
inline constexpr int64_t kMlpColumnGranule = 32;
inline constexpr int64_t kVocabRowGranule = 16;
// Positions of one prefill chunk: the sliding-window cache holds window + one chunk; activations are
// estimated for one chunk.
inline constexpr int64_t kChunkTokens = 512;

struct WorkerPlan {
  ShardSpec shard;
  std::vector<TensorSlice> reads;
  int64_t weight_bytes = 0;
  int64_t kv_bytes = 0;
  int64_t activation_bytes = 0;  // one chunk of activations, f32, plus one logits row per sequence
  int64_t total_bytes = 0;       // weights + KV + activations
};

// How one layer type is split (the same for every layer of the type).
struct LayerTypeLayout {
  LayerType type = LayerType::kSliding;
  int layers = 0;            // layers of this type
  int kv_owning_layers = 0;  // of which hold their own KV (not KV-shared)
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_kv_sharers = 1;    // most workers using one KV head
  bool kv_split_by_sequence = false;  // sharers store disjoint position blocks
  int64_t duplicated_kv_bytes = 0;    // extra KV bytes from sharers each caching the same head (sliding)
};

struct Plan {
  std::string model;  // the config's variant name
  PlanOptions options;  // as used: context_tokens resolved
  WeightEncoding weights = WeightEncoding::kBF16;
  std::vector<LayerTypeLayout> layer_types;  // sliding first, then full; types without layers omitted
  std::vector<WorkerPlan> workers;
  int64_t max_total_bytes() const;
  int64_t total_weight_bytes() const;
  int64_t total_kv_bytes() const;
};

// The plan, checked against options.memory_per_worker_bytes. Throws Error when it is impossible
// (more workers than query heads, bad options) or over budget — saying what would fit: the smallest
// worker count, a smaller weight format, or the longest context that fits.
Plan make_plan(const ModelConfig& config, const PlanOptions& options);

// The same plan without the memory-budget check.
Plan make_layout(const ModelConfig& config, const PlanOptions& options);

// A readable per-worker table: query heads per layer type, KV heads (and sequence split), MLP
// columns, experts, vocabulary rows, weight / KV / total bytes against the budget.
std::string format_plan_table(const Plan& plan, const ModelConfig& config);

}  // namespace shardlm
