#include "coordinator/jobs/job_service.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/request_error.h"
#include "coordinator/text_service.h"

namespace shardlm::jobs {
namespace {

// Runs a store operation: RequestErrors (bad input, unknown ids) pass; any other failure (the
// database: disk full, I/O error) is the server's fault, not the client's: kInternal.
template <typename F>
auto guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const RequestError&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::error("batch jobs: {}: {}", what, e.what());
    throw RequestError(RequestErrorCode::kInternal, fmt::format("the batch job store failed ({}): {}", what, e.what()));
  }
}

}  // namespace

JobService::JobService(const std::string& state_dir, std::shared_ptr<http::TextBackend> backend, JobServiceOptions options)
    : backend_(std::move(backend)),
      model_name_(backend_ ? backend_->model_name() : std::string()),
      store_(state_dir, options.store),
      runner_(store_, *backend_, options.runner) {}

JobService::JobService(const std::string& state_dir, TextService& service, JobServiceOptions options)
    : JobService(state_dir, std::shared_ptr<http::TextBackend>(http::text_service_backend(service)), options) {}

JobService::~JobService() { stop(); }

void JobService::start() {
  runner_.start();
  const auto counts = store_.count_by_state();
  const auto it = counts.find("in_progress");
  spdlog::info("batch jobs: state in {} ({} in progress)", store_.database_path(), it == counts.end() ? 0 : it->second);
}

void JobService::pause() { runner_.pause(); }

void JobService::stop() { runner_.stop(); }

FileRecord JobService::upload(const std::string& filename, const std::string& purpose, const std::string& content) {
  return guarded("upload", [&] { return store_.add_file(filename, purpose, content); });
}

FileRecord JobService::file(const std::string& id) {
  std::optional<FileRecord> f = guarded("file", [&] { return store_.file(id); });
  if (!f) fail_request(RequestErrorCode::kNotFound, "No such File object: {}", id);
  return *f;
}

std::vector<FileRecord> JobService::files(const std::string& purpose) {
  return guarded("files", [&] { return store_.files(purpose); });
}

std::string JobService::file_content(const std::string& id) {
  return guarded("file content", [&] { return store_.file_content(id); });
}

void JobService::delete_file(const std::string& id) {
  guarded("delete file", [&] {
    store_.delete_file(id);
    return 0;
  });
  spdlog::info("file {} deleted", id);
}

JobRecord JobService::create(const std::string& input_file_id, const std::string& endpoint, const std::string& completion_window,
                             const nlohmann::json& metadata) {
  JobRecord job = guarded("create", [&] { return store_.create_job(input_file_id, endpoint, completion_window, metadata); });
  spdlog::info("batch {}: created over {} ({} lines, {} malformed)", job.id, input_file_id, job.total, job.failed);
  runner_.wake();
  return job;
}

JobRecord JobService::submit(const std::string& filename, const std::string& content, const std::string& endpoint,
                             const nlohmann::json& metadata) {
  if (!endpoint.empty() && !is_batch_endpoint(endpoint)) {
    fail_request(RequestErrorCode::kInvalidRequest, "endpoint '{}' is not supported for batches (supported: {} and {})", endpoint,
                 kChatEndpoint, kCompletionsEndpoint);
  }
  const FileRecord f = upload(filename, "batch", content);
  return create(f.id, endpoint, "24h", metadata);
}

JobRecord JobService::job(const std::string& id) {
  std::optional<JobRecord> j = guarded("job", [&] { return store_.job(id); });
  if (!j) fail_request(RequestErrorCode::kNotFound, "No such Batch object: {}", id);
  return *j;
}

std::vector<JobRecord> JobService::list(const std::string& after, int limit, bool* has_more) {
  return guarded("list", [&] { return store_.jobs(after, limit, has_more); });
}

JobRecord JobService::cancel(const std::string& id) {
  JobRecord j = guarded("cancel", [&] { return store_.request_cancel(id); });
  runner_.wake();
  return j;
}

std::map<std::string, int64_t> JobService::count_by_state() {
  return guarded("count", [&] { return store_.count_by_state(); });
}

int JobService::read_results(const std::string& job_id, std::optional<ResultKind> kind, int64_t after_line, size_t max_bytes,
                             std::string& out, int64_t* last_line, bool* more) {
  return guarded("results", [&] { return store_.read_results(job_id, kind, after_line, max_bytes, out, last_line, more); });
}

}  // namespace shardlm::jobs
