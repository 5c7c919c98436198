// The coordinator's handle on the workers of an MPI job: sends step messages (header + payload
// broadcast from rank 0) and assembles the workers' vocabulary slices of the logits.
#pragma once

#include <vector>

#include "comm/communicator.h"
#include "model/checkpoint.h"
#include "proto/step_batch.h"

namespace shardlm {

class RemoteEngine {
 public:
  // vocab_rows[w] = vocabulary rows of worker w (world rank w + 1).
  RemoteEngine(comm::Communicator& world, std::vector<Range> vocab_rows, int64_t vocab_size);
  ~RemoteEngine();  // sends kShutdown if shutdown() was not called

  void init(int64_t kv_capacity_tokens, int max_chunk);
  int new_sequence();
  void free_sequence(int seq);
  // logits: [batch.logit_rows.size(), vocab_size].
  void forward(const StepBatch& batch, std::vector<float>& logits);
  void shutdown();

 private:
  void send(uint32_t command, int64_t arg, int64_t arg2, const std::vector<uint8_t>& payload);
  comm::Communicator& world_;
  std::vector<Range> vocab_rows_;
  int64_t vocab_size_;
  std::vector<bool> slots_;
  bool shut_down_ = false;
};

}  // namespace shardlm
