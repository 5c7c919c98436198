#include "coordinator/tcp/protocol.h"

#include "model/tokenizer_utf8.h"

namespace shardlm::tcp {

const char* error_code_name(client::ErrorCode code) {
  switch (code) {
    case client::ERROR_INVALID_REQUEST: return "invalid_request";
    case client::ERROR_CONTEXT_LENGTH: return "context_length";
    case client::ERROR_QUEUE_FULL: return "queue_full";
    case client::ERROR_UNAVAILABLE: return "unavailable";
    case client::ERROR_NOT_FOUND: return "not_found";
    case client::ERROR_INTERNAL: return "internal";
    case client::ERROR_UNAUTHORIZED: return "unauthorized";
    case client::ERROR_MALFORMED: return "malformed";
    case client::ERROR_VERSION_MISMATCH: return "version_mismatch";
    case client::ERROR_FRAME_TOO_LARGE: return "frame_too_large";
    case client::ERROR_RATE_LIMITED: return "rate_limited";
    default: return "unknown";
  }
}

const char* finish_reason_name(client::FinishReason reason) {
  switch (reason) {
    case client::FINISH_REASON_STOP: return "stop";
    case client::FINISH_REASON_LENGTH: return "length";
    case client::FINISH_REASON_TOOL_CALLS: return "tool_calls";
    case client::FINISH_REASON_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

const char* job_state_name(client::JobState state) {
  switch (state) {
    case client::JOB_IN_PROGRESS: return "in_progress";
    case client::JOB_FINALIZING: return "finalizing";
    case client::JOB_COMPLETED: return "completed";
    case client::JOB_CANCELLING: return "cancelling";
    case client::JOB_CANCELLED: return "cancelled";
    case client::JOB_FAILED: return "failed";
    default: return "unknown";
  }
}

const char* message_kind(const client::ClientMessage& message) {
  switch (message.body_case()) {
    case client::ClientMessage::kHello: return "hello";
    case client::ClientMessage::kGenerate: return "generate";
    case client::ClientMessage::kCancel: return "cancel";
    case client::ClientMessage::kListModels: return "list_models";
    case client::ClientMessage::kHealth: return "health";
    case client::ClientMessage::kJobSubmit: return "job_submit";
    case client::ClientMessage::kJobStatus: return "job_status";
    case client::ClientMessage::kJobList: return "job_list";
    case client::ClientMessage::kJobCancel: return "job_cancel";
    case client::ClientMessage::kJobResults: return "job_results";
    case client::ClientMessage::BODY_NOT_SET: return "empty";
  }
  return "unknown";
}

const char* message_kind(const client::ServerMessage& message) {
  switch (message.body_case()) {
    case client::ServerMessage::kWelcome: return "welcome";
    case client::ServerMessage::kDelta: return "delta";
    case client::ServerMessage::kFinish: return "finish";
    case client::ServerMessage::kModels: return "models";
    case client::ServerMessage::kHealth: return "health";
    case client::ServerMessage::kError: return "error";
    case client::ServerMessage::kJob: return "job";
    case client::ServerMessage::kJobs: return "jobs";
    case client::ServerMessage::kJobResults: return "job_results";
    case client::ServerMessage::BODY_NOT_SET: return "empty";
  }
  return "unknown";
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  tokenizer_detail::append_sanitized_utf8(text, out);
  return out;
}

}  // namespace shardlm::tcp
