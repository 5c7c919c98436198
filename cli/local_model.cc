#include "cli/local_model.h"

#include <filesystem>

#include "cli/command.h"
#include "common/error.h"
#include "model/foreign_file.h"
#include "model/synthetic_tokenizer.h"
#include "model/variants.h"
#include "partition/byte_size.h"

namespace shardlm::cli {

void add_local_model_options(CLI::App& cmd, LocalModelOptions& o) {
  auto* model = cmd.add_option("--model", o.model_dir, "Checkpoint folder (config.json + safetensors)");
  auto* synthetic = cmd.add_option("--synthetic-weights", o.synthetic,
                                   "Instead of --model: random weights of this variant's real shapes (31b, 26b-a4b, e2b, "
                                   "e4b, tiny-dense, ...) created in memory by every rank")
                        ->excludes(model);
  model->excludes(synthetic);
  cmd.add_option("--layers", o.layers, "Layers of the --synthetic-weights model (default: all)")
      ->check(CLI::Range(1, 1000))
      ->needs(synthetic);
  cmd.add_option("--synthetic-seed", o.seed, "Seed of the --synthetic-weights values (as shardlm mkmodel --seed)")->needs(synthetic);
  cmd.add_option("--weights", o.weights, "Weight storage: auto (checkpoint precision), f32, bf16, int8 (per-row scales) or q4 (blocks of 32)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "int8", "q4"}));
  cmd.add_option("--matmul", o.matmul, "Matmul backend: own (batch-invariant SIMD), onednn (bf16 weights need AVX-512 there) or amx "
                 "(bf16 weights on Intel AMX tiles, bf16 activations)")
      ->check(CLI::IsMember({"own", "onednn", "amx"}));
  cmd.add_option("--threads", o.threads, "Compute threads (0 = all cores)")->check(integer_in(0, kMaxComputeThreads));
  cmd.add_option("--kv-block", o.kv_block, "KV cache block size in positions")->check(CLI::Range(1, 4096));
  cmd.add_option("--kv-dtype", o.kv_dtype,
                 "KV cache storage: f32 (exact) or bf16 (half the memory and attention reads; values rounded to bf16)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd.add_option("--max-chunk", o.max_chunk, "Most positions of one sequence computed per step")
      ->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--kv-memory-per-worker", o.kv_memory_per_worker,
                 "KV cache budget of each worker (e.g. 4GiB); a request that cannot fit is refused up front");
}

namespace {

void check_model_given(const LocalModelOptions& o) {
  if (o.model_dir.empty() && o.synthetic.empty()) fail("give --model DIR (a checkpoint folder) or --synthetic-weights VARIANT");
  if (o.model_dir.empty()) return;
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(o.model_dir, ec);
  if (!std::filesystem::exists(st)) fail("--model {}: no such folder", o.model_dir);
  if (!std::filesystem::is_directory(st)) {
    check_not_foreign_file(o.model_dir);
    fail("--model {} is not a folder: give the checkpoint folder (config.json, the .safetensors files, tokenizer.json)",
         o.model_dir);
  }
  check_not_gguf_folder(o.model_dir);
}

}  // namespace

ModelConfig local_model_config(const LocalModelOptions& o) {
  check_model_given(o);
  if (o.synthetic.empty()) return load_model_config(o.model_dir);
  return variant_with_layers(o.synthetic, o.layers < 0 ? variant_config(o.synthetic).num_layers : o.layers);
}

Tokenizer local_model_tokenizer(const LocalModelOptions& o) {
  check_model_given(o);
  if (o.synthetic.empty()) return Tokenizer::load(o.model_dir);
  const SyntheticTokenizer tok = build_synthetic_tokenizer(static_cast<int>(local_model_config(o).vocab_size));
  return Tokenizer::from_json(synthetic_tokenizer_json(tok), synthetic_tokenizer_config_json(tok));
}

std::string local_model_name(const LocalModelOptions& o) {
  check_model_given(o);
  if (!o.synthetic.empty()) return "synthetic-" + canonical_variant_name(o.synthetic);
  return std::filesystem::path(o.model_dir).lexically_normal().filename().string();
}

EngineOptions engine_options(const LocalModelOptions& o, int64_t kv_tokens, int max_sequences) {
  check_model_given(o);
  EngineOptions e;
  e.model_dir = o.model_dir;
  e.synthetic = o.synthetic;
  e.synthetic_layers = o.layers;
  e.synthetic_seed = o.seed;
  e.weights = o.weights;
  e.matmul = o.matmul;
  e.threads = o.threads;
  e.kv_block = o.kv_block;
  e.kv_dtype = o.kv_dtype;
  e.max_chunk = o.max_chunk;
  e.kv_tokens = kv_tokens;
  e.max_sequences = max_sequences;
  if (!o.kv_memory_per_worker.empty()) e.kv_budget_bytes = parse_byte_size(o.kv_memory_per_worker);
  return e;
}

}  // namespace shardlm::cli
