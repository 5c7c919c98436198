#include "coordinator/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "coordinator/request_error.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

struct Scheduler::Request {
  uint64_t id = 0;
  GenerationRequest request;
  std::shared_ptr<GenerationObserver> observer;
  Sampler sampler;
  int seq = -1;
  int64_t prompt_size = 0;
  std::vector<int32_t> tokens;  // the sequence: the prompt (moved out of `request`), then each sampled token
  int64_t fed = 0;              // tokens in the KV cache (the rest wait to be fed)
  int32_t generated = 0;
  int64_t reserved = 0;  // KV positions reserved: whole blocks, for every position written so far
  bool finished = false;
  Clock::time_point submitted, scheduled, first_token, last_token_time;
  bool was_scheduled = false;
  // With penalties: each generated token's count. With penalties, a logit bias or min_tokens: what
  // does not change while it runs, the prompt's distinct tokens (with a repetition penalty: count 0) and the
  // logit bias's (count -1 when not in the prompt), ascending; `fixed_min` also bans the stop tokens
  // (bias -inf) for the first min_tokens tokens.
  std::map<int32_t, int32_t> output_counts;
  LogitPenalties fixed, fixed_min;
  // prompt_logprobs: the prompt positions' so far (from position 1), until sent to the observer.
  std::vector<GeneratedToken> prompt_lp;
  bool prompt_lp_sent = false;
  std::unique_ptr<TokenConstraint> constraint;  // guided decoding

  Request(uint64_t id_, GenerationRequest r, std::shared_ptr<GenerationObserver> o)
      : id(id_),
        request(std::move(r)),
        observer(std::move(o)),
        sampler(request.sampling),
        prompt_size(static_cast<int64_t>(request.prompt.size())),
        tokens(std::move(request.prompt)),
        submitted(Clock::now()) {
    if (request.guided) constraint = request.guided->start();
    std::vector<int32_t> prompt_set;
    if (request.sampling.repetition_penalty != 1.0f) {
      prompt_set = tokens;
      std::sort(prompt_set.begin(), prompt_set.end());
      prompt_set.erase(std::unique(prompt_set.begin(), prompt_set.end()), prompt_set.end());
    }
    fixed = fixed_tokens(prompt_set, request.logit_bias);
    if (request.min_tokens > 0 && !request.stop_token_ids.empty()) {
      std::map<int32_t, float> banned = request.logit_bias;
      for (int32_t t : request.stop_token_ids) banned[t] = -std::numeric_limits<float>::infinity();
      fixed_min = fixed_tokens(prompt_set, banned);
    }
  }
  // The prompt's tokens (count 0) merged with the biased ones (count -1 unless in the prompt).
  static LogitPenalties fixed_tokens(const std::vector<int32_t>& prompt_set, const std::map<int32_t, float>& biases) {
    LogitPenalties f;
    auto add = [&](int32_t token, int32_t count, float bias) {
      f.tokens.push_back(token);
      f.counts.push_back(count);
      f.biases.push_back(bias);
    };
    auto bias = biases.begin();
    for (int32_t token : prompt_set) {
      for (; bias != biases.end() && bias->first < token; ++bias) add(bias->first, -1, bias->second);
      const bool biased = bias != biases.end() && bias->first == token;
      add(token, 0, biased ? bias->second : 0.0f);
      if (biased) ++bias;
    }
    for (; bias != biases.end(); ++bias) add(bias->first, -1, bias->second);
    if (biases.empty()) f.biases.clear();
    return f;
  }
  bool before_min_tokens() const { return generated < request.min_tokens && !request.stop_token_ids.empty(); }
  bool changes_logits() const { return request.sampling.penalised() || !request.logit_bias.empty() || before_min_tokens(); }
  int64_t unfed() const { return static_cast<int64_t>(tokens.size()) - fed; }
  void add_generated(int32_t token) {
    tokens.push_back(token);
    if (request.sampling.penalised()) ++output_counts[token];
  }
  // What the workers select this sequence's next token from: candidates, temperature, penalties.
  RowRequest row() const {
    const SamplingParams& s = request.sampling;
    RowRequest row{candidates_needed(s, request.top_logprobs), s.temperature, {}};
    if (!changes_logits()) return row;
    const LogitPenalties& base = before_min_tokens() ? fixed_min : fixed;
    LogitPenalties& p = row.penalties;
    p.repetition = s.repetition_penalty;
    p.presence = s.presence_penalty;
    p.frequency = s.frequency_penalty;
    // The fixed tokens merged with the output's (which take their counts), ascending.
    const bool biased = !base.biases.empty();
    size_t f = 0;
    auto take_fixed_before = [&](int64_t limit) {
      for (; f < base.tokens.size() && base.tokens[f] < limit; ++f) {
        p.tokens.push_back(base.tokens[f]);
        p.counts.push_back(base.counts[f]);
        if (biased) p.biases.push_back(base.biases[f]);
      }
    };
    for (const auto& [token, count] : output_counts) {
      take_fixed_before(token);
      float bias = 0.0f;
      if (f < base.tokens.size() && base.tokens[f] == token) {
        if (biased) bias = base.biases[f];
        ++f;
      }
      p.tokens.push_back(token);
      p.counts.push_back(count);
      if (biased) p.biases.push_back(bias);
    }
    take_fixed_before(std::numeric_limits<int64_t>::max());
    return row;
  }
  // Whether the prompt's log-probabilities are still being computed (the first prefill; a
  // preemption keeps those already computed).
  bool collecting_prompt_logprobs() const { return request.prompt_logprobs >= 0 && !prompt_lp_sent; }
  // Sends the prompt's log-probabilities (once all are in).
  void send_prompt_logprobs() {
    if (!collecting_prompt_logprobs()) return;
    prompt_lp_sent = true;
    observer->on_prompt_logprobs(prompt_lp);
    prompt_lp = {};
  }
  // Feeding more than the one token sampled last: the prompt, or after a preemption the prompt and
  // the tokens generated so far (recomputed); its last chunk yields the next token.
  bool prefilling() const { return generated == 0 || unfed() > 1; }
};

Scheduler::Scheduler(StepEngine& engine, SchedulerOptions options) : engine_(engine), options_(options) {
  if (options_.max_step_tokens < 1) fail("scheduler: max step tokens must be positive");
  if (options_.max_running < 1) fail("scheduler: max running sequences must be positive");
  options_.max_running = std::min(options_.max_running, engine_.max_sequences());
  thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() { stop(false); }

uint64_t Scheduler::submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) {
  std::vector<Submission> one;
  one.push_back(Submission{std::move(request), std::move(observer)});
  return submit_group(std::move(one)).front();
}

void Scheduler::validate(const GenerationRequest& request, const GenerationObserver* observer) const {
  if (!observer) fail("scheduler: a request needs an observer");
  if (request.prompt.empty()) fail_request(RequestErrorCode::kInvalidRequest, "the prompt is empty");
  if (request.max_tokens < 1) fail_request(RequestErrorCode::kInvalidRequest, "max_tokens must be at least 1 (got {})", request.max_tokens);
  if (request.min_tokens < 0 || request.min_tokens > request.max_tokens) {
    fail_request(RequestErrorCode::kInvalidRequest, "min_tokens must be in [0, max_tokens {}] (got {})", request.max_tokens, request.min_tokens);
  }
  if (request.top_logprobs > 20) fail_request(RequestErrorCode::kInvalidRequest, "top_logprobs must be at most 20 (got {})", request.top_logprobs);
  if (request.prompt_logprobs < -1 || request.prompt_logprobs > 20) {
    fail_request(RequestErrorCode::kInvalidRequest, "prompt_logprobs must be in [0, 20] (got {})", request.prompt_logprobs);
  }
  try {
    validate_sampling(request.sampling);
  } catch (const Error& e) {
    throw RequestError(RequestErrorCode::kInvalidRequest, e.what());
  }
  const int64_t vocab = engine_.config().vocab_size;
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= vocab) fail_request(RequestErrorCode::kInvalidRequest, "prompt token {} is outside the vocabulary (size {})", t, vocab);
  }
  for (const auto& [t, bias] : request.logit_bias) {
    if (t < 0 || t >= vocab) fail_request(RequestErrorCode::kInvalidRequest, "logit_bias token {} is outside the vocabulary (size {})", t, vocab);
    if (!(bias >= -100.0f && bias <= 100.0f)) fail_request(RequestErrorCode::kInvalidRequest, "logit_bias of token {} must be in [-100, 100] (got {})", t, bias);
  }
  const int64_t need = static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (need > engine_.max_sequence_tokens()) {
    fail_request(RequestErrorCode::kContextLength,
                 "prompt ({} tokens) + max_tokens ({}) = {} exceeds the context of {} tokens", request.prompt.size(),
                 request.max_tokens, need, engine_.max_sequence_tokens());
  }
  if (need > engine_.kv_capacity_tokens()) {
    fail_request(RequestErrorCode::kContextLength,
                 "prompt ({} tokens) + max_tokens ({}) = {} exceeds the KV cache capacity of {} tokens", request.prompt.size(),
                 request.max_tokens, need, engine_.kv_capacity_tokens());
  }
}

std::vector<uint64_t> Scheduler::submit_group(std::vector<Submission> group) {
  if (group.empty()) fail("scheduler: an empty group of requests");
  for (const Submission& s : group) validate(s.request, s.observer.get());
  const Priority priority = group.front().request.priority;
  const int64_t size = static_cast<int64_t>(group.size());
  std::lock_guard<std::mutex> lock(mutex_);
  if (!lost_.empty()) fail_request(RequestErrorCode::kUnavailable, "{}; the server is restarting", lost_);
  if (stopping_) fail_request(RequestErrorCode::kUnavailable, "the server is shutting down");
  // Batch lines waiting do not count against an interactive request: a batch job's runner keeps
  // lines queued, which would otherwise refuse interactive requests on an idle server.
  int64_t counted = static_cast<int64_t>(waiting_.size());
  if (priority == Priority::kInteractive) {
    counted = std::count_if(waiting_.begin(), waiting_.end(),
                            [](const std::shared_ptr<Request>& r) { return r->request.priority == Priority::kInteractive; });
  }
  if (size > options_.max_waiting) {
    fail_request(RequestErrorCode::kInvalidRequest, "{} sequences at once are more than this server queues ({})", size,
                 options_.max_waiting);
  }
  if (counted + size > options_.max_waiting) {
    fail_request(RequestErrorCode::kQueueFull, "the request queue is full ({} waiting)", counted);
  }
  std::vector<uint64_t> ids;
  for (Submission& s : group) {
    const uint64_t id = next_id_++;
    waiting_.push_back(std::make_shared<Request>(id, std::move(s.request), std::move(s.observer)));
    ids.push_back(id);
  }
  stats_.waiting = static_cast<int32_t>(waiting_.size());
  wake_.notify_one();
  return ids;
}

void Scheduler::end_early(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.emplace_back(id, FinishReason::kStop);
  wake_.notify_one();
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.emplace_back(id, FinishReason::kCancelled);
  wake_.notify_one();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Scheduler::set_hooks(SchedulerHooks hooks) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hooks_ = std::move(hooks);
    heartbeat_soon_ = true;  // the new hooks get the workers' figures at once, not a heartbeat later
  }
  wake_.notify_all();
}

void Scheduler::stop(bool drain) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    draining_ = drain;
    wake_.notify_one();
  }
  thread_.join();
}

void Scheduler::finish(Request& r, FinishReason reason, const std::string& error, RequestErrorCode code) {
  if (r.finished) return;
  r.finished = true;
  if (r.seq >= 0 && lost_.empty()) {  // lost workers hold nothing any more
    try {
      engine_.free_sequence(r.seq);
    } catch (const std::exception& e) {
      spdlog::error("freeing sequence {}: {}", r.seq, e.what());
    }
    r.seq = -1;
  }
  kv_reserved_ -= r.reserved;
  r.reserved = 0;
  const Clock::time_point now = Clock::now();
  GenerationSummary s;
  s.reason = reason;
  s.error = error;
  s.error_code = code;
  s.prompt_tokens = r.prompt_size;
  s.completion_tokens = r.generated;
  const Clock::time_point scheduled = r.was_scheduled ? r.scheduled : now;
  s.timings.queue_s = seconds(r.submitted, scheduled);
  if (r.generated > 0) {
    s.timings.prefill_s = seconds(scheduled, r.first_token);
    s.timings.ttft_s = seconds(r.submitted, r.first_token);
    s.timings.decode_s = seconds(r.first_token, r.last_token_time);
  }
  s.timings.total_s = seconds(r.submitted, now);
  SchedulerHooks hooks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hooks = hooks_;
  }
  if (hooks.finished) hooks.finished(s);
  try {
    r.observer->on_finish(s);
  } catch (const std::exception& e) {
    spdlog::error("request {}: observer failed: {}", r.id, e.what());
  }
}

size_t Scheduler::preemption_victim() const {
  for (size_t i = running_.size(); i-- > 0;) {
    if (running_[i]->request.priority == Priority::kBatch) return i;
  }
  return running_.size() - 1;
}

void Scheduler::preempt(size_t index) {
  std::shared_ptr<Request> r = running_[index];
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  if (r->seq >= 0) {
    try {
      engine_.free_sequence(r->seq);
    } catch (const std::exception& e) {
      spdlog::error("freeing sequence {}: {}", r->seq, e.what());
    }
    r->seq = -1;
  }
  kv_reserved_ -= r->reserved;
  r->reserved = 0;
  r->fed = 0;
  ++stats_.preemptions;
  spdlog::info("request {} preempted: the KV cache is full; its {} tokens are recomputed once there is room", r->id,
               r->tokens.size());
  waiting_.push_front(std::move(r));
}

void Scheduler::heartbeat_if_idle(bool worked) {
  const auto now = Clock::now();
  if (worked) {
    last_engine_contact_ = now;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!running_.empty() || !waiting_.empty()) return;
  }
  if (!heartbeat_soon_.exchange(false) && seconds(last_engine_contact_, now) < options_.heartbeat_s) return;
  engine_.heartbeat();
  last_engine_contact_ = Clock::now();
  SchedulerHooks hooks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hooks = hooks_;
  }
  if (hooks.heartbeat) hooks.heartbeat();
}

void Scheduler::run() {
  std::string lost;
  for (;;) {
    bool worked = false;
    try {
      worked = iterate();
      heartbeat_if_idle(worked);
    } catch (const EngineUnavailable& e) {
      lost = e.what();
      spdlog::error("scheduler: {}", lost);
      break;
    } catch (const std::exception& e) {
      spdlog::error("scheduler: {}", e.what());
    }
    std::unique_lock<std::mutex> lock(mutex_);
    const bool idle = running_.empty() && waiting_.empty();
    if (stopping_ && (!draining_ || idle)) break;
    if (!worked && cancelled_.empty()) {
      // Nothing runnable: sleep until a submit, cancel or stop (no polling while idle; the
      // heartbeat needs a wake-up every heartbeat_s at most).
      const double nap_ms = idle ? std::clamp(options_.heartbeat_s * 1000.0, 5.0, 1000.0) : 5.0;
      wake_.wait_for(lock, std::chrono::milliseconds(static_cast<int64_t>(nap_ms)));
    }
  }
  if (!lost.empty()) {
    // The workers are gone: fail everything with "unavailable", refuse new requests, tell the
    // program; the engine cannot be shut down.
    std::vector<std::shared_ptr<Request>> rest;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      lost_ = lost;
      rest.assign(running_.begin(), running_.end());
      rest.insert(rest.end(), waiting_.begin(), waiting_.end());
      running_.clear();
      waiting_.clear();
      stats_.running = stats_.waiting = 0;
    }
    for (auto& r : rest) finish(*r, FinishReason::kError, lost, RequestErrorCode::kUnavailable);
    SchedulerHooks hooks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      hooks = hooks_;
    }
    if (hooks.engine_lost) hooks.engine_lost(lost);
    return;
  }
  // Everything still here ends with "unavailable" (the client may retry elsewhere or later; a batch
  // line runs again).
  std::vector<std::shared_ptr<Request>> rest;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rest.assign(running_.begin(), running_.end());
    rest.insert(rest.end(), waiting_.begin(), waiting_.end());
    running_.clear();
    waiting_.clear();
    stats_.running = stats_.waiting = 0;
  }
  for (auto& r : rest) finish(*r, FinishReason::kError, "the server is shutting down", RequestErrorCode::kUnavailable);
  try {
    engine_.shutdown();
  } catch (const std::exception& e) {
    spdlog::error("engine shutdown: {}", e.what());
  }
}

bool Scheduler::iterate() {
  std::vector<std::shared_ptr<Request>> batch_requests;
  std::vector<std::pair<std::shared_ptr<Request>, FinishReason>> finished_now;
  StepBatch batch;
  std::vector<RowRequest> rows;
  std::vector<Request*> row_owner;
  std::vector<int64_t> row_prompt_position;  // per row: the prompt position whose log-probability it gives, or -1 (a sampling row)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Cancellations.
    if (!cancelled_.empty()) {
      // The first word on a request counts (a client's cancel after its text ended stays a stop).
      auto ended = [&](const std::shared_ptr<Request>& r) {
        for (const auto& [id, reason] : cancelled_) {
          if (id == r->id) {
            finished_now.emplace_back(r, reason);
            return true;
          }
        }
        return false;
      };
      for (auto it = running_.begin(); it != running_.end();) {
        if (ended(*it)) {
          it = running_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (ended(*it)) {
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      cancelled_.clear();
    }
  }
  for (auto& [r, reason] : finished_now) finish(*r, reason);
  const bool cancelled_any = !finished_now.empty();

  // running_ and kv_reserved_ belong to this thread; waiting_ and stats_ are shared with submit().
  std::unique_lock<std::mutex> lock(mutex_);
  // Admission: interactive requests first (FIFO), then batch requests up to their bound.
  const int block = std::max(engine_.kv_block(), 1);
  auto whole_blocks = [&](int64_t positions) { return (positions + block - 1) / block * block; };
  std::vector<std::shared_ptr<Request>> overflowed;
  // The workers' pools hold the capacity rounded up to whole blocks.
  const int64_t capacity = whole_blocks(engine_.kv_capacity_tokens());
  // KV is reserved as sequences grow: each decoding sequence's next position first (oldest first),
  // preempting when the cache is full — batch-priority sequences first, the most recently scheduled
  // first — which are recomputed once there is room again. A request alone always fits (submit
  // checked it), so the oldest interactive one always advances.
  for (size_t i = 0; i < running_.size(); ++i) {
    Request& r = *running_[i];
    if (r.prefilling()) continue;  // its admission reserved everything its prefill writes
    const int64_t grow = whole_blocks(r.fed + 1) - r.reserved;
    if (grow <= 0) continue;
    bool preempted_self = false;
    while (kv_reserved_ + grow > capacity) {
      if (running_.size() == 1) {
        // Alone and still too long (submit's check rules this out): end it rather than loop.
        overflowed.push_back(running_.back());
        running_.pop_back();
        preempted_self = true;
        break;
      }
      const size_t victim = preemption_victim();
      preempt(victim);
      if (victim == i) {
        preempted_self = true;
        break;
      }
      if (victim < i) --i;
    }
    if (preempted_self) {
      --i;  // the next request moved into this slot
      continue;
    }
    r.reserved += grow;
    kv_reserved_ += grow;
  }
  int32_t batch_running = 0;
  for (auto& r : running_) batch_running += r->request.priority == Priority::kBatch;
  for (int pass = 0; pass < 2; ++pass) {
    const Priority want = pass == 0 ? Priority::kInteractive : Priority::kBatch;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      Request& r = **it;
      if (r.request.priority != want) {
        ++it;
        continue;
      }
      if (static_cast<int32_t>(running_.size()) >= options_.max_running) break;
      if (want == Priority::kBatch && batch_running >= options_.max_batch_running) break;
      const int64_t need = whole_blocks(static_cast<int64_t>(r.tokens.size()));  // its prefill
      if (kv_reserved_ + need > capacity) break;  // FIFO: wait for room
      r.seq = engine_.new_sequence();
      r.reserved = need;
      kv_reserved_ += r.reserved;
      if (!r.was_scheduled) r.scheduled = Clock::now();
      r.was_scheduled = true;
      running_.push_back(*it);
      batch_running += want == Priority::kBatch;
      it = waiting_.erase(it);
    }
  }
  // The step: one decode token per generating sequence, then prompt chunks within the token budget.
  int32_t budget = options_.max_step_tokens;
  int32_t prompt_tokens = 0, decode_tokens = 0;
  for (auto& r : running_) {
    if (r->prefilling()) continue;
    batch.add(r->seq, static_cast<int32_t>(r->fed), {r->tokens[static_cast<size_t>(r->fed)]}, false, true);
    ++r->fed;
    rows.push_back(r->row());
    row_owner.push_back(r.get());
    row_prompt_position.push_back(-1);
    batch_requests.push_back(r);
    --budget;
    ++decode_tokens;
  }
  for (auto& r : running_) {
    if (!r->prefilling() || budget <= 0) continue;
    const int64_t remaining = r->unfed();
    const bool collect = r->collecting_prompt_logprobs();
    // A chunk whose rows all yield logits (prompt log-probabilities) is kept short: every row's
    // logits are a vocabulary row on each worker.
    const auto n = static_cast<int32_t>(std::min<int64_t>({remaining, budget, collect ? kPromptLogprobRowsPerStep : budget}));
    std::vector<int32_t> chunk(r->tokens.begin() + r->fed, r->tokens.begin() + r->fed + n);
    const bool last = n == remaining;
    const int32_t first_row = batch.size();
    batch.add(r->seq, static_cast<int32_t>(r->fed), chunk, false, false);
    if (collect) {
      // Row i (position fed + i) gives the logits of position fed + i + 1: those of the prompt not yet had.
      for (int32_t i = 0; i < n; ++i) {
        const int64_t target = r->fed + i + 1;
        if (target <= static_cast<int64_t>(r->prompt_lp.size()) || target >= r->prompt_size) continue;
        RowRequest row{std::max<int32_t>(1, r->request.prompt_logprobs), 1.0f, {}};
        row.target = r->tokens[static_cast<size_t>(target)];
        batch.logit_rows.push_back(first_row + i);
        rows.push_back(std::move(row));
        row_owner.push_back(r.get());
        row_prompt_position.push_back(target);
      }
    }
    if (last) {
      batch.logit_rows.push_back(first_row + n - 1);
      rows.push_back(r->row());
      row_owner.push_back(r.get());
      row_prompt_position.push_back(-1);
    }
    r->fed += n;
    batch_requests.push_back(r);
    budget -= n;
    prompt_tokens += n;
  }
  stats_.running = static_cast<int32_t>(running_.size());
  stats_.waiting = static_cast<int32_t>(waiting_.size());
  stats_.kv_usage = capacity > 0 ? static_cast<double>(kv_reserved_) / capacity : 0.0;
  lock.unlock();
  for (auto& r : overflowed) {
    finish(*r, FinishReason::kError, fmt::format("the KV cache ({} positions) cannot hold this sequence", capacity),
           RequestErrorCode::kInternal);
  }
  if (batch.size() == 0) return cancelled_any || !overflowed.empty();

  // Run it without the lock: submit/cancel only queue, and observers may call cancel().
  const Clock::time_point t0 = Clock::now();
  std::vector<RowCandidates> out;
  std::vector<std::shared_ptr<Request>> done;
  try {
    engine_.step(batch, rows, out);
  } catch (const EngineUnavailable&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::error("step failed: {}", e.what());
    for (auto& r : batch_requests) finish(*r, FinishReason::kError, e.what());
    running_.erase(std::remove_if(running_.begin(), running_.end(), [](const std::shared_ptr<Request>& r) { return r->finished; }),
                   running_.end());
    return true;
  }
  const Clock::time_point now = Clock::now();
  SchedulerHooks hooks;
  {
    std::lock_guard<std::mutex> relock(mutex_);
    hooks = hooks_;
  }
  // The ranks of the prompt tokens whose log-probabilities this step gives.
  std::vector<int> rank_rows;
  std::vector<float> rank_values;
  for (size_t i = 0; i < row_owner.size(); ++i) {
    if (row_prompt_position[i] >= 0 && std::isfinite(out[i].target_logit) && std::isfinite(out[i].lse)) {
      rank_rows.push_back(static_cast<int>(i));
      rank_values.push_back(out[i].target_logit);
    }
  }
  std::vector<int64_t> ranks;
  if (!rank_rows.empty()) {
    try {
      engine_.row_ranks(rank_rows, rank_values, ranks);
    } catch (const EngineUnavailable&) {
      throw;
    } catch (const std::exception& e) {
      spdlog::error("ranking prompt tokens failed: {}", e.what());
      ranks.assign(rank_rows.size(), 0);
      for (int row : rank_rows) finish(*row_owner[static_cast<size_t>(row)], FinishReason::kError, e.what());
    }
  }
  size_t next_rank = 0;
  for (size_t i = 0; i < row_owner.size(); ++i) {
    Request& r = *row_owner[i];
    if (r.finished) continue;  // an earlier row of it failed
    const RowCandidates& c = out[i];
    const int row = static_cast<int>(i);
    std::vector<float> full;
    bool have_full = false;
    auto fetch = [&](std::vector<float>& logits) {
      engine_.row_logits(row, logits);  // the model's: penalised here as the candidates were
      apply_penalties(logits.data(), static_cast<int64_t>(logits.size()), 0, rows[i].penalties);
      full = logits;
      have_full = true;
    };
    // A NaN or infinite logit anywhere in the row makes its log-sum-exp non-finite: the model's output
    // is garbage (corrupt weights, an overflow), not something to sample from.
    if (!std::isfinite(c.lse)) {
      // the position the logits are for
      const int64_t position = row_prompt_position[i] >= 0 ? row_prompt_position[i] : static_cast<int64_t>(r.tokens.size());
      spdlog::error("request {}: the model's logits are not finite at position {} (corrupt or overflowing weights?)", r.id,
                    position);
      finish(r, FinishReason::kError,
             fmt::format("the model's logits are not finite (NaN or infinity) at position {}: its weights are corrupt or "
                         "overflow in this format",
                         position),
             RequestErrorCode::kInternal);
      continue;
    }
    if (row_prompt_position[i] >= 0) {
      if (!std::isfinite(c.target_logit)) {
        finish(r, FinishReason::kError,
               fmt::format("the log-probability of prompt position {} is missing or not finite", row_prompt_position[i]),
               RequestErrorCode::kInternal);
        continue;
      }
      GeneratedToken p;
      p.token = rows[i].target;
      p.logprob = c.target_logit - c.lse;
      p.rank = ranks.at(next_rank++);
      for (int32_t k = 0; k < r.request.prompt_logprobs && k < static_cast<int32_t>(c.top.size()); ++k) {
        p.top.push_back(TokenLogprob{c.top[k].token, c.top[k].logit - c.lse});
      }
      r.prompt_lp.push_back(std::move(p));
      continue;
    }
    int32_t token;
    RowCandidates guided;  // with a constraint: the candidates of the row it leaves
    const RowCandidates* chosen_from = &c;
    try {
      if (r.constraint) {
        // The whole row (penalised), every token the constraint does not allow at minus infinity.
        std::vector<float> logits;
        fetch(logits);
        std::vector<uint8_t> allowed;
        const bool complete = r.constraint->allowed_tokens(allowed);
        allowed.resize(logits.size(), 0);
        for (int32_t t : r.request.stop_token_ids) {
          if (t >= 0 && static_cast<size_t>(t) < allowed.size()) allowed[static_cast<size_t>(t)] = complete;
        }
        bool any = false;
        for (size_t v = 0; v < logits.size(); ++v) {
          if (allowed[v] && logits[v] > -std::numeric_limits<float>::infinity()) {
            any = true;
          } else {
            logits[v] = -std::numeric_limits<float>::infinity();
          }
        }
        if (!any) {
          // A whole answer that nothing may follow (its stop tokens ignored or banned) ends here.
          if (complete) {
            finish(r, FinishReason::kStop);
          } else {
            finish(r, FinishReason::kError,
                   fmt::format("guided decoding: no token can continue the output as {}", r.request.guided->describe()),
                   RequestErrorCode::kInvalidRequest);
          }
          continue;
        }
        full = logits;
        token = r.sampler.sample(full.data(), static_cast<int64_t>(full.size()));
        // A draw at the very top of [0, 1) can fall past the last token of non-zero probability.
        if (!allowed[static_cast<size_t>(token)]) token = argmax(full.data(), static_cast<int64_t>(full.size()));
        guided = select_row_candidates(full.data(), static_cast<int64_t>(full.size()), 0,
                                       RowRequest{std::max<int32_t>(1, r.request.top_logprobs), 1.0f});
        // Log-probabilities over the tokens allowed: the others are no alternatives.
        guided.top.erase(std::remove_if(guided.top.begin(), guided.top.end(),
                                        [](const TokenLogit& t) { return t.logit == -std::numeric_limits<float>::infinity(); }),
                         guided.top.end());
        chosen_from = &guided;
      } else {
        token = r.sampler.sample(c, fetch);
      }
    } catch (const EngineUnavailable&) {
      throw;
    } catch (const std::exception& e) {
      finish(r, FinishReason::kError, e.what());
      continue;
    }
    GeneratedToken g;
    g.token = token;
    if (r.request.top_logprobs >= 0) {
      const RowCandidates& cands = *chosen_from;
      float logit = 0.0f;
      bool found = false;
      for (const TokenLogit& t : cands.top) {
        if (t.token == token) {
          logit = t.logit;
          found = true;
          break;
        }
      }
      if (!found) {
        if (!have_full) {
          std::vector<float> logits;
          fetch(logits);
        }
        logit = full.at(static_cast<size_t>(token));
      }
      g.logprob = logit - cands.lse;
      for (int32_t k = 0; k < r.request.top_logprobs && k < static_cast<int32_t>(cands.top.size()); ++k) {
        g.top.push_back(TokenLogprob{cands.top[k].token, cands.top[k].logit - cands.lse});
      }
    }
    if (r.generated == 0) {
      r.first_token = now;
      if (hooks.first_token) hooks.first_token(seconds(r.submitted, now));
    } else if (hooks.inter_token) {
      hooks.inter_token(seconds(r.last_token_time, now));
    }
    r.last_token_time = now;
    try {
      r.send_prompt_logprobs();
    } catch (const std::exception& e) {
      finish(r, FinishReason::kError, fmt::format("the prompt's log-probabilities could not be delivered: {}", e.what()),
             RequestErrorCode::kInternal);
      continue;
    }
    const bool stop_token = std::find(r.request.stop_token_ids.begin(), r.request.stop_token_ids.end(), token) !=
                            r.request.stop_token_ids.end();
    if (stop_token) {
      ++r.generated;
      finish(r, FinishReason::kStop);
      continue;
    }
    ++r.generated;
    r.add_generated(token);
    try {
      if (r.constraint) r.constraint->accept(token);
      r.observer->on_token(g);
    } catch (const std::exception& e) {
      // A token the request's output cannot take (one the tokenizer does not know): end it with the
      // reason rather than drop the token and report success.
      spdlog::error("request {}: token {} could not be delivered: {}", r.id, token, e.what());
      finish(r, FinishReason::kError, fmt::format("token {} could not be delivered: {}", token, e.what()),
             RequestErrorCode::kInternal);
      continue;
    }
    if (r.generated >= r.request.max_tokens) finish(r, FinishReason::kLength);
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const std::shared_ptr<Request>& r) { return r->finished; }),
                 running_.end());
  {
    std::lock_guard<std::mutex> relock(mutex_);
    ++stats_.steps;
    stats_.running = static_cast<int32_t>(running_.size());
    stats_.kv_usage = capacity > 0 ? static_cast<double>(kv_reserved_) / capacity : 0.0;
  }
  if (hooks.step) {
    StepReport report;
    report.seconds = seconds(t0, now);
    report.prompt_tokens = prompt_tokens;
    report.decode_tokens = decode_tokens;
    report.sampled_tokens = static_cast<int32_t>(std::count(row_prompt_position.begin(), row_prompt_position.end(), -1));
    hooks.step(report);
  }
  return true;
}

}  // namespace shardlm
