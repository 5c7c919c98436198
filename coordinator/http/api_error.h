// Errors of the OpenAI-compatible HTTP API in OpenAI's shape, {"error": {"message", "type", "param",
// "code"}}, with their HTTP status: built from a RequestError of the text service, from a bad field of
// a request (naming the field), or from the HTTP layer itself (auth, routing, body size).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/request_error.h"

namespace shardlm::http {

struct ApiError {
  int status = 500;
  std::string message;
  std::string type = "server_error";  // "invalid_request_error", "rate_limit_error", "server_error"
  std::string param;                  // the offending request field; empty -> null
  std::string code;                   // machine-readable reason; empty -> null
  int retry_after_s = 0;              // > 0: sent as a Retry-After header
  std::string allow;                  // non-empty (a 405): sent as the Allow header

  nlohmann::json to_json() const;  // {"error": {...}}
};

// Thrown by request parsing and routing; carries the complete ApiError.
class ApiException : public Error {
 public:
  explicit ApiException(ApiError error) : Error(error.message), error_(std::move(error)) {}
  const ApiError& error() const { return error_; }

 private:
  ApiError error_;
};

// 400 invalid_request_error naming `param` (may be empty).
template <typename... Args>
[[noreturn]] void fail_param(const std::string& param, fmt::format_string<Args...> format, Args&&... args) {
  ApiError e;
  e.status = 400;
  e.type = "invalid_request_error";
  e.param = param;
  e.message = fmt::format(format, std::forward<Args>(args)...);
  throw ApiException(std::move(e));
}

// The status and shape of a RequestError code: kInvalidRequest / kContextLength 400, kNotFound 404,
// kQueueFull 429 (Retry-After 1), kUnavailable 503, kInternal 500.
ApiError api_error(RequestErrorCode code, const std::string& message);

// Classifies the exception being handled (call inside a catch block): ApiException as is,
// RequestError by its code, any other shardlm::Error as 400 (bad input the text service rejected,
// e.g. a malformed conversation), anything else as 500.
ApiError current_api_error();

// Common errors of the HTTP layer.
ApiError not_found_route(const std::string& method, const std::string& path);  // 404
ApiError method_not_allowed(const std::string& method, const std::string& path);  // 405
ApiError model_not_found(const std::string& model);  // 404 model_not_found
ApiError unauthorized(bool key_given);  // 401 invalid_api_key
ApiError body_too_large(size_t limit);  // 413
// 429 rate_limit_exceeded, Retry-After: retry_after_s rounded up.
ApiError rate_limited(double per_minute, double retry_after_s, bool per_key);
ApiError too_many_connections(size_t limit);  // 503 too_many_connections

}  // namespace shardlm::http
