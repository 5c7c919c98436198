#include "cli/local_model.h"

#include <omp.h>

#include <cstdlib>

#include <fmt/format.h>

#include "comm/mpi_world.h"
#include "common/error.h"
#include "coordinator/remote_engine.h"
#include "model/config.h"
#include "partition/plan.h"
#include "worker/worker_loop.h"

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

namespace {

RunnerOptions runner_options(const LocalModelOptions& o, int64_t context_tokens) {
  RunnerOptions ro;
  ro.kv.block_size = o.kv_block;
  ro.kv.max_chunk = o.max_chunk;
  ro.kv.max_sequences = 1;
  ro.kv.full_capacity_tokens = std::max<int64_t>(context_tokens, 1);
  if (o.weights == "f32") ro.weights.format = WeightFormat::kF32;
  if (o.weights == "bf16") ro.weights.format = WeightFormat::kBF16;
  ro.weights.backend = o.matmul == "onednn" ? MatmulBackend::kOneDnn : MatmulBackend::kOwn;
  return ro;
}

std::string precision_text(const LocalModelOptions& o) {
  const char* weights = o.weights == "auto" ? "checkpoint precision" : o.weights.c_str();
  return fmt::format("f32 activations, {} weights, f32 KV cache, {} matmul, {} threads", weights, o.matmul,
                     omp_get_max_threads());
}

class LocalEngine final : public Engine {
 public:
  LocalEngine(const LocalModelOptions& o, int64_t context_tokens) {
    ModelConfig config = load_model_config(o.model_dir);
    auto ckpt = std::make_shared<Checkpoint>(Checkpoint::open(o.model_dir));
    ShardSpec shard = full_shard(config);
    runner_ = std::make_unique<ModelRunner>(std::move(config), ckpt, std::move(shard), runner_options(o, context_tokens));
    description = precision_text(o) + ", single process";
  }
  const ModelConfig& config() const override { return runner_->config(); }
  int new_sequence() override { return runner_->kv_cache().allocate_sequence(); }
  void forward(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace) override {
    runner_->forward(batch, logits, trace);
  }

 private:
  std::unique_ptr<ModelRunner> runner_;
};

class DistributedEngine final : public Engine {
 public:
  DistributedEngine(std::unique_ptr<comm::Communicator> world, ModelConfig config, std::vector<Range> vocab_rows)
      : world_(std::move(world)), config_(std::move(config)), remote_(*world_, std::move(vocab_rows), config_.vocab_size) {}
  RemoteEngine& remote() { return remote_; }
  const ModelConfig& config() const override { return config_; }
  int new_sequence() override { return remote_.new_sequence(); }
  void forward(const StepBatch& batch, std::vector<float>& logits, const TraceFn& trace) override {
    if (trace) fail("named intermediates (--dump-dir) are only available in a single process");
    remote_.forward(batch, logits);
  }

 private:
  std::unique_ptr<comm::Communicator> world_;
  ModelConfig config_;
  RemoteEngine remote_;
};

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

}  // namespace

std::unique_ptr<Engine> open_engine(const LocalModelOptions& o, int64_t context_tokens) {
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (!launched_by_mpi()) return std::make_unique<LocalEngine>(o, context_tokens);
  std::unique_ptr<comm::Communicator> world = comm::make_mpi_world(nullptr, nullptr);
  if (world->size() == 1) return std::make_unique<LocalEngine>(o, context_tokens);

  ModelConfig config = load_model_config(o.model_dir);
  PlanOptions po;
  po.num_workers = world->size() - 1;
  po.context_tokens = std::max<int64_t>(context_tokens, 1);
  const Plan plan = make_layout(config, po);
  std::unique_ptr<comm::Communicator> workers = world->split(world->rank() == 0 ? comm::kNoColor : 0, world->rank());
  if (world->rank() != 0) {
    auto ckpt = std::make_shared<Checkpoint>(Checkpoint::open(o.model_dir));
    const RunnerOptions ro = runner_options(o, context_tokens);
    run_worker_loop(*world, *workers, config, ckpt, plan.workers[world->rank() - 1].shard, ro);
    return nullptr;
  }
  std::vector<Range> vocab_rows;
  for (const WorkerPlan& w : plan.workers) vocab_rows.push_back(w.shard.vocab_rows);
  const int ranks = world->size();
  auto engine = std::make_unique<DistributedEngine>(std::move(world), std::move(config), std::move(vocab_rows));
  engine->remote().init(std::max<int64_t>(context_tokens, 1), o.max_chunk);
  engine->description = precision_text(o) + fmt::format(", coordinator + {} MPI workers", ranks - 1);
  return engine;
}

}  // namespace shardlm::cli
