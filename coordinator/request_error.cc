#include "coordinator/request_error.h"

namespace shardlm {

const char* request_error_name(RequestErrorCode code) {
  switch (code) {
    case RequestErrorCode::kInvalidRequest: return "invalid_request_error";
    case RequestErrorCode::kContextLength: return "context_length_exceeded";
    case RequestErrorCode::kQueueFull: return "queue_full";
    case RequestErrorCode::kUnavailable: return "unavailable";
    case RequestErrorCode::kNotFound: return "not_found";
    case RequestErrorCode::kInternal: return "internal_error";
  }
  return "internal_error";
}

}  // namespace shardlm
