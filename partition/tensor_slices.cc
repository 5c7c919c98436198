#include "partition/tensor_slices.h"

#include <algorithm>

#include "common/error.h"
#include "model/tensor_names.h"

namespace shardlm {
namespace {

// Names and 2-D views of the model's tensors, derived from the config.
class TensorCatalog {
 public:
  explicit TensorCatalog(const ModelConfig& c) : c_(c) {}

  std::string global(const char* suffix) const { return model_tensor_name(c_, suffix); }
  std::string layer(int l, const char* suffix) const { return layer_tensor_name(c_, l, suffix); }

  // Calls fn(name, view, matrix) for every tensor of the model the engine reads.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    const int64_t H = c_.hidden_size;
    for (int l = 0; l < c_.num_layers; ++l) {
      const LayerGeometry& g = c_.layers[l];
      const int64_t hd = g.head_dim;
      for (const char* norm : {"input_layernorm.weight", "post_attention_layernorm.weight",
                               "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight"}) {
        fn(layer(l, norm), TensorView{1, H}, false);
      }
      fn(layer(l, "layer_scalar"), TensorView{1, 1}, false);
      fn(layer(l, "self_attn.q_proj.weight"), TensorView{c_.num_heads * hd, H}, true);
      fn(layer(l, "self_attn.q_norm.weight"), TensorView{1, hd}, false);
      fn(layer(l, "self_attn.o_proj.weight"), TensorView{H, c_.num_heads * hd}, true);
      if (!g.shares_kv()) {
        fn(layer(l, "self_attn.k_proj.weight"), TensorView{g.num_kv_heads * hd, H}, true);
        fn(layer(l, "self_attn.k_norm.weight"), TensorView{1, hd}, false);
        if (!g.k_eq_v) fn(layer(l, "self_attn.v_proj.weight"), TensorView{g.num_kv_heads * hd, H}, true);
      }
      const int64_t I = g.intermediate_size;
      fn(layer(l, "mlp.gate_proj.weight"), TensorView{I, H}, true);
      fn(layer(l, "mlp.up_proj.weight"), TensorView{I, H}, true);
      fn(layer(l, "mlp.down_proj.weight"), TensorView{H, I}, true);
      if (c_.enable_moe) {
        const int64_t E = c_.num_experts;
        const int64_t mi = c_.moe_intermediate_size;
        fn(layer(l, "router.proj.weight"), TensorView{E, H}, true);
        fn(layer(l, "router.scale"), TensorView{1, H}, false);
        fn(layer(l, "router.per_expert_scale"), TensorView{1, E}, false);
        for (const char* norm : {"pre_feedforward_layernorm_2.weight", "post_feedforward_layernorm_1.weight",
                                 "post_feedforward_layernorm_2.weight"}) {
          fn(layer(l, norm), TensorView{1, H}, false);
        }
        fn(layer(l, "experts.gate_up_proj"), TensorView{E * 2 * mi, H}, true);
        fn(layer(l, "experts.down_proj"), TensorView{E * H, mi}, true);
      }
      if (c_.has_ple()) {
        const int64_t P = c_.hidden_size_per_layer_input;
        fn(layer(l, "per_layer_input_gate.weight"), TensorView{P, H}, true);
        fn(layer(l, "per_layer_projection.weight"), TensorView{H, P}, true);
        fn(layer(l, "post_per_layer_input_norm.weight"), TensorView{1, H}, false);
      }
    }
    fn(global("norm.weight"), TensorView{1, H}, false);
    fn(global("embed_tokens.weight"), TensorView{c_.vocab_size, H}, true);
    if (!c_.tie_word_embeddings) fn(std::string("lm_head.weight"), TensorView{c_.vocab_size, H}, true);
    if (c_.has_ple()) {
      const int64_t LP = static_cast<int64_t>(c_.num_layers) * c_.hidden_size_per_layer_input;
      const int64_t ple_vocab = c_.vocab_size_per_layer_input > 0 ? c_.vocab_size_per_layer_input : c_.vocab_size;
      fn(global("embed_tokens_per_layer.weight"), TensorView{ple_vocab, LP}, true);
      fn(global("per_layer_model_projection.weight"), TensorView{LP, H}, true);
      fn(global("per_layer_projection_norm.weight"), TensorView{1, c_.hidden_size_per_layer_input}, false);
    }
  }

 private:
  const ModelConfig& c_;
};

bool ends_with(const std::string& s, const char* suffix) {
  const std::string t(suffix);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

Range clamp(Range r, int64_t limit) { return {std::min(r.begin, limit), std::min(r.end, limit)}; }

}  // namespace

std::vector<std::pair<std::string, TensorView>> read_tensor_views(const ModelConfig& config) {
  std::vector<std::pair<std::string, TensorView>> out;
  TensorCatalog(config).for_each(
      [&](const std::string& name, TensorView view, bool) { out.emplace_back(name, view); });
  return out;
}

std::vector<TensorSlice> shard_reads(const ModelConfig& config, const ShardSpec& shard) {
  if (static_cast<int>(shard.layers.size()) != config.num_layers) {
    fail("shard of worker {} has {} layers, the model has {}", shard.worker, shard.layers.size(), config.num_layers);
  }
  std::vector<TensorSlice> reads;
  auto add = [&](const std::string& name, Range rows, Range cols, bool matrix) {
    if (rows.size() > 0 && cols.size() > 0) reads.push_back({name, rows, cols, matrix});
  };
  const std::string layers_prefix = config.tensor_prefix + "layers.";
  TensorCatalog(config).for_each([&](const std::string& name, TensorView view, bool matrix) {
    const Range all_rows{0, view.rows};
    const Range all_cols{0, view.cols};
    if (name.compare(0, layers_prefix.size(), layers_prefix) != 0) {
      // Global tensors: the vocabulary tables are read by rows, the rest whole.
      if (ends_with(name, "embed_tokens.weight") || name == "lm_head.weight" ||
          ends_with(name, "embed_tokens_per_layer.weight")) {
        add(name, clamp(shard.vocab_rows, view.rows), all_cols, matrix);
      } else {
        add(name, all_rows, all_cols, matrix);
      }
      return;
    }
    const int l = std::stoi(name.substr(layers_prefix.size()));
    const LayerGeometry& g = config.layers[l];
    const LayerShard& s = shard.layers[l];
    const int64_t hd = g.head_dim;
    const Range q_dims{s.q_heads.begin * hd, s.q_heads.end * hd};
    const Range kv_dims{s.kv_heads.begin * hd, s.kv_heads.end * hd};
    if (ends_with(name, "q_proj.weight")) {
      add(name, q_dims, all_cols, matrix);
    } else if (ends_with(name, "o_proj.weight")) {
      add(name, all_rows, q_dims, matrix);
    } else if (ends_with(name, "k_proj.weight") || ends_with(name, "v_proj.weight")) {
      add(name, kv_dims, all_cols, matrix);
    } else if (ends_with(name, "mlp.gate_proj.weight") || ends_with(name, "mlp.up_proj.weight")) {
      add(name, s.mlp_columns, all_cols, matrix);
    } else if (ends_with(name, "mlp.down_proj.weight")) {
      add(name, all_rows, s.mlp_columns, matrix);
    } else if (ends_with(name, "experts.gate_up_proj") || ends_with(name, "experts.down_proj")) {
      // Expert e occupies rows e*per..(e+1)*per of the 2-D view; runs of consecutive experts merge.
      const int64_t per = view.rows / config.num_experts;
      for (size_t i = 0; i < s.experts.size();) {
        size_t j = i + 1;
        while (j < s.experts.size() && s.experts[j] == s.experts[j - 1] + 1) ++j;
        add(name, {s.experts[i] * per, (s.experts[j - 1] + 1) * per}, all_cols, matrix);
        i = j;
      }
    } else {
      add(name, all_rows, all_cols, matrix);
    }
  });
  return reads;
}

std::vector<ByteRange> slice_byte_ranges(const TensorInfo& info, Range rows, Range cols) {
  int64_t view_rows = 1;
  for (size_t i = 0; i + 1 < info.shape.size(); ++i) {
    if (info.shape[i] < 0) fail("tensor '{}': negative dimension {}", info.name, info.shape[i]);
    view_rows *= info.shape[i];
  }
  const int64_t view_cols = info.shape.empty() ? 1 : info.shape.back();
  if (view_cols < 0) fail("tensor '{}': negative dimension {}", info.name, view_cols);
  const uint64_t elem = dtype_size(info.dtype);
  if (info.end < info.begin || info.nbytes() != static_cast<uint64_t>(view_rows * view_cols) * elem) {
    fail("tensor '{}': byte range [{}, {}) does not hold {} x {} elements of {} bytes", info.name, info.begin,
         info.end, view_rows, view_cols, elem);
  }
  if (rows.begin < 0 || rows.end < rows.begin || rows.end > view_rows || cols.begin < 0 || cols.end < cols.begin ||
      cols.end > view_cols) {
    fail("tensor '{}': rectangle rows [{}, {}) x cols [{}, {}) lies outside its [{}, {}] view", info.name, rows.begin,
         rows.end, cols.begin, cols.end, view_rows, view_cols);
  }
  std::vector<ByteRange> out;
  if (rows.size() == 0 || cols.size() == 0) return out;
  const uint64_t row_bytes = static_cast<uint64_t>(view_cols) * elem;
  if (cols.size() == view_cols) {
    out.push_back({0, info.begin + rows.begin * row_bytes, info.begin + rows.end * row_bytes});
    return out;
  }
  out.reserve(rows.size());
  for (int64_t r = rows.begin; r < rows.end; ++r) {
    const uint64_t row = info.begin + r * row_bytes;
    out.push_back({0, row + cols.begin * elem, row + cols.end * elem});
  }
  return out;
}

}  // namespace shardlm
