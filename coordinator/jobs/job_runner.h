// Runs the lines of batch jobs on the text service, on a thread of its own: takes pending lines of the
// oldest in-progress jobs (at most max_inflight lines of all jobs at once, max_inflight_per_job of one),
// parses each line's body exactly as POST /v1/chat/completions or /v1/completions does, submits it
// at batch priority (the scheduler admits interactive requests first and bounds the running batch
// sequences), and commits each finished line's result to the job store. A line whose body is
// refused (400, 404) gets an error result; one the service cannot take now (queue full, shutting
// down) is retried later; a generation that fails is retried up to max_attempts times. Cancelled
// jobs have their running lines cancelled. A line without a seed gets one derived from the job id
// and the line number, so a line run again after a restart samples the same text.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coordinator/http/text_backend.h"
#include "coordinator/jobs/job_store.h"

namespace shardlm::jobs {

struct RunnerOptions {
  int max_inflight = 16;          // lines submitted to the text service at once, all jobs together
  int max_inflight_per_job = 16;  // of one job
  int max_attempts = 3;           // generations that end in an error before the line fails
  double retry_delay_s = 0.5;     // after the service refused a line for now (queue full)
  double poll_s = 1.0;            // idle: look for new work this often (submissions also wake it)
};

class JobRunner {
 public:
  JobRunner(JobStore& store, http::TextBackend& backend, RunnerOptions options = {});
  ~JobRunner();  // stop()
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Recovers the store (lines running at the last stop run again) and starts the thread.
  void start();
  // New work or a cancel: look now instead of at the next poll.
  void wake();
  // No new lines are submitted (the lines in flight go on and are committed). For a graceful stop.
  void pause();
  // Stops the thread: commits the results that arrived; lines still in flight stay running in the
  // store and run again at the next start. Idempotent.
  void stop();

  int64_t inflight() const;     // lines submitted and not yet finished
  int64_t committed() const;    // results committed since start

  struct Finished;  // a line's generation result, handed over from the scheduler thread

 private:
  struct Inflight {
    uint64_t service_id = 0;
    bool cancel_sent = false;
  };
  using Key = std::pair<std::string, int64_t>;  // job id, line number

  void run();
  void fill();
  void submit_line(const std::string& job_id, const ClaimedLine& line, std::vector<LineOutcome>& outcomes,
                   std::vector<int64_t>& release, bool& back_off);
  void handle_finished(std::deque<std::shared_ptr<Finished>>& finished);
  // Commits results and releases lines, keeping what the store refused (e.g. the disk is full) to
  // try again on the next round: a result is never dropped, and a line never stays "running".
  void save(std::vector<LineOutcome> outcomes, const std::map<std::string, std::vector<int64_t>>& release);
  void save_pending();
  void cancel_jobs();

  JobStore& store_;
  http::TextBackend& backend_;
  RunnerOptions options_;

  // Shared with the scheduler thread's observers.
  struct Inbox {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::shared_ptr<Finished>> finished;
    bool poke = false;
  };
  std::shared_ptr<Inbox> inbox_;

  // The runner thread's own state.
  std::map<Key, Inflight> inflight_;
  std::map<std::string, int> inflight_per_job_;
  std::map<Key, int> attempts_;
  std::vector<LineOutcome> unsaved_;                          // results the store has not taken yet
  std::map<std::string, std::vector<int64_t>> unreleased_;    // lines not yet put back to pending
  std::chrono::steady_clock::time_point back_off_until_{};

  std::atomic<bool> paused_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> inflight_count_{0};
  std::atomic<int64_t> committed_{0};
  std::thread thread_;
  std::mutex lifecycle_;
};

}  // namespace shardlm::jobs
