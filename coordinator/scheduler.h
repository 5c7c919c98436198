// Continuous batching on the coordinator: requests wait in a bounded queue; every iteration one step
// runs the next token of each running sequence together with chunks of waiting prompts (up to a
// token budget, so long prompts do not stall running streams); sampled tokens go to each request's
// observer. Admission checks the KV capacity; cancel frees a sequence at once. Runs on its own thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "coordinator/generation.h"
#include "coordinator/step_engine.h"

namespace shardlm {

// Prompt rows per step of a request that asks for its prompt's log-probabilities (each row's logits
// are a whole vocabulary row on every worker while the step runs).
inline constexpr int64_t kPromptLogprobRowsPerStep = 64;

struct SchedulerOptions {
  int32_t max_step_tokens = 512;  // tokens per step (decode tokens + prompt chunks)
  int32_t max_running = 64;       // sequences decoding at once
  int32_t max_waiting = 256;      // queue bound (batch lines waiting do not count against interactive requests); beyond it submit throws kQueueFull
  int32_t max_batch_running = 8;  // running sequences of batch priority at most
  double heartbeat_s = 5;         // an idle scheduler checks the engine's workers this often
};

struct SchedulerStats {
  int32_t running = 0;
  int32_t waiting = 0;
  double kv_usage = 0;  // fraction of the KV capacity in use
  int64_t steps = 0;
  int64_t preemptions = 0;  // running requests sent back to the queue (KV cache full), in all
};

// Per-step figures for metrics: wall time of the step and how many tokens of each kind it ran.
struct StepReport {
  double seconds = 0;
  int32_t prompt_tokens = 0;     // prompt tokens prefilled
  int32_t decode_tokens = 0;     // generated tokens fed back
  int32_t sampled_tokens = 0;    // tokens sampled (generated) in this step
};

// Callbacks for metrics, all called on the scheduler thread (must be quick).
struct SchedulerHooks {
  std::function<void(const StepReport&)> step;                  // after every step
  std::function<void(double seconds)> first_token;              // time to first token of a request
  std::function<void(double seconds)> inter_token;              // gap between two tokens of a request
  std::function<void(const GenerationSummary&)> finished;       // every request, once
  // The engine's workers are gone (EngineUnavailable): every request has been failed with
  // kUnavailable, new ones are refused; the program should exit so that it is restarted.
  std::function<void(const std::string& reason)> engine_lost;
  // After each idle heartbeat that the workers answered (their state is in last_step_figures()).
  std::function<void()> heartbeat;
};

class Scheduler {
 public:
  Scheduler(StepEngine& engine, SchedulerOptions options);
  ~Scheduler();  // stop()

  // Validates (sampling, lengths against the context and KV capacity) and queues the request.
  // Throws RequestError (kInvalidRequest, kContextLength, kQueueFull, kUnavailable: shutting down or
  // the engine's workers are lost). Returns an id.
  uint64_t submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer);
  // Queues several requests at once (the choices of one request with n > 1), all or none: each is
  // validated as by submit, and the queue must hold them all (kQueueFull otherwise; a group larger
  // than the queue's bound is kInvalidRequest). Returns their ids, in order. All have the priority
  // of the first.
  struct Submission {
    GenerationRequest request;
    std::shared_ptr<GenerationObserver> observer;
  };
  std::vector<uint64_t> submit_group(std::vector<Submission> group);
  // Ends a request: its observer gets on_finish(kCancelled) (or nothing more if it already finished).
  // Unknown ids are ignored. Thread-safe; may be called from an observer callback.
  void cancel(uint64_t id);
  // Ends a request whose output is complete before the scheduler would end it (a stop string, the
  // end of a chat turn): like cancel, but it finishes as kStop.
  void end_early(uint64_t id);
  SchedulerStats stats() const;
  int32_t max_waiting() const { return options_.max_waiting; }  // the queue's bound
  void set_hooks(SchedulerHooks hooks);

  // Stops taking requests; finishes (drain=true) or ends the rest (an error, kUnavailable "the
  // server is shutting down"); joins the thread.
  void stop(bool drain = false);
  const StepEngine& engine() const { return engine_; }

 private:
  struct Request;   // coordinator/scheduler_request.h
  struct StepRows;  // the logits rows of one step (same header)
  void run();
  bool iterate();  // one step; false when there was nothing to do
  // iterate()'s parts. Takes the cancelled requests out of running_ and waiting_ with their reasons.
  void take_cancelled(std::vector<std::pair<std::shared_ptr<Request>, FinishReason>>& ended);
  // Reserves the KV of each decoding sequence's next position, preempting when the cache is full
  // (mutex_ held); a request that cannot fit even alone goes to `overflowed`.
  void reserve_growth(int64_t capacity, std::vector<std::shared_ptr<Request>>& overflowed);
  void admit(int64_t capacity);  // moves waiting requests that fit into running_ (mutex_ held)
  // The step's tokens and logits rows; `fed` gets the requests it feeds.
  void plan_step(StepBatch& batch, StepRows& rows, std::vector<std::shared_ptr<Request>>& fed, StepReport& report);
  // Samples the next token of r from row `row` of the step that ran, and delivers it.
  void sample_row(Request& r, int row, const RowRequest& request, const RowCandidates& c,
                  std::chrono::steady_clock::time_point now, const SchedulerHooks& hooks);
  void drop_finished();  // removes the finished requests from running_
  int64_t whole_kv_blocks(int64_t positions) const {  // positions rounded up to whole KV blocks
    const int64_t block = std::max(engine_.kv_block(), 1);
    return (positions + block - 1) / block * block;
  }
  // submit's checks of one request (throws as submit).
  void validate(const GenerationRequest& request, const GenerationObserver* observer) const;
  void finish(Request& r, FinishReason reason, const std::string& error = {},
              RequestErrorCode code = RequestErrorCode::kInternal);
  void heartbeat_if_idle(bool worked);
  // Which running request a full KV cache preempts: the most recently scheduled batch-priority one,
  // else the most recently scheduled one (an index into running_).
  size_t preemption_victim() const;
  // Takes running_[index] back to the front of the queue, freeing its KV (called with mutex_ held).
  void preempt(size_t index);

  StepEngine& engine_;
  SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Request>> waiting_;
  std::vector<std::shared_ptr<Request>> running_;
  std::vector<std::pair<uint64_t, FinishReason>> cancelled_;  // cancel() and end_early(), in order
  SchedulerHooks hooks_;
  std::atomic<bool> stopping_{false};
  bool draining_ = false;
  std::string lost_;  // why the engine is unavailable (empty while it works)
  std::chrono::steady_clock::time_point last_engine_contact_ = std::chrono::steady_clock::now();
  std::atomic<bool> heartbeat_soon_{false};  // heartbeat at the next idle turn (set_hooks)
  uint64_t next_id_ = 1;
  int64_t kv_reserved_ = 0;
  SchedulerStats stats_;
  std::thread thread_;
};

}  // namespace shardlm
