// The durable state of batch jobs: one SQLite database (WAL, fsync on every commit) in the state
// folder, <state-dir>/jobs.sqlite3, holding the uploaded files, the jobs, each job's lines with their
// state, and each finished line's result. Every change is one transaction, so after a crash (kill -9,
// power loss) the database holds exactly what was committed:
//   * a file or job is accepted when its transaction commits (before the client gets an answer);
//   * a line's result row is inserted in the same transaction that marks the line done, and only
//     when the line was still running, so a result is committed once;
//   * lines marked running when the process died are set back to pending by recover() at the next
//     start and run again (their results were never committed).
// A lock file (<state-dir>/jobs.lock, flock) keeps a second coordinator off the same folder; a new
// one waits up to StoreOptions::lock_wait_s for it.
// Thread-safe (one connection, used under a mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::jobs {

class Database;

// The OpenAI Batch API's statuses ("validating", "expired" are never used: files are checked on
// upload and jobs do not expire).
enum class JobState { kInProgress, kFinalizing, kCompleted, kCancelling, kCancelled, kFailed };
const char* job_state_name(JobState state);  // "in_progress", "finalizing", "completed", ...
bool job_finished(JobState state);           // completed, cancelled or failed

enum class ResultKind { kOutput = 0, kError = 1 };

struct FileRecord {
  std::string id;        // "file-..."
  std::string purpose;   // "batch" (uploaded) or "batch_output" (a job's output or error file)
  std::string filename;
  int64_t bytes = 0;
  int64_t created_at = 0;  // Unix seconds
  int64_t lines = 0;       // request lines (uploads) or result lines (outputs)
  std::string job_id;      // outputs: the job
  ResultKind kind = ResultKind::kOutput;  // outputs: which results
};

struct JobRecord {
  std::string id;  // "batch_..."
  std::string input_file_id;
  std::string filename;  // the input file's name
  std::string endpoint;  // "/v1/chat/completions", "/v1/completions", or "" (each line says)
  std::string completion_window;
  JobState state = JobState::kInProgress;
  nlohmann::json metadata = nlohmann::json::object();
  int64_t total = 0, completed = 0, failed = 0, running = 0;
  int64_t created_at = 0, in_progress_at = 0, finalizing_at = 0, completed_at = 0, cancelling_at = 0,
          cancelled_at = 0, failed_at = 0;
  std::string output_file_id, error_file_id;  // set when the job finishes (if it has such lines)
  std::string error;                          // kFailed: why
};

// A line handed to the runner (marked running).
struct ClaimedLine {
  int64_t line_no = 0;
  std::string custom_id;
  std::string text;  // the line as uploaded
};

// A finished line: its result line (batch_file.h) and whether it succeeded.
struct LineOutcome {
  std::string job_id;
  int64_t line_no = 0;
  ResultKind kind = ResultKind::kOutput;
  std::string result;
};

struct StoreOptions {
  int64_t max_lines = 50000;  // request lines per file
  // How long to wait for the state dir's lock: after a kill -9 of mpirun the old coordinator may
  // take a moment to die (and release the lock) while the new one starts.
  double lock_wait_s = 10;
};

class JobStore {
 public:
  // Opens (or creates) <state_dir>/jobs.sqlite3 and takes <state_dir>/jobs.lock; throws Error when
  // the folder is unusable or another process holds the lock.
  explicit JobStore(const std::string& state_dir, StoreOptions options = {});
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  const std::string& database_path() const { return db_path_; }

  // ---- files ----
  // Checks the whole file (split_jsonl: throws RequestError when unreadable) and stores it.
  FileRecord add_file(const std::string& filename, const std::string& purpose, const std::string& content);
  std::optional<FileRecord> file(const std::string& id);
  // DELETE /v1/files/{id}: an upload once no unfinished batch reads it (with the copies of its lines
  // in the finished batches that read it; their results stay), an output or error file with the
  // results it holds. Throws RequestError (kNotFound; kInvalidRequest naming the batch that reads it).
  // A deleted file is unknown to every lookup; SQLite reuses its pages (the database file does not shrink).
  void delete_file(const std::string& id);
  std::vector<FileRecord> files(const std::string& purpose);  // newest first; "" = all
  // An uploaded file as it was uploaded, or an output file's result lines (each ending in "\n").
  std::string file_content(const std::string& id);

  // ---- jobs ----
  // Creates a job over an uploaded file: checks every line's envelope; malformed lines get their
  // error result at once, the others are pending. All in one transaction. Throws RequestError
  // (kNotFound: no such file; kInvalidRequest: not a "batch" file, bad endpoint).
  JobRecord create_job(const std::string& input_file_id, const std::string& endpoint, const std::string& completion_window,
                       const nlohmann::json& metadata);
  std::optional<JobRecord> job(const std::string& id);
  // Newest first; after = a job id (older ones only). has_more: older jobs remain.
  std::vector<JobRecord> jobs(const std::string& after, int limit, bool* has_more);
  // in_progress -> cancelling (returns the job; already cancelling: unchanged). Throws RequestError
  // kNotFound, or kInvalidRequest for a finished job.
  JobRecord request_cancel(const std::string& id);
  std::map<std::string, int64_t> count_by_state();

  // ---- the runner ----
  // At start: running lines -> pending; cancelling jobs -> cancelled; jobs whose lines all have
  // results -> completed. Returns the lines set back to pending.
  int64_t recover();
  std::vector<std::string> jobs_in_state(JobState state);  // oldest first
  // Marks up to `limit` pending lines of an in_progress job running (in line order) and returns them.
  std::vector<ClaimedLine> claim_lines(const std::string& job_id, int limit);
  // running -> pending (a line that could not be run now: queue full, server stopping, cancelled).
  void release_lines(const std::string& job_id, const std::vector<int64_t>& line_nos);
  // For each outcome, in one transaction: the line running -> done / failed, its result row, the
  // job's counters; a job whose lines now all have results is finalized (completed, with its output
  // and error files). Outcomes of lines that are not running (already done) are dropped; returns how
  // many were committed.
  int64_t commit(const std::vector<LineOutcome>& outcomes);
  // A cancelling job with no line running -> cancelled (with files of what finished). Returns true
  // when it changed.
  bool finish_cancel(const std::string& job_id);

  // ---- results ----
  // Appends result lines (each + "\n") of lines after `after_line`, in line order, until about
  // max_bytes (at least one line). kind: nullopt = both. Returns the number of lines; *last_line is
  // the last one's line number; *more whether further results exist now.
  int read_results(const std::string& job_id, std::optional<ResultKind> kind, int64_t after_line, size_t max_bytes,
                   std::string& out, int64_t* last_line, bool* more);

 private:
  JobRecord load_job(const std::string& id);  // with the mutex held; throws kNotFound
  void finalize(const std::string& job_id, JobState final_state);  // inside a transaction

  StoreOptions options_;
  std::string db_path_;
  int lock_fd_ = -1;
  std::unique_ptr<Database> db_;
  std::mutex mutex_;
};

}  // namespace shardlm::jobs
