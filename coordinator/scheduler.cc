#include "coordinator/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "coordinator/request_error.h"
#include "coordinator/scheduler_request.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Runs an engine call. The engine lost (EngineUnavailable) propagates; any other failure is logged and
// its message returned (nothing when the call worked).
template <class Call>
std::optional<std::string> engine_failure(const char* what, Call&& call) {
  try {
    call();
    return std::nullopt;
  } catch (const EngineUnavailable&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::error("{} failed: {}", what, e.what());
    return std::string(e.what());
  }
}

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

void Scheduler::take_cancelled(std::vector<std::pair<std::shared_ptr<Request>, FinishReason>>& ended) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cancelled_.empty()) return;
  // The first word on a request counts (a client's cancel after its text ended stays a stop).
  auto take = [&](auto& queue) {
    for (auto it = queue.begin(); it != queue.end();) {
      auto word = std::find_if(cancelled_.begin(), cancelled_.end(), [&](const auto& c) { return c.first == (*it)->id; });
      if (word == cancelled_.end()) {
        ++it;
        continue;
      }
      ended.emplace_back(*it, word->second);
      it = queue.erase(it);
    }
  };
  take(running_);
  take(waiting_);
  cancelled_.clear();
}

void Scheduler::reserve_growth(int64_t capacity, std::vector<std::shared_ptr<Request>>& overflowed) {
  // KV is reserved as sequences grow: each decoding sequence's next position first (oldest first),
  // preempting when the cache is full — batch-priority sequences first, the most recently scheduled
  // first — which are recomputed once there is room again. A request alone always fits (submit
  // checked it), so the oldest interactive one always advances.
  for (size_t i = 0; i < running_.size(); ++i) {
    Request& r = *running_[i];
    if (r.prefilling()) continue;  // its admission reserved everything its prefill writes
    const int64_t grow = whole_kv_blocks(r.fed + 1) - r.reserved;
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
}

void Scheduler::admit(int64_t capacity) {
  // Interactive requests first (FIFO), then batch requests up to their bound.
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
      const int64_t need = whole_kv_blocks(static_cast<int64_t>(r.tokens.size()));  // its prefill
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
}

void Scheduler::plan_step(StepBatch& batch, StepRows& rows, std::vector<std::shared_ptr<Request>>& fed, StepReport& report) {
  // One decode token per generating sequence, then prompt chunks within the token budget.
  int32_t budget = options_.max_step_tokens;
  for (auto& r : running_) {
    if (r->prefilling()) continue;
    batch.add(r->seq, static_cast<int32_t>(r->fed), {r->tokens[static_cast<size_t>(r->fed)]}, false, true);
    ++r->fed;
    rows.add(r->row(), r.get(), -1);
    fed.push_back(r);
    --budget;
    ++report.decode_tokens;
  }
  for (auto& r : running_) {
    if (!r->prefilling() || budget <= 0) continue;
    const int64_t remaining = r->unfed();
    const bool collect = r->collecting_prompt_logprobs();
    // A chunk whose rows all yield logits (prompt log-probabilities) is kept short: every row's
    // logits are a vocabulary row on each worker.
    const auto n = static_cast<int32_t>(std::min<int64_t>({remaining, budget, collect ? kPromptLogprobRowsPerStep : budget}));
    std::vector<int32_t> chunk(r->tokens.begin() + r->fed, r->tokens.begin() + r->fed + n);
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
        rows.add(std::move(row), r.get(), target);
      }
    }
    if (n == remaining) {  // the last chunk: its last row gives the next token
      batch.logit_rows.push_back(first_row + n - 1);
      rows.add(r->row(), r.get(), -1);
    }
    r->fed += n;
    fed.push_back(r);
    budget -= n;
    report.prompt_tokens += n;
  }
}

bool Scheduler::iterate() {
  std::vector<std::pair<std::shared_ptr<Request>, FinishReason>> cancelled;
  take_cancelled(cancelled);
  for (auto& [r, reason] : cancelled) finish(*r, reason);

  // running_ and kv_reserved_ belong to this thread; waiting_ and stats_ are shared with submit().
  std::unique_lock<std::mutex> lock(mutex_);
  // The workers' pools hold the capacity rounded up to whole blocks.
  const int64_t capacity = whole_kv_blocks(engine_.kv_capacity_tokens());
  std::vector<std::shared_ptr<Request>> overflowed;
  reserve_growth(capacity, overflowed);
  admit(capacity);
  StepBatch batch;
  StepRows rows;
  std::vector<std::shared_ptr<Request>> fed;  // the requests this step feeds
  StepReport report;
  plan_step(batch, rows, fed, report);
  stats_.running = static_cast<int32_t>(running_.size());
  stats_.waiting = static_cast<int32_t>(waiting_.size());
  stats_.kv_usage = capacity > 0 ? static_cast<double>(kv_reserved_) / capacity : 0.0;
  lock.unlock();
  for (auto& r : overflowed) {
    finish(*r, FinishReason::kError, fmt::format("the KV cache ({} positions) cannot hold this sequence", capacity),
           RequestErrorCode::kInternal);
  }
  if (batch.size() == 0) return !cancelled.empty() || !overflowed.empty();

  // Run it without the lock: submit/cancel only queue, and observers may call cancel().
  const Clock::time_point t0 = Clock::now();
  std::vector<RowCandidates> out;
  if (auto error = engine_failure("step", [&] { engine_.step(batch, rows.rows, out); })) {
    for (auto& r : fed) finish(*r, FinishReason::kError, *error);
    drop_finished();
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
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows.prompt_position[i] >= 0 && std::isfinite(out[i].target_logit) && std::isfinite(out[i].lse)) {
      rank_rows.push_back(static_cast<int>(i));
      rank_values.push_back(out[i].target_logit);
    }
  }
  std::vector<int64_t> ranks;
  if (!rank_rows.empty()) {
    if (auto error = engine_failure("ranking prompt tokens", [&] { engine_.row_ranks(rank_rows, rank_values, ranks); })) {
      ranks.assign(rank_rows.size(), 0);
      for (int row : rank_rows) finish(*rows.owner[static_cast<size_t>(row)], FinishReason::kError, *error);
    }
  }
  size_t next_rank = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    Request& r = *rows.owner[i];
    if (r.finished) continue;  // an earlier row of it failed
    const RowCandidates& c = out[i];
    const int64_t prompt_position = rows.prompt_position[i];
    // A NaN or infinite logit anywhere in the row makes its log-sum-exp non-finite: the model's output
    // is garbage (corrupt weights, an overflow), not something to sample from.
    if (!std::isfinite(c.lse)) {
      const int64_t position = prompt_position >= 0 ? prompt_position : static_cast<int64_t>(r.tokens.size());
      spdlog::error("request {}: the model's logits are not finite at position {} (corrupt or overflowing weights?)", r.id,
                    position);
      finish(r, FinishReason::kError,
             fmt::format("the model's logits are not finite (NaN or infinity) at position {}: its weights are corrupt or "
                         "overflow in this format",
                         position),
             RequestErrorCode::kInternal);
      continue;
    }
    if (prompt_position < 0) {
      sample_row(r, static_cast<int>(i), rows.rows[i], c, now, hooks);
    } else if (!std::isfinite(c.target_logit)) {
      finish(r, FinishReason::kError, fmt::format("the log-probability of prompt position {} is missing or not finite", prompt_position),
             RequestErrorCode::kInternal);
    } else {
      r.add_prompt_logprob(rows.rows[i].target, c, ranks.at(next_rank++));
    }
  }
  drop_finished();
  {
    std::lock_guard<std::mutex> relock(mutex_);
    ++stats_.steps;
    stats_.running = static_cast<int32_t>(running_.size());
    stats_.kv_usage = capacity > 0 ? static_cast<double>(kv_reserved_) / capacity : 0.0;
  }
  if (hooks.step) {
    report.seconds = seconds(t0, now);
    report.sampled_tokens = static_cast<int32_t>(std::count(rows.prompt_position.begin(), rows.prompt_position.end(), -1));
    hooks.step(report);
  }
  return true;
}

void Scheduler::sample_row(Request& r, int row, const RowRequest& request, const RowCandidates& c, Clock::time_point now,
                           const SchedulerHooks& hooks) {
  std::vector<float> full;  // the whole row once fetched (penalised as the candidates were; guided: masked)
  auto fetch = [&](std::vector<float>& logits) {
    engine_.row_logits(row, logits);
    apply_penalties(logits.data(), static_cast<int64_t>(logits.size()), 0, request.penalties);
    if (&logits != &full) full = logits;
  };
  int32_t token = -1;
  RowCandidates guided;  // with a constraint: the candidates of the masked row
  const RowCandidates* chosen_from = &c;
  try {
    if (r.constraint) {
      fetch(full);
      switch (r.sample_guided(full, token, guided)) {
        case Request::GuidedPick::kToken: break;
        case Request::GuidedPick::kWhole: finish(r, FinishReason::kStop); return;
        case Request::GuidedPick::kStuck:
          finish(r, FinishReason::kError,
                 fmt::format("guided decoding: no token can continue the output as {}", r.request.guided->describe()),
                 RequestErrorCode::kInvalidRequest);
          return;
      }
      chosen_from = &guided;
    } else {
      token = r.sampler.sample(c, fetch);
    }
  } catch (const EngineUnavailable&) {
    throw;
  } catch (const std::exception& e) {
    finish(r, FinishReason::kError, e.what());
    return;
  }
  GeneratedToken g;
  g.token = token;
  if (r.request.top_logprobs >= 0) {
    const RowCandidates& cands = *chosen_from;
    auto listed = std::find_if(cands.top.begin(), cands.top.end(), [&](const TokenLogit& t) { return t.token == token; });
    if (listed == cands.top.end() && full.empty()) fetch(full);
    const float logit = listed != cands.top.end() ? listed->logit : full.at(static_cast<size_t>(token));
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
    return;
  }
  ++r.generated;
  if (r.is_stop_token(token)) {
    finish(r, FinishReason::kStop);
    return;
  }
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
    return;
  }
  if (r.generated >= r.request.max_tokens) finish(r, FinishReason::kLength);
}

void Scheduler::drop_finished() {
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const std::shared_ptr<Request>& r) { return r->finished; }),
                 running_.end());
}

}  // namespace shardlm
