// Fuzz target: parse_model_config on arbitrary config.json text. The text is parsed as JSON first
// (as load_model_config does; text that is not JSON is refused there before the parser runs); the
// parser must then either throw shardlm::Error or return a config whose integer fields hold the
// document's values, whose resolved per-layer geometry is consistent, whose parameter count is
// computable, and that model_config_to_json writes back to a document parsing to the same config.
// Anything else (another exception, a crash, a sanitizer report) is a bug.
#include <cstdint>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/config.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// Prints the fields in which two configs differ (for a failed round trip).
void print_differences(const shardlm::ModelConfig& a, const shardlm::ModelConfig& b) {
#define FUZZ_FIELD(f) \
  if (!(a.f == b.f)) std::fprintf(stderr, "  " #f " differs\n");
  FUZZ_FIELD(architecture) FUZZ_FIELD(tensor_prefix) FUZZ_FIELD(variant) FUZZ_FIELD(dtype)
  FUZZ_FIELD(hidden_size) FUZZ_FIELD(intermediate_size) FUZZ_FIELD(num_layers) FUZZ_FIELD(num_heads)
  FUZZ_FIELD(num_kv_heads) FUZZ_FIELD(num_global_kv_heads) FUZZ_FIELD(head_dim) FUZZ_FIELD(global_head_dim)
  FUZZ_FIELD(attention_k_eq_v) FUZZ_FIELD(sliding_window) FUZZ_FIELD(vocab_size) FUZZ_FIELD(max_position_embeddings)
  FUZZ_FIELD(rms_norm_eps) FUZZ_FIELD(final_logit_softcapping) FUZZ_FIELD(tie_word_embeddings)
  FUZZ_FIELD(hidden_activation) FUZZ_FIELD(enable_moe) FUZZ_FIELD(num_experts) FUZZ_FIELD(top_k_experts)
  FUZZ_FIELD(moe_intermediate_size) FUZZ_FIELD(hidden_size_per_layer_input) FUZZ_FIELD(vocab_size_per_layer_input)
  FUZZ_FIELD(num_kv_shared_layers) FUZZ_FIELD(use_double_wide_mlp) FUZZ_FIELD(pad_token_id) FUZZ_FIELD(bos_token_id)
  FUZZ_FIELD(eos_token_ids) FUZZ_FIELD(layer_types) FUZZ_FIELD(rope_sliding) FUZZ_FIELD(rope_full) FUZZ_FIELD(layers)
#undef FUZZ_FIELD
}

// An integer field that was accepted holds exactly the document's value (no wrap-around).
void check_integer_field(const nlohmann::json& text, const char* key, int value) {
  auto it = text.find(key);
  if (it == text.end()) return;
  bool same = true;
  if (it->is_number_unsigned()) {  // (nlohmann's own == wraps unsigned values to signed)
    same = value >= 0 && it->get<uint64_t>() == static_cast<uint64_t>(value);
  } else if (it->is_number_integer()) {
    same = it->get<int64_t>() == value;
  }
  if (!same) {
    std::fprintf(stderr, "%s = %s was read as %d\n", key, it->dump().c_str(), value);
    FUZZ_CHECK(false);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  static const bool quiet = (spdlog::set_level(spdlog::level::off), true);
  (void)quiet;
  const nlohmann::json doc = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  ModelConfig c;
  try {
    c = parse_model_config(doc);
  } catch (const Error&) {
    return 0;
  }
  FUZZ_CHECK(c.num_layers > 0);
  FUZZ_CHECK(c.layer_types.size() == static_cast<size_t>(c.num_layers));
  FUZZ_CHECK(c.layers.size() == static_cast<size_t>(c.num_layers));
  FUZZ_CHECK(c.hidden_size > 0 && c.vocab_size > 0 && c.num_heads > 0);
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerGeometry& g = c.layers[static_cast<size_t>(i)];
    FUZZ_CHECK(g.index == i);
    FUZZ_CHECK(g.type == c.layer_types[static_cast<size_t>(i)]);
    FUZZ_CHECK(g.head_dim > 0 && g.head_dim % 2 == 0);
    FUZZ_CHECK(g.num_kv_heads > 0 && c.num_heads % g.num_kv_heads == 0);
    FUZZ_CHECK(g.intermediate_size > 0);
    FUZZ_CHECK(g.kv_source_layer >= 0 && g.kv_source_layer <= i);
    const int pairs = g.rotary_pairs();
    FUZZ_CHECK(pairs >= 0 && pairs <= g.head_dim / 2);
  }
  FUZZ_CHECK(c.parameter_count() > 0);
  const nlohmann::json& text = doc.contains("text_config") && !doc["text_config"].is_null() ? doc["text_config"] : doc;
  check_integer_field(text, "hidden_size", c.hidden_size);
  check_integer_field(text, "intermediate_size", c.intermediate_size);
  check_integer_field(text, "num_hidden_layers", c.num_layers);
  check_integer_field(text, "num_attention_heads", c.num_heads);
  check_integer_field(text, "vocab_size", c.vocab_size);
  check_integer_field(text, "sliding_window", c.sliding_window);
  check_integer_field(text, "max_position_embeddings", c.max_position_embeddings);
  check_integer_field(text, "pad_token_id", c.pad_token_id);
  check_integer_field(text, "bos_token_id", c.bos_token_id);

  // The writer's output reads back as the same config.
  ModelConfig again;
  try {
    again = parse_model_config(model_config_to_json(c));
  } catch (const Error& e) {
    std::fprintf(stderr, "model_config_to_json output is refused: %s\n", e.what());
    FUZZ_CHECK(false);
  }
  if (!(again == c)) {
    std::fprintf(stderr, "config changed in a parse -> model_config_to_json -> parse round trip:\n");
    print_differences(c, again);
  }
  FUZZ_CHECK(again == c);
  return 0;
}
