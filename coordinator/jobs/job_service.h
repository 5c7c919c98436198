// Batch jobs on the coordinator: the durable store (<state-dir>/jobs.sqlite3) and the runner that
// executes the lines on the text service, behind the operations both front ends offer — the OpenAI
// Batch API over HTTP (batch_api.h) and the job messages of the TCP protocol (job_protocol.h).
// Errors are RequestErrors (kNotFound for unknown ids, kInvalidRequest for bad input, kInternal when
// the database fails).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/http/text_backend.h"
#include "coordinator/jobs/job_runner.h"
#include "coordinator/jobs/job_store.h"

namespace shardlm {
class TextService;
}

namespace shardlm::jobs {

struct JobServiceOptions {
  StoreOptions store;
  RunnerOptions runner;
};

class JobService {
 public:
  // Opens the store in `state_dir` (throws Error when it cannot: see JobStore). The runner starts
  // with start().
  JobService(const std::string& state_dir, std::shared_ptr<http::TextBackend> backend, JobServiceOptions options = {});
  JobService(const std::string& state_dir, TextService& service, JobServiceOptions options = {});
  ~JobService();  // stop()

  void start();  // recovers the store and starts running lines
  void pause();  // no new lines (graceful shutdown); lines in flight finish
  void stop();   // stops the runner; what is still running runs again at the next start

  // Files (purpose "batch" only for uploads).
  FileRecord upload(const std::string& filename, const std::string& purpose, const std::string& content);
  FileRecord file(const std::string& id);
  std::vector<FileRecord> files(const std::string& purpose);
  std::string file_content(const std::string& id);
  void delete_file(const std::string& id);  // JobStore::delete_file

  // Jobs. completion_window: "24h" (the only value the Batch API knows; jobs never expire here).
  JobRecord create(const std::string& input_file_id, const std::string& endpoint, const std::string& completion_window,
                   const nlohmann::json& metadata);
  // Upload and create in one step (the TCP protocol's job_submit).
  JobRecord submit(const std::string& filename, const std::string& content, const std::string& endpoint,
                   const nlohmann::json& metadata);
  JobRecord job(const std::string& id);
  std::vector<JobRecord> list(const std::string& after, int limit, bool* has_more);
  JobRecord cancel(const std::string& id);
  std::map<std::string, int64_t> count_by_state();  // for the shardlm_batch_jobs gauge

  int read_results(const std::string& job_id, std::optional<ResultKind> kind, int64_t after_line, size_t max_bytes,
                   std::string& out, int64_t* last_line, bool* more);

  JobStore& store() { return store_; }
  const std::string& model_name() const { return model_name_; }

 private:
  std::shared_ptr<http::TextBackend> backend_;
  std::string model_name_;
  JobStore store_;
  JobRunner runner_;
};

}  // namespace shardlm::jobs
