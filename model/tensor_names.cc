// Expected tensor list of a Gemma 4 text decoder and the checkpoint check against it.
#include "model/tensor_names.h"

#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/checkpoint.h"

namespace shardlm {

std::string model_tensor_name(const ModelConfig& config, std::string_view suffix) {
  return config.tensor_prefix + std::string(suffix);
}

std::string layer_tensor_name(const ModelConfig& config, int layer, std::string_view suffix) {
  return fmt::format("{}layers.{}.{}", config.tensor_prefix, layer, suffix);
}

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out;
  const int64_t H = c.hidden_size;
  const int64_t V = c.vocab_size;
  const int64_t L = c.num_layers;
  const int64_t P = c.hidden_size_per_layer_input;
  auto add = [&](std::string name, std::vector<int64_t> shape) { out.push_back({std::move(name), std::move(shape)}); };

  add(model_tensor_name(c, "embed_tokens.weight"), {V, H});
  if (c.has_ple()) {
    add(model_tensor_name(c, "embed_tokens_per_layer.weight"), {c.vocab_size_per_layer_input, L * P});
    add(model_tensor_name(c, "per_layer_model_projection.weight"), {L * P, H});
    add(model_tensor_name(c, "per_layer_projection_norm.weight"), {P});
  }
  for (const LayerGeometry& g : c.layers) {
    auto layer = [&](std::string_view suffix, std::vector<int64_t> shape) {
      add(layer_tensor_name(c, g.index, suffix), std::move(shape));
    };
    const int64_t hd = g.head_dim;
    const int64_t q = static_cast<int64_t>(c.num_heads) * hd;
    const int64_t kv = static_cast<int64_t>(g.num_kv_heads) * hd;
    layer("input_layernorm.weight", {H});
    layer("self_attn.q_proj.weight", {q, H});
    if (!g.shares_kv()) {
      layer("self_attn.k_proj.weight", {kv, H});
      if (!g.k_eq_v) layer("self_attn.v_proj.weight", {kv, H});
    }
    layer("self_attn.o_proj.weight", {H, q});
    layer("self_attn.q_norm.weight", {hd});
    if (!g.shares_kv()) layer("self_attn.k_norm.weight", {hd});
    layer("post_attention_layernorm.weight", {H});
    layer("pre_feedforward_layernorm.weight", {H});
    layer("mlp.gate_proj.weight", {g.intermediate_size, H});
    layer("mlp.up_proj.weight", {g.intermediate_size, H});
    layer("mlp.down_proj.weight", {H, g.intermediate_size});
    layer("post_feedforward_layernorm.weight", {H});
    if (c.enable_moe) {
      const int64_t E = c.num_experts;
      const int64_t M = c.moe_intermediate_size;
      layer("router.proj.weight", {E, H});
      layer("router.scale", {H});
      layer("router.per_expert_scale", {E});
      layer("experts.gate_up_proj", {E, 2 * M, H});
      layer("experts.down_proj", {E, H, M});
      layer("pre_feedforward_layernorm_2.weight", {H});
      layer("post_feedforward_layernorm_1.weight", {H});
      layer("post_feedforward_layernorm_2.weight", {H});
    }
    if (c.has_ple()) {
      layer("per_layer_input_gate.weight", {P, H});
      layer("per_layer_projection.weight", {H, P});
      layer("post_per_layer_input_norm.weight", {H});
    }
    layer("layer_scalar", {1});
  }
  add(model_tensor_name(c, "norm.weight"), {H});
  if (!c.tie_word_embeddings) add("lm_head.weight", {V, H});
  return out;
}

bool is_known_extra_tensor(const ModelConfig& c, const std::string& name) {
  static const char* const kMultimodal[] = {"model.vision_tower.", "model.embed_vision.", "model.multi_modal_projector.",
                                            "model.audio_tower.", "model.embed_audio."};
  for (const char* prefix : kMultimodal) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  if (c.tie_word_embeddings && name == "lm_head.weight") return true;
  for (const LayerGeometry& g : c.layers) {
    if (!g.shares_kv()) continue;
    for (const char* suffix : {"self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.k_norm.weight"}) {
      if (name == layer_tensor_name(c, g.index, suffix)) return true;
    }
  }
  return false;
}

int validate_checkpoint_tensors(const Checkpoint& checkpoint, const ModelConfig& config) {
  std::set<std::string> expected_names;
  for (const ExpectedTensor& t : expected_tensors(config)) {
    if (!checkpoint.has(t.name)) {
      fail("checkpoint {}: tensor {} is missing (expected shape {})", checkpoint.path(), t.name, shape_string(t.shape));
    }
    const TensorInfo& info = checkpoint.info(t.name);
    if (!info.unsupported_dtype.empty()) {
      fail("checkpoint {}: tensor {} is stored as {} (shardlm reads F32, F16 and BF16)", checkpoint.path(), t.name,
           info.unsupported_dtype);
    }
    if (info.shape != t.shape) {
      fail("checkpoint {}: tensor {} has shape {} but the config expects {}", checkpoint.path(), t.name,
           shape_string(info.shape), shape_string(t.shape));
    }
    expected_names.insert(t.name);
  }
  std::vector<std::string> unexpected;
  for (const std::string& name : checkpoint.names()) {
    if (!expected_names.count(name) && !is_known_extra_tensor(config, name)) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    std::vector<std::string> shown(unexpected.begin(), unexpected.begin() + std::min<size_t>(unexpected.size(), 5));
    spdlog::warn("checkpoint {}: {} tensor(s) not used by the text model are ignored: {}{}", checkpoint.path(),
                 unexpected.size(), fmt::join(shown, ", "), unexpected.size() > shown.size() ? ", ..." : "");
  }
  return static_cast<int>(unexpected.size());
}

}  // namespace shardlm
