// ModelConfig -> Hugging Face config.json, in the layout of the released checkpoints (and of
// tests/data/*/config.json). Gemma4ForCausalLM configs are written in the flat text-only form so that
// parse_model_config(model_config_to_json(c)) == c for both shapes.
#include "model/config.h"

#include <string>

#include <fmt/format.h>

namespace shardlm {
namespace {

using json = nlohmann::json;

json rope_json(const RopeParams& r) {
  json j = json::object();
  if (r.partial_rotary_factor != 1.0) j["partial_rotary_factor"] = r.partial_rotary_factor;
  if (r.factor != 1.0) j["factor"] = r.factor;
  j["rope_theta"] = r.theta;
  j["rope_type"] = r.type;
  return j;
}

json id_or_list(const std::vector<int>& ids) {
  if (ids.size() == 1) return ids[0];
  return json(ids);
}

// A float field written as the shortest decimal that reads back as the same float (1e-06, not
// 9.999999974752427e-07).
double tidy(float v) { return std::stod(fmt::format("{}", v)); }

json nullable_id(int id) { return id < 0 ? json(nullptr) : json(id); }

json text_config_json(const ModelConfig& c) {
  json t = json::object();
  t["model_type"] = "gemma4_text";
  t["hidden_activation"] = c.hidden_activation;
  t["rms_norm_eps"] = tidy(c.rms_norm_eps);
  t["max_position_embeddings"] = c.max_position_embeddings;
  t["final_logit_softcapping"] = c.final_logit_softcapping > 0.0f ? json(tidy(c.final_logit_softcapping)) : json(nullptr);
  t["attention_bias"] = false;
  t["attention_dropout"] = 0.0;
  t["tie_word_embeddings"] = c.tie_word_embeddings;
  t["use_cache"] = true;
  t["pad_token_id"] = nullable_id(c.pad_token_id);
  t["eos_token_id"] = c.eos_token_ids.empty() ? json(nullptr) : id_or_list(c.eos_token_ids);
  t["bos_token_id"] = nullable_id(c.bos_token_id);
  t["initializer_range"] = 0.02;
  t["use_bidirectional_attention"] = "vision";
  t["use_double_wide_mlp"] = c.use_double_wide_mlp;
  t["vocab_size_per_layer_input"] = c.vocab_size_per_layer_input;
  t["num_experts"] = c.enable_moe ? json(c.num_experts) : json(nullptr);
  t["top_k_experts"] = c.enable_moe ? json(c.top_k_experts) : json(nullptr);
  t["moe_intermediate_size"] = c.enable_moe ? json(c.moe_intermediate_size) : json(nullptr);
  t["rope_parameters"] = {{"full_attention", rope_json(c.rope_full)}, {"sliding_attention", rope_json(c.rope_sliding)}};
  t["hidden_size"] = c.hidden_size;
  t["intermediate_size"] = c.intermediate_size;
  t["num_hidden_layers"] = c.num_layers;
  json types = json::array();
  for (LayerType lt : c.layer_types) types.push_back(layer_type_name(lt));
  t["layer_types"] = types;
  t["num_attention_heads"] = c.num_heads;
  t["num_key_value_heads"] = c.num_kv_heads;
  if (c.attention_k_eq_v) {
    t["num_global_key_value_heads"] = c.num_global_kv_heads;
  } else if (c.num_global_kv_heads != c.num_kv_heads) {
    // Hugging Face reads num_global_key_value_heads only with attention_k_eq_v; say it per layer.
    json plc = json::object();
    for (size_t i = 0; i < c.layer_types.size(); ++i) {
      if (c.layer_types[i] == LayerType::kFull) {
        plc[std::to_string(i)] = {{"head_dim", c.global_head_dim}, {"num_key_value_heads", c.num_global_kv_heads}};
      }
    }
    t["per_layer_config"] = plc;
  }
  t["head_dim"] = c.head_dim;
  t["global_head_dim"] = c.global_head_dim;
  t["attention_k_eq_v"] = c.attention_k_eq_v;
  t["sliding_window"] = c.sliding_window;
  t["vocab_size"] = c.vocab_size;
  t["hidden_size_per_layer_input"] = c.hidden_size_per_layer_input;
  t["num_kv_shared_layers"] = c.num_kv_shared_layers;
  t["enable_moe_block"] = c.enable_moe;
  return t;
}

}  // namespace

nlohmann::json model_config_to_json(const ModelConfig& c) {
  if (c.architecture == "Gemma4ForCausalLM") {
    json doc = text_config_json(c);
    doc["architectures"] = json::array({"Gemma4ForCausalLM"});
    doc["torch_dtype"] = c.dtype;
    doc["transformers_version"] = "5.0.0";
    return doc;
  }
  json doc = json::object();
  doc["architectures"] = json::array({"Gemma4ForConditionalGeneration"});
  doc["model_type"] = "gemma4";
  doc["text_config"] = text_config_json(c);
  doc["vision_config"] = nullptr;
  doc["audio_config"] = nullptr;
  doc["tie_word_embeddings"] = c.tie_word_embeddings;
  doc["boi_token_id"] = 255999;
  doc["eoi_token_id"] = 258882;
  doc["image_token_id"] = 258880;
  doc["video_token_id"] = 258884;
  doc["boa_token_id"] = 256000;
  doc["eoa_token_index"] = 258883;
  doc["audio_token_id"] = 258881;
  doc["initializer_range"] = 0.02;
  doc["torch_dtype"] = c.dtype;
  doc["transformers_version"] = "5.0.0";
  return doc;
}

}  // namespace shardlm
