#include "worker/model_runner.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/moe_routing.h"
#include "kernels/rope.h"
#include "partition/head_split.h"

namespace shardlm {

struct ModelRunner::Scratch {
  std::vector<float> a, q, k, v, attn, o, gu, act, ffn, experts_in, route_logits, route_weights, ple_g, ple_y;
  std::vector<float> moe_in, moe_gu, moe_act, moe_out;  // the routed experts' rows, gathered
  std::vector<int32_t> route_ids;
  std::vector<KvBlockView> views;
};

namespace {

void ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

std::string layer_tag(int layer, const char* what) { return "L" + std::to_string(layer) + "." + what; }

}  // namespace

ModelRunner::ModelRunner(ModelConfig config, std::shared_ptr<const Checkpoint> checkpoint, ShardSpec shard,
                         const RunnerOptions& options, StepCollectives* collectives)
    : config_(std::move(config)),
      checkpoint_(std::move(checkpoint)),
      shard_(std::move(shard)),
      weights_(load_model_weights(*checkpoint_, config_, shard_, options.weights, collectives)),
      kv_(config_, shard_, options.kv),
      coll_(collectives ? collectives : &local_),
      embed_from_lm_head_(options.weights.format && is_quantized(*options.weights.format)) {
  inv_freq_.resize(config_.num_layers);
  expert_tokens_.assign(static_cast<size_t>(std::max(config_.num_experts, 0)), 0);
  kv_head_of_q_.resize(config_.num_layers);
  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerGeometry& g = config_.layers[l];
    inv_freq_[l] = rope_inv_freq(g.head_dim, g.rope.theta, g.rotary_pairs());
    const LayerShard& s = shard_.layers[l];
    const int group = config_.num_heads / g.num_kv_heads;
    for (int64_t h = s.q_heads.begin; h < s.q_heads.end; ++h) {
      const int64_t kv = h / group;
      if (kv < s.kv_heads.begin || kv >= s.kv_heads.end) {
        fail("shard: layer {} query head {} needs KV head {} outside the owned range [{}, {})", l, h, kv,
             s.kv_heads.begin, s.kv_heads.end);
      }
      kv_head_of_q_[l].push_back(static_cast<int32_t>(kv - s.kv_heads.begin));
    }
  }
  // Sequence split of the full-attention layers' KV: the workers sharing a KV head form a group
  // (consecutive workers, the first one's index is the color). Collective over all workers.
  if (coll_->num_workers() > 1) {
    const int index = kv_.seq_count() > 1 ? kv_.seq_index() : 0;
    coll_->set_kv_group(shard_.worker - index, index);
    if (coll_->kv_group_size() != kv_.seq_count()) {
      fail("shard: worker {} expects {} workers in its KV group, the group has {}", shard_.worker, kv_.seq_count(),
           coll_->kv_group_size());
    }
  }
}

ModelRunner::~ModelRunner() = default;

const std::vector<int64_t>& ModelRunner::take_expert_tokens() {
  expert_tokens_taken_ = expert_tokens_;
  std::fill(expert_tokens_.begin(), expert_tokens_.end(), 0);
  return expert_tokens_taken_;
}

void ModelRunner::forward(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace) {
  const int max_chunk = kv_.max_chunk();
  bool fits = true;
  for (const SequenceSegment& s : batch.segments) fits = fits && s.rows <= max_chunk;
  if (fits) {
    forward_step(batch, logits, trace);
    return;
  }
  // Split long segments into consecutive steps; the kernels reduce each row in the same order
  // whatever the batch, so the result equals one big step.
  const int64_t vocab = shard_.vocab_rows.size();
  logits.assign(batch.logit_rows.size() * vocab, 0.0f);
  std::vector<float> part;
  size_t logit_index = 0;
  for (const SequenceSegment& seg : batch.segments) {
    for (int32_t off = 0; off < seg.rows; off += max_chunk) {
      const int32_t n = std::min(max_chunk, seg.rows - off);
      StepBatch sub;
      std::vector<int32_t> ids(batch.tokens.begin() + seg.first_row + off,
                               batch.tokens.begin() + seg.first_row + off + n);
      sub.add(seg.seq, seg.first_position + off, ids, false, false);
      for (int32_t r : batch.logit_rows) {
        if (r >= seg.first_row + off && r < seg.first_row + off + n) sub.logit_rows.push_back(r - seg.first_row - off);
      }
      forward_step(sub, part, trace);
      std::copy(part.begin(), part.end(), logits.begin() + logit_index * vocab);
      logit_index += sub.logit_rows.size();
    }
  }
}

void ModelRunner::forward_step(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace) {
  const int64_t T = batch.size();
  const int64_t H = config_.hidden_size;
  for (const SequenceSegment& seg : batch.segments) {
    kv_.prepare(seg.seq, seg.first_position, seg.first_position + seg.rows);
  }
  std::vector<float> x(static_cast<size_t>(T * H));
  embed(batch, x.data(), trace);
  std::vector<float> ple;
  if (config_.has_ple()) per_layer_inputs(batch, x.data(), ple);

  Scratch s;
  for (int l = 0; l < config_.num_layers; ++l) {
    attention_block(l, batch, x.data(), s, trace);
    ffn_block(l, T, x.data(), s, trace);
    if (config_.has_ple()) ple_block(l, T, x.data(), ple, s);
    const float scalar = weights_.layers[l].layer_scalar;
    for (float& v : x) v *= scalar;
    if (trace) trace(layer_tag(l, "out"), x.data(), T, H);
  }
  lm_head(batch, x.data(), logits, trace);
}

void ModelRunner::embed(const StepBatch& batch, float* x, const TraceFn& trace) {
  const int64_t H = config_.hidden_size;
  const std::string table = config_.tensor_prefix + "embed_tokens.weight";
  const float scale = std::sqrt(static_cast<float>(H));
  std::memset(x, 0, sizeof(float) * batch.size() * H);
  for (int32_t r = 0; r < batch.size(); ++r) {
    const int32_t tok = batch.tokens[r];
    if (tok < 0 || tok >= config_.vocab_size) fail("token id {} outside the vocabulary [0, {})", tok, config_.vocab_size);
    if (tok < shard_.vocab_rows.begin || tok >= shard_.vocab_rows.end) continue;
    float* row = x + static_cast<int64_t>(r) * H;
    if (embed_from_lm_head_) {
      // Quantised weights: the tied embedding row is the LM head's row as stored.
      const LmHeadChunk* chunk = nullptr;
      for (const LmHeadChunk& c : weights_.lm_head) {
        if (tok >= c.first_row && tok < c.first_row + c.rows.out_features()) chunk = &c;
      }
      if (chunk == nullptr) fail("internal: token {} of this worker's vocabulary rows has no LM head chunk", tok);
      chunk->rows.read_row(tok - chunk->first_row, row);
    } else {
      checkpoint_->read_f32(table, {tok, tok + 1}, {0, H}, row);
    }
    for (int64_t i = 0; i < H; ++i) row[i] *= scale;
  }
  coll_->all_reduce_sum(x, static_cast<size_t>(batch.size() * H));
  if (trace) trace("embed", x, batch.size(), H);
}

void ModelRunner::per_layer_inputs(const StepBatch& batch, const float* h0, std::vector<float>& ple) {
  // ple[t, l, :] = (RMSNorm_w(W_plmp h0 * H^-1/2) + E_ple[token] * sqrt(P)) * 2^-1/2
  const int64_t T = batch.size();
  const int64_t H = config_.hidden_size;
  const int64_t P = config_.hidden_size_per_layer_input;
  const int64_t L = config_.num_layers;
  ple.assign(static_cast<size_t>(T * L * P), 0.0f);
  weights_.ple_model_projection.forward(h0, T, ple.data());
  const float inv_sqrt_h = 1.0f / std::sqrt(static_cast<float>(H));
  for (float& v : ple) v *= inv_sqrt_h;
  rms_norm(ple.data(), weights_.ple_projection_norm.data(), ple.data(), T * L, P, config_.rms_norm_eps);
  const std::string table = config_.tensor_prefix + "embed_tokens_per_layer.weight";
  const float tok_scale = std::sqrt(static_cast<float>(P));
  const float mix = 1.0f / std::sqrt(2.0f);
  std::vector<float> row(static_cast<size_t>(L * P));
  for (int64_t t = 0; t < T; ++t) {
    const int32_t tok = batch.tokens[t];
    const bool in_table = tok >= 0 && tok < config_.vocab_size_per_layer_input;
    if (in_table) checkpoint_->read_f32(table, {tok, tok + 1}, {0, L * P}, row.data());
    float* out = ple.data() + t * L * P;
    for (int64_t i = 0; i < L * P; ++i) out[i] = (out[i] + (in_table ? row[i] * tok_scale : 0.0f)) * mix;
  }
}

void ModelRunner::attention_block(int l, const StepBatch& batch, float* x, Scratch& s, const TraceFn& trace) {
  const LayerGeometry& g = config_.layers[l];
  const LayerShard& sh = shard_.layers[l];
  const AttentionWeights& w = weights_.layers[l].attn;
  const int64_t T = batch.size();
  const int64_t H = config_.hidden_size;
  const int64_t hd = g.head_dim;
  const int64_t nq = sh.q_heads.size();
  const int64_t nkv = sh.kv_heads.size();
  const float eps = config_.rms_norm_eps;

  ensure(s.a, T * H);
  rms_norm(x, weights_.layers[l].input_norm.data(), s.a.data(), T, H, eps);

  // The q, k and v projections in one parallel region, their input quantised once (quantised weights).
  ensure(s.q, T * nq * hd);
  std::vector<Linear::Product> qkv = {Linear::Product{&w.q, s.a.data(), T, s.q.data()}};
  if (!g.shares_kv()) {
    ensure(s.k, T * nkv * hd);
    ensure(s.v, T * nkv * hd);
    qkv.push_back(Linear::Product{&w.k, s.a.data(), T, s.k.data()});
    if (!g.k_eq_v) qkv.push_back(Linear::Product{&w.v, s.a.data(), T, s.v.data()});
  }
  Linear::forward_group(qkv);
  rms_norm(s.q.data(), w.q_norm.data(), s.q.data(), T * nq, hd, eps);
  rope_apply(s.q.data(), T, nq * hd, nq, hd, batch.positions.data(), inv_freq_[l].data());

  if (!g.shares_kv()) {
    if (g.k_eq_v) std::copy(s.k.begin(), s.k.begin() + T * nkv * hd, s.v.begin());  // V from the raw K projection
    rms_norm(s.k.data(), w.k_norm.data(), s.k.data(), T * nkv, hd, eps);
    rope_apply(s.k.data(), T, nkv * hd, nkv, hd, batch.positions.data(), inv_freq_[l].data());
    rms_norm(s.v.data(), nullptr, s.v.data(), T * nkv, hd, eps);
    const size_t row_floats = static_cast<size_t>(nkv * hd);
    for (const SequenceSegment& seg : batch.segments) {
      for (int32_t i = 0; i < seg.rows; ++i) {
        const int64_t r = seg.first_row + i;
        const int32_t pos = seg.first_position + i;
        if (!kv_.holds(l, pos)) continue;  // another worker of the sequence split stores it
        kv_.write(l, seg.seq, pos, s.k.data() + r * row_floats, s.v.data() + r * row_floats);
      }
    }
  }

  AttentionShape shape;
  shape.n_q_heads = static_cast<int32_t>(nq);
  shape.n_kv_heads = static_cast<int32_t>(nkv);
  shape.head_dim = static_cast<int32_t>(hd);
  shape.kv_head_of_q = kv_head_of_q_[l].data();
  const bool sliding = g.type == LayerType::kSliding;
  const int32_t window = sliding ? config_.sliding_window : 0;
  ensure(s.attn, T * nq * hd);
  std::vector<float> lse(static_cast<size_t>(T * nq));
  if (!sliding && kv_.seq_count() > 1) {
    split_attention(l, batch, shape, s);
  } else {
    for (const SequenceSegment& seg : batch.segments) {
      const int32_t last = seg.first_position + seg.rows - 1;
      const int32_t lo = sliding ? seg.first_position - window + 1 : 0;
      kv_.views(l, seg.seq, lo, last, s.views);
      attention_partial(s.q.data() + seg.first_row * nq * hd, seg.rows, batch.positions.data() + seg.first_row, shape,
                        s.views.data(), static_cast<int64_t>(s.views.size()), window, 1.0f,
                        s.attn.data() + seg.first_row * nq * hd, lse.data() + seg.first_row * nq);
    }
  }

  ensure(s.o, T * H);
  w.o.forward(s.attn.data(), T, s.o.data());
  coll_->all_reduce_sum(s.o.data(), static_cast<size_t>(T * H));
  rms_norm(s.o.data(), weights_.layers[l].post_attn_norm.data(), s.o.data(), T, H, eps);
  if (trace) trace(layer_tag(l, "attn_out"), s.o.data(), T, H);
  for (int64_t i = 0; i < T * H; ++i) x[i] += s.o[i];
}

// Attention of a full layer whose KV positions are split over the workers of this worker's KV group:
// every member computes partial attention (output + log-sum-exp) of all the group's queries over the
// blocks it holds, and each member merges the partials of its own query heads (flash-decoding).
void ModelRunner::split_attention(int l, const StepBatch& batch, const AttentionShape& own_shape, Scratch& s) {
  const LayerGeometry& g = config_.layers[l];
  const LayerShard& sh = shard_.layers[l];
  const int64_t T = batch.size();
  const int64_t hd = g.head_dim;
  const int64_t nq = sh.q_heads.size();
  const int C = kv_.seq_count();
  const int me = kv_.seq_index();
  // Query heads of every member (the planner's deal, recomputed: it is a pure function).
  const std::vector<HeadShare> shares = split_heads(config_.num_heads, g.num_kv_heads, shard_.num_workers, true);
  const int first = shard_.worker - me;
  std::vector<int64_t> member_nq(C), member_off(C + 1, 0);
  int64_t max_nq = 0;
  for (int j = 0; j < C; ++j) {
    member_nq[j] = shares.at(first + j).q_heads.size();
    member_off[j + 1] = member_off[j] + member_nq[j];
    max_nq = std::max(max_nq, member_nq[j]);
  }
  if (member_nq[me] != nq) fail("shard: layer {} worker {} owns {} query heads, the deal says {}", l, shard_.worker, nq, member_nq[me]);
  const int64_t gq = member_off[C];

  // 1. The group's queries: [T, gq, hd].
  std::vector<float> send(static_cast<size_t>(T * max_nq * hd), 0.0f), recv(static_cast<size_t>(C * T * max_nq * hd));
  for (int64_t t = 0; t < T; ++t) std::copy_n(s.q.data() + t * nq * hd, nq * hd, send.data() + t * max_nq * hd);
  coll_->kv_group_all_gather(send.data(), send.size(), recv.data());
  std::vector<float> q_all(static_cast<size_t>(T * gq * hd));
  for (int j = 0; j < C; ++j) {
    for (int64_t t = 0; t < T; ++t) {
      std::copy_n(recv.data() + (j * T + t) * max_nq * hd, member_nq[j] * hd, q_all.data() + (t * gq + member_off[j]) * hd);
    }
  }
  // 2. Partial attention of all of them over the blocks held here.
  std::vector<int32_t> kv_of_q(static_cast<size_t>(gq), 0);
  AttentionShape shape = own_shape;
  shape.n_q_heads = static_cast<int32_t>(gq);
  shape.kv_head_of_q = kv_of_q.data();
  const int64_t part_floats = T * gq * (hd + 1);
  std::vector<float> part(static_cast<size_t>(part_floats));
  float* part_out = part.data();
  float* part_lse = part.data() + T * gq * hd;
  for (const SequenceSegment& seg : batch.segments) {
    const int32_t last = seg.first_position + seg.rows - 1;
    kv_.views(l, seg.seq, 0, last, s.views);
    attention_partial(q_all.data() + seg.first_row * gq * hd, seg.rows, batch.positions.data() + seg.first_row, shape,
                      s.views.data(), static_cast<int64_t>(s.views.size()), 0, 1.0f, part_out + seg.first_row * gq * hd,
                      part_lse + seg.first_row * gq);
  }
  // 3. Every member's partials; merge those of this worker's heads in member order.
  std::vector<float> parts(static_cast<size_t>(C * part_floats));
  coll_->kv_group_all_gather(part.data(), part.size(), parts.data());
  std::vector<float> acc_lse(static_cast<size_t>(T * nq), -std::numeric_limits<float>::infinity());
  std::fill(s.attn.begin(), s.attn.begin() + T * nq * hd, 0.0f);
  for (int j = 0; j < C; ++j) {
    const float* pj = parts.data() + j * part_floats;
    for (int64_t t = 0; t < T; ++t) {
      const float* out_t = pj + (t * gq + member_off[me]) * hd;
      const float* lse_t = pj + T * gq * hd + t * gq + member_off[me];
      attention_merge(s.attn.data() + t * nq * hd, acc_lse.data() + t * nq, out_t, lse_t, nq, hd);
    }
  }
}

void ModelRunner::ffn_block(int l, int64_t T, float* x, Scratch& s, const TraceFn& trace) {
  const LayerWeights& lw = weights_.layers[l];
  const int64_t H = config_.hidden_size;
  const float eps = config_.rms_norm_eps;
  const bool moe = lw.moe.has_value();
  // Dense-MLP partial in columns [0, H), expert partial in [H, 2H) of each row: one all-reduce.
  const int64_t width = moe ? 2 * H : H;
  s.ffn.assign(static_cast<size_t>(T * width), 0.0f);

  ensure(s.a, T * H);
  rms_norm(x, lw.pre_ffn_norm.data(), s.a.data(), T, H, eps);
  const int64_t c = lw.mlp.columns;
  if (c > 0) {
    ensure(s.gu, T * 2 * c);
    ensure(s.act, T * c);
    lw.mlp.gate_up.forward(s.a.data(), T, s.gu.data());
    for (int64_t t = 0; t < T; ++t) gelu_tanh_mul(s.gu.data() + t * 2 * c, s.gu.data() + t * 2 * c + c, s.act.data() + t * c, c);
    if (moe) {
      std::vector<float> dense(static_cast<size_t>(T * H));
      lw.mlp.down.forward(s.act.data(), T, dense.data());
      for (int64_t t = 0; t < T; ++t) std::copy(dense.begin() + t * H, dense.begin() + (t + 1) * H, s.ffn.begin() + t * width);
    } else {
      lw.mlp.down.forward(s.act.data(), T, s.ffn.data());
    }
  }

  if (moe) {
    const MoeWeights& m = *lw.moe;
    const int64_t E = config_.num_experts;
    const int64_t K = config_.top_k_experts;
    // Router: RMSNorm without weight (of the residual itself) * scale * H^-1/2, projection, routing.
    ensure(s.experts_in, T * H);
    rms_norm(x, nullptr, s.experts_in.data(), T, H, eps);
    const float inv_sqrt_h = 1.0f / std::sqrt(static_cast<float>(H));
    for (int64_t t = 0; t < T; ++t) {
      float* row = s.experts_in.data() + t * H;
      for (int64_t i = 0; i < H; ++i) row[i] *= m.router_scale[i] * inv_sqrt_h;
    }
    ensure(s.route_logits, T * E);
    m.router.forward(s.experts_in.data(), T, s.route_logits.data());
    s.route_ids.resize(static_cast<size_t>(T * K));
    ensure(s.route_weights, T * K);
    moe_route(s.route_logits.data(), T, E, K, m.per_expert_scale.data(), s.route_ids.data(), s.route_weights.data());

    // Expert input has its own pre-norm.
    rms_norm(x, m.pre_norm_2.data(), s.experts_in.data(), T, H, eps);
    const int64_t mi = config_.moe_intermediate_size;
    // The experts of this shard that the step routes rows to, in the order of m.experts, each with
    // its rows (and routing weights) at `offset` in the gathered buffers.
    struct Routed {
      const ExpertWeights* expert;
      std::vector<int32_t> rows;
      std::vector<float> weights;
      int64_t offset;
    };
    std::vector<Routed> routed;
    int64_t total = 0;
    for (const ExpertWeights& e : m.experts) {
      Routed r{&e, {}, {}, total};
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t k = 0; k < K; ++k) {
          if (s.route_ids[t * K + k] == e.id) {
            r.rows.push_back(static_cast<int32_t>(t));
            r.weights.push_back(s.route_weights[t * K + k]);
          }
        }
      }
      if (r.rows.empty()) continue;
      const int64_t n = static_cast<int64_t>(r.rows.size());
      expert_tokens_[static_cast<size_t>(e.id)] += n;
      total += n;
      routed.push_back(std::move(r));
    }
    ensure(s.moe_gu, total * 2 * mi);
    ensure(s.moe_act, total * mi);
    ensure(s.moe_out, total * H);
    float* const gu = s.moe_gu.data();
    float* const act = s.moe_act.data();
    float* const out = s.moe_out.data();
    std::vector<Linear::Product> gate_up, down;
    for (const Routed& r : routed) {
      const int64_t n = static_cast<int64_t>(r.rows.size());
      // An expert that takes every row of the step in order (each routed expert of a decoded token)
      // reads the expert input itself: the products then share one input, which the quantised GEMM
      // quantises once for all of them.
      bool every_row = n == T;
      for (int64_t i = 0; i < n && every_row; ++i) every_row = r.rows[i] == i;
      const float* in = s.experts_in.data();
      if (!every_row) {
        ensure(s.moe_in, total * H);
        for (int64_t i = 0; i < n; ++i) std::copy_n(s.experts_in.data() + r.rows[i] * H, H, s.moe_in.data() + (r.offset + i) * H);
        in = s.moe_in.data() + r.offset * H;
      }
      gate_up.push_back(Linear::Product{&r.expert->gate_up, in, n, gu + r.offset * 2 * mi});
      down.push_back(Linear::Product{&r.expert->down, act + r.offset * mi, n, out + r.offset * H});
    }
    // All experts' matrices in one parallel region each (decode: 8 small products per layer).
    Linear::forward_group(gate_up);
    for (int64_t i = 0; i < total; ++i) gelu_tanh_mul(gu + i * 2 * mi, gu + i * 2 * mi + mi, act + i * mi, mi);
    Linear::forward_group(down);
    for (const Routed& r : routed) {
      for (size_t i = 0; i < r.rows.size(); ++i) {
        float* dst = s.ffn.data() + r.rows[i] * width + H;
        const float* src = out + (r.offset + static_cast<int64_t>(i)) * H;
        for (int64_t j = 0; j < H; ++j) dst[j] += r.weights[i] * src[j];
      }
    }
  }

  coll_->all_reduce_sum(s.ffn.data(), static_cast<size_t>(T * width));
  ensure(s.o, T * H);
  if (moe) {
    const MoeWeights& m = *lw.moe;
    for (int64_t t = 0; t < T; ++t) {
      float* dense = s.ffn.data() + t * width;
      float* experts = dense + H;
      rms_norm(dense, m.post_norm_1.data(), dense, 1, H, eps);
      rms_norm(experts, m.post_norm_2.data(), experts, 1, H, eps);
      float* sum = s.o.data() + t * H;
      for (int64_t j = 0; j < H; ++j) sum[j] = dense[j] + experts[j];
    }
  } else {
    std::copy(s.ffn.begin(), s.ffn.begin() + T * H, s.o.begin());
  }
  rms_norm(s.o.data(), lw.post_ffn_norm.data(), s.o.data(), T, H, eps);
  if (trace) trace(layer_tag(l, "ffn_out"), s.o.data(), T, H);
  for (int64_t i = 0; i < T * H; ++i) x[i] += s.o[i];
}

void ModelRunner::ple_block(int l, int64_t T, float* x, const std::vector<float>& ple, Scratch& s) {
  const PleLayerWeights& w = *weights_.layers[l].ple;
  const int64_t H = config_.hidden_size;
  const int64_t P = config_.hidden_size_per_layer_input;
  const int64_t L = config_.num_layers;
  ensure(s.ple_g, T * P);
  ensure(s.ple_y, T * H);
  w.gate.forward(x, T, s.ple_g.data());
  for (int64_t t = 0; t < T; ++t) {
    float* g = s.ple_g.data() + t * P;
    gelu_tanh_mul(g, ple.data() + (t * L + l) * P, g, P);
  }
  w.proj.forward(s.ple_g.data(), T, s.ple_y.data());
  rms_norm(s.ple_y.data(), w.post_norm.data(), s.ple_y.data(), T, H, config_.rms_norm_eps);
  for (int64_t i = 0; i < T * H; ++i) x[i] += s.ple_y[i];
}

void ModelRunner::lm_head(const StepBatch& batch, const float* x, std::vector<float>& logits, const TraceFn& trace) {
  const int64_t H = config_.hidden_size;
  const int64_t R = static_cast<int64_t>(batch.logit_rows.size());
  const int64_t vocab = shard_.vocab_rows.size();
  std::vector<float> y(static_cast<size_t>(R * H));
  for (int64_t i = 0; i < R; ++i) std::copy_n(x + static_cast<int64_t>(batch.logit_rows[i]) * H, H, y.data() + i * H);
  rms_norm(y.data(), weights_.final_norm.data(), y.data(), R, H, config_.rms_norm_eps);
  if (trace) trace("final_norm", y.data(), R, H);
  // The chunks tile the shard's vocabulary, so every logit is written below: no need to clear them
  // (the caller's vector keeps its size from step to step; clearing 16 rows was 16 MB per step). One
  // row's chunk products go straight to their columns; rows of several are copied there from each
  // chunk's [R, n] result, rows in parallel.
  logits.resize(static_cast<size_t>(R * vocab));
  std::vector<float>& part = lm_head_part_;
  for (const LmHeadChunk& chunk : weights_.lm_head) {
    const int64_t n = chunk.rows.out_features();
    const int64_t col = chunk.first_row - shard_.vocab_rows.begin;
    if (R == 1) {
      chunk.rows.forward(y.data(), 1, logits.data() + col);
      continue;
    }
    part.resize(static_cast<size_t>(R * n));
    chunk.rows.forward(y.data(), R, part.data());
#pragma omp parallel for schedule(static) if (R * n > 65536)
    for (int64_t i = 0; i < R; ++i) std::copy_n(part.data() + i * n, n, logits.data() + i * vocab + col);
  }
  if (config_.final_logit_softcapping > 0.0f) soft_cap(logits.data(), R * vocab, config_.final_logit_softcapping);
  if (trace) trace("logits", logits.data(), R, vocab);
}

}  // namespace shardlm
