// Options shared by the commands that run a model (logits, generate, serve) and their translation
// into EngineOptions (engine/engine.h).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "engine/engine.h"

namespace shardlm::cli {

struct LocalModelOptions {
  std::string model_dir;
  std::string weights = "auto";  // auto | f32 | bf16
  std::string matmul = "own";    // own | onednn
  int threads = 0;               // 0 = all cores
  int kv_block = 16;
  int max_chunk = 512;
  std::string kv_memory_per_worker;  // e.g. "2GiB"; empty = no limit
};

void add_local_model_options(CLI::App& cmd, LocalModelOptions& options);

// kv_tokens: KV positions to allocate for all sequences together; max_sequences: slots.
EngineOptions engine_options(const LocalModelOptions& options, int64_t kv_tokens, int max_sequences = 1);

}  // namespace shardlm::cli
