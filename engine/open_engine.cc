#include <omp.h>

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/mpi_world.h"
#include "common/error.h"
#include "common/text_format.h"
#include "coordinator/remote_engine.h"
#include "engine/engine.h"
#include "engine/model_identity.h"
#include "kernels/gemv_tuning.h"
#include "model/config.h"
#include "model/tensor_names.h"
#include "model/variants.h"
#include "partition/plan.h"
#include "worker/kv_cache.h"
#include "worker/model_runner.h"
#include "worker/process_memory.h"
#include "worker/step_candidates.h"
#include "worker/worker_loop.h"

namespace shardlm {
namespace {

int64_t context_of(const EngineOptions& o, const ModelConfig& config) {
  const int64_t ctx = o.max_context > 0 ? o.max_context : config.max_position_embeddings;
  if (ctx <= 0) fail("model config has no max_position_embeddings; pass --max-context");
  if (config.max_position_embeddings > 0 && ctx > config.max_position_embeddings) {
    fail("--max-context {} exceeds the model's max_position_embeddings {}", ctx, config.max_position_embeddings);
  }
  return ctx;
}

RunnerOptions runner_options(const EngineOptions& o, int64_t kv_tokens);

// What each worker's KV pool may take: the bytes, and where the limit comes from (for messages).
struct KvBudget {
  int64_t bytes = 0;  // 0 = no limit
  std::string source;
};

// Without --kv-memory-per-worker, when every worker runs on this machine, each worker's KV pool may
// take what 90% of the memory available here leaves after the workers' weights (the planner's
// estimate at the chosen format; bf16 for the checkpoint's own). No limit when workers run on other
// machines (their memory is not known here) or the available memory is unknown: the pools are then
// sized for max_context x max_sequences, and a size the system refuses is an error at start.
KvBudget kv_budget_of(const EngineOptions& o, const Plan& plan, int workers_here, bool all_workers_here) {
  if (o.kv_budget_bytes > 0) {
    return {o.kv_budget_bytes, fmt::format("the budget of {} (--kv-memory-per-worker)", decimal_bytes(static_cast<uint64_t>(o.kv_budget_bytes)))};
  }
  const int64_t available = all_workers_here ? available_memory_bytes() : 0;
  if (available <= 0) return {};
  int64_t weights = 0;
  for (const WorkerPlan& w : plan.workers) weights = std::max(weights, w.weight_bytes);
  const int64_t usable = available / 10 * 9;
  const std::string where =
      fmt::format("90% of the {} of memory available on this machine less the weights ({} for each of {} worker{} here)",
                  decimal_bytes(static_cast<uint64_t>(available)), decimal_bytes(static_cast<uint64_t>(weights)), workers_here,
                  workers_here == 1 ? "" : "s");
  const int64_t per_worker = usable / workers_here - weights;
  if (per_worker <= 0) {
    fail("no memory is left for a KV cache: {}; free memory, spread the model over more machines, choose smaller weights "
         "(--weights q4), or set --kv-memory-per-worker", where);
  }
  return {per_worker, where};
}

// KV positions (all sequences together) to allocate: the requested number, checked against the
// per-worker KV budget; or, when none is requested, the most that fits the budget (at most
// max_context x max_sequences).
int64_t kv_tokens_of(const EngineOptions& o, const ModelConfig& config, const std::vector<ShardSpec>& shards, int64_t context,
                     const KvBudget& budget) {
  const int64_t cap = o.kv_tokens > 0 ? o.kv_tokens : context * std::max(o.max_sequences, 1);
  if (budget.bytes <= 0) return cap;
  auto bytes_for = [&](int64_t n) {
    size_t most = 0;
    const RunnerOptions ro = runner_options(o, n);
    for (const ShardSpec& s : shards) most = std::max(most, KvCache::planned_bytes(config, s, ro.kv));
    return static_cast<int64_t>(most);
  };
  if (bytes_for(cap) <= budget.bytes) return cap;
  int64_t lo = 0, hi = cap;  // bytes_for(lo) fits (or lo = 0), bytes_for(hi) does not
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (bytes_for(mid) <= budget.bytes ? lo : hi) = mid;
  }
  if (o.kv_tokens > 0 || lo < o.kv_block) {
    fail("a KV cache for {} positions needs {} per worker, more than {} ({} positions fit)", cap,
         decimal_bytes(static_cast<uint64_t>(bytes_for(cap))), budget.source, lo);
  }
  spdlog::info("KV cache: {} positions for all sequences ({} x {} would need {} per worker, more than {})", lo,
               std::max(o.max_sequences, 1), context, decimal_bytes(static_cast<uint64_t>(bytes_for(cap))), budget.source);
  return lo;
}

// The planner's layout of the model over `workers` workers at the engine's formats.
Plan layout_of(const EngineOptions& o, const ModelConfig& config, int workers, int64_t context) {
  PlanOptions po;
  po.num_workers = workers;
  po.context_tokens = context;
  po.weights = o.weights == "auto" ? "bf16" : o.weights;
  po.kv_bytes_per_value = static_cast<int>(kv_dtype_bytes(parse_kv_dtype(o.kv_dtype)));
  return make_layout(config, po);
}

ModelConfig model_config_of(const EngineOptions& o) {
  if (o.synthetic.empty()) return load_model_config(o.model_dir);
  const ModelConfig& released = variant_config(o.synthetic);
  return variant_with_layers(o.synthetic, o.synthetic_layers < 0 ? released.num_layers : o.synthetic_layers);
}

// A checkpoint whose tensors are all present with the shapes its config gives (an error names the
// first one that is not), before any weight is read.
std::shared_ptr<Checkpoint> open_checkpoint(const EngineOptions& o, const ModelConfig& config) {
  if (!o.synthetic.empty()) return std::make_shared<Checkpoint>(Checkpoint::synthetic(config, o.synthetic_seed));
  auto ckpt = std::make_shared<Checkpoint>(Checkpoint::open(o.model_dir));
  validate_checkpoint_tensors(*ckpt, config);
  return ckpt;
}

RunnerOptions runner_options(const EngineOptions& o, int64_t kv_tokens) {
  RunnerOptions ro;
  ro.kv.block_size = o.kv_block;
  ro.kv.max_chunk = o.max_chunk;
  ro.kv.max_sequences = std::max(o.max_sequences, 1);
  ro.kv.full_capacity_tokens = std::max<int64_t>(kv_tokens, 1);
  ro.kv.dtype = parse_kv_dtype(o.kv_dtype);
  if (o.weights != "auto") {
    if (o.weights != "f32" && o.weights != "bf16" && o.weights != "int8" && o.weights != "q4") {
      fail("--weights must be auto, f32, bf16, int8 or q4 (got '{}')", o.weights);
    }
    ro.weights.format = parse_weight_format(o.weights);
  }
  if (o.matmul != "own" && o.matmul != "onednn" && o.matmul != "amx") {
    fail("--matmul must be own, onednn or amx (got '{}')", o.matmul);
  }
  ro.weights.backend = o.matmul == "onednn" ? MatmulBackend::kOneDnn
                       : o.matmul == "amx"  ? MatmulBackend::kAmx
                                            : MatmulBackend::kOwn;
  return ro;
}

std::string precision_text(const EngineOptions& o) {
  const char* weights = o.weights == "auto" ? "checkpoint precision" : o.weights.c_str();
  // What the matmuls take: quantised weights multiply int8 activations; oneDNN and AMX round the
  // activations of bf16 weights to bf16; the rest is f32.
  const char* inputs = o.weights == "int8" || o.weights == "q4" ? "int8"
                       : o.matmul == "own" || o.weights == "f32" ? "f32"
                       : o.weights == "bf16"                     ? "bf16"
                                                                 : "bf16 where the weights are";
  return fmt::format("f32 activations ({} matmul inputs), {} weights, {} KV cache, {} matmul, {} threads", inputs, weights,
                     kv_dtype_name(parse_kv_dtype(o.kv_dtype)), o.matmul, omp_get_max_threads());
}

class LocalStepEngine final : public StepEngine {
 public:
  explicit LocalStepEngine(const EngineOptions& o) {
    ModelConfig config = model_config_of(o);
    context_ = context_of(o, config);
    auto ckpt = open_checkpoint(o, config);
    ShardSpec shard = full_shard(config);
    const KvBudget budget = kv_budget_of(o, layout_of(o, config, 1, context_), 1, true);
    const int64_t kv_tokens = kv_tokens_of(o, config, {shard}, context_, budget);
    runner_ = std::make_unique<ModelRunner>(std::move(config), ckpt, std::move(shard), runner_options(o, kv_tokens));
    description = precision_text(o) + ", single process";
    max_sequences_ = std::max(o.max_sequences, 1);
    threads_ = omp_get_max_threads();  // as open_engine set it on this thread
  }
  const ModelConfig& config() const override { return runner_->config(); }
  int64_t max_sequence_tokens() const override { return context_; }
  int64_t kv_capacity_tokens() const override {
    return runner_->kv_cache().full_blocks_total() * runner_->kv_cache().block_size();
  }
  int max_sequences() const override { return max_sequences_; }
  int kv_block() const override { return runner_->kv_cache().block_size(); }
  int new_sequence() override { return runner_->kv_cache().allocate_sequence(); }
  void free_sequence(int seq) override { runner_->kv_cache().release_sequence(seq); }

  void step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out) override {
    if (rows.size() != batch.logit_rows.size()) fail("step: {} row requests for {} logit rows", rows.size(), batch.logit_rows.size());
    const auto t0 = std::chrono::steady_clock::now();
    use_threads();
    runner_->forward(batch, last_logits_);
    const int64_t V = config().vocab_size;
    out = select_step_candidates(last_logits_.data(), V, 0, rows);
    WorkerStepFigures f = state_figures();
    f.compute_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::vector<int64_t>& routed = runner_->take_expert_tokens();
    for (size_t i = 0; i < routed.size(); ++i) {
      if (routed[i] > 0) f.expert_tokens.emplace_back(static_cast<int32_t>(i), routed[i]);
    }
    figures_ = {f};
  }
  void row_logits(int row, std::vector<float>& logits) override {
    const int64_t V = config().vocab_size;
    if (row < 0 || (row + 1) * V > static_cast<int64_t>(last_logits_.size())) fail("logits row {} is not in the last step", row);
    logits.assign(last_logits_.begin() + row * V, last_logits_.begin() + (row + 1) * V);
  }
  void row_ranks(const std::vector<int>& rows, const std::vector<float>& values, std::vector<int64_t>& counts) override {
    const int64_t V = config().vocab_size;
    counts.assign(rows.size(), 0);
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t row = rows[i];
      if (row < 0 || (row + 1) * V > static_cast<int64_t>(last_logits_.size())) fail("logits row {} is not in the last step", row);
      counts[i] = count_at_least(last_logits_.data() + row * V, V, values[i]);
    }
  }
  void logits(const StepBatch& batch, std::vector<float>& logits, const StepTraceFn& trace) override {
    use_threads();
    runner_->forward(batch, logits, trace);
  }
  std::vector<WorkerStepFigures> last_step_figures() const override { return figures_; }
  void heartbeat() override { figures_ = {state_figures()}; }  // the KV state now, between steps
  std::vector<WorkerLoadInfo> load_info() const override {
    return {WorkerLoadInfo{static_cast<int64_t>(runner_->weights().bytes()), static_cast<int64_t>(runner_->kv_cache().bytes()),
                           resident_bytes(), peak_resident_bytes(), static_cast<int64_t>(runner_->weights().expert_bytes()),
                           {}, {}}};
  }

 private:
  // OpenMP's thread count is per thread: the one calling (a server's scheduler thread) gets the
  // count open_engine set (--threads) rather than the default of one per core.
  void use_threads() const {
    if (omp_get_max_threads() != threads_) omp_set_num_threads(threads_);
  }
  int threads_ = 1;
  WorkerStepFigures state_figures() const {
    WorkerStepFigures f;
    const KvCache& kv = runner_->kv_cache();
    f.kv_full_free = kv.full_blocks_free();
    f.kv_full_used = kv.full_blocks_total() - kv.full_blocks_free();
    f.kv_sliding_used = kv.sliding_blocks_used();
    f.kv_sliding_free = kv.sliding_blocks_total() - kv.sliding_blocks_used();
    f.rss_bytes = resident_bytes();
    f.weight_bytes = static_cast<int64_t>(runner_->weights().bytes());
    return f;
  }
  std::unique_ptr<ModelRunner> runner_;
  std::vector<float> last_logits_;
  std::vector<WorkerStepFigures> figures_;
  int64_t context_ = 0;
  int max_sequences_ = 1;
};

class DistributedStepEngine final : public StepEngine {
 public:
  DistributedStepEngine(std::unique_ptr<comm::Communicator> world, ModelConfig config, std::vector<Range> vocab_rows,
                        int64_t context, int max_sequences, std::chrono::milliseconds worker_timeout)
      : world_(std::move(world)),
        config_(std::move(config)),
        remote_(*world_, std::move(vocab_rows), config_.vocab_size, worker_timeout),
        context_(context),
        max_sequences_(max_sequences) {}
  RemoteEngine& remote() { return remote_; }
  void set_load_info(std::vector<WorkerLoadInfo> info) { load_info_ = std::move(info); }

  const ModelConfig& config() const override { return config_; }
  int64_t max_sequence_tokens() const override { return context_; }
  int64_t kv_capacity_tokens() const override { return remote_.kv_capacity_tokens(); }
  int max_sequences() const override { return max_sequences_; }
  int num_workers() const override { return world_->size() - 1; }
  int kv_block() const override { return remote_.kv_block(); }
  int new_sequence() override { return remote_.new_sequence(); }
  void free_sequence(int seq) override { remote_.free_sequence(seq); }
  void step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out) override {
    remote_.step(batch, rows, out);
  }
  void row_logits(int row, std::vector<float>& logits) override { remote_.row_logits(row, logits); }
  void row_ranks(const std::vector<int>& rows, const std::vector<float>& values, std::vector<int64_t>& counts) override {
    remote_.row_ranks(rows, values, counts);
  }
  void logits(const StepBatch& batch, std::vector<float>& logits, const StepTraceFn& trace) override {
    if (trace) fail("named intermediates (--dump-dir) are only available in a single process");
    remote_.forward(batch, logits);
  }
  std::vector<WorkerStepFigures> last_step_figures() const override { return remote_.last_step_figures(); }
  std::vector<WorkerLoadInfo> load_info() const override { return load_info_; }
  void shutdown() override { remote_.shutdown(); }
  void abort(const std::string& reason, int exit_code) override { world_->abort(reason, exit_code); }
  void heartbeat() override { remote_.ping(); }

 private:
  std::unique_ptr<comm::Communicator> world_;
  ModelConfig config_;
  RemoteEngine remote_;
  int64_t context_;
  int max_sequences_;
  std::vector<WorkerLoadInfo> load_info_;
};

// Ranks of this job on this machine (Open MPI, PMIx, Slurm), or 1 when unknown.
int local_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* v = std::getenv(name)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return 1;
}

// Compute threads of a rank when --threads is not given: the machine's cores shared by the workers
// that run on it (the coordinator, when it is here too, mostly sleeps and takes none). More threads
// than cores would make OpenMP's barriers spin against each other.
int default_threads(int ranks_here) {
  const int cores = std::max(1, omp_get_num_procs());
  const int workers_here = ranks_here > 1 ? ranks_here - 1 : 1;
  return std::max(1, cores / workers_here);
}

// A compute process chooses how its decode GEMVs read the weights (gemv_tuning.h), before it loads
// them: timed on the format it will run (bf16 for the checkpoint's own precision). An unknown
// --weights is left to runner_options to refuse.
void choose_gemv_tuning(const EngineOptions& o) {
  if (o.weights == "auto") {
    calibrate_gemv_tuning_once(WeightFormat::kBF16);
  } else if (o.weights == "f32" || o.weights == "bf16" || o.weights == "int8" || o.weights == "q4") {
    calibrate_gemv_tuning_once(parse_weight_format(o.weights));
  }
}

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

}  // namespace

std::unique_ptr<StepEngine> open_engine(const EngineOptions& o) {
  if (o.threads < 0 || o.threads > kMaxComputeThreads) {
    fail("--threads must be in [0, {}] (0 = all cores; got {})", kMaxComputeThreads, o.threads);
  }
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (!launched_by_mpi()) {
    if (o.before_load) o.before_load();
    choose_gemv_tuning(o);
    return std::make_unique<LocalStepEngine>(o);
  }
  if (o.threads <= 0) omp_set_num_threads(default_threads(local_ranks()));
  std::unique_ptr<comm::Communicator> world = comm::make_mpi_world(nullptr, nullptr);
  if (world->rank() == 0 && o.before_load) o.before_load();
  if (world->size() == 1) {
    choose_gemv_tuning(o);
    return std::make_unique<LocalStepEngine>(o);
  }

  ModelConfig config = model_config_of(o);
  const int64_t context = context_of(o, config);
  const Plan plan = layout_of(o, config, world->size() - 1, context);
  std::unique_ptr<comm::Communicator> workers = world->split(world->rank() == 0 ? comm::kNoColor : 0, world->rank());
  // The KV capacity is the coordinator's to choose (workers take it from the init message).
  RunnerOptions ro = runner_options(o, 1);
  if (!(o.worker_timeout_s > 0)) fail("the worker timeout must be positive (got {} s)", o.worker_timeout_s);
  const auto worker_timeout = std::chrono::milliseconds(static_cast<int64_t>(std::min(o.worker_timeout_s, 1e7) * 1000.0));
  if (world->rank() != 0) {
    choose_gemv_tuning(o);
    auto ckpt = open_checkpoint(o, config);
    // The coordinator gets to notice a lost worker (and tell its clients) first.
    run_worker_loop(*world, *workers, config, ckpt, plan.workers[world->rank() - 1].shard, ro, model_identity(o, *ckpt),
                    2 * worker_timeout + std::chrono::milliseconds(10000));
    return nullptr;
  }
  std::vector<ShardSpec> shards;
  for (const WorkerPlan& w : plan.workers) shards.push_back(w.shard);
  const int n_workers = static_cast<int>(shards.size());
  const int workers_here = std::max(1, std::min(local_ranks() - 1, n_workers));
  try {
    ro.kv.full_capacity_tokens =
        kv_tokens_of(o, config, shards, context, kv_budget_of(o, plan, workers_here, workers_here == n_workers));
  } catch (const Error& e) {
    world->abort(e.what(), 1);  // the workers wait for their init: end the whole job with the reason
    throw;
  }
  std::vector<Range> vocab_rows;
  for (const WorkerPlan& w : plan.workers) vocab_rows.push_back(w.shard.vocab_rows);
  const int ranks = world->size();
  auto engine = std::make_unique<DistributedStepEngine>(std::move(world), std::move(config), std::move(vocab_rows), context,
                                                        ro.kv.max_sequences, worker_timeout);
  std::vector<WorkerLoadInfo> info = engine->remote().init(ro.kv.full_capacity_tokens, ro.kv.max_chunk, ro.kv.max_sequences);
  // Every rank must have loaded the same model: the coordinator's config, and the first worker's weights.
  const std::string config_here = config_fingerprint(o);
  for (size_t w = 0; w < info.size(); ++w) {
    std::string differs;
    if (info[w].config_fingerprint != config_here) {
      differs = fmt::format("its config ({}) differs from the coordinator's ({})", info[w].config_fingerprint, config_here);
    } else if (info[w].weights_fingerprint != info[0].weights_fingerprint) {
      differs = fmt::format("its weights ({}) differ from worker 1's ({})", info[w].weights_fingerprint, info[0].weights_fingerprint);
    }
    if (!differs.empty()) {
      const std::string reason = fmt::format(
          "worker {} (rank {}) loaded a different model than the coordinator (--model {} on rank 0): {}; every rank needs the "
          "same checkpoint",
          w + 1, w + 1,
          o.synthetic.empty() ? o.model_dir : o.synthetic, differs);
      spdlog::error("{}", reason);
      engine->abort(reason, 1);
      fail("{}", reason);
    }
  }
  for (size_t w = 0; w < info.size(); ++w) {
    spdlog::info("worker {}: weights {}, KV cache {}, resident {} (peak {})", w, decimal_bytes(info[w].weight_bytes),
                 decimal_bytes(info[w].kv_bytes), decimal_bytes(info[w].rss_bytes), decimal_bytes(info[w].peak_rss_bytes));
  }
  engine->set_load_info(std::move(info));
  engine->description = precision_text(o) + fmt::format(", coordinator + {} MPI workers", ranks - 1);
  return engine;
}

}  // namespace shardlm
