#include "cli/local_model.h"

#include "partition/byte_size.h"

namespace shardlm::cli {

void add_local_model_options(CLI::App& cmd, LocalModelOptions& o) {
  cmd.add_option("--model", o.model_dir, "Checkpoint folder (config.json + safetensors)")->required();
  cmd.add_option("--weights", o.weights, "Weight storage: auto (checkpoint precision), f32, bf16, int8 (per-row scales) or q4 (blocks of 32)")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  cmd.add_option("--matmul", o.matmul, "Matmul backend: own (batch-invariant SIMD) or onednn")
      ->check(CLI::IsMember({"own", "onednn"}));
  cmd.add_option("--threads", o.threads, "Compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd.add_option("--kv-block", o.kv_block, "KV cache block size in positions")->check(CLI::Range(1, 4096));
  cmd.add_option("--max-chunk", o.max_chunk, "Most positions of one sequence computed per step")
      ->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--kv-memory-per-worker", o.kv_memory_per_worker,
                 "KV cache budget of each worker (e.g. 4GiB); a request that cannot fit is refused up front");
}

EngineOptions engine_options(const LocalModelOptions& o, int64_t kv_tokens, int max_sequences) {
  EngineOptions e;
  e.model_dir = o.model_dir;
  e.weights = o.weights;
  e.matmul = o.matmul;
  e.threads = o.threads;
  e.kv_block = o.kv_block;
  e.max_chunk = o.max_chunk;
  e.kv_tokens = kv_tokens;
  e.max_sequences = max_sequences;
  if (!o.kv_memory_per_worker.empty()) e.kv_budget_bytes = parse_byte_size(o.kv_memory_per_worker);
  return e;
}

}  // namespace shardlm::cli
