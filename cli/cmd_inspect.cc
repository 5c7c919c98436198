// `shardlm inspect`: what a checkpoint folder holds: architecture, variant, layer structure, attention
// geometry per layer type, MoE / PLE / KV sharing, vocabulary, parameter count, bytes by dtype, and
// whether the tensors match the config. Text by default, --json for machines. Exit status 1 when the
// checkpoint cannot be read or its tensors do not match the config.
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/text_format.h"
#include "common/error.h"
#include "model/chat_template.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "model/config.h"
#include "model/tensor_names.h"
#include "model/variants.h"

namespace shardlm::cli {
namespace {

using json = nlohmann::ordered_json;

std::string rope_text(const RopeParams& r) {
  std::string s = fmt::format("rope {} theta {}", r.type, r.theta);
  if (r.partial_rotary_factor != 1.0) s += fmt::format(" partial {:g}", r.partial_rotary_factor);
  if (r.factor != 1.0) s += fmt::format(" factor {:g}", r.factor);
  return s;
}

json rope_json(const RopeParams& r) {
  return {{"type", r.type}, {"theta", r.theta}, {"partial_rotary_factor", r.partial_rotary_factor}, {"factor", r.factor}};
}

struct Report {
  json doc;
  std::vector<std::pair<std::string, std::string>> lines;  // label, text
  bool ok = true;
};

void describe_config(const ModelConfig& c, Report& r) {
  int sliding = 0, full = 0;
  for (LayerType t : c.layer_types) (t == LayerType::kFull ? full : sliding)++;
  const bool has_sliding = sliding > 0, has_full = full > 0;

  r.doc["architecture"] = c.architecture;
  r.doc["tensor_prefix"] = c.tensor_prefix;
  r.doc["variant"] = c.variant;
  r.doc["variant_description"] = describe_variant(c);
  r.doc["dtype"] = c.dtype;
  r.lines.push_back({"architecture", fmt::format("{} (tensors under {})", c.architecture, c.tensor_prefix)});
  r.lines.push_back({"variant", c.variant == "custom" ? "custom (matches no known variant)" : describe_variant(c)});

  std::vector<std::string> parts;
  if (has_sliding) parts.push_back(fmt::format("{} sliding_attention (window {})", sliding, c.sliding_window));
  if (has_full) parts.push_back(fmt::format("{} full_attention", full));
  r.lines.push_back({"layers", fmt::format("{} layers: {}", c.num_layers, fmt::join(parts, ", "))});
  json types = json::array();
  for (LayerType t : c.layer_types) types.push_back(layer_type_name(t));
  r.doc["layers"] = {{"count", c.num_layers}, {"sliding", sliding}, {"full", full},
                     {"sliding_window", c.sliding_window}, {"layer_types", types}};

  json attention = {{"query_heads", c.num_heads}, {"k_eq_v_on_full_layers", c.attention_k_eq_v}};
  std::string att = fmt::format("{} query heads", c.num_heads);
  if (has_sliding) {
    att += fmt::format("; sliding: {} KV heads, head_dim {}, {}", c.num_kv_heads, c.head_dim, rope_text(c.rope_sliding));
    attention["sliding"] = {{"kv_heads", c.num_kv_heads}, {"head_dim", c.head_dim}, {"rope", rope_json(c.rope_sliding)}};
  }
  if (has_full) {
    att += fmt::format("; full: {} KV heads, head_dim {}, {}", c.num_global_kv_heads, c.global_head_dim,
                       rope_text(c.rope_full));
    attention["full"] = {{"kv_heads", c.num_global_kv_heads}, {"head_dim", c.global_head_dim}, {"rope", rope_json(c.rope_full)}};
  }
  r.lines.push_back({"attention", att});
  r.lines.push_back({"K=V", c.attention_k_eq_v ? "yes (full layers have no v_proj; V = raw K projection)" : "no"});
  r.doc["attention"] = attention;

  std::string mlp = fmt::format("dense GeGLU, intermediate {}", c.intermediate_size);
  if (c.use_double_wide_mlp && c.num_kv_shared_layers > 0) {
    mlp += fmt::format(" ({} on the KV-shared layers: double-wide)", 2 * c.intermediate_size);
  }
  r.lines.push_back({"mlp", mlp});
  r.doc["mlp"] = {{"intermediate_size", c.intermediate_size}, {"double_wide_on_kv_shared", c.use_double_wide_mlp}};

  if (c.enable_moe) {
    r.lines.push_back({"experts", fmt::format("{} experts, top-{}, width {} (every layer, beside the dense MLP)",
                                              c.num_experts, c.top_k_experts, c.moe_intermediate_size)});
    r.doc["experts"] = {{"count", c.num_experts}, {"top_k", c.top_k_experts}, {"width", c.moe_intermediate_size}};
  } else {
    r.lines.push_back({"experts", "none"});
    r.doc["experts"] = nullptr;
  }
  if (c.has_ple()) {
    r.lines.push_back({"PLE", fmt::format("{} per layer ({} total), table vocab {}", c.hidden_size_per_layer_input,
                                          c.hidden_size_per_layer_input * c.num_layers, c.vocab_size_per_layer_input)});
    r.doc["ple"] = {{"per_layer", c.hidden_size_per_layer_input}, {"vocab", c.vocab_size_per_layer_input}};
  } else {
    r.lines.push_back({"PLE", "none"});
    r.doc["ple"] = nullptr;
  }
  if (c.num_kv_shared_layers > 0) {
    std::map<std::string, std::set<int>> donors;
    for (const LayerGeometry& g : c.layers) {
      if (g.shares_kv()) donors[layer_type_name(g.type)].insert(g.kv_source_layer);
    }
    std::vector<std::string> d;
    json dj = json::object();
    for (const auto& [type, layers] : donors) {
      d.push_back(fmt::format("{} read layer {}", type, fmt::join(layers, "/")));
      dj[type] = json(std::vector<int>(layers.begin(), layers.end()));
    }
    r.lines.push_back({"KV sharing", fmt::format("last {} layers ({}..{}) reuse KV: {}", c.num_kv_shared_layers,
                                                 c.first_kv_shared_layer(), c.num_layers - 1, fmt::join(d, ", "))});
    r.doc["kv_sharing"] = {{"shared_layers", c.num_kv_shared_layers}, {"first_shared", c.first_kv_shared_layer()},
                           {"donors", dj}};
  } else {
    r.lines.push_back({"KV sharing", "none"});
    r.doc["kv_sharing"] = nullptr;
  }
  r.lines.push_back({"vocab", fmt::format("{} ({} embeddings), final softcap {:g}, eos {}", c.vocab_size,
                                          c.tie_word_embeddings ? "tied" : "untied", c.final_logit_softcapping,
                                          fmt::join(c.eos_token_ids, ", "))});
  r.doc["vocab"] = {{"size", c.vocab_size}, {"tied", c.tie_word_embeddings},
                    {"final_logit_softcapping", c.final_logit_softcapping}, {"eos_token_ids", c.eos_token_ids}};
  const int64_t params = c.parameter_count();
  r.lines.push_back({"parameters", with_commas(params)});
  r.doc["parameters"] = params;
}

void describe_checkpoint(const std::string& dir, const ModelConfig& c, Report& r) {
  Checkpoint ck = [&] {
    try {
      return Checkpoint::open(dir);
    } catch (const Error& e) {
      r.ok = false;
      r.lines.push_back({"checkpoint", fmt::format("ERROR: {}", e.what())});
      r.doc["checkpoint"] = {{"error", e.what()}};
      throw;
    }
  }();
  std::map<std::string, uint64_t> bytes_by_dtype;
  uint64_t total = 0;
  const std::vector<std::string> names = ck.names();
  for (const std::string& name : names) {
    const TensorInfo& info = ck.info(name);
    bytes_by_dtype[info.dtype_label()] += info.nbytes();
    total += info.nbytes();
  }
  std::vector<std::string> by;
  json bj = json::object();
  for (const auto& [d, b] : bytes_by_dtype) {
    by.push_back(fmt::format("{} {}", d, decimal_bytes(b)));
    bj[d] = b;
  }
  r.lines.push_back({"checkpoint", fmt::format("{} file{}, {} tensors, {} ({})", ck.file_count(),
                                               ck.file_count() == 1 ? "" : "s", names.size(), decimal_bytes(total),
                                               fmt::join(by, ", "))});
  json cj = {{"files", ck.file_count()}, {"tensors", names.size()}, {"bytes", total}, {"bytes_by_dtype", bj}};
  try {
    const int ignored = validate_checkpoint_tensors(ck, c);
    const size_t expected = expected_tensors(c).size();
    r.lines.push_back({"tensors", fmt::format("ok: all {} expected tensors present with the expected shapes{}", expected,
                                              ignored ? fmt::format("; {} unexpected tensor(s) ignored", ignored) : "")});
    cj["valid"] = true;
    cj["expected_tensors"] = expected;
    cj["ignored_tensors"] = ignored;
  } catch (const Error& e) {
    r.ok = false;
    r.lines.push_back({"tensors", fmt::format("MISMATCH: {}", e.what())});
    cj["valid"] = false;
    cj["error"] = e.what();
  }
  r.doc["checkpoint"] = cj;
}

// The folder's tokenizer: loadable, its size against the config's vocabulary, and the Gemma 4 chat
// tokens (a missing or foreign tokenizer.json stops a server as surely as a missing tensor).
void describe_tokenizer(const std::string& dir, const ModelConfig& c, Report& r) {
  try {
    const Tokenizer tok = Tokenizer::load(dir);
    const std::vector<std::string> missing = missing_chat_tokens(tok);
    std::string text = fmt::format("{} tokens (the model's vocabulary: {})", tok.vocab_size(), c.vocab_size);
    if (!missing.empty()) {
      r.ok = false;
      text = fmt::format("MISMATCH: {}; lacks the Gemma 4 chat tokens {} (chat requests are refused)", text, fmt::join(missing, " "));
    } else if (tok.vocab_size() < c.vocab_size) {
      text += "; smaller than the vocabulary: generating an id past it is an error";
    }
    r.lines.push_back({"tokenizer", text});
    r.doc["tokenizer"] = {{"tokens", tok.vocab_size()}, {"missing_chat_tokens", missing}};
  } catch (const Error& e) {
    r.ok = false;
    r.lines.push_back({"tokenizer", fmt::format("ERROR: {}", e.what())});
    r.doc["tokenizer"] = {{"error", e.what()}};
  }
}

void run(const std::string& dir, bool as_json) {
  ModelConfig c = load_model_config(dir);
  Report r;
  r.doc["model"] = dir;
  describe_config(c, r);
  try {
    describe_checkpoint(dir, c, r);
  } catch (const Error&) {
    // reported in r
  }
  describe_tokenizer(dir, c, r);
  if (as_json) {
    std::printf("%s\n", r.doc.dump(2).c_str());
  } else {
    std::printf("%-13s %s\n", "model:", dir.c_str());
    for (const auto& [label, text] : r.lines) std::printf("%-13s %s\n", (label + ":").c_str(), text.c_str());
  }
  if (!r.ok) set_exit_code(1);
}

const CommandRegistrar registrar([](CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a Gemma 4 checkpoint folder and check its tensors");
  cmd->add_option("--model", *dir, "Checkpoint folder (config.json + safetensors)")->required();
  cmd->add_flag("--json", *as_json, "Machine-readable output");
  cmd->callback([dir, as_json] { run(*dir, *as_json); });
});

}  // namespace
}  // namespace shardlm::cli
