// The SQLite job store: files, job creation with per-line checks, the line life cycle (claim, commit
// once, release), finalization with output and error files, cancel, listing, result paging, the state
// dir lock, and durability: reopening after the process died (also by SIGKILL in the middle of
// committing, in a child process) loses no committed result and duplicates none.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <functional>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/jobs/job_store.h"
#include "coordinator/request_error.h"

namespace shardlm::jobs {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("shardlm_jobs_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string request(int i, const std::string& url = kChatEndpoint) {
  return json{{"custom_id", "q" + std::to_string(i)},
              {"method", "POST"},
              {"url", url},
              {"body", {{"model", "tiny"}, {"prompt", "x"}}}}
      .dump();
}

std::string file_of(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += request(i) + "\n";
  return s;
}

// A result line (the store keeps whatever text it is given; this one is the same for every call).
LineOutcome ok(const std::string& job, int64_t line) {
  return LineOutcome{job, line, ResultKind::kOutput, json{{"custom_id", "q" + std::to_string(line - 1)}, {"n", line}}.dump()};
}

StoreOptions quick_lock() {
  StoreOptions o;
  o.lock_wait_s = 0.2;
  return o;
}

RequestErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RequestError& e) {
    return e.code();
  }
  ADD_FAILURE() << "no RequestError";
  return RequestErrorCode::kInternal;
}

TEST(JobStore, FilesAreCheckedAndKept) {
  TempDir dir;
  JobStore store(dir.str());
  EXPECT_EQ(code_of([&] { store.add_file("a.jsonl", "fine-tune", file_of(2)); }), RequestErrorCode::kInvalidRequest);
  EXPECT_EQ(code_of([&] { store.add_file("a.jsonl", "batch", "not,json\n"); }), RequestErrorCode::kInvalidRequest);
  const std::string content = file_of(3) + "\n";
  const FileRecord f = store.add_file("in.jsonl", "batch", content);
  EXPECT_EQ(f.id.rfind("file-", 0), 0u);
  EXPECT_EQ(f.bytes, static_cast<int64_t>(content.size()));
  EXPECT_EQ(f.lines, 3);
  EXPECT_EQ(store.file_content(f.id), content);
  ASSERT_TRUE(store.file(f.id));
  EXPECT_EQ(store.file(f.id)->filename, "in.jsonl");
  EXPECT_FALSE(store.file("file-nope"));
  EXPECT_EQ(store.files("batch").size(), 1u);
  EXPECT_EQ(store.files("batch_output").size(), 0u);
  EXPECT_EQ(code_of([&] { store.file_content("file-nope"); }), RequestErrorCode::kNotFound);
}

TEST(JobStore, MalformedLinesGetTheirErrorAtOnce) {
  TempDir dir;
  JobStore store(dir.str());
  const std::string content = request(0) + "\n{bad\n" + request(0) + "\n" + request(1, kCompletionsEndpoint) + "\n" + request(2) + "\n";
  const FileRecord f = store.add_file("in.jsonl", "batch", content);
  EXPECT_EQ(code_of([&] { store.create_job("file-nope", kChatEndpoint, "24h", json::object()); }), RequestErrorCode::kNotFound);
  EXPECT_EQ(code_of([&] { store.create_job(f.id, "/v1/embeddings", "24h", json::object()); }), RequestErrorCode::kInvalidRequest);
  const JobRecord j = store.create_job(f.id, kChatEndpoint, "24h", {{"k", "v"}});
  EXPECT_EQ(j.state, JobState::kInProgress);
  EXPECT_EQ(j.total, 5);
  EXPECT_EQ(j.failed, 3);  // {bad, duplicate q0, url mismatch
  EXPECT_EQ(j.completed, 0);
  EXPECT_EQ(j.metadata["k"], "v");
  EXPECT_EQ(j.filename, "in.jsonl");
  std::string errors;
  int64_t last = 0;
  bool more = true;
  EXPECT_EQ(store.read_results(j.id, ResultKind::kError, 0, 1 << 20, errors, &last, &more), 3);
  EXPECT_FALSE(more);
  EXPECT_EQ(last, 4);
  EXPECT_NE(errors.find("\"line\":2"), std::string::npos);
  EXPECT_NE(errors.find("custom_id 'q0' is already used on line 1"), std::string::npos);
  EXPECT_NE(errors.find("mismatched_url"), std::string::npos);
  // The pending lines are q0 (line 1) and q2 (line 5).
  const std::vector<ClaimedLine> lines = store.claim_lines(j.id, 10);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].line_no, 1);
  EXPECT_EQ(lines[0].custom_id, "q0");
  EXPECT_EQ(lines[1].line_no, 5);

  // A file of only malformed lines makes a job that is complete at once, with an error file.
  const FileRecord bad = store.add_file("bad.jsonl", "batch", "{\"custom_id\": 1}\n");
  const JobRecord jb = store.create_job(bad.id, "", "24h", json::object());
  EXPECT_EQ(jb.state, JobState::kCompleted);
  EXPECT_TRUE(jb.output_file_id.empty());
  ASSERT_FALSE(jb.error_file_id.empty());
  EXPECT_NE(store.file_content(jb.error_file_id).find("'custom_id' must be a string"), std::string::npos);
}

TEST(JobStore, AMalformedLineTakesItsCustomIdToo) {
  TempDir dir;
  JobStore store(dir.str());
  // q1 first on a line for the other endpoint (malformed), then on a good line: the second is a duplicate.
  const std::string content = request(1, kCompletionsEndpoint) + "\n" + request(1) + "\n" + request(2) + "\n";
  const JobRecord j = store.create_job(store.add_file("in.jsonl", "batch", content).id, kChatEndpoint, "24h", json::object());
  EXPECT_EQ(j.failed, 2);
  std::string errors;
  int64_t last = 0;
  bool more = true;
  EXPECT_EQ(store.read_results(j.id, ResultKind::kError, 0, 1 << 20, errors, &last, &more), 2);
  EXPECT_NE(errors.find("mismatched_url"), std::string::npos);
  EXPECT_NE(errors.find("line 2: custom_id 'q1' is already used on line 1"), std::string::npos) << errors;
  const std::vector<ClaimedLine> lines = store.claim_lines(j.id, 10);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].custom_id, "q2");
}

TEST(JobStore, LinesAreCommittedOnceAndJobsFinalize) {
  TempDir dir;
  JobStore store(dir.str());
  const JobRecord j = store.create_job(store.add_file("in.jsonl", "batch", file_of(3)).id, kChatEndpoint, "24h", json::object());
  std::vector<ClaimedLine> lines = store.claim_lines(j.id, 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(store.job(j.id)->running, 2);
  EXPECT_GT(store.job(j.id)->in_progress_at, 0);
  EXPECT_EQ(store.claim_lines(j.id, 5).size(), 1u);  // only line 3 is still pending
  EXPECT_EQ(store.claim_lines(j.id, 5).size(), 0u);

  EXPECT_EQ(store.commit({ok(j.id, 1)}), 1);
  EXPECT_EQ(store.commit({ok(j.id, 1)}), 0);  // already done: dropped, not a second result
  store.release_lines(j.id, {2});
  EXPECT_EQ(store.job(j.id)->running, 1);
  lines = store.claim_lines(j.id, 5);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].line_no, 2);
  const std::string failed = error_line(std::string("q2"), 3, "generation_failed", "line 3: boom", 500, {{"error", "x"}});
  EXPECT_EQ(store.commit({ok(j.id, 2), LineOutcome{j.id, 3, ResultKind::kError, failed}}), 2);

  const JobRecord done = *store.job(j.id);
  EXPECT_EQ(done.state, JobState::kCompleted);
  EXPECT_EQ(done.completed, 2);
  EXPECT_EQ(done.failed, 1);
  EXPECT_EQ(done.running, 0);
  EXPECT_GE(done.completed_at, done.created_at);
  ASSERT_FALSE(done.output_file_id.empty());
  ASSERT_FALSE(done.error_file_id.empty());
  const std::string output = store.file_content(done.output_file_id);
  EXPECT_EQ(output, ok(j.id, 1).result + "\n" + ok(j.id, 2).result + "\n");
  EXPECT_EQ(store.file(done.output_file_id)->bytes, static_cast<int64_t>(output.size()));
  EXPECT_EQ(store.file(done.output_file_id)->purpose, "batch_output");
  EXPECT_EQ(store.file_content(done.error_file_id), failed + "\n");
  EXPECT_EQ(store.claim_lines(j.id, 5).size(), 0u);
  EXPECT_EQ(code_of([&] { store.request_cancel(j.id); }), RequestErrorCode::kInvalidRequest);
  EXPECT_EQ(store.count_by_state()["completed"], 1);
}

TEST(JobStore, CancelWaitsForRunningLines) {
  TempDir dir;
  JobStore store(dir.str());
  const JobRecord j = store.create_job(store.add_file("in.jsonl", "batch", file_of(4)).id, kChatEndpoint, "24h", json::object());
  ASSERT_EQ(store.claim_lines(j.id, 2).size(), 2u);
  EXPECT_EQ(store.commit({ok(j.id, 1)}), 1);
  EXPECT_EQ(store.request_cancel(j.id).state, JobState::kCancelling);
  EXPECT_EQ(store.request_cancel(j.id).state, JobState::kCancelling);  // again: unchanged
  EXPECT_TRUE(store.claim_lines(j.id, 5).empty());                   // nothing new starts
  EXPECT_FALSE(store.finish_cancel(j.id));                           // line 2 still runs
  store.release_lines(j.id, {2});
  EXPECT_TRUE(store.finish_cancel(j.id));
  const JobRecord c = *store.job(j.id);
  EXPECT_EQ(c.state, JobState::kCancelled);
  EXPECT_GT(c.cancelled_at, 0);
  EXPECT_EQ(c.completed, 1);
  EXPECT_EQ(store.file_content(c.output_file_id), ok(j.id, 1).result + "\n");
  EXPECT_EQ(code_of([&] { store.request_cancel("batch_nope"); }), RequestErrorCode::kNotFound);
}

TEST(JobStore, ListsNewestFirstWithPaging) {
  TempDir dir;
  JobStore store(dir.str());
  const std::string f = store.add_file("in.jsonl", "batch", file_of(1)).id;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(store.create_job(f, kChatEndpoint, "24h", json::object()).id);
  bool more = false;
  std::vector<JobRecord> page = store.jobs("", 2, &more);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_TRUE(more);
  EXPECT_EQ(page[0].id, ids[2]);
  EXPECT_EQ(page[1].id, ids[1]);
  page = store.jobs(page[1].id, 2, &more);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_FALSE(more);
  EXPECT_EQ(page[0].id, ids[0]);
  EXPECT_EQ(code_of([&] { store.jobs("batch_nope", 2, &more); }), RequestErrorCode::kInvalidRequest);
  EXPECT_EQ(store.count_by_state()["in_progress"], 3);
}

TEST(JobStore, ResultsArePagedInLineOrder) {
  TempDir dir;
  JobStore store(dir.str());
  const JobRecord j = store.create_job(store.add_file("in.jsonl", "batch", file_of(6)).id, kChatEndpoint, "24h", json::object());
  ASSERT_EQ(store.claim_lines(j.id, 6).size(), 6u);
  // Finished out of order.
  ASSERT_EQ(store.commit({ok(j.id, 4), ok(j.id, 2), ok(j.id, 6), ok(j.id, 1), ok(j.id, 3), ok(j.id, 5)}), 6);
  std::string all;
  int64_t after = 0;
  int chunks = 0;
  for (bool more = true; more; ++chunks) {
    std::string chunk;
    const int n = store.read_results(j.id, std::nullopt, after, 1, chunk, &after, &more);  // 1 byte: one line each
    EXPECT_EQ(n, 1);
    all += chunk;
  }
  EXPECT_EQ(chunks, 6);
  std::string expected;
  for (int i = 1; i <= 6; ++i) expected += ok(j.id, i).result + "\n";
  EXPECT_EQ(all, expected);
  std::string tail;
  bool more = true;
  EXPECT_EQ(store.read_results(j.id, ResultKind::kOutput, 4, 1 << 20, tail, &after, &more), 2);
  EXPECT_FALSE(more);
  EXPECT_EQ(store.read_results(j.id, ResultKind::kError, 0, 1 << 20, tail, &after, &more), 0);
  EXPECT_EQ(code_of([&] { store.read_results("batch_nope", std::nullopt, 0, 10, tail, &after, &more); }), RequestErrorCode::kNotFound);
}

TEST(JobStore, TheStateDirIsLocked) {
  TempDir dir;
  auto first = std::make_unique<JobStore>(dir.str());
  try {
    JobStore second(dir.str(), quick_lock());
    ADD_FAILURE() << "a second store opened the same state dir";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another shardlm serve"), std::string::npos) << e.what();
  }
  first.reset();
  EXPECT_NO_THROW(JobStore(dir.str(), quick_lock()));
}

// A database file emptied after use is refused (it was taken for a new one: every accepted job lost
// without a word); removed, the store starts anew.
TEST(JobStore, AnEmptiedDatabaseIsRefused) {
  TempDir dir;
  { JobStore store(dir.str()); }
  const std::string db = dir.str() + "/jobs.sqlite3";
  std::filesystem::remove(db + "-wal");
  std::filesystem::resize_file(db, 0);
  try {
    JobStore store(dir.str(), quick_lock());
    ADD_FAILURE() << "an empty database was opened";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is empty: it was truncated or lost"), std::string::npos) << e.what();
  }
  std::filesystem::remove(db);
  EXPECT_NO_THROW(JobStore(dir.str(), quick_lock()));
}

TEST(JobStore, ReopeningRecoversRunningLines) {
  TempDir dir;
  std::string id;
  {
    JobStore store(dir.str());
    id = store.create_job(store.add_file("in.jsonl", "batch", file_of(5)).id, kChatEndpoint, "24h", json::object()).id;
    ASSERT_EQ(store.claim_lines(id, 3).size(), 3u);
    ASSERT_EQ(store.commit({ok(id, 2)}), 1);
    // The process "dies" here: lines 1 and 3 are marked running.
  }
  JobStore store(dir.str());
  EXPECT_EQ(store.job(id)->running, 2);
  EXPECT_EQ(store.recover(), 2);
  const JobRecord j = *store.job(id);
  EXPECT_EQ(j.state, JobState::kInProgress);
  EXPECT_EQ(j.completed, 1);
  EXPECT_EQ(j.running, 0);
  std::vector<ClaimedLine> lines = store.claim_lines(id, 10);
  ASSERT_EQ(lines.size(), 4u);  // 1, 3, 4, 5: the first uncommitted lines, in order
  EXPECT_EQ(lines[0].line_no, 1);
  EXPECT_EQ(lines[1].line_no, 3);
  EXPECT_EQ(store.commit({ok(id, 1), ok(id, 3), ok(id, 4), ok(id, 5)}), 4);
  EXPECT_EQ(store.job(id)->state, JobState::kCompleted);
  const std::string out = store.file_content(store.job(id)->output_file_id);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 5);
}

// A child process commits lines one by one and is killed with SIGKILL at a random moment; the
// reopened store must be consistent: every line marked done has exactly one result, the job's
// counter equals the results, and the rest runs after recover().
TEST(JobStore, SigkillWhileCommittingLosesAndDuplicatesNothing) {
  TempDir dir;
  std::string id;
  constexpr int kLines = 400;
  {
    JobStore store(dir.str());
    id = store.create_job(store.add_file("in.jsonl", "batch", file_of(kLines)).id, kChatEndpoint, "24h", json::object()).id;
  }
  for (int round = 0; round < 3; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        JobStore store(dir.str());
        store.recover();
        for (;;) {
          std::vector<ClaimedLine> lines = store.claim_lines(id, 3);
          if (lines.empty()) break;
          std::vector<LineOutcome> outcomes;
          for (const ClaimedLine& l : lines) outcomes.push_back(ok(id, l.line_no));
          store.commit(outcomes);
        }
      } catch (...) {
        ::_exit(3);
      }
      ::_exit(0);
    }
    ::usleep(static_cast<useconds_t>(30000 + 40000 * round));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) << status;

    JobStore store(dir.str(), quick_lock());
    const JobRecord j = *store.job(id);
    std::string results;
    int64_t last = 0;
    bool more = false;
    const int n = store.read_results(id, std::nullopt, 0, SIZE_MAX, results, &last, &more);
    EXPECT_EQ(n, j.completed) << "round " << round;
    std::set<std::string> seen;
    size_t pos = 0;
    while (pos < results.size()) {
      const size_t end = results.find('\n', pos);
      const std::string custom_id = json::parse(results.substr(pos, end - pos))["custom_id"];
      EXPECT_TRUE(seen.insert(custom_id).second) << custom_id << " twice";
      pos = end + 1;
    }
    if (j.state == JobState::kCompleted) break;
  }
  JobStore store(dir.str(), quick_lock());
  store.recover();
  for (;;) {
    std::vector<ClaimedLine> lines = store.claim_lines(id, 50);
    if (lines.empty()) break;
    std::vector<LineOutcome> outcomes;
    for (const ClaimedLine& l : lines) outcomes.push_back(ok(id, l.line_no));
    store.commit(outcomes);
  }
  const JobRecord j = *store.job(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  EXPECT_EQ(j.completed, kLines);
  const std::string out = store.file_content(j.output_file_id);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), kLines);
}

}  // namespace
}  // namespace shardlm::jobs
