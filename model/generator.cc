// The model generator: config, generation config, tokenizer files and (via generator_weights.cc) the
// weights of a random Gemma 4 checkpoint.
#include "model/generator.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/generator_weights.h"
#include "model/synthetic_tokenizer.h"
#include "model/variants.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void write_text(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("generator: cannot write {}", tmp.string());
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out) fail("generator: cannot write {}", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("generator: cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("generator: cannot read {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* dtype_config_name(DType d) {
  switch (d) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
  }
  return "bfloat16";
}

// Number of ids a tokenizer.json defines (one past the largest id of the vocabulary and added tokens).
int tokenizer_id_count(const std::string& text, const std::string& origin) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) fail("generator: {} is not valid JSON", origin);
  int64_t max_id = -1;
  if (doc.contains("model") && doc["model"].is_object() && doc["model"].contains("vocab")) {
    const json& vocab = doc["model"]["vocab"];
    if (vocab.is_object()) {
      for (const auto& [token, id] : vocab.items()) {
        if (id.is_number_integer()) max_id = std::max<int64_t>(max_id, id.get<int64_t>());
      }
    } else if (vocab.is_array()) {
      max_id = static_cast<int64_t>(vocab.size()) - 1;
    }
  }
  if (doc.contains("added_tokens") && doc["added_tokens"].is_array()) {
    for (const json& t : doc["added_tokens"]) {
      if (t.is_object() && t.contains("id") && t["id"].is_number_integer()) {
        max_id = std::max<int64_t>(max_id, t["id"].get<int64_t>());
      }
    }
  }
  if (max_id < 0) fail("generator: {} defines no tokens (model.vocab is missing)", origin);
  return static_cast<int>(max_id + 1);
}

// Copies a given tokenizer (and its companion files when present) or writes the synthetic one.
int write_tokenizer_files(const fs::path& dir, const ModelConfig& config, const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) {
    fs::path src(tokenizer_path);
    if (fs::is_directory(src)) src /= "tokenizer.json";
    if (!fs::is_regular_file(src)) fail("generator: tokenizer {} not found", src.string());
    const std::string text = read_text(src);
    const int ids = tokenizer_id_count(text, src.string());
    if (ids > config.vocab_size) {
      fail("generator: tokenizer {} has {} ids but the model's vocab_size is {}", src.string(), ids, config.vocab_size);
    }
    write_text(dir / "tokenizer.json", text);
    for (const char* companion : {"tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}) {
      const fs::path c = src.parent_path() / companion;
      if (fs::is_regular_file(c)) {
        write_text(dir / companion, read_text(c));
      } else if (std::string(companion) == "special_tokens_map.json") {
        write_text(dir / companion, special_tokens_map_json());
      } else if (std::string(companion) == "tokenizer_config.json") {
        write_text(dir / companion, synthetic_tokenizer_config_json(SyntheticTokenizer{}));
      }
    }
    return ids;
  }
  const SyntheticTokenizer tok = build_synthetic_tokenizer(config.vocab_size);
  write_text(dir / "tokenizer.json", synthetic_tokenizer_json(tok));
  write_text(dir / "tokenizer_config.json", synthetic_tokenizer_config_json(tok));
  write_text(dir / "special_tokens_map.json", special_tokens_map_json());
  return static_cast<int>(tok.tokens.size());
}

std::string generation_config_json(const ModelConfig& config) {
  json eos = json::array();
  for (int id : {1, 106, 50}) {
    if (id < config.vocab_size) eos.push_back(id);
  }
  json doc = {{"bos_token_id", 2}, {"eos_token_id", eos},  {"pad_token_id", 0}, {"do_sample", true},
              {"temperature", 1.0}, {"top_k", 64}, {"top_p", 0.95}};
  return doc.dump(2) + "\n";
}

}  // namespace

GeneratedModel generate_model(const std::string& out_dir, const GeneratorOptions& options) {
  if (options.variant.empty()) fail("generator: no variant given (known: tiny-dense, tiny-moe, tiny-edge, e2b, e4b, 31b, 26b-a4b)");
  const std::string name = canonical_variant_name(options.variant);
  GeneratedModel result;
  ModelConfig config =
      options.layers < 0 ? variant_config(name) : variant_with_layers(name, options.layers);
  config.dtype = dtype_config_name(options.dtype);
  // What load_model_config() will see: the text config's eos (1) plus generation_config.json's.
  config.eos_token_ids.clear();
  for (int id : {1, 106, 50}) {
    if (id < config.vocab_size) config.eos_token_ids.push_back(id);
  }

  const fs::path dir(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("generator: cannot create the folder {}: {}", out_dir, ec.message());

  // Tokenizer first (a given one is checked before minutes of weight writing), config.json last.
  result.tokenizer_vocab = write_tokenizer_files(dir, config, options.tokenizer_path);
  write_generated_weights(out_dir, config, options, result);
  write_text(dir / "generation_config.json", generation_config_json(config));
  write_text(dir / "config.json", model_config_to_json(config).dump(2) + "\n");
  result.config = std::move(config);
  return result;
}

}  // namespace shardlm
