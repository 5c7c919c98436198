// Options shared by the commands that run a model in this process (logits, generate) and the code
// that opens the checkpoint and builds a single-process ModelRunner from them.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "worker/model_runner.h"

namespace shardlm::cli {

struct LocalModelOptions {
  std::string model_dir;
  std::string weights = "auto";  // auto | f32 | bf16
  std::string matmul = "own";    // own | onednn
  int threads = 0;               // 0 = all cores
  int kv_block = 16;
  int max_chunk = 512;
};

void add_local_model_options(CLI::App& cmd, LocalModelOptions& options);

struct LocalModel {
  std::shared_ptr<const Checkpoint> checkpoint;
  std::unique_ptr<ModelRunner> runner;
  std::string precision;  // human-readable precision mode
};

// Opens the checkpoint and loads the whole model for up to context_tokens positions.
LocalModel open_local_model(const LocalModelOptions& options, int64_t context_tokens);

}  // namespace shardlm::cli
