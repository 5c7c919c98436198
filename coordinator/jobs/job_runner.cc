#include "common/json_limits.h"
#include "coordinator/jobs/job_runner.h"

#include <spdlog/spdlog.h>

#include "coordinator/http/api_error.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/http/openai_response.h"
#include "coordinator/jobs/batch_file.h"

namespace shardlm::jobs {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// FNV-1a over the job id and the line number: the seed of a line that gives none.
uint64_t line_seed(const std::string& job_id, int64_t line_no) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (char c : job_id) mix(static_cast<unsigned char>(c));
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(static_cast<uint64_t>(line_no) >> (8 * i)));
  return h;
}

}  // namespace

struct JobRunner::Finished {
  Key key;
  std::string custom_id;
  http::CompletionBuilder builder;
  TextFinish finish;
};

namespace {

// Collects one line's output on the scheduler thread and hands it to the runner at the finish.
template <typename Inbox, typename Finished, typename Key>
class LineObserver final : public TextObserver {
 public:
  LineObserver(std::shared_ptr<Inbox> inbox, Key key, std::string custom_id, http::ResponseMeta meta)
      : inbox_(std::move(inbox)), key_(std::move(key)), custom_id_(std::move(custom_id)), builder_(std::move(meta)) {}

  void on_delta(const TextDelta& delta) override { builder_.add(delta); }

  void on_finish(const TextFinish& finish) override {
    auto f = std::make_shared<Finished>(Finished{std::move(key_), std::move(custom_id_), std::move(builder_), finish});
    std::lock_guard lock(inbox_->mutex);
    inbox_->finished.push_back(std::move(f));
    inbox_->wake.notify_one();
  }

 private:
  std::shared_ptr<Inbox> inbox_;
  Key key_;
  std::string custom_id_;
  http::CompletionBuilder builder_;
};

}  // namespace

JobRunner::JobRunner(JobStore& store, http::TextBackend& backend, RunnerOptions options)
    : store_(store), backend_(backend), options_(options), inbox_(std::make_shared<Inbox>()) {
  options_.max_inflight = std::max(1, options_.max_inflight);
  options_.max_inflight_per_job = std::max(1, options_.max_inflight_per_job);
  options_.max_attempts = std::max(1, options_.max_attempts);
}

JobRunner::~JobRunner() { stop(); }

void JobRunner::start() {
  std::lock_guard lock(lifecycle_);
  if (thread_.joinable() || stopping_) return;
  const int64_t released = store_.recover();
  if (released > 0) spdlog::info("batch jobs: {} lines that were running at the last stop will run again", released);
  thread_ = std::thread([this] { run(); });
}

void JobRunner::wake() {
  std::lock_guard lock(inbox_->mutex);
  inbox_->poke = true;
  inbox_->wake.notify_one();
}

void JobRunner::pause() {
  paused_ = true;
  wake();
}

void JobRunner::stop() {
  std::lock_guard lock(lifecycle_);
  stopping_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
}

int64_t JobRunner::inflight() const { return inflight_count_; }

int64_t JobRunner::committed() const { return committed_; }

void JobRunner::run() {
  for (;;) {
    std::deque<std::shared_ptr<Finished>> finished;
    {
      std::unique_lock lock(inbox_->mutex);
      auto wait = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.poll_s));
      const Clock::time_point now = Clock::now();
      if (back_off_until_ > now && back_off_until_ - now < wait) wait = back_off_until_ - now;
      inbox_->wake.wait_for(lock, wait, [&] { return !inbox_->finished.empty() || inbox_->poke || stopping_; });
      finished.swap(inbox_->finished);
      inbox_->poke = false;
    }
    try {
      handle_finished(finished);  // saves what earlier rounds could not, too
      if (stopping_) break;
      cancel_jobs();
      if (!paused_) fill();
    } catch (const std::exception& e) {
      // E.g. the disk is full: results stay in memory only while the line is in flight; what could not
      // be committed runs again after a restart. Wait a little instead of spinning on the failure.
      spdlog::error("batch jobs: {}", e.what());
      if (stopping_) break;  // a store that keeps failing must not hold up the stop
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  // Cancel what is still running (it runs again at the next start) and commit what has arrived.
  for (auto& [key, f] : inflight_) backend_.cancel(f.service_id);
  std::deque<std::shared_ptr<Finished>> rest;
  {
    std::lock_guard lock(inbox_->mutex);
    rest.swap(inbox_->finished);
  }
  try {
    handle_finished(rest);
  } catch (const std::exception& e) {
    spdlog::error("batch jobs: at stop: {}", e.what());
  }
  if (!unsaved_.empty() || !unreleased_.empty()) {
    // They run again at the next start (their lines are still "running" in the store).
    spdlog::error("batch jobs: at stop, {} results could not be saved and {} jobs' lines not released: those lines run again "
                  "at the next start",
                  unsaved_.size(), unreleased_.size());
  }
}

void JobRunner::save(std::vector<LineOutcome> outcomes, const std::map<std::string, std::vector<int64_t>>& release) {
  for (LineOutcome& o : outcomes) unsaved_.push_back(std::move(o));
  for (const auto& [job_id, lines] : release) {
    std::vector<int64_t>& to = unreleased_[job_id];
    to.insert(to.end(), lines.begin(), lines.end());
  }
  save_pending();
}

void JobRunner::save_pending() {
  std::string failure;
  if (!unsaved_.empty()) {
    try {
      committed_ += store_.commit(unsaved_);
      unsaved_.clear();
    } catch (const std::exception& e) {
      failure = fmt::format("saving {} results failed ({}); kept to try again", unsaved_.size(), e.what());
    }
  }
  for (auto it = unreleased_.begin(); it != unreleased_.end();) {
    try {
      store_.release_lines(it->first, it->second);
      it = unreleased_.erase(it);
    } catch (const std::exception& e) {
      if (failure.empty()) failure = fmt::format("putting lines of batch {} back to pending failed ({}); kept to try again", it->first, e.what());
      ++it;
    }
  }
  if (!failure.empty()) throw Error(failure);  // the run loop logs it and waits a little
}

void JobRunner::fill() {
  if (Clock::now() < back_off_until_) return;
  int slots = options_.max_inflight - static_cast<int>(inflight_.size());
  if (slots <= 0) return;
  for (const std::string& job_id : store_.jobs_in_state(JobState::kInProgress)) {
    const int n = std::min(slots, options_.max_inflight_per_job - inflight_per_job_[job_id]);
    if (n <= 0) continue;
    const std::vector<ClaimedLine> lines = store_.claim_lines(job_id, n);
    std::vector<LineOutcome> outcomes;
    std::vector<int64_t> release;
    bool back_off = false;
    for (const ClaimedLine& line : lines) {
      if (back_off) {
        release.push_back(line.line_no);
        continue;
      }
      submit_line(job_id, line, outcomes, release, back_off);
    }
    save(std::move(outcomes), {{job_id, release}});
    slots = options_.max_inflight - static_cast<int>(inflight_.size());
    if (back_off) {
      back_off_until_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.retry_delay_s));
      return;
    }
    if (slots <= 0) return;
  }
}

void JobRunner::submit_line(const std::string& job_id, const ClaimedLine& line, std::vector<LineOutcome>& outcomes,
                            std::vector<int64_t>& release, bool& back_off) {
  const Key key{job_id, line.line_no};
  try {
    // The envelope was checked when the job was created.
    const json j = parse_json_limited(line.text);
    const json& body = j.at("body");
    http::OpenAIRequest r = j.at("url").get<std::string>() == kChatEndpoint ? http::parse_chat_request(body)
                                                                             : http::parse_completion_request(body);
    if (r.model != backend_.model_name()) throw http::ApiException(http::model_not_found(r.model));
    if (r.stream) http::fail_param("stream", "'stream' is not supported in batch requests");
    if (!r.seed_given) r.text.sampling.seed = line_seed(job_id, line.line_no);
    r.text.priority = Priority::kBatch;
    auto observer = std::make_shared<LineObserver<Inbox, Finished, Key>>(inbox_, key, line.custom_id, http::make_meta(r));
    const uint64_t id = backend_.submit(r.text, std::move(observer));
    inflight_[key] = Inflight{id, false};
    ++inflight_per_job_[job_id];
    ++inflight_count_;
  } catch (...) {
    const http::ApiError e = http::current_api_error();
    if (e.status == 429 || e.status == 503) {  // queue full / shutting down: not the line's fault
      release.push_back(line.line_no);
      back_off = true;
      return;
    }
    const std::string code = !e.code.empty() ? e.code : e.type;
    outcomes.push_back(LineOutcome{job_id, line.line_no, ResultKind::kError,
                                   error_line(line.custom_id, line.line_no, code, fmt::format("line {}: {}", line.line_no, e.message),
                                              e.status, e.to_json())});
  }
}

void JobRunner::handle_finished(std::deque<std::shared_ptr<Finished>>& finished) {
  if (finished.empty()) {
    save_pending();
    return;
  }
  std::vector<LineOutcome> outcomes;
  std::map<std::string, std::vector<int64_t>> release;
  for (const std::shared_ptr<Finished>& f : finished) {
    const auto it = inflight_.find(f->key);
    if (it == inflight_.end()) continue;
    inflight_.erase(it);
    --inflight_per_job_[f->key.first];
    --inflight_count_;
    const auto& [job_id, line_no] = f->key;
    const std::string& reason = f->finish.finish_reason;
    if (reason == "cancelled") {  // the job was cancelled, or the service is stopping: not run
      release[job_id].push_back(line_no);
      continue;
    }
    if (reason == "error" && f->finish.error_code == RequestErrorCode::kUnavailable) {
      // The model workers were lost (or the server is stopping): not the line's fault, and it
      // does not count as an attempt; it runs again (after a restart).
      release[job_id].push_back(line_no);
      continue;
    }
    if (reason == "error") {
      const int attempts = ++attempts_[f->key];
      if (attempts < options_.max_attempts) {
        spdlog::warn("batch {}: line {}: generation failed ({}); it will run again", job_id, line_no, f->finish.error);
        release[job_id].push_back(line_no);
        continue;
      }
      attempts_.erase(f->key);
      const http::ApiError e = http::finish_error(f->finish);
      outcomes.push_back(LineOutcome{
          job_id, line_no, ResultKind::kError,
          error_line(f->custom_id, line_no, "generation_failed",
                     fmt::format("line {}: {} (after {} attempts)", line_no, e.message, attempts), e.status, e.to_json())});
      continue;
    }
    attempts_.erase(f->key);
    outcomes.push_back(LineOutcome{job_id, line_no, ResultKind::kOutput, response_line(f->custom_id, 200, f->builder.finish(f->finish))});
  }
  for (auto it = inflight_per_job_.begin(); it != inflight_per_job_.end();) {
    it = it->second <= 0 ? inflight_per_job_.erase(it) : std::next(it);
  }
  save(std::move(outcomes), release);
}

void JobRunner::cancel_jobs() {
  for (const std::string& job_id : store_.jobs_in_state(JobState::kCancelling)) {
    for (auto& [key, f] : inflight_) {
      if (key.first == job_id && !f.cancel_sent) {
        backend_.cancel(f.service_id);
        f.cancel_sent = true;
      }
    }
    const auto it = inflight_per_job_.find(job_id);
    if (it == inflight_per_job_.end() || it->second <= 0) {
      if (store_.finish_cancel(job_id)) spdlog::info("batch {}: cancelled", job_id);
    }
  }
}

}  // namespace shardlm::jobs
