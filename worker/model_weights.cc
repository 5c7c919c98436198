#include "worker/model_weights.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace shardlm {
namespace {

class Loader {
 public:
  Loader(const Checkpoint& ckpt, const ModelConfig& config, const WeightLoadOptions& options, StepCollectives* collectives)
      : ckpt_(ckpt), config_(config), options_(options), collectives_(collectives) {}

  std::string name(const std::string& suffix) const { return config_.tensor_prefix + suffix; }
  std::string layer_name(int layer, const std::string& suffix) const {
    return config_.tensor_prefix + "layers." + std::to_string(layer) + "." + suffix;
  }

  std::vector<float> vector(const std::string& tensor) const {
    const TensorInfo& info = ckpt_.info(tensor);
    std::vector<float> out(static_cast<size_t>(info.numel()));
    ckpt_.read_f32(tensor, {0, 1}, {0, static_cast<int64_t>(out.size())}, out.data());
    return out;
  }

  WeightFormat checkpoint_format(const std::string& tensor) const {
    return ckpt_.info(tensor).dtype == DType::kBF16 ? WeightFormat::kBF16 : WeightFormat::kF32;
  }
  WeightFormat format_of(const std::string& tensor) const {
    if (!options_.format) return checkpoint_format(tensor);
    // The MoE router decides which experts run: it stays in the checkpoint's precision (it is
    // small) when the rest is quantised.
    if (is_quantized(*options_.format) && tensor.find("router.proj") != std::string::npos) return checkpoint_format(tensor);
    return *options_.format;
  }

  // Stacks rectangles of (possibly different) tensors into one matrix, row-wise.
  struct Piece {
    std::string tensor;
    Range rows, cols;
  };
  Linear matrix(const std::vector<Piece>& pieces) const {
    int64_t total_rows = 0;
    const int64_t cols = pieces.front().cols.size();
    for (const Piece& p : pieces) {
      if (p.cols.size() != cols) fail("internal: stacked pieces of {} differ in width", p.tensor);
      total_rows += p.rows.size();
    }
    const WeightFormat format = format_of(pieces.front().tensor);
    if (is_quantized(format)) {
      // Quantised while read, row by row: the f32 matrix is never held whole (an LM head shard of
      // the 31B model would be 2.8 GB of f32).
      std::vector<int64_t> first_row;  // first stacked row of each piece
      int64_t at = 0;
      for (const Piece& p : pieces) {
        first_row.push_back(at);
        at += p.rows.size();
      }
      return Linear::from_rows(total_rows, cols, format, [&](int64_t r, float* out) {
        const size_t i = static_cast<size_t>(std::upper_bound(first_row.begin(), first_row.end(), r) - first_row.begin()) - 1;
        const Piece& p = pieces[i];
        const int64_t src = p.rows.begin + (r - first_row[i]);
        ckpt_.read_f32(p.tensor, {src, src + 1}, p.cols, out);
      });
    }
    std::vector<float> buf(static_cast<size_t>(total_rows * cols));
    int64_t row = 0;
    for (const Piece& p : pieces) {
      ckpt_.read_f32(p.tensor, p.rows, p.cols, buf.data() + row * cols);
      row += p.rows.size();
    }
    return Linear::from_f32(buf.data(), total_rows, cols, format, options_.backend);
  }
  Linear matrix(const std::string& tensor, Range rows, Range cols) const { return matrix({{tensor, rows, cols}}); }

  // A matrix whose columns are split across the workers (o_proj, mlp.down_proj; cols may be empty:
  // then an empty Linear). With int8 weights each row's scale is taken from the largest magnitude of
  // the whole row, a maximum over the workers' slices, so that the quantised model is the same at
  // any worker count (q4's scales are per block of 32 columns, which the splits do not cut).
  // Collective: every worker calls it for the same tensors in the same order.
  Linear column_split_matrix(const std::string& tensor, Range rows, Range cols) const {
    const WeightFormat format = format_of(tensor);
    if (format != WeightFormat::kInt8 || !collectives_ || collectives_->num_workers() <= 1) {
      return cols.size() > 0 ? matrix(tensor, rows, cols) : Linear();
    }
    std::vector<float> max_abs(static_cast<size_t>(rows.size()), 0.0f);
    if (cols.size() > 0) {
#pragma omp parallel
      {
        std::vector<float> row(static_cast<size_t>(cols.size()));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows.size(); ++r) {
          ckpt_.read_f32(tensor, {rows.begin + r, rows.begin + r + 1}, cols, row.data());
          float m = 0.0f;
          for (float v : row) m = std::max(m, std::fabs(v));  // (a NaN is refused when the row is packed)
          max_abs[static_cast<size_t>(r)] = m;
        }
      }
    }
    collectives_->all_reduce_max(max_abs.data(), max_abs.size());
    if (cols.size() == 0) return Linear();
    return Linear::from_rows(
        rows.size(), cols.size(), format,
        [&](int64_t r, float* out) { ckpt_.read_f32(tensor, {rows.begin + r, rows.begin + r + 1}, cols, out); },
        max_abs.data());
  }

 private:
  const Checkpoint& ckpt_;
  const ModelConfig& config_;
  const WeightLoadOptions& options_;
  StepCollectives* collectives_;
};

}  // namespace

size_t ModelWeights::expert_bytes() const {
  size_t total = 0;
  for (const LayerWeights& l : layers) {
    if (!l.moe) continue;
    for (const ExpertWeights& e : l.moe->experts) total += e.gate_up.weight_bytes() + e.down.weight_bytes();
  }
  return total;
}

size_t ModelWeights::bytes() const {
  size_t total = 0;
  auto add_vec = [&](const std::vector<float>& v) { total += v.size() * sizeof(float); };
  for (const LayerWeights& l : layers) {
    total += l.attn.q.weight_bytes() + l.attn.k.weight_bytes() + l.attn.v.weight_bytes() + l.attn.o.weight_bytes();
    total += l.mlp.gate_up.weight_bytes() + l.mlp.down.weight_bytes();
    if (l.moe) {
      total += l.moe->router.weight_bytes();
      for (const ExpertWeights& e : l.moe->experts) total += e.gate_up.weight_bytes() + e.down.weight_bytes();
    }
    if (l.ple) total += l.ple->gate.weight_bytes() + l.ple->proj.weight_bytes();
    add_vec(l.input_norm);
    add_vec(l.post_attn_norm);
    add_vec(l.pre_ffn_norm);
    add_vec(l.post_ffn_norm);
  }
  for (const LmHeadChunk& c : lm_head) total += c.rows.weight_bytes();
  total += ple_model_projection.weight_bytes();
  return total;
}

ModelWeights load_model_weights(const Checkpoint& ckpt, const ModelConfig& config, const ShardSpec& shard,
                                const WeightLoadOptions& options, StepCollectives* collectives) {
  Loader ld(ckpt, config, options, collectives);
  const int64_t H = config.hidden_size;
  if (options.format == WeightFormat::kInt8 && collectives && collectives->num_workers() > 1) {
    // The load is collective (column_split_matrix): one all-reduce per layer and matrix of H values.
    // Workers that read different models would call them differently (a hang or a crash in MPI);
    // they stop here instead, before the coordinator's own check of what they loaded.
    const float mine[2] = {static_cast<float>(H), static_cast<float>(config.num_layers)};
    float most[4] = {mine[0], mine[1], -mine[0], -mine[1]};
    collectives->all_reduce_max(most, 4);
    if (most[0] != -most[2] || most[1] != -most[3]) {
      fail("the workers loaded different models (hidden_size {} .. {}, {} .. {} layers; this worker: {}, {}): every "
           "rank must be given the same --model",
           -most[2], most[0], -most[3], most[1], H, config.num_layers);
    }
  }
  ModelWeights w;
  w.layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerGeometry& g = config.layers[l];
    const LayerShard& s = shard.layers[l];
    LayerWeights& lw = w.layers[l];
    lw.input_norm = ld.vector(ld.layer_name(l, "input_layernorm.weight"));
    lw.post_attn_norm = ld.vector(ld.layer_name(l, "post_attention_layernorm.weight"));
    lw.pre_ffn_norm = ld.vector(ld.layer_name(l, "pre_feedforward_layernorm.weight"));
    lw.post_ffn_norm = ld.vector(ld.layer_name(l, "post_feedforward_layernorm.weight"));
    lw.layer_scalar = ld.vector(ld.layer_name(l, "layer_scalar")).at(0);

    const int64_t hd = g.head_dim;
    const Range q_rows{s.q_heads.begin * hd, s.q_heads.end * hd};
    const Range kv_rows{s.kv_heads.begin * hd, s.kv_heads.end * hd};
    AttentionWeights& a = lw.attn;
    a.q = ld.matrix(ld.layer_name(l, "self_attn.q_proj.weight"), q_rows, {0, H});
    a.q_norm = ld.vector(ld.layer_name(l, "self_attn.q_norm.weight"));
    a.o = ld.column_split_matrix(ld.layer_name(l, "self_attn.o_proj.weight"), {0, H}, q_rows);
    if (!g.shares_kv()) {
      a.k = ld.matrix(ld.layer_name(l, "self_attn.k_proj.weight"), kv_rows, {0, H});
      a.k_norm = ld.vector(ld.layer_name(l, "self_attn.k_norm.weight"));
      if (!g.k_eq_v) a.v = ld.matrix(ld.layer_name(l, "self_attn.v_proj.weight"), kv_rows, {0, H});
    }

    const Range cols = s.mlp_columns;
    const int64_t I = g.intermediate_size;
    lw.mlp.columns = cols.size();
    if (cols.size() > 0) {
      lw.mlp.gate_up = ld.matrix({{ld.layer_name(l, "mlp.gate_proj.weight"), cols, {0, H}},
                                  {ld.layer_name(l, "mlp.up_proj.weight"), cols, {0, H}}});
    }
    lw.mlp.down = ld.column_split_matrix(ld.layer_name(l, "mlp.down_proj.weight"), {0, H}, cols);
    (void)I;

    if (config.enable_moe) {
      MoeWeights m;
      m.router = ld.matrix(ld.layer_name(l, "router.proj.weight"), {0, config.num_experts}, {0, H});
      m.router_scale = ld.vector(ld.layer_name(l, "router.scale"));
      m.per_expert_scale = ld.vector(ld.layer_name(l, "router.per_expert_scale"));
      m.pre_norm_2 = ld.vector(ld.layer_name(l, "pre_feedforward_layernorm_2.weight"));
      m.post_norm_1 = ld.vector(ld.layer_name(l, "post_feedforward_layernorm_1.weight"));
      m.post_norm_2 = ld.vector(ld.layer_name(l, "post_feedforward_layernorm_2.weight"));
      const int64_t mi = config.moe_intermediate_size;
      for (int32_t e : s.experts) {
        ExpertWeights ew;
        ew.id = e;
        ew.gate_up = ld.matrix(ld.layer_name(l, "experts.gate_up_proj"), {e * 2 * mi, (e + 1) * 2 * mi}, {0, H});
        ew.down = ld.matrix(ld.layer_name(l, "experts.down_proj"), {e * H, (e + 1) * H}, {0, mi});
        m.experts.push_back(std::move(ew));
      }
      lw.moe = std::move(m);
    }

    if (config.has_ple()) {
      const int64_t P = config.hidden_size_per_layer_input;
      PleLayerWeights p;
      p.gate = ld.matrix(ld.layer_name(l, "per_layer_input_gate.weight"), {0, P}, {0, H});
      p.proj = ld.matrix(ld.layer_name(l, "per_layer_projection.weight"), {0, H}, {0, P});
      p.post_norm = ld.vector(ld.layer_name(l, "post_per_layer_input_norm.weight"));
      lw.ple = std::move(p);
    }
  }

  w.final_norm = ld.vector(ld.name("norm.weight"));
  const std::string embed = ld.name("embed_tokens.weight");
  const int64_t chunk = std::max<int64_t>(1, options.lm_head_chunk_rows);
  for (int64_t r = shard.vocab_rows.begin; r < shard.vocab_rows.end; r += chunk) {
    const int64_t end = std::min(r + chunk, shard.vocab_rows.end);
    w.lm_head.push_back({r, ld.matrix(embed, {r, end}, {0, H})});
  }
  if (config.has_ple()) {
    const int64_t LP = static_cast<int64_t>(config.num_layers) * config.hidden_size_per_layer_input;
    w.ple_model_projection = ld.matrix(ld.name("per_layer_model_projection.weight"), {0, LP}, {0, H});
    w.ple_projection_norm = ld.vector(ld.name("per_layer_projection_norm.weight"));
  }
  return w;
}

}  // namespace shardlm
