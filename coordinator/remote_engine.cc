#include "coordinator/remote_engine.h"

#include <cstring>

#include "common/error.h"
#include "proto/step_message.h"

namespace shardlm {

RemoteEngine::RemoteEngine(comm::Communicator& world, std::vector<Range> vocab_rows, int64_t vocab_size)
    : world_(world), vocab_rows_(std::move(vocab_rows)), vocab_size_(vocab_size) {
  if (static_cast<int>(vocab_rows_.size()) != world_.size() - 1) {
    fail("coordinator: {} vocabulary slices for {} workers", vocab_rows_.size(), world_.size() - 1);
  }
}

RemoteEngine::~RemoteEngine() {
  try {
    shutdown();
  } catch (...) {
  }
}

void RemoteEngine::send(uint32_t command, int64_t arg, int64_t arg2, const std::vector<uint8_t>& payload) {
  StepHeader h;
  h.command = command;
  h.arg = arg;
  h.arg2 = arg2;
  h.payload_bytes = static_cast<int64_t>(payload.size());
  comm::Request req = world_.ibroadcast(&h, sizeof h, 0);
  world_.wait(req);
  if (!payload.empty()) world_.broadcast(const_cast<uint8_t*>(payload.data()), payload.size(), 0);
}

void RemoteEngine::init(int64_t kv_capacity_tokens, int max_chunk) {
  send(static_cast<uint32_t>(StepCommand::kInit), kv_capacity_tokens, max_chunk, {});
}

int RemoteEngine::new_sequence() {
  send(static_cast<uint32_t>(StepCommand::kNewSequence), 0, 0, {});
  // Workers take the lowest free slot, as KvCache::allocate_sequence does.
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i]) {
      slots_[i] = true;
      return static_cast<int>(i);
    }
  }
  slots_.push_back(true);
  return static_cast<int>(slots_.size() - 1);
}

void RemoteEngine::free_sequence(int seq) {
  send(static_cast<uint32_t>(StepCommand::kFreeSequence), seq, 0, {});
  if (seq >= 0 && seq < static_cast<int>(slots_.size())) slots_[seq] = false;
}

void RemoteEngine::forward(const StepBatch& batch, std::vector<float>& logits) {
  send(static_cast<uint32_t>(StepCommand::kStep), 0, 0, encode_step_batch(batch));
  std::vector<uint8_t> recv;
  const std::vector<size_t> counts = world_.gatherv(nullptr, 0, recv, 0);
  const int64_t R = static_cast<int64_t>(batch.logit_rows.size());
  logits.assign(static_cast<size_t>(R * vocab_size_), 0.0f);
  size_t offset = counts.at(0);
  for (size_t w = 0; w < vocab_rows_.size(); ++w) {
    const Range& vr = vocab_rows_[w];
    const size_t expect = static_cast<size_t>(R * vr.size()) * sizeof(float);
    if (counts.at(w + 1) != expect) fail("worker {} sent {} bytes of logits, expected {}", w + 1, counts[w + 1], expect);
    for (int64_t r = 0; r < R; ++r) {
      std::memcpy(logits.data() + r * vocab_size_ + vr.begin, recv.data() + offset + r * vr.size() * sizeof(float),
                  static_cast<size_t>(vr.size()) * sizeof(float));
    }
    offset += expect;
  }
}

void RemoteEngine::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  send(static_cast<uint32_t>(StepCommand::kShutdown), 0, 0, {});
}

}  // namespace shardlm
