#include "partition/plan.h"

#include <algorithm>
#include <map>
#include <utility>

#include "common/error.h"
#include "partition/even_split.h"
#include "partition/head_split.h"
#include "partition/plan_memory.h"

namespace shardlm {
namespace {

void check_options(const ModelConfig& config, const PlanOptions& o) {
  if (o.num_workers < 1) fail("plan: number of workers must be at least 1 (got {})", o.num_workers);
  if (o.memory_per_worker_bytes < 0) fail("plan: memory per worker must not be negative (got {})", o.memory_per_worker_bytes);
  if (o.context_tokens < 0) fail("plan: context must not be negative (got {} tokens)", o.context_tokens);
  if (o.kv_bytes_per_value < 1 || o.kv_bytes_per_value > 8) {
    fail("plan: KV bytes per value must be 1..8 (got {})", o.kv_bytes_per_value);
  }
  if (o.max_sequences < 1) fail("plan: max sequences must be at least 1 (got {})", o.max_sequences);
  if (o.kv_block < 1) fail("plan: KV block must be at least 1 position (got {})", o.kv_block);
  if (config.num_layers < 1 || static_cast<int>(config.layers.size()) != config.num_layers) {
    fail("plan: model '{}' has {} layers but {} resolved layer geometries", config.variant, config.num_layers,
         config.layers.size());
  }
  if (config.num_heads < 1 || config.hidden_size < 1 || config.vocab_size < 1) {
    fail("plan: model '{}' has {} query heads, hidden size {}, vocabulary {}", config.variant, config.num_heads,
         config.hidden_size, config.vocab_size);
  }
  if (config.enable_moe && (config.num_experts < 1 || config.moe_intermediate_size < 1)) {
    fail("plan: model '{}' enables experts but has {} experts of width {}", config.variant, config.num_experts,
         config.moe_intermediate_size);
  }
  if (o.num_workers > config.num_heads) {
    fail("plan: {} has {} query heads per layer, so at most {} workers can share it (asked for {})", config.variant,
         config.num_heads, config.num_heads, o.num_workers);
  }
}

int64_t resolve_context(const ModelConfig& config, const PlanOptions& o) {
  if (o.context_tokens == 0) {
    if (config.max_position_embeddings <= 0) {
      fail("plan: model '{}' does not give max_position_embeddings; give the context length", config.variant);
    }
    return config.max_position_embeddings;
  }
  if (config.max_position_embeddings > 0 && o.context_tokens > config.max_position_embeddings) {
    fail("plan: context of {} tokens exceeds {}'s max_position_embeddings ({})", o.context_tokens, config.variant,
         config.max_position_embeddings);
  }
  return o.context_tokens;
}

// Attention shares of every layer: one split per (layer type, KV head count).
std::vector<std::vector<HeadShare>> split_attention(const ModelConfig& config, int workers) {
  std::map<std::pair<LayerType, int>, std::vector<HeadShare>> by_kind;
  std::vector<std::vector<HeadShare>> per_layer(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    const auto key = std::make_pair(g.type, g.num_kv_heads);
    auto it = by_kind.find(key);
    if (it == by_kind.end()) {
      it = by_kind.emplace(key, split_heads(config.num_heads, g.num_kv_heads, workers, g.type == LayerType::kFull))
               .first;
    }
    per_layer[l] = it->second;
  }
  return per_layer;
}

std::vector<LayerTypeLayout> describe_layer_types(const ModelConfig& config, const std::vector<WorkerPlan>& workers,
                                                  const std::vector<std::vector<HeadShare>>& heads,
                                                  const KvSizing& sizing) {
  std::vector<LayerTypeLayout> out;
  for (LayerType type : {LayerType::kSliding, LayerType::kFull}) {
    LayerTypeLayout t;
    t.type = type;
    for (int l = 0; l < config.num_layers; ++l) {
      const LayerGeometry& g = config.layers[l];
      if (g.type != type) continue;
      if (t.layers == 0) {
        t.num_kv_heads = g.num_kv_heads;
        t.head_dim = g.head_dim;
      }
      ++t.layers;
      for (const HeadShare& h : heads[l]) {
        t.max_kv_sharers = std::max(t.max_kv_sharers, h.kv_sharers);
        t.kv_split_by_sequence = t.kv_split_by_sequence || h.kv_seq_count > 1;
      }
      if (g.shares_kv()) continue;
      ++t.kv_owning_layers;
      // Bytes all workers store for this layer minus the bytes of storing each KV head once.
      const int64_t per_head_position = static_cast<int64_t>(g.head_dim) * 2 * sizing.kv_bytes_per_value;
      int64_t stored = 0;
      for (const WorkerPlan& w : workers) {
        const LayerShard& s = w.shard.layers[l];
        stored += kv_positions(g, s, config.sliding_window, sizing) * s.kv_heads.size() * per_head_position;
      }
      LayerShard whole;
      const int64_t once = kv_positions(g, whole, config.sliding_window, sizing) * g.num_kv_heads * per_head_position;
      t.duplicated_kv_bytes += std::max<int64_t>(0, stored - once) * sizing.max_sequences;
    }
    if (t.layers > 0) out.push_back(t);
  }
  return out;
}

}  // namespace

int64_t Plan::max_total_bytes() const {
  int64_t m = 0;
  for (const WorkerPlan& w : workers) m = std::max(m, w.total_bytes);
  return m;
}

int64_t Plan::total_weight_bytes() const {
  int64_t t = 0;
  for (const WorkerPlan& w : workers) t += w.weight_bytes;
  return t;
}

int64_t Plan::total_kv_bytes() const {
  int64_t t = 0;
  for (const WorkerPlan& w : workers) t += w.kv_bytes;
  return t;
}

Plan make_layout(const ModelConfig& config, const PlanOptions& options) {
  check_options(config, options);
  Plan plan;
  plan.model = config.variant;
  plan.options = options;
  plan.options.context_tokens = resolve_context(config, options);
  plan.weights = parse_weight_encoding(options.weights);
  const int W = options.num_workers;

  plan.workers.resize(W);
  for (int w = 0; w < W; ++w) {
    ShardSpec& s = plan.workers[w].shard;
    s.worker = w;
    s.num_workers = W;
    s.layers.resize(config.num_layers);
  }

  const std::vector<std::vector<HeadShare>> heads = split_attention(config, W);
  ExtraCursor mlp_extras(W);
  ExtraCursor expert_extras(W);
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    const int64_t granule = choose_granule(g.intermediate_size, W, kMlpColumnGranule);
    const std::vector<Range> columns =
        split_even(g.intermediate_size, W, granule, mlp_extras.next(g.intermediate_size / granule));
    std::vector<Range> experts(W);
    if (config.enable_moe) experts = split_even(config.num_experts, W, 1, expert_extras.next(config.num_experts));
    for (int w = 0; w < W; ++w) {
      LayerShard& s = plan.workers[w].shard.layers[l];
      const HeadShare& h = heads[l][w];
      s.q_heads = h.q_heads;
      s.kv_heads = h.kv_heads;
      s.kv_seq_index = h.kv_seq_index;
      s.kv_seq_count = h.kv_seq_count;
      s.mlp_columns = columns[w];
      for (int64_t e = experts[w].begin; e < experts[w].end; ++e) s.experts.push_back(static_cast<int32_t>(e));
    }
  }
  const std::vector<Range> vocab =
      split_even(config.vocab_size, W, choose_granule(config.vocab_size, W, kVocabRowGranule));

  KvSizing sizing;
  sizing.context_tokens = plan.options.context_tokens;
  sizing.kv_bytes_per_value = options.kv_bytes_per_value;
  sizing.max_sequences = options.max_sequences;
  sizing.kv_block = options.kv_block;
  for (int w = 0; w < W; ++w) {
    WorkerPlan& wp = plan.workers[w];
    wp.shard.vocab_rows = vocab[w];
    wp.reads = shard_reads(config, wp.shard);
    wp.weight_bytes = weight_bytes_of(wp.reads, plan.weights);
    wp.kv_bytes = kv_bytes_of(config, wp.shard, sizing);
    wp.activation_bytes = activation_bytes_of(config, wp.shard, options.max_sequences);
    wp.total_bytes = wp.weight_bytes + wp.kv_bytes + wp.activation_bytes;
  }
  plan.layer_types = describe_layer_types(config, plan.workers, heads, sizing);
  return plan;
}

}  // namespace shardlm
