#include "coordinator/remote_engine.h"

#include <cstring>

#include "common/error.h"
#include "proto/step.pb.h"
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

std::vector<std::vector<uint8_t>> RemoteEngine::gather_replies() {
  std::vector<uint8_t> recv;
  const std::vector<size_t> counts = world_.gatherv(nullptr, 0, recv, 0);
  std::vector<std::vector<uint8_t>> out;
  size_t offset = counts.at(0);
  for (size_t w = 1; w < counts.size(); ++w) {
    out.emplace_back(recv.begin() + static_cast<std::ptrdiff_t>(offset), recv.begin() + static_cast<std::ptrdiff_t>(offset + counts[w]));
    offset += counts[w];
  }
  return out;
}

std::vector<WorkerLoadInfo> RemoteEngine::init(int64_t kv_tokens, int max_chunk, int max_sequences) {
  step::InitParams p;
  p.set_kv_tokens(kv_tokens);
  p.set_max_chunk(max_chunk);
  p.set_max_sequences(max_sequences);
  std::vector<uint8_t> payload(p.ByteSizeLong());
  p.SerializeToArray(payload.data(), static_cast<int>(payload.size()));
  send(static_cast<uint32_t>(StepCommand::kInit), 0, 0, payload);
  std::vector<WorkerLoadInfo> infos;
  int w = 1;
  for (const std::vector<uint8_t>& bytes : gather_replies()) {
    step::WorkerInfo m;
    if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) fail("worker {}: malformed init reply", w);
    infos.push_back(WorkerLoadInfo{m.weight_bytes(), m.kv_bytes(), m.rss_bytes(), m.peak_rss_bytes()});
    kv_block_ = m.kv_block();
    ++w;
  }
  // Every worker's pool holds its share of kv_tokens positions (a sequence split stores 1/count of
  // the blocks, with room for the rounding).
  kv_capacity_tokens_ = kv_tokens;
  slots_.assign(static_cast<size_t>(max_sequences), false);
  return infos;
}

int RemoteEngine::new_sequence() {
  // Workers take the lowest free slot, as KvCache::allocate_sequence does.
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i]) {
      send(static_cast<uint32_t>(StepCommand::kNewSequence), 0, 0, {});
      slots_[i] = true;
      return static_cast<int>(i);
    }
  }
  fail("KV cache: all {} sequence slots are in use", slots_.size());
}

void RemoteEngine::free_sequence(int seq) {
  if (seq < 0 || seq >= static_cast<int>(slots_.size()) || !slots_[seq]) return;
  send(static_cast<uint32_t>(StepCommand::kFreeSequence), seq, 0, {});
  slots_[seq] = false;
}

void RemoteEngine::step(const StepBatch& batch, const std::vector<RowRequest>& rows, std::vector<RowCandidates>& out) {
  if (rows.size() != batch.logit_rows.size()) fail("step: {} row requests for {} logit rows", rows.size(), batch.logit_rows.size());
  send(static_cast<uint32_t>(StepCommand::kStep), 0, 0, encode_step_plan(batch, rows, false));
  const std::vector<std::vector<uint8_t>> replies = gather_replies();
  std::vector<step::StepResult> results(replies.size());
  figures_.assign(replies.size(), {});
  for (size_t w = 0; w < replies.size(); ++w) {
    step::StepResult& r = results[w];
    if (!r.ParseFromArray(replies[w].data(), static_cast<int>(replies[w].size()))) fail("worker {}: malformed step result", w + 1);
    if (!r.error().empty()) fail("worker {}: {}", w + 1, r.error());
    if (r.rows_size() != static_cast<int>(rows.size())) fail("worker {}: {} rows in the step result, expected {}", w + 1, r.rows_size(), rows.size());
    const step::WorkerStats& s = r.stats();
    WorkerStepFigures& f = figures_[w];
    f.compute_s = s.compute_s();
    f.comm_s = s.comm_s();
    f.allreduce_count = s.allreduce_count();
    f.allreduce_bytes = s.allreduce_bytes();
    f.kv_full_used = s.kv_full_used();
    f.kv_full_free = s.kv_full_free();
    f.kv_sliding_used = s.kv_sliding_used();
    f.kv_sliding_free = s.kv_sliding_free();
    f.rss_bytes = s.rss_bytes();
    f.weight_bytes = s.weight_bytes();
    for (int i = 0; i < s.expert_ids_size() && i < s.expert_tokens_size(); ++i) {
      f.expert_tokens.emplace_back(s.expert_ids(i), s.expert_tokens(i));
    }
  }
  out.resize(rows.size());
  std::vector<RowCandidates> parts(results.size());
  for (size_t row = 0; row < rows.size(); ++row) {
    for (size_t w = 0; w < results.size(); ++w) {
      const step::Candidates& m = results[w].rows(static_cast<int>(row));
      if (m.logits_size() != m.tokens_size()) fail("worker {}: candidate logits and tokens differ in number", w + 1);
      RowCandidates& p = parts[w];
      p.top.resize(static_cast<size_t>(m.logits_size()));
      for (int i = 0; i < m.logits_size(); ++i) {
        const int32_t token = m.tokens(i);
        if (token < vocab_rows_[w].begin || token >= vocab_rows_[w].end) fail("worker {}: candidate token {} outside its vocabulary rows", w + 1, token);
        p.top[static_cast<size_t>(i)] = TokenLogit{m.logits(i), token};
      }
      p.bound = m.bound();
      p.lse = m.lse();
      p.lse_t = m.lse_t();
    }
    out[row] = merge_row_candidates(parts, rows[row]);
  }
}

void RemoteEngine::forward(const StepBatch& batch, std::vector<float>& logits) {
  send(static_cast<uint32_t>(StepCommand::kStep), 0, 0, encode_step_plan(batch, {}, true));
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

void RemoteEngine::row_logits(int row, std::vector<float>& logits) {
  send(static_cast<uint32_t>(StepCommand::kRowLogits), row, 0, {});
  std::vector<uint8_t> recv;
  const std::vector<size_t> counts = world_.gatherv(nullptr, 0, recv, 0);
  logits.assign(static_cast<size_t>(vocab_size_), 0.0f);
  size_t offset = counts.at(0);
  for (size_t w = 0; w < vocab_rows_.size(); ++w) {
    const Range& vr = vocab_rows_[w];
    const size_t expect = static_cast<size_t>(vr.size()) * sizeof(float);
    if (counts.at(w + 1) != expect) fail("worker {} sent {} bytes of a logits row, expected {}", w + 1, counts[w + 1], expect);
    std::memcpy(logits.data() + vr.begin, recv.data() + offset, expect);
    offset += expect;
  }
}

void RemoteEngine::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  send(static_cast<uint32_t>(StepCommand::kShutdown), 0, 0, {});
}

}  // namespace shardlm
