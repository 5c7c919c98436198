// The variant table (values from gemma4.md section 1 and tests/data/*/config.json) and recognition.
#include "model/variants.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"

namespace shardlm {
namespace {

// Layer i is full iff (i + 1) % period == 0.
std::vector<LayerType> periodic_layers(int layers, int period) {
  std::vector<LayerType> out;
  for (int i = 0; i < layers; ++i) out.push_back((i + 1) % period == 0 ? LayerType::kFull : LayerType::kSliding);
  return out;
}

std::vector<LayerType> layers_from_string(const char* pattern) {  // "SSFSSF"
  std::vector<LayerType> out;
  for (const char* p = pattern; *p; ++p) out.push_back(*p == 'F' ? LayerType::kFull : LayerType::kSliding);
  return out;
}

// Fields shared by every Gemma 4 text config.
ModelConfig gemma4_base() {
  ModelConfig c;
  c.architecture = "Gemma4ForConditionalGeneration";
  c.tensor_prefix = "model.language_model.";
  c.dtype = "bfloat16";
  c.rms_norm_eps = 1e-6f;
  c.final_logit_softcapping = 30.0f;
  c.tie_word_embeddings = true;
  c.hidden_activation = "gelu_pytorch_tanh";
  c.vocab_size = 262144;
  c.vocab_size_per_layer_input = 262144;
  c.hidden_size_per_layer_input = 0;
  c.head_dim = 256;
  c.global_head_dim = 512;
  c.pad_token_id = 0;
  c.bos_token_id = 2;
  c.eos_token_ids = {1, 106, 50};
  c.rope_sliding = RopeParams{"default", 10000.0, 1.0, 1.0};
  c.rope_full = RopeParams{"proportional", 1000000.0, 0.25, 1.0};
  return c;
}

ModelConfig make_31b() {
  ModelConfig c = gemma4_base();
  c.hidden_size = 5376;
  c.intermediate_size = 21504;
  c.num_layers = 60;
  c.num_heads = 32;
  c.num_kv_heads = 16;
  c.num_global_kv_heads = 4;
  c.attention_k_eq_v = true;
  c.sliding_window = 1024;
  c.max_position_embeddings = 262144;
  c.layer_types = periodic_layers(60, 6);
  return c;
}

ModelConfig make_26b_a4b() {
  ModelConfig c = gemma4_base();
  c.hidden_size = 2816;
  c.intermediate_size = 2112;
  c.num_layers = 30;
  c.num_heads = 16;
  c.num_kv_heads = 8;
  c.num_global_kv_heads = 2;
  c.attention_k_eq_v = true;
  c.sliding_window = 1024;
  c.max_position_embeddings = 262144;
  c.enable_moe = true;
  c.num_experts = 128;
  c.top_k_experts = 8;
  c.moe_intermediate_size = 704;
  c.layer_types = periodic_layers(30, 6);
  return c;
}

ModelConfig make_e2b() {
  ModelConfig c = gemma4_base();
  c.hidden_size = 1536;
  c.intermediate_size = 6144;
  c.use_double_wide_mlp = true;
  c.num_layers = 35;
  c.num_heads = 8;
  c.num_kv_heads = 1;
  c.num_global_kv_heads = 1;
  c.attention_k_eq_v = false;
  c.sliding_window = 512;
  c.max_position_embeddings = 131072;
  c.num_kv_shared_layers = 20;
  c.hidden_size_per_layer_input = 256;
  c.layer_types = periodic_layers(35, 5);
  return c;
}

ModelConfig make_e4b() {
  ModelConfig c = gemma4_base();
  c.hidden_size = 2560;
  c.intermediate_size = 10240;
  c.num_layers = 42;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.num_global_kv_heads = 2;
  c.attention_k_eq_v = false;
  c.sliding_window = 512;
  c.max_position_embeddings = 131072;
  c.num_kv_shared_layers = 18;
  c.hidden_size_per_layer_input = 256;
  c.layer_types = periodic_layers(42, 6);
  return c;
}

// tests/data/dense/config.json.
ModelConfig make_tiny_dense() {
  ModelConfig c = gemma4_base();
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_layers = 6;
  c.layer_types = layers_from_string("SSFSSF");
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_global_kv_heads = 1;
  c.head_dim = 64;
  c.global_head_dim = 128;
  c.attention_k_eq_v = true;
  c.sliding_window = 8;
  c.vocab_size = 512;
  c.vocab_size_per_layer_input = 512;
  c.max_position_embeddings = 262144;
  return c;
}

// tests/data/moe/config.json.
ModelConfig make_tiny_moe() {
  ModelConfig c = make_tiny_dense();
  c.intermediate_size = 256;
  c.enable_moe = true;
  c.num_experts = 8;
  c.top_k_experts = 2;
  c.moe_intermediate_size = 128;
  return c;
}

// tests/data/edge/config.json.
ModelConfig make_tiny_edge() {
  ModelConfig c = make_tiny_dense();
  c.intermediate_size = 384;
  c.use_double_wide_mlp = true;
  c.num_layers = 7;
  c.layer_types = layers_from_string("SSFSFSF");
  c.num_kv_heads = 1;
  c.num_global_kv_heads = 1;
  c.attention_k_eq_v = false;
  c.hidden_size_per_layer_input = 32;
  c.num_kv_shared_layers = 2;
  return c;
}

struct Table {
  std::vector<std::string> names;
  std::map<std::string, ModelConfig> configs;
};

const Table& table() {
  static const Table t = [] {
    Table t;
    auto add = [&](const char* name, ModelConfig c) {
      finalize_model_config(c);
      c.variant = name;
      t.names.push_back(name);
      t.configs.emplace(name, std::move(c));
    };
    add("e2b", make_e2b());
    add("e4b", make_e4b());
    add("31b", make_31b());
    add("26b-a4b", make_26b_a4b());
    add("tiny-dense", make_tiny_dense());
    add("tiny-moe", make_tiny_moe());
    add("tiny-edge", make_tiny_edge());
    return t;
  }();
  return t;
}

// Equal in every field that recognition compares (see variants.h), layer structure excluded.
bool same_shape(const ModelConfig& a, const ModelConfig& b) {
  return a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size && a.num_heads == b.num_heads &&
         a.num_kv_heads == b.num_kv_heads && a.num_global_kv_heads == b.num_global_kv_heads &&
         a.head_dim == b.head_dim && a.global_head_dim == b.global_head_dim &&
         a.attention_k_eq_v == b.attention_k_eq_v && a.sliding_window == b.sliding_window &&
         a.vocab_size == b.vocab_size && a.rms_norm_eps == b.rms_norm_eps &&
         a.final_logit_softcapping == b.final_logit_softcapping && a.tie_word_embeddings == b.tie_word_embeddings &&
         a.hidden_activation == b.hidden_activation && a.enable_moe == b.enable_moe &&
         a.num_experts == b.num_experts && a.top_k_experts == b.top_k_experts &&
         a.moe_intermediate_size == b.moe_intermediate_size &&
         a.hidden_size_per_layer_input == b.hidden_size_per_layer_input &&
         (!a.has_ple() || a.vocab_size_per_layer_input == b.vocab_size_per_layer_input) &&
         a.use_double_wide_mlp == b.use_double_wide_mlp && a.rope_sliding == b.rope_sliding &&
         a.rope_full == b.rope_full;
}

bool has_all_donors(const ModelConfig& c) {
  const int first_shared = c.num_layers - c.num_kv_shared_layers;
  for (int i = first_shared; i < c.num_layers; ++i) {
    bool found = false;
    for (int j = 0; j < first_shared && !found; ++j) found = c.layer_types[j] == c.layer_types[i];
    if (!found) return false;
  }
  return true;
}

ModelConfig resize(const ModelConfig& base, int layers) {
  if (layers <= 0) fail("variant {}: the layer count must be > 0 (got {})", base.variant, layers);
  if (layers == base.num_layers) return base;
  ModelConfig c = base;
  c.num_layers = layers;
  c.layer_types.clear();
  for (int i = 0; i < layers; ++i) c.layer_types.push_back(base.layer_types[i % base.num_layers]);
  c.layer_types.back() = LayerType::kFull;
  c.num_kv_shared_layers = static_cast<int>(static_cast<int64_t>(base.num_kv_shared_layers) * layers / base.num_layers);
  while (c.num_kv_shared_layers > 0 && !has_all_donors(c)) --c.num_kv_shared_layers;
  finalize_model_config(c);
  c.variant = base.variant;
  return c;
}

}  // namespace

const std::vector<std::string>& variant_names() { return table().names; }

std::string canonical_variant_name(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (lower == "tiny") lower = "tiny-dense";
  if (!table().configs.count(lower)) {
    fail("unknown model variant '{}' (known: {}, tiny)", name, fmt::join(table().names, ", "));
  }
  return lower;
}

const ModelConfig& variant_config(const std::string& name) {
  return table().configs.at(canonical_variant_name(name));
}

ModelConfig variant_with_layers(const std::string& name, int layers) { return resize(variant_config(name), layers); }

std::string recognise_variant(const ModelConfig& config) {
  for (const std::string& name : table().names) {
    const ModelConfig& base = table().configs.at(name);
    if (!same_shape(config, base)) continue;
    ModelConfig expected;
    try {
      expected = resize(base, config.num_layers);
    } catch (const Error&) {
      continue;
    }
    if (expected.layer_types == config.layer_types && expected.num_kv_shared_layers == config.num_kv_shared_layers) {
      return name;
    }
  }
  return "custom";
}

std::string describe_variant(const ModelConfig& config) {
  auto it = table().configs.find(config.variant);
  if (it == table().configs.end()) return "custom";
  if (it->second.num_layers == config.num_layers) return config.variant;
  return fmt::format("{} ({} of {} layers)", config.variant, config.num_layers, it->second.num_layers);
}

}  // namespace shardlm
