// `shardlm mkmodel`: writes a random Gemma 4 checkpoint folder of any variant (model/generator.h).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "cli/command.h"
#include "common/text_format.h"
#include "common/error.h"
#include "model/generator.h"
#include "model/variants.h"

namespace shardlm::cli {
namespace {

namespace fs = std::filesystem;

struct MkmodelOptions {
  std::string out;
  std::string variant;
  uint64_t seed = 1;
  std::string dtype = "bf16";
  int layers = -1;
  int64_t shard_mb = 0;
  std::string tokenizer;
  int threads = 2;
  bool force = false;
};

// Refuses a non-empty folder unless forced; with --force removes the weight files a previous model
// left there (so no stale shard survives), leaving other files alone.
void prepare_output(const MkmodelOptions& o) {
  fs::path dir(o.out);
  if (fs::exists(dir) && !fs::is_directory(dir)) fail("--out {} exists and is not a folder", o.out);
  if (!fs::exists(dir) || fs::is_empty(dir)) return;
  if (!o.force) fail("--out {} is not empty (use --force to write into it)", o.out);
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool weights = name.rfind("model", 0) == 0 &&
                         (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0);
    if (weights || name == "model.safetensors.index.json") fs::remove(entry.path());
  }
}

void run(const MkmodelOptions& o) {
  GeneratorOptions g;
  g.variant = o.variant;
  g.seed = o.seed;
  g.dtype = o.dtype == "f32" ? DType::kF32 : o.dtype == "f16" ? DType::kF16 : DType::kBF16;
  g.layers = o.layers;
  g.shard_mb = o.shard_mb;
  g.tokenizer_path = o.tokenizer;
  g.threads = o.threads;
  canonical_variant_name(o.variant);  // unknown names fail before anything is written
  prepare_output(o);
  const auto start = std::chrono::steady_clock::now();
  GeneratedModel m = generate_model(o.out, g);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s to %s: %s parameters, %s %s in %zu file%s, tokenizer %d entries (%.1f s)\n",
              describe_variant(m.config).c_str(), o.out.c_str(), with_commas(m.parameters).c_str(),
              decimal_bytes(m.weight_bytes).c_str(), dtype_name(g.dtype), m.weight_files.size(),
              m.weight_files.size() == 1 ? "" : "s", m.tokenizer_vocab, seconds);
}

const CommandRegistrar registrar([](CLI::App& app) {
  auto options = std::make_shared<MkmodelOptions>();
  CLI::App* cmd = app.add_subcommand("mkmodel", "Write a random Gemma 4 checkpoint (any variant, real width)");
  cmd->add_option("--out", options->out, "Output folder (created; must be empty unless --force)")->required();
  cmd->add_option("--variant", options->variant,
                  "tiny-dense (tiny), tiny-moe, tiny-edge, e2b, e4b, 31b, 26b-a4b")
      ->required();
  cmd->add_option("--seed", options->seed, "Random seed (same seed, same bytes)");
  cmd->add_option("--dtype", options->dtype, "Weight dtype")->check(CLI::IsMember({"bf16", "f32", "f16"}));
  cmd->add_option("--layers", options->layers, "Layer count (default: the variant's)")->check(CLI::Range(1, 4096));
  cmd->add_option("--shard-mb", options->shard_mb, "Shard the weights into files of at most this many MB")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tokenizer", options->tokenizer, "tokenizer.json (or its folder) to copy instead of the synthetic one");
  cmd->add_option("--threads", options->threads, "Generator threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--force", options->force, "Write into a non-empty folder");
  cmd->callback([options] { run(*options); });
});

}  // namespace
}  // namespace shardlm::cli
