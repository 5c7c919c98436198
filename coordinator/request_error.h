// Errors of a client request, classified so that every front end (HTTP, TCP protocol, batch jobs)
// maps them to its own status: invalid input, too long for the context, queue full, shutting down.
#pragma once

#include <string>

#include "common/error.h"

namespace shardlm {

enum class RequestErrorCode {
  kInvalidRequest,  // a field is missing, malformed or out of range (HTTP 400)
  kContextLength,   // prompt + max_tokens exceed the context or the cluster's KV capacity (HTTP 400)
  kQueueFull,       // too many waiting requests (HTTP 429)
  kUnavailable,     // the server is shutting down or not ready (HTTP 503)
  kNotFound,        // unknown model, request or job id (HTTP 404)
  kInternal,        // a fault inside the server (HTTP 500)
};

class RequestError : public Error {
 public:
  // param: the request field at fault when one is ("n"), for front ends that name it.
  RequestError(RequestErrorCode code, const std::string& what, std::string param = {})
      : Error(what), code_(code), param_(std::move(param)) {}
  RequestErrorCode code() const { return code_; }
  const std::string& param() const { return param_; }

 private:
  RequestErrorCode code_;
  std::string param_;
};

// "invalid_request_error", "context_length_exceeded", "queue_full", "unavailable", "not_found",
// "internal_error".
const char* request_error_name(RequestErrorCode code);

template <typename... Args>
[[noreturn]] void fail_request(RequestErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  throw RequestError(code, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace shardlm
