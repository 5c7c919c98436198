#include "coordinator/http/api_error.h"

#include <algorithm>
#include <cmath>
#include <exception>

namespace shardlm::http {

nlohmann::json ApiError::to_json() const {
  nlohmann::json e = nlohmann::json::object();
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param);
  e["code"] = code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code);
  return nlohmann::json{{"error", e}};
}

ApiError api_error(RequestErrorCode code, const std::string& message) {
  ApiError e;
  e.message = message;
  switch (code) {
    case RequestErrorCode::kInvalidRequest:
      e.status = 400;
      e.type = "invalid_request_error";
      break;
    case RequestErrorCode::kContextLength:
      e.status = 400;
      e.type = "invalid_request_error";
      e.code = "context_length_exceeded";
      break;
    case RequestErrorCode::kQueueFull:
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      e.retry_after_s = 1;
      break;
    case RequestErrorCode::kUnavailable:
      e.status = 503;
      e.type = "server_error";
      e.code = "unavailable";
      e.retry_after_s = 1;
      break;
    case RequestErrorCode::kNotFound:
      e.status = 404;
      e.type = "invalid_request_error";
      e.code = "not_found";
      break;
    case RequestErrorCode::kInternal:
      e.status = 500;
      e.type = "server_error";
      e.code = "internal_error";
      break;
  }
  return e;
}

ApiError current_api_error() {
  try {
    throw;
  } catch (const ApiException& e) {
    return e.error();
  } catch (const RequestError& e) {
    ApiError a = api_error(e.code(), e.what());
    if (!e.param().empty()) a.param = e.param();
    return a;
  } catch (const Error& e) {
    return api_error(RequestErrorCode::kInvalidRequest, e.what());
  } catch (const std::exception& e) {
    return api_error(RequestErrorCode::kInternal, std::string("internal error: ") + e.what());
  } catch (...) {
    return api_error(RequestErrorCode::kInternal, "internal error");
  }
}

ApiError not_found_route(const std::string& method, const std::string& path) {
  ApiError e;
  e.status = 404;
  e.type = "invalid_request_error";
  e.code = "unknown_url";
  e.message = fmt::format("Invalid URL ({} {})", method, path);
  return e;
}

ApiError method_not_allowed(const std::string& method, const std::string& path) {
  ApiError e;
  e.status = 405;
  e.type = "invalid_request_error";
  e.code = "method_not_allowed";
  e.message = fmt::format("Method {} is not allowed on {}", method, path);
  return e;
}

ApiError model_not_found(const std::string& model) {
  ApiError e;
  e.status = 404;
  e.type = "invalid_request_error";
  e.param = "model";
  e.code = "model_not_found";
  e.message = fmt::format("The model `{}` does not exist", model);
  return e;
}

ApiError unauthorized(bool key_given) {
  ApiError e;
  e.status = 401;
  e.type = "invalid_request_error";
  e.code = "invalid_api_key";
  e.message = key_given ? "Incorrect API key provided"
                        : "You didn't provide an API key. Send it in the Authorization header: Bearer KEY";
  return e;
}

ApiError body_too_large(size_t limit) {
  ApiError e;
  e.status = 413;
  e.type = "invalid_request_error";
  e.code = "request_too_large";
  e.message = fmt::format("Request body is larger than the limit of {} bytes", limit);
  return e;
}

ApiError rate_limited(double per_minute, double retry_after_s, bool per_key) {
  ApiError e;
  e.status = 429;
  e.type = "rate_limit_error";
  e.code = "rate_limit_exceeded";
  e.retry_after_s = std::max(1, static_cast<int>(std::ceil(retry_after_s)));
  e.message = fmt::format("Rate limit reached: at most {:g} requests per minute per {}; retry in {} s", per_minute,
                          per_key ? "API key" : "client address", e.retry_after_s);
  return e;
}

ApiError too_many_connections(size_t limit) {
  ApiError e;
  e.status = 503;
  e.type = "server_error";
  e.code = "too_many_connections";
  e.message = fmt::format("too many connections: the server holds at most {} at once; retry later", limit);
  e.retry_after_s = 1;
  return e;
}

}  // namespace shardlm::http
