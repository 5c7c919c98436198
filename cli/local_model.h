// Options shared by the commands that run a model (logits, generate, serve) and their translation
// into EngineOptions (engine/engine.h).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "engine/engine.h"
#include "model/config.h"
#include "model/tokenizer.h"

namespace shardlm::cli {

struct LocalModelOptions {
  std::string model_dir;
  std::string synthetic;         // --synthetic-weights VARIANT (instead of --model)
  int layers = -1;               // --layers (synthetic weights only; -1 = all)
  uint64_t seed = 1;             // --synthetic-seed
  std::string weights = "auto";  // auto | f32 | bf16 | int8 | q4
  std::string matmul = "own";    // own | onednn | amx
  int threads = 0;               // 0 = all cores
  int kv_block = 16;
  std::string kv_dtype = "f32";  // f32 | bf16
  int max_chunk = 512;
  std::string kv_memory_per_worker;  // e.g. "2GiB"; empty = no limit
};

void add_local_model_options(CLI::App& cmd, LocalModelOptions& options);

// The model's config: config.json of --model, or the variant of --synthetic-weights.
ModelConfig local_model_config(const LocalModelOptions& options);
// The tokenizer of --model's folder, or for synthetic weights the synthetic tokenizer that `shardlm
// mkmodel` writes for that vocabulary size.
Tokenizer local_model_tokenizer(const LocalModelOptions& options);
// A name for the model: --model's folder name or "synthetic-VARIANT".
std::string local_model_name(const LocalModelOptions& options);

// kv_tokens: KV positions to allocate for all sequences together; max_sequences: slots.
EngineOptions engine_options(const LocalModelOptions& options, int64_t kv_tokens, int max_sequences = 1);

}  // namespace shardlm::cli
