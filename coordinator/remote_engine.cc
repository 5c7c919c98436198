#include "coordinator/remote_engine.h"

#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"
#include "proto/step.pb.h"
#include "proto/step_message.h"

namespace shardlm {

RemoteEngine::RemoteEngine(comm::Communicator& world, std::vector<Range> vocab_rows, int64_t vocab_size,
                           std::chrono::milliseconds worker_timeout, std::chrono::milliseconds load_timeout)
    : world_(world),
      vocab_rows_(std::move(vocab_rows)),
      vocab_size_(vocab_size),
      worker_timeout_(worker_timeout),
      load_timeout_(load_timeout) {
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

namespace {

WorkerStepFigures figures_of(const step::WorkerStats& s) {
  WorkerStepFigures f;
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
  return f;
}

}  // namespace

void RemoteEngine::check_not_lost() const {
  if (!lost_reason_.empty()) throw EngineUnavailable("the model workers are unavailable: " + lost_reason_);
}

void RemoteEngine::lose(const std::string& reason) {
  if (lost_reason_.empty()) lost_reason_ = reason;
  throw EngineUnavailable("the model workers are unavailable: " + lost_reason_);
}

void RemoteEngine::wait_until(comm::Request& request, std::chrono::steady_clock::time_point deadline) {
  const auto now = std::chrono::steady_clock::now();
  comm::WaitPolicy policy;
  policy.timeout = deadline > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now) : std::chrono::nanoseconds(0);
  world_.wait(request, policy);
}

void RemoteEngine::wait_for(comm::Request& request, std::chrono::steady_clock::time_point deadline, const std::string& what) {
  try {
    wait_until(request, deadline);
  } catch (const Error& e) {
    lose(fmt::format("{} ({})", what, e.what()));
  }
}

void RemoteEngine::send(uint32_t command, int64_t arg, int64_t arg2, const std::vector<uint8_t>& payload) {
  check_not_lost();
  StepHeader h;
  h.command = command;
  h.arg = arg;
  h.arg2 = arg2;
  h.payload_bytes = static_cast<int64_t>(payload.size());
  const auto deadline = std::chrono::steady_clock::now() + worker_timeout_;
  comm::Request req = world_.ibroadcast(&h, sizeof h, 0);
  wait_for(req, deadline, "the workers did not take a step message");
  if (!payload.empty()) {
    comm::Request body = world_.ibroadcast(const_cast<uint8_t*>(payload.data()), payload.size(), 0);
    wait_for(body, deadline, "the workers did not take a step message");
  }
}

std::vector<std::vector<uint8_t>> RemoteEngine::gather_replies(std::chrono::milliseconds timeout) {
  const size_t workers = vocab_rows_.size();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<uint64_t> sizes(workers, 0);
  std::vector<comm::Request> requests;
  requests.reserve(workers);
  for (size_t w = 0; w < workers; ++w) requests.push_back(world_.irecv(&sizes[w], sizeof(uint64_t), static_cast<int>(w + 1), kReplyTag));
  for (size_t w = 0; w < workers; ++w) {
    try {
      wait_until(requests[w], deadline);
    } catch (const Error& e) {
      // Name every worker that is silent, not only the first one waited for (a healthy worker
      // blocked in a collective with a lost one is silent too).
      std::vector<size_t> silent = {w + 1};
      for (size_t v = w + 1; v < workers; ++v) {
        bool answered = false;
        try {
          answered = world_.test(requests[v]);
        } catch (const Error&) {
        }
        if (!answered) silent.push_back(v + 1);
      }
      const double seconds = std::chrono::duration<double>(timeout).count();
      if (silent.size() == 1) {
        lose(fmt::format("worker {} (rank {}) did not answer within {:.0f} s: it, or a worker it waits for, is lost ({})", w + 1,
                         w + 1, seconds, e.what()));
      }
      lose(fmt::format("workers {} (ranks {}) did not answer within {:.0f} s: they, or a worker they wait for, are lost ({})",
                       fmt::join(silent, ", "), fmt::join(silent, ", "), seconds, e.what()));
    }
  }
  std::vector<std::vector<uint8_t>> out(workers);
  requests.clear();
  for (size_t w = 0; w < workers; ++w) {
    if (sizes[w] > (uint64_t{1} << 40)) lose(fmt::format("worker {} announced a reply of {} bytes", w + 1, sizes[w]));
    out[w].resize(static_cast<size_t>(sizes[w]));
    if (sizes[w] > 0) requests.push_back(world_.irecv(out[w].data(), out[w].size(), static_cast<int>(w + 1), kReplyTag));
  }
  for (comm::Request& r : requests) wait_for(r, deadline, "a worker's reply did not arrive in time");
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
  for (const std::vector<uint8_t>& bytes : gather_replies(load_timeout_)) {
    step::WorkerInfo m;
    if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) fail("worker {}: malformed init reply", w);
    infos.push_back(WorkerLoadInfo{m.weight_bytes(), m.kv_bytes(), m.rss_bytes(), m.peak_rss_bytes(), m.expert_weight_bytes(),
                                   m.config_fingerprint(), m.weights_fingerprint()});
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
  const std::vector<std::vector<uint8_t>> replies = gather_replies(worker_timeout_);
  std::vector<step::StepResult> results(replies.size());
  figures_.assign(replies.size(), {});
  for (size_t w = 0; w < replies.size(); ++w) {
    step::StepResult& r = results[w];
    if (!r.ParseFromArray(replies[w].data(), static_cast<int>(replies[w].size()))) fail("worker {}: malformed step result", w + 1);
    if (!r.error().empty()) fail("worker {}: {}", w + 1, r.error());
    if (r.rows_size() != static_cast<int>(rows.size())) fail("worker {}: {} rows in the step result, expected {}", w + 1, r.rows_size(), rows.size());
    figures_[w] = figures_of(r.stats());
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
      p.lse_t_rel = m.lse_t_rel();
      p.target_logit = std::numeric_limits<float>::quiet_NaN();
      if (m.has_target_logit()) {
        const int32_t target = rows[row].target;
        if (target < vocab_rows_[w].begin || target >= vocab_rows_[w].end) {
          fail("worker {}: a target logit for token {}, outside its vocabulary rows", w + 1, target);
        }
        p.target_logit = m.target_logit();
      }
    }
    out[row] = merge_row_candidates(parts, rows[row]);
  }
}

void RemoteEngine::forward(const StepBatch& batch, std::vector<float>& logits) {
  send(static_cast<uint32_t>(StepCommand::kStep), 0, 0, encode_step_plan(batch, {}, true));
  const std::vector<std::vector<uint8_t>> replies = gather_replies(worker_timeout_);
  const int64_t R = static_cast<int64_t>(batch.logit_rows.size());
  logits.assign(static_cast<size_t>(R * vocab_size_), 0.0f);
  for (size_t w = 0; w < vocab_rows_.size(); ++w) {
    const Range& vr = vocab_rows_[w];
    const size_t expect = static_cast<size_t>(R * vr.size()) * sizeof(float);
    if (replies[w].size() != expect) fail("worker {} sent {} bytes of logits, expected {}", w + 1, replies[w].size(), expect);
    for (int64_t r = 0; r < R; ++r) {
      std::memcpy(logits.data() + r * vocab_size_ + vr.begin, replies[w].data() + r * vr.size() * sizeof(float),
                  static_cast<size_t>(vr.size()) * sizeof(float));
    }
  }
}

void RemoteEngine::row_logits(int row, std::vector<float>& logits) {
  send(static_cast<uint32_t>(StepCommand::kRowLogits), row, 0, {});
  const std::vector<std::vector<uint8_t>> replies = gather_replies(worker_timeout_);
  logits.assign(static_cast<size_t>(vocab_size_), 0.0f);
  for (size_t w = 0; w < vocab_rows_.size(); ++w) {
    const Range& vr = vocab_rows_[w];
    const size_t expect = static_cast<size_t>(vr.size()) * sizeof(float);
    if (replies[w].size() != expect) fail("worker {} sent {} bytes of a logits row, expected {}", w + 1, replies[w].size(), expect);
    std::memcpy(logits.data() + vr.begin, replies[w].data(), expect);
  }
}

void RemoteEngine::row_ranks(const std::vector<int>& rows, const std::vector<float>& values, std::vector<int64_t>& counts) {
  step::RankQuery query;
  query.mutable_rows()->Assign(rows.begin(), rows.end());
  query.mutable_values()->Assign(values.begin(), values.end());
  std::vector<uint8_t> payload(query.ByteSizeLong());
  if (!query.SerializeToArray(payload.data(), static_cast<int>(payload.size()))) fail("row rank query: serialisation failed");
  send(static_cast<uint32_t>(StepCommand::kRowRanks), 0, 0, payload);
  const std::vector<std::vector<uint8_t>> replies = gather_replies(worker_timeout_);
  counts.assign(rows.size(), 0);
  for (size_t w = 0; w < replies.size(); ++w) {
    step::RankCounts c;
    if (!c.ParseFromArray(replies[w].data(), static_cast<int>(replies[w].size())) || c.counts_size() != static_cast<int>(rows.size())) {
      fail("worker {}: malformed row rank reply", w + 1);
    }
    for (size_t i = 0; i < rows.size(); ++i) counts[i] += c.counts(static_cast<int>(i));
  }
}

void RemoteEngine::ping() {
  send(static_cast<uint32_t>(StepCommand::kPing), 0, 0, {});
  const std::vector<std::vector<uint8_t>> replies = gather_replies(worker_timeout_);
  figures_.assign(replies.size(), {});
  for (size_t w = 0; w < replies.size(); ++w) {
    step::WorkerStats s;
    if (!s.ParseFromArray(replies[w].data(), static_cast<int>(replies[w].size()))) fail("worker {}: malformed heartbeat reply", w + 1);
    figures_[w] = figures_of(s);
  }
}

void RemoteEngine::shutdown() {
  if (shut_down_ || lost()) return;  // lost workers cannot be told anything
  shut_down_ = true;
  send(static_cast<uint32_t>(StepCommand::kShutdown), 0, 0, {});
}

}  // namespace shardlm
