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

// A model ready to run steps: in this process, or on the worker ranks of an MPI job.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int new_sequence() = 0;
  // logits: [batch.logit_rows.size(), vocab_size] (the whole vocabulary, on rank 0).
  virtual void forward(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace = {}) = 0;
  std::string description;  // precision mode and where the model runs
};

// Loads the model for up to context_tokens positions. Under mpirun / srun with K > 1 ranks, rank 0
// gets an engine that drives the K - 1 worker ranks; on a worker rank this call serves steps until
// rank 0 shuts down and then returns nullptr (the caller returns at once).
std::unique_ptr<Engine> open_engine(const LocalModelOptions& options, int64_t context_tokens);

}  // namespace shardlm::cli
