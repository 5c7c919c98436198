#include "coordinator/jobs/job_protocol.h"

#include <algorithm>

#include "coordinator/request_error.h"

namespace shardlm::jobs {
namespace {

constexpr uint32_t kDefaultListLimit = 20;
constexpr uint32_t kMaxListLimit = 100;

client::JobState proto_state(JobState s) {
  switch (s) {
    case JobState::kInProgress: return client::JOB_IN_PROGRESS;
    case JobState::kFinalizing: return client::JOB_FINALIZING;
    case JobState::kCompleted: return client::JOB_COMPLETED;
    case JobState::kCancelling: return client::JOB_CANCELLING;
    case JobState::kCancelled: return client::JOB_CANCELLED;
    case JobState::kFailed: return client::JOB_FAILED;
  }
  return client::JOB_STATE_UNSPECIFIED;
}

const std::string& required_id(const std::string& id) {
  if (id.empty()) fail_request(RequestErrorCode::kInvalidRequest, "job_id is required");
  return id;
}

}  // namespace

client::JobInfo to_proto(const JobRecord& j) {
  client::JobInfo p;
  p.set_id(j.id);
  p.set_state(proto_state(j.state));
  p.set_endpoint(j.endpoint);
  p.set_input_file_id(j.input_file_id);
  p.set_total(j.total);
  p.set_completed(j.completed);
  p.set_failed(j.failed);
  p.set_running(j.running);
  p.set_created_at(j.created_at);
  p.set_started_at(j.in_progress_at);
  p.set_finished_at(std::max({j.completed_at, j.cancelled_at, j.failed_at}));
  p.set_output_file_id(j.output_file_id);
  p.set_error_file_id(j.error_file_id);
  p.set_filename(j.filename);
  p.set_error(j.error);
  if (j.metadata.is_object()) {
    for (const auto& [key, value] : j.metadata.items()) {
      (*p.mutable_metadata())[key] = value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  return p;
}

client::JobInfo ProtocolJobHandler::submit(const client::JobSubmitRequest& request) {
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : request.metadata()) metadata[key] = value;
  return to_proto(jobs_.submit(request.filename(), request.jsonl(), request.endpoint(), metadata));
}

client::JobInfo ProtocolJobHandler::status(const client::JobStatusRequest& request) {
  return to_proto(jobs_.job(required_id(request.job_id())));
}

client::JobList ProtocolJobHandler::list(const client::JobListRequest& request) {
  const uint32_t limit = request.limit() == 0 ? kDefaultListLimit : std::min(request.limit(), kMaxListLimit);
  bool has_more = false;
  client::JobList out;
  for (const JobRecord& j : jobs_.list(request.after(), static_cast<int>(limit), &has_more)) *out.add_jobs() = to_proto(j);
  out.set_has_more(has_more);
  return out;
}

client::JobInfo ProtocolJobHandler::cancel(const client::JobCancelRequest& request) {
  return to_proto(jobs_.cancel(required_id(request.job_id())));
}

client::JobResultChunk ProtocolJobHandler::results(const client::JobResultsRequest& request, int64_t after_line, size_t max_bytes) {
  std::optional<ResultKind> kind;
  switch (request.kind()) {
    case client::JOB_RESULTS_OUTPUT: kind = ResultKind::kOutput; break;
    case client::JOB_RESULTS_ERRORS: kind = ResultKind::kError; break;
    case client::JOB_RESULTS_ALL: break;
    default: fail_request(RequestErrorCode::kInvalidRequest, "unknown job result kind {}", static_cast<int>(request.kind()));
  }
  client::JobResultChunk chunk;
  int64_t last_line = after_line;
  bool more = false;
  std::string text;
  const int n = jobs_.read_results(required_id(request.job_id()), kind, after_line, max_bytes, text, &last_line, &more);
  chunk.set_jsonl(std::move(text));
  chunk.set_lines(n);
  chunk.set_last_line(last_line);
  chunk.set_last(!more);
  return chunk;
}

}  // namespace shardlm::jobs
