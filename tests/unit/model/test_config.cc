// Gemma 4 config parsing (golden configs, flat CausalLM form, per_layer_config form, older RoPE form),
// validation errors, the variant table and recognition, and the config.json round trip.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/config.h"
#include "model/generation_defaults.h"
#include "model/variants.h"

namespace shardlm {
namespace {

using json = nlohmann::json;

const char* const kGolden[] = {"dense", "moe", "edge", "dense-f32-sharded"};

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string golden_dir(const std::string& name) { return std::string(SHARDLM_TEST_DATA) + "/" + name; }

json golden_config(const std::string& name) { return read_json(golden_dir(name) + "/config.json"); }

// Expects parse_model_config(doc) to throw an Error whose message contains every fragment.
void expect_error(const json& doc, std::initializer_list<const char*> fragments) {
  try {
    parse_model_config(doc);
    ADD_FAILURE() << "no error for " << doc.dump().substr(0, 200);
  } catch (const Error& e) {
    for (const char* f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

TEST(Config, GoldenConfigsMatchTheirFiles) {
  for (const char* name : kGolden) {
    SCOPED_TRACE(name);
    const json doc = golden_config(name);
    const json& t = doc["text_config"];
    ModelConfig c = parse_model_config(doc);
    EXPECT_EQ(c.architecture, "Gemma4ForConditionalGeneration");
    EXPECT_EQ(c.tensor_prefix, "model.language_model.");
    EXPECT_EQ(c.dtype, doc["torch_dtype"].get<std::string>());
    EXPECT_EQ(c.hidden_size, t["hidden_size"].get<int>());
    EXPECT_EQ(c.intermediate_size, t["intermediate_size"].get<int>());
    EXPECT_EQ(c.num_layers, t["num_hidden_layers"].get<int>());
    EXPECT_EQ(c.num_heads, t["num_attention_heads"].get<int>());
    EXPECT_EQ(c.num_kv_heads, t["num_key_value_heads"].get<int>());
    if (t.contains("num_global_key_value_heads")) {
      EXPECT_EQ(c.num_global_kv_heads, t["num_global_key_value_heads"].get<int>());
    } else {
      EXPECT_EQ(c.num_global_kv_heads, c.num_kv_heads);
    }
    EXPECT_EQ(c.head_dim, t["head_dim"].get<int>());
    EXPECT_EQ(c.global_head_dim, t["global_head_dim"].get<int>());
    EXPECT_EQ(c.attention_k_eq_v, t["attention_k_eq_v"].get<bool>());
    EXPECT_EQ(c.sliding_window, t["sliding_window"].get<int>());
    EXPECT_EQ(c.vocab_size, t["vocab_size"].get<int>());
    EXPECT_EQ(c.max_position_embeddings, t["max_position_embeddings"].get<int>());
    EXPECT_FLOAT_EQ(c.rms_norm_eps, t["rms_norm_eps"].get<float>());
    EXPECT_FLOAT_EQ(c.final_logit_softcapping, t["final_logit_softcapping"].get<float>());
    EXPECT_EQ(c.tie_word_embeddings, t["tie_word_embeddings"].get<bool>());
    EXPECT_EQ(c.enable_moe, t["enable_moe_block"].get<bool>());
    if (c.enable_moe) {
      EXPECT_EQ(c.num_experts, t["num_experts"].get<int>());
      EXPECT_EQ(c.top_k_experts, t["top_k_experts"].get<int>());
      EXPECT_EQ(c.moe_intermediate_size, t["moe_intermediate_size"].get<int>());
    } else {
      EXPECT_EQ(c.num_experts, 0);
    }
    EXPECT_EQ(c.hidden_size_per_layer_input, t["hidden_size_per_layer_input"].get<int>());
    EXPECT_EQ(c.vocab_size_per_layer_input, t["vocab_size_per_layer_input"].get<int>());
    EXPECT_EQ(c.num_kv_shared_layers, t["num_kv_shared_layers"].get<int>());
    EXPECT_EQ(c.use_double_wide_mlp, t["use_double_wide_mlp"].get<bool>());
    EXPECT_EQ(c.pad_token_id, 0);
    EXPECT_EQ(c.bos_token_id, 2);
    EXPECT_EQ(c.eos_token_ids, std::vector<int>({1}));
    ASSERT_EQ(c.layer_types.size(), t["layer_types"].size());
    for (size_t i = 0; i < c.layer_types.size(); ++i) {
      EXPECT_EQ(layer_type_name(c.layer_types[i]), t["layer_types"][i].get<std::string>());
    }
    const json& rf = t["rope_parameters"]["full_attention"];
    const json& rs = t["rope_parameters"]["sliding_attention"];
    EXPECT_EQ(c.rope_full.type, rf["rope_type"].get<std::string>());
    EXPECT_DOUBLE_EQ(c.rope_full.theta, rf["rope_theta"].get<double>());
    EXPECT_DOUBLE_EQ(c.rope_full.partial_rotary_factor, rf["partial_rotary_factor"].get<double>());
    EXPECT_EQ(c.rope_sliding.type, rs["rope_type"].get<std::string>());
    EXPECT_DOUBLE_EQ(c.rope_sliding.theta, rs["rope_theta"].get<double>());
    EXPECT_DOUBLE_EQ(c.rope_sliding.partial_rotary_factor, 1.0);

    // Resolved geometry.
    ASSERT_EQ(c.layers.size(), static_cast<size_t>(c.num_layers));
    for (const LayerGeometry& g : c.layers) {
      const bool full = g.type == LayerType::kFull;
      EXPECT_EQ(g.head_dim, full ? c.global_head_dim : c.head_dim);
      EXPECT_EQ(g.num_kv_heads, full ? c.num_global_kv_heads : c.num_kv_heads);
      EXPECT_EQ(g.k_eq_v, full && c.attention_k_eq_v);
      EXPECT_EQ(g.rope, full ? c.rope_full : c.rope_sliding);
      // Full layers: 0.25 * head_dim / 2 pairs; sliding: all head_dim / 2.
      EXPECT_EQ(g.rotary_pairs(), full ? c.global_head_dim / 8 : c.head_dim / 2);
    }
  }
}

TEST(Config, GoldenVariantsAndGeometry) {
  EXPECT_EQ(parse_model_config(golden_config("dense")).variant, "tiny-dense");
  EXPECT_EQ(parse_model_config(golden_config("moe")).variant, "tiny-moe");
  EXPECT_EQ(parse_model_config(golden_config("edge")).variant, "tiny-edge");
  EXPECT_EQ(parse_model_config(golden_config("dense-f32-sharded")).variant, "tiny-dense");

  // edge: 7 layers S,S,F,S,F,S,F; the last 2 share KV: layer 5 (sliding) reads 3, layer 6 (full) reads 4;
  // double-wide MLP 384 -> 768 on them.
  ModelConfig e = parse_model_config(golden_config("edge"));
  const int sources[] = {0, 1, 2, 3, 4, 3, 4};
  const int widths[] = {384, 384, 384, 384, 384, 768, 768};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(e.layers[i].kv_source_layer, sources[i]) << i;
    EXPECT_EQ(e.layers[i].shares_kv(), i >= 5) << i;
    EXPECT_EQ(e.layers[i].intermediate_size, widths[i]) << i;
    EXPECT_EQ(e.layers[i].num_kv_heads, 1);
    EXPECT_FALSE(e.layers[i].k_eq_v);
  }
  // dense: full layers 2 and 5 have K=V with 1 KV head of 128.
  ModelConfig d = parse_model_config(golden_config("dense"));
  EXPECT_TRUE(d.layers[2].k_eq_v);
  EXPECT_EQ(d.layers[5].head_dim, 128);
  EXPECT_EQ(d.layers[5].num_kv_heads, 1);
  EXPECT_EQ(d.layers[4].num_kv_heads, 2);
}

TEST(Config, LoadModelConfigAddsGenerationEos) {
  ModelConfig c = load_model_config(golden_dir("dense"));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>({1, 6}));
  EXPECT_THROW(load_model_config(golden_dir("no-such-model")), Error);
}

TEST(Config, TinyVariantsEqualTheGoldenConfigs) {
  const std::pair<const char*, const char*> pairs[] = {{"tiny-dense", "dense"}, {"tiny-moe", "moe"}, {"tiny-edge", "edge"}};
  for (const auto& [variant, golden] : pairs) {
    SCOPED_TRACE(variant);
    ModelConfig parsed = parse_model_config(golden_config(golden));
    ModelConfig table = variant_config(variant);
    table.eos_token_ids = parsed.eos_token_ids;  // the table carries the -it EOS set
    EXPECT_TRUE(table == parsed);
  }
  EXPECT_EQ(variant_config("tiny").variant, "tiny-dense");
  EXPECT_EQ(variant_config("31B").variant, "31b");
  EXPECT_THROW(variant_config("70b"), Error);
}

int count_type(const ModelConfig& c, LayerType t) {
  int n = 0;
  for (LayerType x : c.layer_types) n += x == t;
  return n;
}

TEST(Config, Released31bAnd26b) {
  const ModelConfig& a = variant_config("31b");
  EXPECT_EQ(a.num_layers, 60);
  EXPECT_EQ(count_type(a, LayerType::kSliding), 50);
  EXPECT_EQ(count_type(a, LayerType::kFull), 10);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(a.layer_types[i] == LayerType::kFull, (i + 1) % 6 == 0) << i;
  EXPECT_EQ(a.layers[5].head_dim, 512);
  EXPECT_EQ(a.layers[5].num_kv_heads, 4);
  EXPECT_EQ(a.layers[5].rotary_pairs(), 64);
  EXPECT_EQ(a.layers[4].num_kv_heads, 16);
  EXPECT_EQ(a.layers[4].rotary_pairs(), 128);
  EXPECT_EQ(a.parameter_count(), 30697345340LL);  // gemma4.md 5.1

  const ModelConfig& m = variant_config("26b-a4b");
  EXPECT_EQ(m.num_layers, 30);
  EXPECT_EQ(count_type(m, LayerType::kSliding), 25);
  EXPECT_EQ(count_type(m, LayerType::kFull), 5);
  EXPECT_EQ(m.layers[29].num_kv_heads, 2);
  EXPECT_EQ(m.num_experts, 128);
  EXPECT_EQ(m.top_k_experts, 8);
  EXPECT_EQ(m.parameter_count(), 25233141790LL);  // gemma4.md 5.1
}

TEST(Config, ReleasedE2bAndE4b) {
  const ModelConfig& e2 = variant_config("e2b");
  EXPECT_EQ(e2.num_layers, 35);
  EXPECT_EQ(count_type(e2, LayerType::kSliding), 28);
  EXPECT_EQ(count_type(e2, LayerType::kFull), 7);
  EXPECT_EQ(e2.first_kv_shared_layer(), 15);
  for (int i = 0; i < 35; ++i) {
    const LayerGeometry& g = e2.layers[i];
    EXPECT_EQ(g.type == LayerType::kFull, (i + 1) % 5 == 0) << i;
    if (i < 15) {
      EXPECT_EQ(g.kv_source_layer, i);
      EXPECT_EQ(g.intermediate_size, 6144);
    } else {
      EXPECT_EQ(g.kv_source_layer, g.type == LayerType::kFull ? 14 : 13) << i;  // gemma4.md 2.3
      EXPECT_EQ(g.intermediate_size, 12288);
    }
  }
  const ModelConfig& e4 = variant_config("e4b");
  EXPECT_EQ(e4.num_layers, 42);
  EXPECT_EQ(count_type(e4, LayerType::kSliding), 35);
  EXPECT_EQ(count_type(e4, LayerType::kFull), 7);
  for (int i = 24; i < 42; ++i) {
    EXPECT_EQ(e4.layers[i].kv_source_layer, e4.layers[i].type == LayerType::kFull ? 23 : 22) << i;
    EXPECT_EQ(e4.layers[i].intermediate_size, 10240);
  }
  for (int i = 0; i < 24; ++i) EXPECT_FALSE(e4.layers[i].shares_kv());
  // gemma4.md 5.1: E2B ~4.63 B (2.36 B PLE), E4B ~7.46 B (2.85 B PLE), shared-layer K/V excluded.
  EXPECT_NEAR(e2.parameter_count() / 1e9, 4.63, 0.01);
  EXPECT_NEAR(e4.parameter_count() / 1e9, 7.46, 0.01);
}

TEST(Config, VariantWithFewerLayers) {
  ModelConfig two = variant_with_layers("31b", 2);
  EXPECT_EQ(two.num_layers, 2);
  EXPECT_EQ(two.layer_types, std::vector<LayerType>({LayerType::kSliding, LayerType::kFull}));
  EXPECT_EQ(two.variant, "31b");
  EXPECT_EQ(describe_variant(two), "31b (2 of 60 layers)");
  EXPECT_EQ(recognise_variant(two), "31b");
  EXPECT_EQ(describe_variant(variant_config("31b")), "31b");

  ModelConfig seven = variant_with_layers("31b", 7);  // S S S S S F S -> last forced full
  EXPECT_EQ(count_type(seven, LayerType::kFull), 2);
  EXPECT_EQ(seven.layer_types.back(), LayerType::kFull);

  ModelConfig e2 = variant_with_layers("e2b", 10);  // 20/35 of 10 = 5 shared, donors exist (S at 0..3, F at 4)
  EXPECT_EQ(e2.num_kv_shared_layers, 5);
  EXPECT_EQ(e2.layers[9].kv_source_layer, 4);
  EXPECT_EQ(e2.layers[8].kv_source_layer, 3);
  ModelConfig e2small = variant_with_layers("e2b", 2);  // S F: no donor for a shared F layer -> no sharing
  EXPECT_EQ(e2small.num_kv_shared_layers, 0);
  EXPECT_EQ(recognise_variant(e2small), "e2b");

  // A changed shape is custom.
  ModelConfig custom = variant_config("31b");
  custom.hidden_size = 4096;
  finalize_model_config(custom);
  EXPECT_EQ(recognise_variant(custom), "custom");
  // A different layer pattern at the released depth is custom too.
  ModelConfig pattern = variant_config("31b");
  pattern.layer_types[0] = LayerType::kFull;
  finalize_model_config(pattern);
  EXPECT_EQ(recognise_variant(pattern), "custom");
}

TEST(Config, RoundTripThroughJson) {
  std::vector<ModelConfig> configs;
  for (const char* name : kGolden) configs.push_back(parse_model_config(golden_config(name)));
  for (const std::string& v : variant_names()) configs.push_back(variant_config(v));
  configs.push_back(variant_with_layers("e4b", 9));
  for (const ModelConfig& c : configs) {
    SCOPED_TRACE(c.variant);
    json doc = model_config_to_json(c);
    ModelConfig back = parse_model_config(json::parse(doc.dump()));
    EXPECT_TRUE(back == c) << doc.dump(1);
  }
  // The written file has the golden layout.
  json doc = model_config_to_json(parse_model_config(golden_config("dense")));
  json golden = golden_config("dense");
  for (const auto& [key, value] : golden["text_config"].items()) {
    if (key == "rope_parameters") continue;
    EXPECT_EQ(doc["text_config"][key], value) << key;
  }
  EXPECT_EQ(doc["text_config"]["rope_parameters"], golden["text_config"]["rope_parameters"]);
  EXPECT_EQ(doc["architectures"], golden["architectures"]);
}

TEST(Config, FlatCausalLmForm) {
  json flat = golden_config("dense")["text_config"];
  flat["architectures"] = {"Gemma4ForCausalLM"};
  ModelConfig c = parse_model_config(flat);
  EXPECT_EQ(c.architecture, "Gemma4ForCausalLM");
  EXPECT_EQ(c.tensor_prefix, "model.");
  ModelConfig nested = parse_model_config(golden_config("dense"));
  EXPECT_EQ(c.layers, nested.layers);
  EXPECT_EQ(c.variant, "tiny-dense");
  EXPECT_TRUE(parse_model_config(json::parse(model_config_to_json(c).dump())) == c);

  json bare = golden_config("dense")["text_config"];  // model_type gemma4_text, no architectures
  EXPECT_EQ(parse_model_config(bare).tensor_prefix, "model.");
}

TEST(Config, PerLayerConfigForms) {
  const ModelConfig reference = parse_model_config(golden_config("dense"));
  json base = golden_config("dense");
  base["text_config"].erase("global_head_dim");
  base["text_config"].erase("num_global_key_value_heads");

  json by_index = base;  // transformers >= 5.15: keyed by layer index
  by_index["text_config"]["per_layer_config"] = {{"2", {{"head_dim", 128}, {"num_key_value_heads", 1}}},
                                                 {"5", {{"head_dim", 128}, {"num_key_value_heads", 1}}}};
  EXPECT_EQ(parse_model_config(by_index).layers, reference.layers);

  json by_type = base;
  by_type["text_config"]["per_layer_config"] = {{"full_attention", {{"head_dim", 128}, {"num_key_value_heads", 1}}}};
  EXPECT_EQ(parse_model_config(by_type).layers, reference.layers);

  json as_list = base;
  json list = json::array();
  for (int i = 0; i < 6; ++i) {
    list.push_back((i == 2 || i == 5) ? json{{"head_dim", 128}, {"num_key_value_heads", 1}, {"num_attention_heads", 4}}
                                      : json(nullptr));
  }
  as_list["text_config"]["per_layer_config"] = list;
  EXPECT_EQ(parse_model_config(as_list).layers, reference.layers);

  // Without K=V, full layers can still get their own KV head count through per_layer_config, and the
  // written config.json keeps it.
  json no_kv_share = golden_config("dense");
  no_kv_share["text_config"]["attention_k_eq_v"] = false;
  no_kv_share["text_config"].erase("num_global_key_value_heads");
  no_kv_share["text_config"]["per_layer_config"] = {{"full_attention", {{"num_key_value_heads", 1}}}};
  ModelConfig nk = parse_model_config(no_kv_share);
  EXPECT_EQ(nk.layers[2].num_kv_heads, 1);
  EXPECT_EQ(nk.layers[1].num_kv_heads, 2);
  EXPECT_FALSE(nk.layers[2].k_eq_v);
  EXPECT_TRUE(parse_model_config(json::parse(model_config_to_json(nk).dump())) == nk);

  // The full layers' RoPE only in per_layer_config: rope_parameters may leave that type out, not when
  // a full layer lacks it there.
  json rope_per_layer = by_type;
  const json full_rope = rope_per_layer["text_config"]["rope_parameters"]["full_attention"];
  rope_per_layer["text_config"]["rope_parameters"].erase("full_attention");
  rope_per_layer["text_config"]["per_layer_config"]["full_attention"]["rope_parameters"] = full_rope;
  EXPECT_EQ(parse_model_config(rope_per_layer).layers, reference.layers);
  json rope_partly = base;
  rope_partly["text_config"]["rope_parameters"].erase("full_attention");
  rope_partly["text_config"]["per_layer_config"] = {{"2", {{"head_dim", 128}, {"num_key_value_heads", 1}, {"rope_parameters", full_rope}}},
                                                    {"5", {{"head_dim", 128}, {"num_key_value_heads", 1}}}};
  expect_error(rope_partly, {"rope_parameters.full_attention is missing"});

  json inconsistent = base;
  inconsistent["text_config"]["per_layer_config"] = {{"2", {{"head_dim", 128}}}, {"5", {{"head_dim", 96}}}};
  expect_error(inconsistent, {"per_layer_config", "head_dim"});
  json bad_key = base;
  bad_key["text_config"]["per_layer_config"] = {{"x7", {{"head_dim", 128}}}};
  expect_error(bad_key, {"per_layer_config", "x7"});
  json out_of_range = base;
  out_of_range["text_config"]["per_layer_config"] = {{"6", {{"head_dim", 128}}}};
  expect_error(out_of_range, {"per_layer_config", "'6'"});
}

TEST(Config, GlobalKvHeadsOnlyWithKEqV) {
  // Hugging Face: num_global_key_value_heads applies only when attention_k_eq_v is true.
  json doc = golden_config("dense");
  doc["text_config"]["attention_k_eq_v"] = false;
  ModelConfig c = parse_model_config(doc);
  EXPECT_EQ(c.layers[2].num_kv_heads, 2);
  EXPECT_FALSE(c.layers[2].k_eq_v);
  EXPECT_EQ(c.layers[2].head_dim, 128);
}

TEST(Config, OlderFlatRopeFields) {
  json doc = golden_config("dense");
  doc["text_config"].erase("rope_parameters");
  doc["text_config"]["rope_theta"] = 1000000.0;
  doc["text_config"]["rope_local_base_freq"] = 10000.0;
  doc["text_config"]["partial_rotary_factor"] = 0.25;
  ModelConfig c = parse_model_config(doc);
  ModelConfig reference = parse_model_config(golden_config("dense"));
  EXPECT_EQ(c.rope_full, reference.rope_full);
  EXPECT_EQ(c.rope_sliding, reference.rope_sliding);
}

TEST(Config, LayerTypesFromPatternAndLastLayerForcedFull) {
  json doc = golden_config("dense");
  doc["text_config"].erase("layer_types");
  doc["text_config"]["sliding_window_pattern"] = 3;
  ModelConfig c = parse_model_config(doc);
  EXPECT_EQ(c.layer_types, parse_model_config(golden_config("dense")).layer_types);

  json last = golden_config("dense");
  last["text_config"]["layer_types"][5] = "sliding_attention";
  EXPECT_EQ(parse_model_config(last).layer_types[5], LayerType::kFull);
}

json with_text(const char* golden, const char* key, json value) {
  json doc = golden_config(golden);
  if (value.is_discarded()) {
    doc["text_config"].erase(key);
  } else {
    doc["text_config"][key] = value;
  }
  return doc;
}

TEST(Config, ErrorsNameTheirField) {
  const json erase(json::value_t::discarded);
  expect_error(with_text("dense", "layer_types", erase), {"layer_types missing"});
  expect_error(with_text("dense", "layer_types", json::array({"sliding_attention", "full_attention"})),
               {"layer_types", "2 entries", "6"});
  expect_error(with_text("dense", "num_key_value_heads", 3), {"num_key_value_heads", "not divisible"});
  expect_error(with_text("dense", "hidden_size", 0), {"hidden_size"});
  expect_error(with_text("dense", "hidden_size", -5), {"hidden_size"});
  expect_error(with_text("dense", "hidden_size", erase), {"text_config.hidden_size is missing"});
  expect_error(with_text("dense", "hidden_size", "wide"), {"text_config.hidden_size", "integer"});
  expect_error(with_text("dense", "head_dim", 63), {"head_dim", "even"});
  expect_error(with_text("moe", "top_k_experts", 9), {"top_k_experts", "num_experts"});
  expect_error(with_text("moe", "num_experts", nullptr), {"num_experts"});
  expect_error(with_text("dense", "enable_moe_block", true), {"num_experts"});
  expect_error(with_text("dense", "hidden_activation", "silu"), {"hidden_activation", "silu"});
  expect_error(with_text("dense", "attention_bias", true), {"attention_bias"});
  expect_error(with_text("dense", "vocab_size", 0), {"vocab_size"});
  expect_error(with_text("edge", "num_kv_shared_layers", 7), {"num_kv_shared_layers"});
  // layers S,S,F,S,F,S,F with 5 shared: layer 2 (full) has no earlier non-shared full layer.
  expect_error(with_text("edge", "num_kv_shared_layers", 5), {"KV-shared", "layer 2", "full_attention"});

  json unknown_type = golden_config("dense");
  unknown_type["text_config"]["layer_types"][1] = "local_attention";
  expect_error(unknown_type, {"layer_types[1]", "local_attention"});

  json no_full_rope = golden_config("dense");
  no_full_rope["text_config"]["rope_parameters"].erase("full_attention");
  expect_error(no_full_rope, {"rope_parameters.full_attention"});
  json yarn = golden_config("dense");
  yarn["text_config"]["rope_parameters"]["sliding_attention"]["rope_type"] = "yarn";
  expect_error(yarn, {"rope_type", "yarn"});

  json tie = golden_config("dense");
  tie["tie_word_embeddings"] = false;
  expect_error(tie, {"tie_word_embeddings"});

  json arch = golden_config("dense");
  arch["architectures"] = {"LlamaForCausalLM"};
  expect_error(arch, {"architectures", "LlamaForCausalLM"});
  json flat_unknown = {{"model_type", "llama"}, {"hidden_size", 8}};
  expect_error(flat_unknown, {"model_type", "llama"});
  expect_error(json::array(), {"JSON object"});
  expect_error(with_text("dense", "eos_token_id", "one"), {"eos_token_id"});
}

// Every field of every golden text config replaced by junk: parsing either succeeds or throws Error
// (never another exception, never a crash).
TEST(Config, JunkFieldValuesGiveErrorsNotCrashes) {
  const json junk[] = {nullptr, -1, 0, 1, 3, 1e12, 2.5, "x", json::array(), json::array({1, "a"}), json::object(),
                       json{{"sliding_attention", 1}}, true, int64_t{1} << 40};
  int errors = 0, parsed = 0;
  for (const char* name : kGolden) {
    const json base = golden_config(name);
    for (const auto& [key, value] : base["text_config"].items()) {
      for (const json& j : junk) {
        json doc = base;
        doc["text_config"][key] = j;
        try {
          parse_model_config(doc);
          ++parsed;
        } catch (const Error&) {
          ++errors;
        } catch (const std::exception& e) {
          ADD_FAILURE() << key << " = " << j.dump() << ": non-Error exception " << e.what();
        }
      }
    }
    for (const auto& [key, value] : base.items()) {
      for (const json& j : junk) {
        json doc = base;
        doc[key] = j;
        try {
          parse_model_config(doc);
          ++parsed;
        } catch (const Error&) {
          ++errors;
        } catch (const std::exception& e) {
          ADD_FAILURE() << key << " = " << j.dump() << ": non-Error exception " << e.what();
        }
      }
    }
  }
  EXPECT_GT(errors, 500);
  EXPECT_GT(parsed, 50);
  expect_error(with_text("dense", "hidden_size", 1 << 30), {"hidden_size", "implausibly large"});
  json huge = with_text("dense", "vocab_size", 1 << 27);
  huge["text_config"]["hidden_size"] = 1 << 27;
  expect_error(huge, {"embed_tokens", "not plausible"});
}


// generation_config.json's sampling fields: the golden file (Gemma 4's), nulls as absent, values out
// of range named with their file and field, and the sources --generation-config takes.
TEST(GenerationDefaults, ReadFromTheModelFolderOrAFile) {
  const GenerationDefaults golden = load_generation_defaults("auto", golden_dir("dense"));
  EXPECT_EQ(golden.temperature, 1.0f);
  EXPECT_EQ(golden.top_k, 64);
  EXPECT_EQ(golden.top_p, 0.95f);
  EXPECT_FALSE(golden.min_p);
  EXPECT_FALSE(golden.max_tokens);
  EXPECT_EQ(golden.describe(), "temperature 1, top_k 64, top_p 0.95");
  EXPECT_TRUE(load_generation_defaults("none", golden_dir("dense")).empty());
  EXPECT_TRUE(load_generation_defaults("vllm", golden_dir("dense")).empty());  // vLLM's spelling of none
  EXPECT_TRUE(load_generation_defaults("auto", "").empty());  // synthetic weights: no folder
  EXPECT_EQ(load_generation_defaults(golden_dir("dense"), "").top_k, 64);  // a folder given
  EXPECT_EQ(load_generation_defaults(golden_dir("dense") + "/generation_config.json", "").top_p, 0.95f);

  const nlohmann::json doc = nlohmann::json::parse(
      R"({"temperature": null, "top_k": -1, "min_p": 0.1, "repetition_penalty": 1.1, "max_new_tokens": 256, "do_sample": false})");
  const GenerationDefaults d = parse_generation_defaults(doc);
  EXPECT_FALSE(d.temperature);
  EXPECT_EQ(d.top_k, 0);  // -1: off
  EXPECT_EQ(d.min_p, 0.1f);
  EXPECT_EQ(d.repetition_penalty, 1.1f);
  EXPECT_EQ(d.max_tokens, 256);
  EXPECT_EQ(d.describe(), "top_k 0, min_p 0.1, repetition_penalty 1.1, max_tokens 256");
  EXPECT_EQ(parse_generation_defaults(nlohmann::json::object()).describe(), "none");

  const auto error_of = [](const char* text) {
    try {
      parse_generation_defaults(nlohmann::json::parse(text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(R"({"temperature": -1})"), "temperature must be >= 0 (got -1)");
  EXPECT_EQ(error_of(R"({"top_p": 0})"), "top_p must be in (0, 1] (got 0)");
  EXPECT_EQ(error_of(R"({"top_p": "0.9"})"), "top_p must be a number (got \"0.9\")");
  EXPECT_EQ(error_of(R"({"top_k": 2.5})"), "top_k must be an integer in [-1, 65536] (got 2.5)");
  EXPECT_EQ(error_of(R"({"min_p": 2})"), "min_p must be in [0, 1] (got 2)");
  EXPECT_EQ(error_of(R"({"repetition_penalty": 0})"), "repetition_penalty must be > 0 and a single-precision number (got 0)");
  EXPECT_EQ(error_of(R"({"repetition_penalty": 1e-50})"),
            "repetition_penalty must be > 0 and a single-precision number (got 1e-50)");  // 0 in single precision
  EXPECT_EQ(error_of(R"({"max_new_tokens": 0})"), "max_new_tokens must be an integer in [1, 2147483647] (got 0)");
  EXPECT_EQ(error_of(R"([1, 2])"), "generation config must be a JSON object");

  const std::string dir = ::testing::TempDir() + "/gen_defaults_bad";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/generation_config.json") << R"({"top_k": "many"})";
  try {
    load_generation_defaults("auto", dir);
    FAIL() << "a bad top_k was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/generation_config.json: top_k must be a number (got \"many\")");
  }
  try {
    load_generation_defaults(dir + "/missing.json", "");
    FAIL() << "a missing file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shardlm
