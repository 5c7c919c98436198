// format_plan_table: the plan as a header, one line per layer type, and a per-worker table in
// Markdown form (readable in a terminal, pasteable into docs).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "partition/byte_size.h"
#include "partition/plan.h"

namespace shardlm {
namespace {

std::string range_text(Range r, bool with_count) {
  if (r.size() <= 0) return "-";
  std::string s = r.size() == 1 ? fmt::format("{}", r.begin) : fmt::format("{}-{}", r.begin, r.end - 1);
  if (with_count) s += fmt::format(" ({})", r.size());
  return s;
}

std::string count_span(int64_t lo, int64_t hi) {
  return lo == hi ? fmt::format("{}", lo) : fmt::format("{}-{}", lo, hi);
}

// The first layer of a type, or -1.
int first_layer(const ModelConfig& config, LayerType type) {
  for (int l = 0; l < config.num_layers; ++l) {
    if (config.layers[l].type == type) return l;
  }
  return -1;
}

const char* short_type_name(LayerType t) { return t == LayerType::kSliding ? "sliding" : "full"; }

std::string layer_type_line(const LayerTypeLayout& t, const ModelConfig& config, int workers) {
  const int group = config.num_heads / std::max(1, t.num_kv_heads);
  std::string s = fmt::format("- {}: {} layers", short_type_name(t.type), t.layers);
  if (t.kv_owning_layers != t.layers) {
    s += fmt::format(" ({} own KV, {} reuse a donor layer's)", t.kv_owning_layers, t.layers - t.kv_owning_layers);
  }
  const int l = first_layer(config, t.type);
  s += fmt::format(", {} KV head{} x {}{}, {} query heads ({} per KV head): ", t.num_kv_heads,
                   t.num_kv_heads == 1 ? "" : "s", t.head_dim,
                   l >= 0 && config.layers[l].k_eq_v ? " (K=V)" : "", config.num_heads, group);
  if (t.max_kv_sharers <= 1) {
    s += workers == 1 ? "all heads on the one worker" : "whole KV groups per worker";
  } else if (t.kv_split_by_sequence) {
    s += fmt::format("query heads of a group split over up to {} workers, which split that KV head's cache by "
                     "sequence (position block b on the sharer with b % sharers == its index)",
                     t.max_kv_sharers);
  } else {
    s += fmt::format("query heads of a group split over up to {} workers, each computing and caching the KV head "
                     "(duplicated KV {})",
                     t.max_kv_sharers, format_bytes(t.duplicated_kv_bytes));
  }
  if (t.type == LayerType::kSliding) {
    s += fmt::format("; cache = window {} + {}-token chunk", config.sliding_window, kChunkTokens);
  }
  return s;
}

std::string kv_cell(const ModelConfig& config, int layer, const LayerShard& s, const Plan& plan) {
  if (layer < 0) return "-";
  std::string text = range_text(s.kv_heads, false);
  if (s.kv_seq_count > 1) return text + fmt::format(" seq {}/{}", s.kv_seq_index, s.kv_seq_count);
  // Sliding KV head used by several workers: count the sharers.
  if (s.kv_heads.size() == 1) {
    int sharers = 0;
    for (const WorkerPlan& w : plan.workers) {
      const Range k = w.shard.layers[layer].kv_heads;
      if (k.begin == s.kv_heads.begin && k.end == s.kv_heads.end) ++sharers;
    }
    if (sharers > 1) text += fmt::format(" (x{} copies)", sharers);
  }
  return text;
}

std::string experts_cell(const ModelConfig& config, const ShardSpec& shard) {
  if (!config.enable_moe) return "-";
  size_t lo = SIZE_MAX, hi = 0;
  bool same = true;
  for (const LayerShard& s : shard.layers) {
    lo = std::min(lo, s.experts.size());
    hi = std::max(hi, s.experts.size());
    same = same && s.experts == shard.layers[0].experts;
  }
  if (same && !shard.layers[0].experts.empty()) {
    const auto& e = shard.layers[0].experts;
    return range_text({e.front(), e.back() + 1}, true);
  }
  return count_span(static_cast<int64_t>(lo), static_cast<int64_t>(hi));
}

std::string mlp_cell(const ShardSpec& shard) {
  int64_t lo = INT64_MAX, hi = 0;
  for (const LayerShard& s : shard.layers) {
    lo = std::min(lo, s.mlp_columns.size());
    hi = std::max(hi, s.mlp_columns.size());
  }
  return count_span(lo, hi);
}

std::string markdown_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows[0].size(), 3);
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  for (size_t i = 0; i < rows.size(); ++i) {
    out += "|";
    for (size_t c = 0; c < rows[i].size(); ++c) out += fmt::format(" {:<{}} |", rows[i][c], width[c]);
    out += "\n";
    if (i == 0) {
      out += "|";
      for (size_t c = 0; c < width.size(); ++c) out += std::string(width[c] + 2, '-') + "|";
      out += "\n";
    }
  }
  return out;
}

}  // namespace

std::string format_plan_table(const Plan& plan, const ModelConfig& config) {
  const PlanOptions& o = plan.options;
  const int W = static_cast<int>(plan.workers.size());
  const int64_t budget = o.memory_per_worker_bytes;
  std::string out = fmt::format(
      "Plan for {} on {} worker{}: {} weights, context {} tokens x {} sequence{}, KV {} bytes/value, budget {}\n\n",
      plan.model, W, W == 1 ? "" : "s", weight_encoding_name(plan.weights), o.context_tokens, o.max_sequences,
      o.max_sequences == 1 ? "" : "s", o.kv_bytes_per_value, budget > 0 ? format_bytes(budget) : "unlimited");
  out += "Layer types:\n";
  for (const LayerTypeLayout& t : plan.layer_types) out += layer_type_line(t, config, W) + "\n";
  out += fmt::format("Splits: dense MLP columns in granules of {} (extras rotate over layers); ", kMlpColumnGranule);
  if (config.enable_moe) out += "experts whole, contiguous ids (extras rotate over layers); ";
  out += fmt::format("vocabulary rows in granules of {}\n\n", kVocabRowGranule);

  const int sliding = first_layer(config, LayerType::kSliding);
  const int full = first_layer(config, LayerType::kFull);
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"worker", "q heads sliding", "q heads full", "KV heads sliding", "KV heads full", "MLP cols/layer",
                  "experts/layer", "vocab rows", "weights", "KV", "activations", "total"});
  for (const WorkerPlan& w : plan.workers) {
    const ShardSpec& s = w.shard;
    rows.push_back({fmt::format("{}", s.worker),
                    sliding >= 0 ? range_text(s.layers[sliding].q_heads, true) : "-",
                    full >= 0 ? range_text(s.layers[full].q_heads, true) : "-",
                    sliding >= 0 ? kv_cell(config, sliding, s.layers[sliding], plan) : "-",
                    full >= 0 ? kv_cell(config, full, s.layers[full], plan) : "-",
                    mlp_cell(s),
                    experts_cell(config, s),
                    range_text(s.vocab_rows, true),
                    format_bytes(w.weight_bytes),
                    format_bytes(w.kv_bytes),
                    format_bytes(w.activation_bytes),
                    format_bytes(w.total_bytes)});
  }
  out += markdown_table(rows);
  out += fmt::format("\nLargest worker: {}", format_bytes(plan.max_total_bytes()));
  if (budget > 0) {
    out += fmt::format(" of {} budget ({})", format_bytes(budget),
                       plan.max_total_bytes() <= budget ? "fits" : "over budget");
  }
  out += fmt::format(". All workers: weights {}, KV {}.\n", format_bytes(plan.total_weight_bytes()),
                     format_bytes(plan.total_kv_bytes()));
  return out;
}

}  // namespace shardlm
