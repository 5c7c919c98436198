// The coordinator's handle on the workers of an MPI job: sends step messages (header + protobuf
// payload broadcast from rank 0), merges the workers' top candidates of each logits row, and gathers
// whole vocabulary slices only when asked (the `logits` command, or sampling the candidates cannot
// decide). Every wait on a worker has a deadline, so a lost worker is noticed, never waited on forever.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "coordinator/step_engine.h"
#include "partition/shard_spec.h"
#include "proto/logit_candidates.h"
#include "proto/step_batch.h"

namespace shardlm {

class RemoteEngine {
 public:
  // vocab_rows[w] = vocabulary rows of worker w (world rank w + 1). A worker that has not answered
  // a message within worker_timeout (init: load_timeout) is taken as lost: the call throws
  // EngineUnavailable naming it, and so does every later call.
  RemoteEngine(comm::Communicator& world, std::vector<Range> vocab_rows, int64_t vocab_size,
               std::chrono::milliseconds worker_timeout = std::chrono::milliseconds(300000),
               std::chrono::milliseconds load_timeout = std::chrono::milliseconds(3600000));
  ~RemoteEngine();  // sends kShutdown if shutdown() was not called

  // Workers build their runners; returns what each loaded.
  std::vector<WorkerLoadInfo> init(int64_t kv_tokens, int max_chunk, int max_sequences);
  int new_sequence();
  void free_sequence(int seq);
  void step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out);
  // logits: [batch.logit_rows.size(), vocab_size].
  void forward(const StepBatch& batch, std::vector<float>& logits);
  void row_logits(int row, std::vector<float>& logits);
  void row_ranks(const std::vector<int>& rows, const std::vector<float>& values, std::vector<int64_t>& counts);
  const std::vector<WorkerStepFigures>& last_step_figures() const { return figures_; }
  int64_t kv_capacity_tokens() const { return kv_capacity_tokens_; }  // positions of all sequences
  int kv_block() const { return kv_block_; }
  // Heartbeat: every worker answers an empty message (within worker_timeout).
  void ping();
  void shutdown();
  bool lost() const { return !lost_reason_.empty(); }

 private:
  void check_not_lost() const;
  // Waits for a request until the deadline; a miss marks the engine lost and throws.
  void wait_for(comm::Request& request, std::chrono::steady_clock::time_point deadline, const std::string& what);
  // Waits for `request` until `deadline`; throws Error when it passes (or the operation failed).
  void wait_until(comm::Request& request, std::chrono::steady_clock::time_point deadline);
  [[noreturn]] void lose(const std::string& reason);
  std::vector<std::vector<uint8_t>> gather_replies(std::chrono::milliseconds timeout);
  void send(uint32_t command, int64_t arg, int64_t arg2, const std::vector<uint8_t>& payload);
  std::vector<std::vector<uint8_t>> gather_replies();
  comm::Communicator& world_;
  std::vector<Range> vocab_rows_;
  int64_t vocab_size_;
  std::vector<bool> slots_;
  std::vector<WorkerStepFigures> figures_;
  int64_t kv_capacity_tokens_ = 0;
  int kv_block_ = 16;
  bool shut_down_ = false;
  std::chrono::milliseconds worker_timeout_;
  std::chrono::milliseconds load_timeout_;
  std::string lost_reason_;
};

}  // namespace shardlm
