// Opens a model for serving: a StepEngine that runs in this process (world of one), or, when launched
// by mpirun / srun with K > 1 ranks, one on rank 0 that drives the K - 1 worker ranks. On a worker
// rank open_engine serves steps until rank 0 shuts down and then returns nullptr (return at once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "coordinator/step_engine.h"

namespace shardlm {

// The most compute threads a rank may be given (--threads).
inline constexpr int kMaxComputeThreads = 4096;

struct EngineOptions {
  std::string model_dir;
  // Instead of a checkpoint: a variant of the table (model/variants.h, e.g. "31b", "26b-a4b") whose
  // random weights every rank creates in memory (Checkpoint::synthetic), with synthetic_layers layers
  // (-1: all) and the generator's seed.
  std::string synthetic;
  int synthetic_layers = -1;
  uint64_t synthetic_seed = 1;
  std::string weights = "auto";  // auto | f32 | bf16 | int8 | q4
  std::string matmul = "own";    // own | onednn | amx
  int threads = 0;               // 0 = all cores; at most kMaxComputeThreads
  int kv_block = 16;
  std::string kv_dtype = "f32";  // f32 | bf16: how the KV cache stores keys and values
  int max_chunk = 512;           // most positions of one sequence computed per step
  int64_t max_context = 0;       // positions per sequence; 0 = the model's max_position_embeddings
  int64_t kv_tokens = 0;         // KV positions of all sequences together; 0 = max_context x max_sequences
                                 // (or what fits kv_budget_bytes)
  int64_t kv_budget_bytes = 0;   // most KV cache bytes per worker; 0 = no limit
  int max_sequences = 1;         // sequences in flight at once
  // MPI jobs: a worker that does not answer within this many seconds is taken as lost (the engine
  // throws EngineUnavailable), and a worker that hears nothing from an initialised coordinator for
  // twice as long plus 10 s ends the job (kWorkerLostExitCode). Loading has an hour.
  double worker_timeout_s = 120;
  // Run on the coordinator (rank 0, or the single process) before the model loads, e.g. to read
  // files only it needs: what it throws ends the start at once instead of after the load.
  std::function<void()> before_load;
};

std::unique_ptr<StepEngine> open_engine(const EngineOptions& options);

}  // namespace shardlm
