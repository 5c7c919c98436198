// Validation of a ModelConfig's fields and resolution of its per-layer geometry (head dims, KV heads,
// RoPE, KV-sharing donors, MLP widths); the parameter count.
#include <cmath>
#include <set>

#include "common/error.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace shardlm {

const char* layer_type_name(LayerType t) {
  return t == LayerType::kFull ? "full_attention" : "sliding_attention";
}

LayerType parse_layer_type(const std::string& name, const std::string& field) {
  if (name == "sliding_attention") return LayerType::kSliding;
  if (name == "full_attention") return LayerType::kFull;
  fail("{}: unknown layer type '{}' (expected sliding_attention or full_attention)", field, name);
}

// "default" rotates the first partial_rotary_factor * head_dim dimensions as pairs (j, j + rot/2)
// in HF's convention, i.e. int(factor * head_dim) / 2 pairs; "proportional" rotates
// int(factor * head_dim / 2) pairs (j, j + head_dim/2) with frequencies over the full head_dim
// (gemma4.md 2.4). With factor 1 both are head_dim / 2.
int LayerGeometry::rotary_pairs() const {
  if (rope.type == "proportional") {
    return static_cast<int>(std::floor(rope.partial_rotary_factor * head_dim / 2.0 + 1e-9));
  }
  return static_cast<int>(std::floor(rope.partial_rotary_factor * head_dim + 1e-9)) / 2;
}

int64_t ModelConfig::parameter_count() const {
  int64_t total = 0;
  for (const ExpectedTensor& t : expected_tensors(*this)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    total += n;
  }
  return total;
}

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 28;  // bound on any single size field

void require_positive(int64_t value, const char* field) {
  if (value <= 0) fail("config: {} must be > 0 (got {})", field, value);
  if (value > kMaxDim) fail("config: {} = {} is implausibly large (limit {})", field, value, kMaxDim);
}

// Rejects configs whose tensors could not exist (and whose sizes would overflow int64 arithmetic).
void check_tensor_sizes(const ModelConfig& c) {
  for (const ExpectedTensor& t : expected_tensors(c)) {
    double n = 1;
    for (int64_t d : t.shape) n *= static_cast<double>(d);
    if (n > 1e15) fail("config: tensor {} would have {:.3g} elements; the config is not plausible", t.name, n);
  }
}

void validate_rope(const RopeParams& r, const char* which) {
  if (r.type != "default" && r.type != "proportional") {
    fail("config: rope_parameters.{}.rope_type '{}' is not supported (default, proportional)", which, r.type);
  }
  if (!(r.theta > 0.0) || !std::isfinite(r.theta)) {
    fail("config: rope_parameters.{}.rope_theta must be > 0 (got {})", which, r.theta);
  }
  if (!(r.partial_rotary_factor > 0.0 && r.partial_rotary_factor <= 1.0)) {
    fail("config: rope_parameters.{}.partial_rotary_factor must be in (0, 1] (got {})", which,
         r.partial_rotary_factor);
  }
  if (!(r.factor > 0.0) || !std::isfinite(r.factor)) {
    fail("config: rope_parameters.{}.factor must be > 0 (got {})", which, r.factor);
  }
}

void validate_heads(int num_heads, int kv_heads, int head_dim, const char* kv_field, const char* dim_field) {
  require_positive(kv_heads, kv_field);
  require_positive(head_dim, dim_field);
  if (num_heads % kv_heads != 0) {
    fail("config: num_attention_heads ({}) is not divisible by {} ({})", num_heads, kv_field, kv_heads);
  }
  if (head_dim % 2 != 0) fail("config: {} must be even (got {})", dim_field, head_dim);
}

}  // namespace

void finalize_model_config(ModelConfig& c) {
  require_positive(c.hidden_size, "hidden_size");
  require_positive(c.intermediate_size, "intermediate_size");
  require_positive(c.num_layers, "num_hidden_layers");
  require_positive(c.num_heads, "num_attention_heads");
  require_positive(c.vocab_size, "vocab_size");
  require_positive(c.max_position_embeddings, "max_position_embeddings");
  if (!(c.rms_norm_eps > 0.0f) || !std::isfinite(c.rms_norm_eps)) {
    fail("config: rms_norm_eps must be > 0 (got {})", c.rms_norm_eps);
  }
  if (c.final_logit_softcapping < 0.0f || !std::isfinite(c.final_logit_softcapping)) {
    fail("config: final_logit_softcapping must be >= 0 (got {})", c.final_logit_softcapping);
  }
  // Special token ids: -1 (null) or a row of the vocabulary.
  for (const auto& [id, field] : {std::pair{c.pad_token_id, "pad_token_id"}, std::pair{c.bos_token_id, "bos_token_id"}}) {
    if (id < -1 || id >= c.vocab_size) fail("config: {} {} is outside the vocabulary (size {})", field, id, c.vocab_size);
  }
  for (int id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) fail("config: eos_token_id {} is outside the vocabulary (size {})", id, c.vocab_size);
  }
  if (c.hidden_activation != "gelu_pytorch_tanh") {
    fail("config: hidden_activation '{}' is not supported (Gemma 4 uses gelu_pytorch_tanh)", c.hidden_activation);
  }
  if (c.layer_types.size() != static_cast<size_t>(c.num_layers)) {
    fail("config: layer_types has {} entries but num_hidden_layers is {}", c.layer_types.size(), c.num_layers);
  }
  bool any_sliding = false, any_full = false;
  for (LayerType t : c.layer_types) (t == LayerType::kFull ? any_full : any_sliding) = true;

  validate_heads(c.num_heads, c.num_kv_heads, c.head_dim, "num_key_value_heads", "head_dim");
  if (c.global_head_dim == 0) c.global_head_dim = c.head_dim;
  if (c.num_global_kv_heads == 0) c.num_global_kv_heads = c.num_kv_heads;
  validate_heads(c.num_heads, c.num_global_kv_heads, c.global_head_dim, "num_global_key_value_heads",
                 "global_head_dim");
  if (any_sliding) require_positive(c.sliding_window, "sliding_window");
  if (c.sliding_window < 0) fail("config: sliding_window must be >= 0 (got {})", c.sliding_window);
  validate_rope(c.rope_sliding, "sliding_attention");
  validate_rope(c.rope_full, "full_attention");

  if (c.enable_moe) {
    if (c.num_experts <= 0) fail("config: enable_moe_block is true but num_experts is missing or <= 0 ({})", c.num_experts);
    if (c.top_k_experts <= 0) fail("config: enable_moe_block is true but top_k_experts is missing or <= 0 ({})", c.top_k_experts);
    if (c.moe_intermediate_size <= 0) {
      fail("config: enable_moe_block is true but moe_intermediate_size is missing or <= 0 ({})", c.moe_intermediate_size);
    }
    if (c.top_k_experts > c.num_experts) {
      fail("config: top_k_experts ({}) exceeds num_experts ({})", c.top_k_experts, c.num_experts);
    }
  } else {
    c.num_experts = c.top_k_experts = c.moe_intermediate_size = 0;
  }

  if (c.num_experts > 0) require_positive(c.num_experts, "num_experts");
  if (c.moe_intermediate_size > 0) require_positive(c.moe_intermediate_size, "moe_intermediate_size");
  if (c.hidden_size_per_layer_input > 0) require_positive(c.hidden_size_per_layer_input, "hidden_size_per_layer_input");
  if (c.hidden_size_per_layer_input < 0) {
    fail("config: hidden_size_per_layer_input must be >= 0 (got {})", c.hidden_size_per_layer_input);
  }
  if (c.has_ple()) require_positive(c.vocab_size_per_layer_input, "vocab_size_per_layer_input");

  if (c.num_kv_shared_layers < 0 || c.num_kv_shared_layers >= c.num_layers) {
    fail("config: num_kv_shared_layers ({}) must be in [0, num_hidden_layers) = [0, {})", c.num_kv_shared_layers,
         c.num_layers);
  }
  for (int id : c.eos_token_ids) {
    if (id < 0) fail("config: eos_token_id {} is negative", id);
  }

  const int first_shared = c.first_kv_shared_layer();
  c.layers.assign(c.num_layers, LayerGeometry{});
  for (int i = 0; i < c.num_layers; ++i) {
    LayerGeometry& g = c.layers[i];
    g.index = i;
    g.type = c.layer_types[i];
    const bool full = g.type == LayerType::kFull;
    g.head_dim = full ? c.global_head_dim : c.head_dim;
    g.num_kv_heads = full ? c.num_global_kv_heads : c.num_kv_heads;
    g.k_eq_v = full && c.attention_k_eq_v;
    g.rope = full ? c.rope_full : c.rope_sliding;
    g.kv_source_layer = i;
    if (i >= first_shared) {
      int donor = -1;
      for (int j = first_shared - 1; j >= 0; --j) {
        if (c.layer_types[j] == g.type) {
          donor = j;
          break;
        }
      }
      if (donor < 0) {
        fail("config: layer {} ({}) is KV-shared (num_kv_shared_layers = {}) but no earlier non-shared {} layer "
             "exists to share from",
             i, layer_type_name(g.type), c.num_kv_shared_layers, layer_type_name(g.type));
      }
      g.kv_source_layer = donor;
    }
    g.intermediate_size = c.intermediate_size * ((c.use_double_wide_mlp && g.shares_kv()) ? 2 : 1);
    if (g.rotary_pairs() <= 0) {
      fail("config: rope_parameters.{} rotates no dimensions of layer {} (head_dim {}, partial_rotary_factor {})",
           layer_type_name(g.type), i, g.head_dim, g.rope.partial_rotary_factor);
    }
  }
  (void)any_full;
  check_tensor_sizes(c);
}

}  // namespace shardlm
