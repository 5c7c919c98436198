#include "cli/local_model.h"

#include <omp.h>

#include <fmt/format.h>

#include "common/error.h"
#include "model/config.h"

namespace shardlm::cli {

void add_local_model_options(CLI::App& cmd, LocalModelOptions& o) {
  cmd.add_option("--model", o.model_dir, "Checkpoint folder (config.json + safetensors)")->required();
  cmd.add_option("--weights", o.weights, "Weight storage: auto (checkpoint precision), f32, bf16")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  cmd.add_option("--matmul", o.matmul, "Matmul backend: own (batch-invariant SIMD) or onednn")
      ->check(CLI::IsMember({"own", "onednn"}));
  cmd.add_option("--threads", o.threads, "Compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd.add_option("--kv-block", o.kv_block, "KV cache block size in positions")->check(CLI::Range(1, 4096));
  cmd.add_option("--max-chunk", o.max_chunk, "Most positions of one sequence computed per step")
      ->check(CLI::Range(1, 1 << 20));
}

LocalModel open_local_model(const LocalModelOptions& o, int64_t context_tokens) {
  if (o.threads > 0) omp_set_num_threads(o.threads);
  LocalModel m;
  ModelConfig config = load_model_config(o.model_dir);
  m.checkpoint = std::make_shared<Checkpoint>(Checkpoint::open(o.model_dir));
  RunnerOptions ro;
  ro.kv.block_size = o.kv_block;
  ro.kv.max_chunk = o.max_chunk;
  ro.kv.max_sequences = 1;
  ro.kv.full_capacity_tokens = std::max<int64_t>(context_tokens, 1);
  if (o.weights == "f32") ro.weights.format = WeightFormat::kF32;
  if (o.weights == "bf16") ro.weights.format = WeightFormat::kBF16;
  ro.weights.backend = o.matmul == "onednn" ? MatmulBackend::kOneDnn : MatmulBackend::kOwn;
  ShardSpec shard = full_shard(config);
  m.runner = std::make_unique<ModelRunner>(std::move(config), m.checkpoint, std::move(shard), ro);
  const char* weights = o.weights == "auto" ? "checkpoint precision" : o.weights.c_str();
  m.precision = fmt::format("f32 activations, {} weights, f32 KV cache, {} matmul, {} threads", weights, o.matmul,
                            omp_get_max_threads());
  return m;
}

}  // namespace shardlm::cli
