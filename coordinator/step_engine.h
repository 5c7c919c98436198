// The coordinator's view of a model that runs steps: in this process or on the worker ranks of an
// MPI job. A step runs one StepBatch (token chunks of several sequences) and returns, per requested
// logits row, what sampling needs: the row's top candidates and its log-sum-exp (the workers never
// send whole vocabulary rows unless asked for one with row_logits).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/config.h"
#include "proto/logit_candidates.h"
#include "proto/step_batch.h"

namespace shardlm {

// Receives named intermediates of a single-process step ("embed", "L3.out", ...) as [rows, cols].
using StepTraceFn = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;

// What one worker did in the last step (for metrics); a single process reports itself as worker 0.
struct WorkerStepFigures {
  double compute_s = 0;
  double comm_s = 0;
  int64_t allreduce_count = 0;
  int64_t allreduce_bytes = 0;
  int64_t kv_full_used = 0, kv_full_free = 0;        // blocks
  int64_t kv_sliding_used = 0, kv_sliding_free = 0;  // blocks
  int64_t rss_bytes = 0;
  int64_t weight_bytes = 0;
  std::vector<std::pair<int32_t, int64_t>> expert_tokens;  // (global expert id, tokens routed)
};

// What a worker holds after loading.
struct WorkerLoadInfo {
  int64_t weight_bytes = 0;
  int64_t kv_bytes = 0;
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;
  int64_t expert_weight_bytes = 0;  // the part of weight_bytes in MoE experts
  std::string config_fingerprint;   // what model it loaded (engine/model_identity.h)
  std::string weights_fingerprint;
};

// Thrown by a StepEngine whose workers stopped answering (a worker process died or its host is
// gone): nothing more can run on it; the program should fail what is in flight and exit so that the
// launcher restarts the job.
class EngineUnavailable : public Error {
 public:
  using Error::Error;
};

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  virtual const ModelConfig& config() const = 0;
  // Positions a sequence may hold at most, and the KV tokens all sequences together may hold.
  virtual int64_t max_sequence_tokens() const = 0;
  virtual int64_t kv_capacity_tokens() const = 0;
  virtual int max_sequences() const = 0;
  virtual int kv_block() const = 0;  // positions per KV block (capacity is reserved in blocks)
  virtual int new_sequence() = 0;
  virtual void free_sequence(int seq) = 0;
  // rows.size() == batch.logit_rows().size(); out gets one RowCandidates per row.
  virtual void step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out) = 0;
  // The whole vocabulary row `row` of the last step (for sampling that the candidates cannot decide).
  virtual void row_logits(int row, std::vector<float>& logits) = 0;
  // Per query of the last step: how many of row rows[i]'s logits (the model's, before any penalty)
  // are >= values[i] — a token's rank (1 = the best) when values[i] is its logit. By default from
  // whole rows (row_logits).
  virtual void row_ranks(const std::vector<int>& rows, const std::vector<float>& values, std::vector<int64_t>& counts) {
    counts.assign(rows.size(), 0);
    std::vector<float> logits;
    for (size_t i = 0; i < rows.size(); ++i) {
      row_logits(rows[i], logits);
      counts[i] = count_at_least(logits.data(), static_cast<int64_t>(logits.size()), values[i]);
    }
  }
  // Whole vocabulary rows: logits [batch.logit_rows.size(), vocab_size] (the `logits` command).
  // trace (single process only) receives the named intermediates.
  virtual void logits(const StepBatch& batch, std::vector<float>& logits, const StepTraceFn& trace = {}) = 0;
  virtual int num_workers() const { return 1; }
  virtual std::vector<WorkerStepFigures> last_step_figures() const = 0;
  virtual std::vector<WorkerLoadInfo> load_info() const = 0;
  virtual void shutdown() {}  // releases the workers (an MPI job's worker ranks return)
  // Checks that the workers still answer (called by an idle scheduler every few seconds); throws
  // EngineUnavailable when they do not.
  virtual void heartbeat() {}
  // After an error on the coordinator that ends the program: an MPI job is ended at once with this
  // reason (workers may be waiting in a step); a single process has nothing to do.
  virtual void abort(const std::string& reason, int exit_code = 1) {}
  std::string description;  // precision mode and where the model runs
};

}  // namespace shardlm
