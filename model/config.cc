// Parsing of a Gemma 4 config.json into a ModelConfig.
//
// Accepted shapes:
//  * Gemma4ForConditionalGeneration: top level {architectures, model_type "gemma4", text_config {...}};
//    tensors are prefixed "model.language_model.".
//  * Gemma4ForCausalLM / model_type "gemma4_text": the text fields at the top level; prefix "model.".
//
// Text fields: the Hugging Face Gemma4TextConfig names. Required: hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, vocab_size, and layer_types
// (or, when layer_types is absent, an integer sliding_window_pattern N: layer i is full iff
// (i + 1) % N == 0). As in Hugging Face, a last layer that is not full_attention is forced to
// full_attention (with a warning). Optional fields take Hugging Face's defaults, except
// global_head_dim (absent -> head_dim).
//
// KV heads of full-attention layers (Hugging Face rule): num_global_key_value_heads when
// attention_k_eq_v is true and the field is set, else num_key_value_heads.
//
// RoPE: rope_parameters keyed by layer type ({"sliding_attention": {...}, "full_attention": {...}},
// each with rope_type, rope_theta, optional partial_rotary_factor and factor). Without
// rope_parameters the older flat form is read: rope_local_base_freq (sliding theta, default 1e4),
// rope_theta (full theta, default 1e6), partial_rotary_factor (full, default 0.25), rope_scaling
// {rope_type, factor} (full layers); full layers then use "proportional" RoPE unless rope_scaling
// names another type.
//
// per_layer_config (newer transformers, which fold global_head_dim / num_global_key_value_heads into
// per-layer overrides): either an object keyed by layer index ("5": {...}) or by layer type
// ("full_attention": {...}), or a list with one entry (object or null) per layer. Each entry may
// override head_dim, num_key_value_heads, num_attention_heads (must equal the model's) and
// rope_parameters (one rope object); other keys are ignored. Overrides win over the flat fields,
// and all layers of one type must end up with the same head_dim, KV heads and RoPE.
#include "model/config.h"

#include <cmath>
#include <cstdint>

#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/variants.h"
#include "model/foreign_file.h"

namespace shardlm {
namespace {

using json = nlohmann::json;

constexpr int kMaxLayers = 4096;  // sanity bound before anything is sized by the layer count

// Typed access to the fields of one JSON object, with the field path in every error message.
class Fields {
 public:
  Fields(const json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  std::string name(const std::string& key) const { return path_ + key; }
  bool present(const std::string& key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }
  const json& at(const std::string& key) const { return obj_.at(key); }

  std::optional<int64_t> opt_int(const std::string& key) const {
    if (!present(key)) return std::nullopt;
    const json& v = obj_.at(key);
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(u);
      fail("config: {} is out of range (got {})", name(key), v.dump());
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      // Only whole numbers within int64's range are integers (the cast of anything else is undefined).
      const double d = v.get<double>();
      if (std::isfinite(d) && d >= -9.2e18 && d <= 9.2e18 && d == std::trunc(d)) return static_cast<int64_t>(d);
    }
    fail("config: {} must be an integer (got {})", name(key), v.dump());
  }
  int req_int(const std::string& key) const {
    auto v = opt_int(key);
    if (!v) fail("config: {} is missing", name(key));
    return to_int(key, *v);
  }
  int get_int(const std::string& key, int fallback) const {
    auto v = opt_int(key);
    return v ? to_int(key, *v) : fallback;
  }
  double get_double(const std::string& key, double fallback) const {
    if (!present(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_number()) fail("config: {} must be a number (got {})", name(key), v.dump());
    return v.get<double>();
  }
  bool get_bool(const std::string& key, bool fallback) const {
    if (!present(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_boolean()) fail("config: {} must be true or false (got {})", name(key), v.dump());
    return v.get<bool>();
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    if (!present(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_string()) fail("config: {} must be a string (got {})", name(key), v.dump());
    return v.get<std::string>();
  }

 private:
  int to_int(const std::string& key, int64_t v) const {
    if (v < -(int64_t{1} << 31) || v >= (int64_t{1} << 31)) fail("config: {} is out of range ({})", name(key), v);
    return static_cast<int>(v);
  }
  const json& obj_;
  std::string path_;
};

RopeParams parse_rope(const json& obj, const std::string& path, RopeParams defaults) {
  if (!obj.is_object()) fail("config: {} must be an object (got {})", path, obj.dump());
  Fields f(obj, path + ".");
  RopeParams r;
  r.type = f.get_string("rope_type", f.get_string("type", defaults.type));
  r.theta = f.get_double("rope_theta", defaults.theta);
  r.partial_rotary_factor = f.get_double("partial_rotary_factor", 1.0);
  r.factor = f.get_double("factor", 1.0);
  return r;
}

RopeParams default_rope(LayerType t) {
  RopeParams r;
  if (t == LayerType::kFull) {
    r.type = "proportional";
    r.theta = 1e6;
    r.partial_rotary_factor = 0.25;
  }
  return r;
}

// `overridden(t)`: every layer of type t takes its RoPE from per_layer_config (rope_parameters may then
// leave that type out).
void parse_rope_fields(const Fields& f, ModelConfig& c, const std::function<bool(LayerType)>& overridden) {
  const RopeParams sliding_default = default_rope(LayerType::kSliding);
  const RopeParams full_default = default_rope(LayerType::kFull);
  if (f.present("rope_parameters")) {
    const json& rp = f.at("rope_parameters");
    const std::string path = f.name("rope_parameters");
    if (!rp.is_object()) fail("config: {} must be an object keyed by layer type", path);
    for (const auto& [key, value] : rp.items()) {
      if (key != "sliding_attention" && key != "full_attention") {
        fail("config: {} must be keyed by layer type (sliding_attention, full_attention); found key '{}'", path, key);
      }
    }
    for (LayerType t : {LayerType::kSliding, LayerType::kFull}) {
      RopeParams& dst = t == LayerType::kFull ? c.rope_full : c.rope_sliding;
      const char* key = layer_type_name(t);
      bool used = false;
      for (LayerType lt : c.layer_types) used |= lt == t;
      if (rp.contains(key) && !rp.at(key).is_null()) {
        dst = parse_rope(rp.at(key), path + "." + key, default_rope(t));
      } else if (used && !overridden(t)) {
        fail("config: {}.{} is missing (the model has {} layers)", path, key, key);
      } else {
        dst = default_rope(t);
      }
    }
    return;
  }
  // Older flat form.
  c.rope_sliding = sliding_default;
  c.rope_sliding.theta = f.get_double("rope_local_base_freq", sliding_default.theta);
  c.rope_full = full_default;
  c.rope_full.theta = f.get_double("rope_theta", full_default.theta);
  c.rope_full.partial_rotary_factor = f.get_double("partial_rotary_factor", full_default.partial_rotary_factor);
  if (f.present("rope_scaling")) {
    const json& rs = f.at("rope_scaling");
    if (!rs.is_object()) fail("config: {} must be an object", f.name("rope_scaling"));
    Fields s(rs, f.name("rope_scaling") + ".");
    c.rope_full.type = s.get_string("rope_type", s.get_string("type", c.rope_full.type));
    c.rope_full.factor = s.get_double("factor", 1.0);
  }
}

void append_eos(const json& v, const std::string& field, std::vector<int>& ids) {
  auto add = [&](const json& x) {
    if (!x.is_number_integer()) fail("config: {} must be an integer or a list of integers (got {})", field, v.dump());
    int64_t id = x.get<int64_t>();
    if (id < 0 || id >= (int64_t{1} << 31)) fail("config: {} holds an invalid token id {}", field, id);
    for (int e : ids) {
      if (e == id) return;
    }
    ids.push_back(static_cast<int>(id));
  };
  if (v.is_null()) return;
  if (v.is_array()) {
    for (const json& x : v) add(x);
  } else {
    add(v);
  }
}

struct LayerOverride {
  std::optional<int> head_dim;
  std::optional<int> num_kv_heads;
  std::optional<RopeParams> rope;
};

// Reads per_layer_config into one override per layer (see the comment at the top of the file).
std::vector<LayerOverride> parse_per_layer_config(const Fields& f, const ModelConfig& c) {
  std::vector<LayerOverride> out(c.num_layers);
  if (!f.present("per_layer_config")) return out;
  const json& plc = f.at("per_layer_config");
  const std::string path = f.name("per_layer_config");
  auto read_entry = [&](const json& entry, const std::string& entry_path, LayerType type) {
    LayerOverride o;
    if (entry.is_null()) return o;
    if (!entry.is_object()) fail("config: {} must be an object (got {})", entry_path, entry.dump());
    Fields e(entry, entry_path + ".");
    if (e.present("head_dim")) o.head_dim = e.req_int("head_dim");
    if (e.present("num_key_value_heads")) o.num_kv_heads = e.req_int("num_key_value_heads");
    if (e.present("num_attention_heads") && e.req_int("num_attention_heads") != c.num_heads) {
      fail("config: {}.num_attention_heads ({}) differs from num_attention_heads ({}); per-layer query head "
           "counts are not supported",
           entry_path, e.req_int("num_attention_heads"), c.num_heads);
    }
    if (e.present("rope_parameters")) {
      o.rope = parse_rope(entry.at("rope_parameters"), entry_path + ".rope_parameters", default_rope(type));
    }
    return o;
  };
  if (plc.is_array()) {
    if (plc.size() != static_cast<size_t>(c.num_layers)) {
      fail("config: {} has {} entries but num_hidden_layers is {}", path, plc.size(), c.num_layers);
    }
    for (int i = 0; i < c.num_layers; ++i) {
      out[i] = read_entry(plc[i], fmt::format("{}[{}]", path, i), c.layer_types[i]);
    }
  } else if (plc.is_object()) {
    for (const auto& [key, entry] : plc.items()) {
      const std::string entry_path = path + "." + key;
      if (key == "sliding_attention" || key == "full_attention") {
        LayerType t = parse_layer_type(key, entry_path);
        LayerOverride o = read_entry(entry, entry_path, t);
        for (int i = 0; i < c.num_layers; ++i) {
          if (c.layer_types[i] != t) continue;
          if (o.head_dim) out[i].head_dim = o.head_dim;
          if (o.num_kv_heads) out[i].num_kv_heads = o.num_kv_heads;
          if (o.rope) out[i].rope = o.rope;
        }
        continue;
      }
      size_t used = 0;
      long idx = -1;
      try {
        idx = std::stol(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || idx < 0 || idx >= c.num_layers) {
        fail("config: {} has key '{}', which is neither a layer index in [0, {}) nor a layer type", path, key,
             c.num_layers);
      }
      LayerOverride o = read_entry(entry, entry_path, c.layer_types[idx]);
      if (o.head_dim) out[idx].head_dim = o.head_dim;
      if (o.num_kv_heads) out[idx].num_kv_heads = o.num_kv_heads;
      if (o.rope) out[idx].rope = o.rope;
    }
  } else {
    fail("config: {} must be an object or a list (got {})", path, plc.dump());
  }
  return out;
}

// Folds per-layer overrides into the per-type fields; all layers of a type must agree.
void apply_per_layer_overrides(const std::vector<LayerOverride>& overrides, ModelConfig& c) {
  for (LayerType t : {LayerType::kSliding, LayerType::kFull}) {
    const bool full = t == LayerType::kFull;
    int& head_dim = full ? c.global_head_dim : c.head_dim;
    int& kv_heads = full ? c.num_global_kv_heads : c.num_kv_heads;
    RopeParams& rope = full ? c.rope_full : c.rope_sliding;
    const int base_head_dim = head_dim, base_kv = kv_heads;
    const RopeParams base_rope = rope;
    int first = -1;
    for (int i = 0; i < c.num_layers; ++i) {
      if (c.layer_types[i] != t) continue;
      const LayerOverride& o = overrides[i];
      int hd = o.head_dim.value_or(base_head_dim);
      int kv = o.num_kv_heads.value_or(base_kv);
      RopeParams r = o.rope.value_or(base_rope);
      if (first < 0) {
        first = i;
        head_dim = hd;
        kv_heads = kv;
        rope = r;
        continue;
      }
      auto disagree = [&](const char* what, const std::string& a, const std::string& b) {
        fail("config: per_layer_config gives {} layers {} and {} different {} ({} vs {}); all layers of one "
             "attention type must have the same shape",
             layer_type_name(t), first, i, what, a, b);
      };
      if (hd != head_dim) disagree("head_dim", std::to_string(head_dim), std::to_string(hd));
      if (kv != kv_heads) disagree("num_key_value_heads", std::to_string(kv_heads), std::to_string(kv));
      if (!(r == rope)) disagree("rope_parameters", rope.type, r.type);
    }
  }
}

}  // namespace

ModelConfig parse_model_config(const nlohmann::json& doc) {
  if (!doc.is_object()) fail("config: the document must be a JSON object");
  ModelConfig c;
  Fields top(doc, "");

  std::string architecture;
  if (top.present("architectures")) {
    const json& a = doc.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string()) {
      fail("config: architectures must be a non-empty list of strings (got {})", a.dump());
    }
    architecture = a[0].get<std::string>();
  }
  const std::string model_type = top.get_string("model_type", "");
  const bool nested = top.present("text_config");
  if (nested) {
    if (!doc.at("text_config").is_object()) fail("config: text_config must be an object");
    if (architecture.empty()) architecture = "Gemma4ForConditionalGeneration";
    if (architecture != "Gemma4ForConditionalGeneration") {
      fail("config: architectures[0] '{}' is not supported with a text_config (expected "
           "Gemma4ForConditionalGeneration)",
           architecture);
    }
    if (!model_type.empty() && model_type != "gemma4") {
      fail("config: model_type '{}' is not supported (expected gemma4)", model_type);
    }
    c.tensor_prefix = "model.language_model.";
  } else {
    if (architecture.empty()) {
      if (model_type != "gemma4_text") {
        fail("config: neither architectures nor text_config is present and model_type is '{}' (expected "
             "gemma4_text)",
             model_type);
      }
      architecture = "Gemma4ForCausalLM";
    }
    if (architecture != "Gemma4ForCausalLM") {
      fail("config: architectures[0] '{}' is not supported without a text_config (expected Gemma4ForCausalLM)",
           architecture);
    }
    if (!model_type.empty() && model_type != "gemma4_text") {
      fail("config: model_type '{}' is not supported (expected gemma4_text)", model_type);
    }
    c.tensor_prefix = "model.";
  }
  c.architecture = architecture;

  const json& text = nested ? doc.at("text_config") : doc;
  Fields f(text, nested ? "text_config." : "");
  if (nested) {
    std::string tm = f.get_string("model_type", "gemma4_text");
    if (tm != "gemma4_text") fail("config: text_config.model_type '{}' is not supported (expected gemma4_text)", tm);
  }

  c.dtype = top.get_string("torch_dtype", top.get_string("dtype", f.get_string("torch_dtype", f.get_string("dtype", c.dtype))));
  c.hidden_size = f.req_int("hidden_size");
  c.intermediate_size = f.req_int("intermediate_size");
  c.num_layers = f.req_int("num_hidden_layers");
  c.num_heads = f.req_int("num_attention_heads");
  c.num_kv_heads = f.req_int("num_key_value_heads");
  c.head_dim = f.req_int("head_dim");
  c.vocab_size = f.req_int("vocab_size");
  c.global_head_dim = f.get_int("global_head_dim", 0);
  if (c.global_head_dim == 0) c.global_head_dim = c.head_dim;
  c.attention_k_eq_v = f.get_bool("attention_k_eq_v", false);
  const int global_kv = f.get_int("num_global_key_value_heads", 0);
  if (c.attention_k_eq_v && global_kv > 0) {
    c.num_global_kv_heads = global_kv;
  } else {
    if (global_kv > 0 && global_kv != c.num_kv_heads) {
      spdlog::warn("config: {} = {} is ignored because attention_k_eq_v is false (full layers use {} = {})",
                   f.name("num_global_key_value_heads"), global_kv, f.name("num_key_value_heads"), c.num_kv_heads);
    }
    if (f.present("num_global_key_value_heads") && global_kv <= 0) {
      fail("config: {} must be > 0 (got {})", f.name("num_global_key_value_heads"), global_kv);
    }
    c.num_global_kv_heads = c.num_kv_heads;
  }
  c.sliding_window = f.get_int("sliding_window", 512);
  c.max_position_embeddings = f.get_int("max_position_embeddings", 131072);
  c.rms_norm_eps = static_cast<float>(f.get_double("rms_norm_eps", 1e-6));
  c.final_logit_softcapping = static_cast<float>(f.get_double("final_logit_softcapping", 0.0));
  c.hidden_activation = f.get_string("hidden_activation", f.get_string("hidden_act", "gelu_pytorch_tanh"));
  if (f.get_bool("attention_bias", false)) fail("config: {} = true is not supported (Gemma 4 has no biases)", f.name("attention_bias"));
  const std::string bidirectional = f.get_string("use_bidirectional_attention", "vision");
  if (bidirectional == "all") {
    fail("config: {} = \"all\" (non-causal text attention) is not supported", f.name("use_bidirectional_attention"));
  }

  // Tied embeddings: the text config's value, else the top level's; both present must agree.
  const bool text_tie = f.get_bool("tie_word_embeddings", true);
  if (nested && top.present("tie_word_embeddings") && f.present("tie_word_embeddings") &&
      top.get_bool("tie_word_embeddings", true) != text_tie) {
    fail("config: tie_word_embeddings ({}) contradicts text_config.tie_word_embeddings ({})",
         top.get_bool("tie_word_embeddings", true), text_tie);
  }
  c.tie_word_embeddings = f.present("tie_word_embeddings") ? text_tie : top.get_bool("tie_word_embeddings", true);

  c.enable_moe = f.get_bool("enable_moe_block", false);
  if (c.enable_moe) {
    if (!f.present("num_experts")) fail("config: enable_moe_block is true but {} is missing", f.name("num_experts"));
    if (!f.present("top_k_experts")) fail("config: enable_moe_block is true but {} is missing", f.name("top_k_experts"));
    if (!f.present("moe_intermediate_size")) {
      fail("config: enable_moe_block is true but {} is missing", f.name("moe_intermediate_size"));
    }
    c.num_experts = f.req_int("num_experts");
    c.top_k_experts = f.req_int("top_k_experts");
    c.moe_intermediate_size = f.req_int("moe_intermediate_size");
  }

  c.hidden_size_per_layer_input = f.get_int("hidden_size_per_layer_input", 256);
  c.vocab_size_per_layer_input = f.get_int("vocab_size_per_layer_input", 262144);
  c.num_kv_shared_layers = f.get_int("num_kv_shared_layers", 0);
  c.use_double_wide_mlp = f.get_bool("use_double_wide_mlp", false);

  // Special ids: Hugging Face defaults when absent, -1 when explicitly null.
  c.pad_token_id = text.contains("pad_token_id") ? f.get_int("pad_token_id", -1) : 0;
  c.bos_token_id = text.contains("bos_token_id") ? f.get_int("bos_token_id", -1) : 2;
  if (!text.contains("eos_token_id")) c.eos_token_ids.push_back(1);
  if (f.present("eos_token_id")) append_eos(text.at("eos_token_id"), f.name("eos_token_id"), c.eos_token_ids);
  if (nested && top.present("eos_token_id")) append_eos(doc.at("eos_token_id"), "eos_token_id", c.eos_token_ids);

  // Layer types.
  if (c.num_layers <= 0 || c.num_layers > kMaxLayers) {
    fail("config: {} must be in [1, {}] (got {})", f.name("num_hidden_layers"), kMaxLayers, c.num_layers);
  }
  if (f.present("layer_types")) {
    const json& lt = text.at("layer_types");
    if (!lt.is_array()) fail("config: {} must be a list", f.name("layer_types"));
    if (lt.size() != static_cast<size_t>(c.num_layers)) {
      fail("config: {} has {} entries but {} is {}", f.name("layer_types"), lt.size(), f.name("num_hidden_layers"),
           c.num_layers);
    }
    for (size_t i = 0; i < lt.size(); ++i) {
      const std::string field = fmt::format("{}[{}]", f.name("layer_types"), i);
      if (!lt[i].is_string()) fail("config: {} must be a string (got {})", field, lt[i].dump());
      c.layer_types.push_back(parse_layer_type(lt[i].get<std::string>(), "config: " + field));
    }
  } else if (f.present("sliding_window_pattern")) {
    const int period = f.req_int("sliding_window_pattern");
    if (period <= 0) fail("config: {} must be > 0 (got {})", f.name("sliding_window_pattern"), period);
    for (int i = 0; i < c.num_layers; ++i) {
      c.layer_types.push_back((i + 1) % period == 0 ? LayerType::kFull : LayerType::kSliding);
    }
  } else {
    fail("config: {} missing (and no sliding_window_pattern to derive it from)", f.name("layer_types"));
  }
  if (c.layer_types.back() != LayerType::kFull) {
    spdlog::warn("config: the last layer must be full_attention (got sliding_attention); forcing it to "
                 "full_attention as Hugging Face does");
    c.layer_types.back() = LayerType::kFull;
  }

  const std::vector<LayerOverride> overrides = parse_per_layer_config(f, c);
  parse_rope_fields(f, c, [&](LayerType t) {
    for (int i = 0; i < c.num_layers; ++i) {
      if (c.layer_types[i] == t && !overrides[i].rope) return false;
    }
    return true;
  });
  apply_per_layer_overrides(overrides, c);
  finalize_model_config(c);
  c.variant = recognise_variant(c);
  return c;
}

json read_json_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("{}: not a regular file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::stringstream ss;
  ss << in.rdbuf();
  check_not_foreign_text(ss.view(), path);
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON (at byte {})", path, e.byte);
  }
}

ModelConfig load_model_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  fs::path dir(model_dir);
  if (fs::is_regular_file(dir)) dir = dir.parent_path();  // a .safetensors file or config.json inside the folder
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) {
    check_not_gguf_folder(dir.string());
    fail("{}: no config.json in the model folder", model_dir);
  }
  const json doc = read_json_file(config_path.string());
  ModelConfig c;
  try {
    c = parse_model_config(doc);
  } catch (const Error& e) {
    fail("{}: {}", config_path.string(), e.what());
  }
  const fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    json gen = read_json_file(gen_path.string());
    if (gen.is_object() && gen.contains("eos_token_id")) {
      try {
        append_eos(gen.at("eos_token_id"), "eos_token_id", c.eos_token_ids);
        finalize_model_config(c);  // checks the added ids as it checks config.json's
      } catch (const Error& e) {
        fail("{}: {}", gen_path.string(), e.what());
      }
    }
  }
  return c;
}

}  // namespace shardlm
