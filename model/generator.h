// Random Gemma 4 checkpoints for tests and benchmarks (`shardlm mkmodel`): a complete Hugging Face
// model folder (config.json, generation_config.json, tokenizer files, safetensors weights in the exact
// HF layout, optionally sharded with model.safetensors.index.json) for any variant of the table, at
// real width, with any layer count. Weights are streamed to disk, never held in memory, and depend
// only on (seed, tensor name, element index): the same seed gives the same bytes whatever the thread
// count or sharding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace shardlm {

struct GeneratorOptions {
  std::string variant;                 // a name of the variant table (variants.h), e.g. "31b", "tiny"
  uint64_t seed = 1;
  DType dtype = DType::kBF16;          // BF16 or F32 (F16 also works)
  int layers = -1;                     // -1: the variant's layer count
  int64_t shard_mb = 0;                // 0: one model.safetensors; else shards of at most this many MB
                                       // (10^6 bytes); a tensor larger than that gets a file of its own
  std::string tokenizer_path;          // optional tokenizer.json (or a folder holding one) to copy
  int threads = 2;                     // generator threads (the bytes do not depend on it)
};

struct GeneratedModel {
  ModelConfig config;
  std::vector<std::string> weight_files;  // file names inside the folder
  uint64_t weight_bytes = 0;              // tensor data bytes (headers excluded)
  int64_t parameters = 0;
  int tokenizer_vocab = 0;                // entries of the tokenizer written / copied
};

// Writes the model folder `out_dir` (created if missing; existing files of the same names are
// replaced). Throws Error naming the problem.
GeneratedModel generate_model(const std::string& out_dir, const GeneratorOptions& options);

// How the generator initialises one tensor: uniform values in [mean - half_width, mean + half_width].
struct TensorInit {
  double mean = 0.0;
  double half_width = 0.0;
};

// The initialisation of an expected tensor (see generator_weights.cc for the rules and why).
TensorInit tensor_init(const ModelConfig& config, const std::string& name, const std::vector<int64_t>& shape);

// Value `index` of tensor `name` for `seed` (as f32, before rounding to the storage dtype); the
// generator writes exactly these values.
float generated_value(uint64_t seed, const std::string& name, const TensorInit& init, int64_t index);
// Values [begin, begin + n) of tensor `name` (as f32, before rounding to the storage dtype).
void generated_values(uint64_t seed, const std::string& name, const TensorInit& init, int64_t begin, int64_t n,
                      float* out);

}  // namespace shardlm
