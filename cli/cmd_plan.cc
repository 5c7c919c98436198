// `shardlm plan`: prints how a model would be split over N workers — per worker its query heads,
// KV heads (and sequence split), MLP columns, experts, vocabulary rows and memory against a budget —
// or, when it cannot fit, what would. Reads only config.json (--model) or the variant table.
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "cli/command.h"
#include "common/error.h"
#include "model/config.h"
#include "model/variants.h"
#include "partition/byte_size.h"
#include "partition/plan.h"

namespace shardlm::cli {
namespace {

struct PlanArgs {
  std::string model_dir;
  std::string variant;
  std::string memory = "0";
  bool show_reads = false;
  PlanOptions options;
};

void print_reads(const Plan& plan) {
  for (const WorkerPlan& w : plan.workers) {
    std::printf("\nWorker %d reads %zu rectangles:\n", w.shard.worker, w.reads.size());
    for (const TensorSlice& r : w.reads) {
      std::printf("  %s rows [%lld, %lld) cols [%lld, %lld)\n", r.tensor.c_str(),
                  static_cast<long long>(r.rows.begin), static_cast<long long>(r.rows.end),
                  static_cast<long long>(r.cols.begin), static_cast<long long>(r.cols.end));
    }
  }
}

void run_plan(PlanArgs a) {
  if (a.model_dir.empty() == a.variant.empty()) fail("plan: give exactly one of --model DIR or --variant NAME");
  const ModelConfig config = a.model_dir.empty() ? variant_config(a.variant) : load_model_config(a.model_dir);
  a.options.memory_per_worker_bytes = parse_byte_size(a.memory);
  const Plan plan = make_plan(config, a.options);
  const std::string table = format_plan_table(plan, config);
  std::fwrite(table.data(), 1, table.size(), stdout);
  if (a.show_reads) print_reads(plan);
}

const CommandRegistrar kRegistrar([](CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Show how a model splits over N workers and the memory each needs");
  auto* model = cmd->add_option("--model", args->model_dir, "Checkpoint folder (only config.json is read)");
  auto* variant = cmd->add_option("--variant", args->variant,
                                  "Model from the variant table: 31b, 26b-a4b, e2b, e4b, tiny-dense, tiny-moe, tiny-edge");
  model->excludes(variant);
  cmd->add_option("--workers", args->options.num_workers, "Number of workers")->required()->check(integer_in(1, 1 << 20));
  cmd->add_option("--memory-per-worker", args->memory, "Memory budget of one worker, e.g. 24GiB, 512MiB, 30GB (0 = unlimited)");
  cmd->add_option("--context", args->options.context_tokens,
                  "Context tokens per sequence (default: the model's max_position_embeddings)");
  cmd->add_option("--weights", args->options.weights, "Weight format in memory: bf16, int8, q4 or f32")
      ->capture_default_str();
  cmd->add_option("--kv-bytes", args->options.kv_bytes_per_value, "Bytes per cached K/V value (4 = --kv-dtype f32, 2 = --kv-dtype bf16)")
      ->capture_default_str();
  cmd->add_option("--max-sequences", args->options.max_sequences, "Sequences cached at once")->capture_default_str();
  cmd->add_option("--kv-block", args->options.kv_block, "Positions per KV block (unit of the sequence split)")
      ->capture_default_str();
  cmd->add_flag("--reads", args->show_reads, "Also list every checkpoint rectangle each worker reads");
  cmd->callback([args] { run_plan(*args); });
});

}  // namespace
}  // namespace shardlm::cli
