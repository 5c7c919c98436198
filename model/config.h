// Gemma 4 text-model configuration: parsed from a checkpoint's config.json (nested text_config of
// Gemma4ForConditionalGeneration, or the flat Gemma4ForCausalLM form), with the per-layer geometry
// (head dim, KV heads, RoPE, MLP width, KV sharing) resolved once so nothing else re-derives it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

enum class LayerType { kSliding, kFull };

const char* layer_type_name(LayerType t);  // "sliding_attention" / "full_attention"

struct RopeParams {
  std::string type = "default";  // "default" or "proportional"
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;  // fraction of head_dim/2 frequency pairs that rotate
  double factor = 1.0;                 // scaling factor (1.0 = none)
  friend bool operator==(const RopeParams&, const RopeParams&) = default;
};

// Everything a layer's program needs to know about its own shape.
struct LayerGeometry {
  LayerType type = LayerType::kSliding;
  int head_dim = 0;           // 256 sliding / 512 full on released sizes
  int num_kv_heads = 0;       // KV heads of this layer
  bool k_eq_v = false;        // no v_proj: V is derived from the raw K projection
  int intermediate_size = 0;  // dense MLP width (doubled on KV-shared layers with use_double_wide_mlp)
  int kv_source_layer = -1;   // this layer's own index, or the donor layer's index when KV is shared
  bool shares_kv() const { return kv_source_layer >= 0 && kv_source_layer != index; }
  int index = 0;
  RopeParams rope{};
  int rotary_pairs() const;   // number of (j, j + head_dim/2) pairs that rotate
  friend bool operator==(const LayerGeometry&, const LayerGeometry&) = default;
};

struct ModelConfig {
  // Where it came from.
  std::string architecture;   // "Gemma4ForConditionalGeneration" or "Gemma4ForCausalLM"
  std::string tensor_prefix;  // "model.language_model." (conditional generation) or "model."
  std::string variant = "custom";  // "e2b", "e4b", "31b", "26b-a4b" when the shape matches, else "custom"
  std::string dtype = "bfloat16";

  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;         // sliding layers
  int num_global_kv_heads = 0;  // full layers (equals num_kv_heads when the config has none)
  int head_dim = 0;
  int global_head_dim = 0;
  bool attention_k_eq_v = false;
  int sliding_window = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float final_logit_softcapping = 0.0f;  // 0 = none
  bool tie_word_embeddings = true;
  std::string hidden_activation = "gelu_pytorch_tanh";

  // Mixture of experts (every layer when enabled).
  bool enable_moe = false;
  int num_experts = 0;
  int top_k_experts = 0;
  int moe_intermediate_size = 0;

  // Per-layer embeddings (E2B/E4B).
  int hidden_size_per_layer_input = 0;
  int vocab_size_per_layer_input = 0;

  // KV sharing (E2B/E4B).
  int num_kv_shared_layers = 0;
  bool use_double_wide_mlp = false;

  int pad_token_id = 0;
  int bos_token_id = 2;
  std::vector<int> eos_token_ids;  // from config and generation_config.json, deduplicated

  std::vector<LayerType> layer_types;
  RopeParams rope_sliding;
  RopeParams rope_full;

  std::vector<LayerGeometry> layers;  // resolved, one per layer

  bool has_ple() const { return hidden_size_per_layer_input > 0; }
  int first_kv_shared_layer() const { return num_layers - num_kv_shared_layers; }
  int64_t parameter_count() const;  // text decoder parameters as stored (tied head counted once)
  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

// Parses "sliding_attention" / "full_attention"; throws Error naming `field` for anything else.
LayerType parse_layer_type(const std::string& name, const std::string& field = "layer_types");

// Validates the scalar fields of `config` and resolves `layers` (per-layer geometry, KV donors,
// MLP widths) from them: used by the parser, the variant table and the model generator after they
// change fields. Does not set `variant`. Throws Error naming the missing or contradictory field.
// Per-layer overrides already present in `layers` are not consulted: everything is derived from
// the per-type fields (head_dim / global_head_dim, num_kv_heads / num_global_kv_heads, rope_*).
void finalize_model_config(ModelConfig& config);

// Parses a config.json document. Throws Error naming the missing or contradictory field.
ModelConfig parse_model_config(const nlohmann::json& doc);

// A JSON file of a model folder; only a regular file is opened (a FIFO would block the reader).
// Throws Error naming the path when it is missing or not valid JSON.
nlohmann::json read_json_file(const std::string& path);

// Reads DIR/config.json (and DIR/generation_config.json for extra EOS ids).
ModelConfig load_model_config(const std::string& model_dir);

// Writes the config back as a Hugging Face config.json (Gemma4ForConditionalGeneration, nested
// text_config) — used by the model generator.
nlohmann::json model_config_to_json(const ModelConfig& config);

}  // namespace shardlm
