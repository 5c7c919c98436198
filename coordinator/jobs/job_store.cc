#include "coordinator/jobs/job_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "coordinator/http/openai_response.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/jobs/sqlite_db.h"
#include "coordinator/request_error.h"

namespace shardlm::jobs {
namespace {

using nlohmann::json;

constexpr int kSchemaVersion = 1;

// Line states in the lines table.
constexpr int64_t kPending = 0;
constexpr int64_t kRunning = 1;
constexpr int64_t kDone = 2;
constexpr int64_t kFailed = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,            -- 'batch' (uploaded) or 'batch_output'
  filename TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  line_count INTEGER NOT NULL,
  content BLOB,                     -- uploads: the file as uploaded
  job_id TEXT,                      -- outputs: the job whose results it holds
  kind INTEGER                      -- outputs: 0 output, 1 errors
);
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  input_file_id TEXT NOT NULL REFERENCES files(id),
  endpoint TEXT NOT NULL,
  completion_window TEXT NOT NULL,
  state TEXT NOT NULL,              -- in_progress, finalizing, completed, cancelling, cancelled, failed
  metadata TEXT NOT NULL,
  total INTEGER NOT NULL,
  completed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  in_progress_at INTEGER NOT NULL DEFAULT 0,
  finalizing_at INTEGER NOT NULL DEFAULT 0,
  completed_at INTEGER NOT NULL DEFAULT 0,
  cancelling_at INTEGER NOT NULL DEFAULT 0,
  cancelled_at INTEGER NOT NULL DEFAULT 0,
  failed_at INTEGER NOT NULL DEFAULT 0,
  output_file_id TEXT,
  error_file_id TEXT,
  error TEXT
);
CREATE TABLE IF NOT EXISTS lines (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  line_no INTEGER NOT NULL,         -- 1-based line number in the input file
  custom_id TEXT,
  text TEXT NOT NULL,
  state INTEGER NOT NULL,           -- 0 pending, 1 running, 2 done, 3 failed
  PRIMARY KEY (job_id, line_no)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lines_by_state ON lines (job_id, state, line_no);
CREATE TABLE IF NOT EXISTS results (
  job_id TEXT NOT NULL,
  line_no INTEGER NOT NULL,
  kind INTEGER NOT NULL,            -- 0 output, 1 error
  text TEXT NOT NULL,               -- the result line (OpenAI batch output format)
  created_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, line_no),
  FOREIGN KEY (job_id, line_no) REFERENCES lines (job_id, line_no)
) WITHOUT ROWID;
)sql";

JobState parse_state(const std::string& s) {
  if (s == "in_progress") return JobState::kInProgress;
  if (s == "finalizing") return JobState::kFinalizing;
  if (s == "completed") return JobState::kCompleted;
  if (s == "cancelling") return JobState::kCancelling;
  if (s == "cancelled") return JobState::kCancelled;
  return JobState::kFailed;
}

FileRecord read_file_row(Statement& q) {
  FileRecord f;
  f.id = q.text(0);
  f.purpose = q.text(1);
  f.filename = q.text(2);
  f.bytes = q.int64(3);
  f.created_at = q.int64(4);
  f.lines = q.int64(5);
  f.job_id = q.text(6);
  f.kind = q.int64(7) == 1 ? ResultKind::kError : ResultKind::kOutput;
  return f;
}

constexpr const char* kFileColumns = "id, purpose, filename, bytes, created_at, line_count, COALESCE(job_id, ''), COALESCE(kind, 0)";

}  // namespace

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::kInProgress: return "in_progress";
    case JobState::kFinalizing: return "finalizing";
    case JobState::kCompleted: return "completed";
    case JobState::kCancelling: return "cancelling";
    case JobState::kCancelled: return "cancelled";
    case JobState::kFailed: return "failed";
  }
  return "failed";
}

bool job_finished(JobState state) {
  return state == JobState::kCompleted || state == JobState::kCancelled || state == JobState::kFailed;
}

JobStore::JobStore(const std::string& state_dir, StoreOptions options) : options_(options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) fail("state dir {}: cannot be created: {}", state_dir, ec.message());
  const std::string lock_path = (fs::path(state_dir) / "jobs.lock").string();
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail("state dir {}: cannot open the lock file {}: {}", state_dir, lock_path, std::strerror(errno));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(0.0, options_.lock_wait_s));
  bool said = false;
  while (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK && std::chrono::steady_clock::now() < give_up) {
      if (!said) spdlog::warn("state dir {}: waiting up to {} s for another process to release {}", state_dir, options_.lock_wait_s, lock_path);
      said = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) {
      fail("state dir {} is in use by another shardlm serve (it holds {}); give each server its own --state-dir", state_dir,
           lock_path);
    }
    fail("state dir {}: cannot lock {}: {}", state_dir, lock_path, std::strerror(err));
  }
  db_path_ = (fs::path(state_dir) / "jobs.sqlite3").string();
  try {
    // Once created the database is never empty: an empty file (with no write-ahead log to replay) is a
    // lost one, which would otherwise be taken for a new database and every accepted job forgotten.
    std::error_code ec;
    if (fs::is_regular_file(db_path_, ec) && fs::file_size(db_path_, ec) == 0 && !ec &&
        !fs::exists(db_path_ + "-wal", ec)) {
      fail("the job database {} is empty: it was truncated or lost, and the jobs it held with it; restore it from a backup "
           "(docs/operations.md), or remove it to start with no jobs",
           db_path_);
    }
    db_ = std::make_unique<Database>(db_path_);
    Statement v = db_->prepare("PRAGMA user_version");
    v.step();
    const int64_t version = v.int64(0);
    if (version > kSchemaVersion) {
      fail("the job database {} has schema version {}, newer than this shardlm knows ({}); use a newer shardlm", db_path_,
           version, kSchemaVersion);
    }
    Transaction t(*db_);
    db_->exec(kSchema);
    db_->exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str());
    t.commit();
  } catch (...) {
    db_.reset();
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw;
  }
}

JobStore::~JobStore() {
  db_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

// ---- files ----------------------------------------------------------------------------------------

FileRecord JobStore::add_file(const std::string& filename, const std::string& purpose, const std::string& content) {
  if (purpose != "batch") {
    fail_request(RequestErrorCode::kInvalidRequest, "'purpose' is '{}'; this server takes files of purpose 'batch' only", purpose);
  }
  const std::vector<InputLine> lines = split_jsonl(content, options_.max_lines);
  FileRecord f;
  f.id = http::new_id("file-");
  f.purpose = purpose;
  f.filename = filename.empty() ? "batch.jsonl" : filename;
  f.bytes = static_cast<int64_t>(content.size());
  f.created_at = http::unix_time();
  f.lines = static_cast<int64_t>(lines.size());
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  db_->prepare("INSERT INTO files (id, purpose, filename, bytes, created_at, line_count, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
      .bind(1, f.id)
      .bind(2, f.purpose)
      .bind(3, f.filename)
      .bind(4, f.bytes)
      .bind(5, f.created_at)
      .bind(6, f.lines)
      .bind(7, std::string_view(content))
      .run();
  t.commit();
  return f;
}

std::optional<FileRecord> JobStore::file(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement q = db_->prepare(fmt::format("SELECT {} FROM files WHERE id = ?1 AND purpose != 'deleted'", kFileColumns));
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_file_row(q);
}

void JobStore::delete_file(const std::string& id) {
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement fq = db_->prepare("SELECT purpose, COALESCE(job_id, ''), COALESCE(kind, 0) FROM files WHERE id = ?1 AND purpose != 'deleted'");
  fq.bind(1, id);
  if (!fq.step()) fail_request(RequestErrorCode::kNotFound, "No such File object: {}", id);
  if (fq.text(0) == "batch") {
    Statement busy = db_->prepare(
        "SELECT id, state FROM jobs WHERE input_file_id = ?1 AND state IN ('in_progress', 'finalizing', 'cancelling') LIMIT 1");
    busy.bind(1, id);
    if (busy.step()) {
      fail_request(RequestErrorCode::kInvalidRequest,
                   "file {} is the input of batch {}, which is {}: cancel the batch or let it end before deleting the file", id,
                   busy.text(0), busy.text(1));
    }
    // The finished batches that read it keep their results; their copies of its lines go with it.
    db_->prepare("UPDATE lines SET text = '' WHERE job_id IN (SELECT id FROM jobs WHERE input_file_id = ?1)").bind(1, id).run();
    Statement used = db_->prepare("SELECT 1 FROM jobs WHERE input_file_id = ?1 LIMIT 1");
    used.bind(1, id);
    if (used.step()) {
      // Batches still name it as their input (a reference the schema keeps): the row stays, empty.
      db_->prepare("UPDATE files SET purpose = 'deleted', content = NULL, bytes = 0, line_count = 0 WHERE id = ?1").bind(1, id).run();
    } else {
      db_->prepare("DELETE FROM files WHERE id = ?1").bind(1, id).run();
    }
  } else {
    db_->prepare("DELETE FROM results WHERE job_id = ?1 AND kind = ?2").bind(1, fq.text(1)).bind(2, fq.int64(2)).run();
    db_->prepare("DELETE FROM files WHERE id = ?1").bind(1, id).run();
  }
  t.commit();
}

std::vector<FileRecord> JobStore::files(const std::string& purpose) {
  std::lock_guard lock(mutex_);
  Statement q = db_->prepare(
      fmt::format("SELECT {} FROM files WHERE purpose != 'deleted' AND (?1 = '' OR purpose = ?1) ORDER BY created_at DESC, rowid DESC",
                  kFileColumns));
  q.bind(1, purpose);
  std::vector<FileRecord> out;
  while (q.step()) out.push_back(read_file_row(q));
  return out;
}

std::string JobStore::file_content(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement q = db_->prepare(
      "SELECT purpose, content, COALESCE(job_id, ''), COALESCE(kind, 0) FROM files WHERE id = ?1 AND purpose != 'deleted'");
  q.bind(1, id);
  if (!q.step()) fail_request(RequestErrorCode::kNotFound, "No such File object: {}", id);
  if (q.text(0) == "batch") return q.text(1);
  const std::string job_id = q.text(2);
  const int64_t kind = q.int64(3);
  Statement r = db_->prepare("SELECT text FROM results WHERE job_id = ?1 AND kind = ?2 ORDER BY line_no");
  r.bind(1, job_id).bind(2, kind);
  std::string out;
  while (r.step()) {
    out += r.text(0);
    out += '\n';
  }
  return out;
}

// ---- jobs -----------------------------------------------------------------------------------------

JobRecord JobStore::create_job(const std::string& input_file_id, const std::string& endpoint,
                               const std::string& completion_window, const json& metadata) {
  if (!endpoint.empty() && !is_batch_endpoint(endpoint)) {
    fail_request(RequestErrorCode::kInvalidRequest, "endpoint '{}' is not supported for batches (supported: {} and {})", endpoint,
                 kChatEndpoint, kCompletionsEndpoint);
  }
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement fq = db_->prepare("SELECT purpose, content FROM files WHERE id = ?1 AND purpose != 'deleted'");
  fq.bind(1, input_file_id);
  if (!fq.step()) fail_request(RequestErrorCode::kNotFound, "No such File object: {}", input_file_id);
  if (fq.text(0) != "batch") {
    fail_request(RequestErrorCode::kInvalidRequest, "file {} has purpose '{}'; a batch needs a file uploaded with purpose 'batch'",
                 input_file_id, fq.text(0));
  }
  const std::string content = fq.text(1);
  const std::vector<InputLine> lines = split_jsonl(content, options_.max_lines);

  const std::string id = http::new_id("batch_");
  const int64_t now = http::unix_time();
  db_->prepare(
         "INSERT INTO jobs (id, input_file_id, endpoint, completion_window, state, metadata, total, created_at, in_progress_at) "
         "VALUES (?1, ?2, ?3, ?4, 'in_progress', ?5, ?6, ?7, 0)")
      .bind(1, id)
      .bind(2, input_file_id)
      .bind(3, endpoint)
      .bind(4, completion_window)
      .bind(5, metadata.is_object() ? metadata.dump() : std::string("{}"))
      .bind(6, static_cast<int64_t>(lines.size()))
      .bind(7, now)
      .run();
  Statement insert_line = db_->prepare("INSERT INTO lines (job_id, line_no, custom_id, text, state) VALUES (?1, ?2, ?3, ?4, ?5)");
  Statement insert_result =
      db_->prepare("INSERT INTO results (job_id, line_no, kind, text, created_at) VALUES (?1, ?2, 1, ?3, ?4)");
  std::map<std::string, int64_t> seen;  // custom_id -> line
  int64_t failed = 0;
  for (const InputLine& line : lines) {
    LineEnvelope envelope;
    std::optional<LineProblem> problem = check_line(line, endpoint, &envelope);
    if (!problem) {
      auto [it, fresh] = seen.emplace(envelope.custom_id, line.line_no);
      if (!fresh) {
        problem = LineProblem{"duplicate_custom_id",
                              fmt::format("line {}: custom_id '{}' is already used on line {}; custom_ids must be unique",
                                          line.line_no, envelope.custom_id, it->second),
                              envelope.custom_id};
      }
    } else if (problem->custom_id) {
      seen.emplace(*problem->custom_id, line.line_no);  // a malformed line's custom_id is taken too
    }
    insert_line.reset();
    insert_line.bind(1, id).bind(2, line.line_no).bind(4, line.text).bind(5, problem ? kFailed : kPending);
    if (problem) {
      insert_line.bind(3, problem->custom_id);
    } else {
      insert_line.bind(3, std::string_view(envelope.custom_id));
    }
    insert_line.run();
    if (problem) {
      ++failed;
      insert_result.reset();
      insert_result.bind(1, id)
          .bind(2, line.line_no)
          .bind(3, error_line(problem->custom_id, line.line_no, problem->code, problem->message))
          .bind(4, now)
          .run();
    }
  }
  db_->prepare("UPDATE jobs SET failed = ?2 WHERE id = ?1").bind(1, id).bind(2, failed).run();
  if (failed == static_cast<int64_t>(lines.size())) finalize(id, JobState::kCompleted);
  JobRecord job = load_job(id);
  t.commit();
  return job;
}

JobRecord JobStore::load_job(const std::string& id) {
  Statement q = db_->prepare(
      "SELECT j.id, j.input_file_id, COALESCE(f.filename, ''), j.endpoint, j.completion_window, j.state, j.metadata, j.total, "
      "j.completed, j.failed, j.created_at, j.in_progress_at, j.finalizing_at, j.completed_at, j.cancelling_at, "
      "j.cancelled_at, j.failed_at, COALESCE(j.output_file_id, ''), COALESCE(j.error_file_id, ''), COALESCE(j.error, ''), "
      "(SELECT COUNT(*) FROM lines l WHERE l.job_id = j.id AND l.state = 1) "
      "FROM jobs j LEFT JOIN files f ON f.id = j.input_file_id WHERE j.id = ?1");
  q.bind(1, id);
  if (!q.step()) fail_request(RequestErrorCode::kNotFound, "No such Batch object: {}", id);
  JobRecord j;
  j.id = q.text(0);
  j.input_file_id = q.text(1);
  j.filename = q.text(2);
  j.endpoint = q.text(3);
  j.completion_window = q.text(4);
  j.state = parse_state(q.text(5));
  try {
    j.metadata = json::parse(q.text(6));
  } catch (const json::exception&) {
    j.metadata = json::object();
  }
  j.total = q.int64(7);
  j.completed = q.int64(8);
  j.failed = q.int64(9);
  j.created_at = q.int64(10);
  j.in_progress_at = q.int64(11);
  j.finalizing_at = q.int64(12);
  j.completed_at = q.int64(13);
  j.cancelling_at = q.int64(14);
  j.cancelled_at = q.int64(15);
  j.failed_at = q.int64(16);
  j.output_file_id = q.text(17);
  j.error_file_id = q.text(18);
  j.error = q.text(19);
  j.running = q.int64(20);
  return j;
}

std::optional<JobRecord> JobStore::job(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement q = db_->prepare("SELECT 1 FROM jobs WHERE id = ?1");
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return load_job(id);
}

std::vector<JobRecord> JobStore::jobs(const std::string& after, int limit, bool* has_more) {
  std::lock_guard lock(mutex_);
  int64_t before = INT64_MAX;
  if (!after.empty()) {
    Statement a = db_->prepare("SELECT seq FROM jobs WHERE id = ?1");
    a.bind(1, after);
    if (!a.step()) fail_request(RequestErrorCode::kInvalidRequest, "'after' names no batch: {}", after);
    before = a.int64(0);
  }
  limit = std::max(1, limit);
  Statement q = db_->prepare("SELECT id FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2");
  q.bind(1, before).bind(2, static_cast<int64_t>(limit) + 1);
  std::vector<std::string> ids;
  while (q.step()) ids.push_back(q.text(0));
  if (has_more) *has_more = static_cast<int>(ids.size()) > limit;
  if (static_cast<int>(ids.size()) > limit) ids.resize(static_cast<size_t>(limit));
  std::vector<JobRecord> out;
  for (const std::string& id : ids) out.push_back(load_job(id));
  return out;
}

JobRecord JobStore::request_cancel(const std::string& id) {
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  JobRecord j = load_job(id);
  if (j.state == JobState::kInProgress) {
    db_->prepare("UPDATE jobs SET state = 'cancelling', cancelling_at = ?2 WHERE id = ?1").bind(1, id).bind(2, http::unix_time()).run();
    j = load_job(id);
  } else if (j.state != JobState::kCancelling) {
    fail_request(RequestErrorCode::kInvalidRequest, "batch {} is {} and cannot be cancelled", id, job_state_name(j.state));
  }
  t.commit();
  return j;
}

std::map<std::string, int64_t> JobStore::count_by_state() {
  std::lock_guard lock(mutex_);
  Statement q = db_->prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state");
  std::map<std::string, int64_t> out;
  while (q.step()) out[q.text(0)] = q.int64(1);
  return out;
}

// ---- the runner -----------------------------------------------------------------------------------

void JobStore::finalize(const std::string& job_id, JobState final_state) {
  const int64_t now = http::unix_time();
  db_->prepare("UPDATE jobs SET state = 'finalizing', finalizing_at = ?2 WHERE id = ?1").bind(1, job_id).bind(2, now).run();
  std::string file_ids[2];
  for (int kind = 0; kind < 2; ++kind) {
    Statement c = db_->prepare(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(text AS BLOB)) + 1), 0) FROM results WHERE job_id = ?1 AND kind = ?2");
    c.bind(1, job_id).bind(2, static_cast<int64_t>(kind));
    c.step();
    const int64_t count = c.int64(0);
    if (count == 0) continue;
    file_ids[kind] = http::new_id("file-");
    db_->prepare(
           "INSERT INTO files (id, purpose, filename, bytes, created_at, line_count, job_id, kind) "
           "VALUES (?1, 'batch_output', ?2, ?3, ?4, ?5, ?6, ?7)")
        .bind(1, file_ids[kind])
        .bind(2, fmt::format("{}_{}.jsonl", job_id, kind == 0 ? "output" : "error"))
        .bind(3, c.int64(1))
        .bind(4, now)
        .bind(5, count)
        .bind(6, job_id)
        .bind(7, static_cast<int64_t>(kind))
        .run();
  }
  const char* column = final_state == JobState::kCancelled ? "cancelled_at" : final_state == JobState::kFailed ? "failed_at" : "completed_at";
  db_->prepare(fmt::format("UPDATE jobs SET state = ?2, {} = ?3, output_file_id = ?4, error_file_id = ?5 WHERE id = ?1", column))
      .bind(1, job_id)
      .bind(2, std::string_view(job_state_name(final_state)))
      .bind(3, now)
      .bind(4, file_ids[0].empty() ? std::optional<std::string>() : std::optional<std::string>(file_ids[0]))
      .bind(5, file_ids[1].empty() ? std::optional<std::string>() : std::optional<std::string>(file_ids[1]))
      .run();
}

int64_t JobStore::recover() {
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement reset = db_->prepare("UPDATE lines SET state = 0 WHERE state = 1");
  reset.run();
  const int64_t released = db_->changes();
  std::vector<std::pair<std::string, JobState>> to_finalize;
  {
    Statement q = db_->prepare(
        "SELECT id, state, total, completed + failed FROM jobs WHERE state IN ('in_progress', 'finalizing', 'cancelling') ORDER BY seq");
    while (q.step()) {
      const JobState s = parse_state(q.text(1));
      if (s == JobState::kCancelling) {
        to_finalize.emplace_back(q.text(0), JobState::kCancelled);
      } else if (s == JobState::kFinalizing || q.int64(3) >= q.int64(2)) {
        to_finalize.emplace_back(q.text(0), JobState::kCompleted);
      }
    }
  }
  for (const auto& [id, state] : to_finalize) {
    // finalize() runs inside one transaction, so no half-made output files can exist; deleting them is
    // only a safeguard against a database edited by hand.
    db_->prepare("DELETE FROM files WHERE job_id = ?1").bind(1, id).run();
    finalize(id, state);
  }
  t.commit();
  return released;
}

std::vector<std::string> JobStore::jobs_in_state(JobState state) {
  std::lock_guard lock(mutex_);
  Statement q = db_->prepare("SELECT id FROM jobs WHERE state = ?1 ORDER BY seq");
  q.bind(1, std::string_view(job_state_name(state)));
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

std::vector<ClaimedLine> JobStore::claim_lines(const std::string& job_id, int limit) {
  std::vector<ClaimedLine> out;
  if (limit <= 0) return out;
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement s = db_->prepare("SELECT state FROM jobs WHERE id = ?1");
  s.bind(1, job_id);
  if (!s.step() || s.text(0) != "in_progress") return out;
  Statement q = db_->prepare(
      "SELECT line_no, COALESCE(custom_id, ''), text FROM lines WHERE job_id = ?1 AND state = 0 ORDER BY line_no LIMIT ?2");
  q.bind(1, job_id).bind(2, static_cast<int64_t>(limit));
  while (q.step()) out.push_back(ClaimedLine{q.int64(0), q.text(1), q.text(2)});
  if (out.empty()) return out;
  Statement mark = db_->prepare("UPDATE lines SET state = 1 WHERE job_id = ?1 AND line_no = ?2 AND state = 0");
  for (const ClaimedLine& l : out) {
    mark.reset();
    mark.bind(1, job_id).bind(2, l.line_no).run();
  }
  db_->prepare("UPDATE jobs SET in_progress_at = ?2 WHERE id = ?1 AND in_progress_at = 0")
      .bind(1, job_id)
      .bind(2, http::unix_time())
      .run();
  t.commit();
  return out;
}

void JobStore::release_lines(const std::string& job_id, const std::vector<int64_t>& line_nos) {
  if (line_nos.empty()) return;
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement u = db_->prepare("UPDATE lines SET state = 0 WHERE job_id = ?1 AND line_no = ?2 AND state = 1");
  for (int64_t n : line_nos) {
    u.reset();
    u.bind(1, job_id).bind(2, n).run();
  }
  t.commit();
}

int64_t JobStore::commit(const std::vector<LineOutcome>& outcomes) {
  if (outcomes.empty()) return 0;
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement mark = db_->prepare("UPDATE lines SET state = ?3 WHERE job_id = ?1 AND line_no = ?2 AND state = 1");
  Statement insert = db_->prepare("INSERT INTO results (job_id, line_no, kind, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5)");
  Statement count_ok = db_->prepare("UPDATE jobs SET completed = completed + 1 WHERE id = ?1");
  Statement count_failed = db_->prepare("UPDATE jobs SET failed = failed + 1 WHERE id = ?1");
  const int64_t now = http::unix_time();
  int64_t committed = 0;
  std::set<std::string> touched;
  for (const LineOutcome& o : outcomes) {
    const bool ok = o.kind == ResultKind::kOutput;
    mark.reset();
    mark.bind(1, o.job_id).bind(2, o.line_no).bind(3, ok ? kDone : kFailed).run();
    if (db_->changes() != 1) {
      spdlog::warn("batch {}: line {} is not running; its result is dropped", o.job_id, o.line_no);
      continue;
    }
    insert.reset();
    insert.bind(1, o.job_id).bind(2, o.line_no).bind(3, static_cast<int64_t>(o.kind)).bind(4, o.result).bind(5, now).run();
    Statement& counter = ok ? count_ok : count_failed;
    counter.reset();
    counter.bind(1, o.job_id).run();
    touched.insert(o.job_id);
    ++committed;
  }
  for (const std::string& id : touched) {
    Statement q = db_->prepare("SELECT state, total, completed + failed FROM jobs WHERE id = ?1");
    q.bind(1, id);
    if (q.step() && q.text(0) == "in_progress" && q.int64(2) >= q.int64(1)) finalize(id, JobState::kCompleted);
  }
  t.commit();
  return committed;
}

bool JobStore::finish_cancel(const std::string& job_id) {
  std::lock_guard lock(mutex_);
  Transaction t(*db_);
  Statement q = db_->prepare("SELECT state, (SELECT COUNT(*) FROM lines WHERE job_id = ?1 AND state = 1) FROM jobs WHERE id = ?1");
  q.bind(1, job_id);
  if (!q.step() || q.text(0) != "cancelling" || q.int64(1) != 0) return false;
  finalize(job_id, JobState::kCancelled);
  t.commit();
  return true;
}

// ---- results --------------------------------------------------------------------------------------

int JobStore::read_results(const std::string& job_id, std::optional<ResultKind> kind, int64_t after_line, size_t max_bytes,
                           std::string& out, int64_t* last_line, bool* more) {
  std::lock_guard lock(mutex_);
  load_job(job_id);  // kNotFound for unknown ids
  Statement q = db_->prepare(
      "SELECT line_no, text FROM results WHERE job_id = ?1 AND line_no > ?2 AND (?3 < 0 OR kind = ?3) ORDER BY line_no");
  q.bind(1, job_id).bind(2, after_line).bind(3, kind ? static_cast<int64_t>(*kind) : int64_t{-1});
  int count = 0;
  const size_t start = out.size();
  if (more) *more = false;
  while (q.step()) {
    if (count > 0 && out.size() - start >= max_bytes) {
      if (more) *more = true;
      break;
    }
    if (last_line) *last_line = q.int64(0);
    out += q.text(1);
    out += '\n';
    ++count;
  }
  return count;
}

}  // namespace shardlm::jobs
