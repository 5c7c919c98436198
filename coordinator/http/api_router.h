// Routing of the HTTP API, independent of the transport: API-key check (every API path — /v1/...,
// /tokenize, /detokenize — needs "Authorization: Bearer KEY" when keys are configured, compared in
// constant time; /health, /ready and other extra routes stay open), the rate limit of API paths per
// API key (per client address when there are no keys; 429 with Retry-After beyond it), GET /health,
// GET /ready, GET /version, GET /v1/models[/ID] (HEAD too), POST /tokenize and /detokenize (vLLM's), extra routes
// registered by prefix, and the parsing of POST /v1/chat/completions and /v1/completions into a
// generation for the connection to run. Unknown paths get 404, known paths with another method 405.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/constant_time.h"
#include "common/rate_limiter.h"
#include "coordinator/http/api_error.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/http/text_backend.h"

namespace shardlm::http {

struct HttpRequestView {
  std::string method;
  std::string target;         // path and query
  std::string authorization;  // the Authorization header ("" when absent)
  std::string body;
  std::string client;         // the client's address (rate limit without API keys)
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After, Allow)
};

HttpReply json_reply(int status, const nlohmann::json& body);
HttpReply error_reply(const ApiError& error);

// An extra route: gets method, target (path and query) and body; returns status and body.
using RouteHandler = std::function<std::pair<int, std::string>(const std::string& method, const std::string& target,
                                                               const std::string& body)>;

// The paths of the API proper (/v1/..., /tokenize, /detokenize): the ones API keys and the rate limit
// guard.
bool is_api_path(std::string_view path);

class ApiRouter {
 public:
  ApiRouter(TextBackend& backend, std::vector<std::string> api_keys);

  // Either a complete reply, or a validated generation request (model checked, seed drawn when the
  // client gave none) that the caller submits to the backend.
  struct Outcome {
    std::optional<HttpReply> reply;
    std::optional<OpenAIRequest> generation;
  };
  Outcome handle(const HttpRequestView& request) const;

  // Requests whose path starts with `prefix` (longest prefix wins; built-in paths first) go to
  // `route`; its exceptions become error replies (RequestError by its code, others 500).
  void add_route(std::string prefix, RouteHandler route, std::string content_type = "application/json");
  void set_ready(bool ready) { ready_ = ready; }
  void set_stopping() { stopping_ = true; }
  // From now on completions are refused (503 unavailable): the server is draining before it stops.
  void set_draining() { draining_ = true; }
  // Set before serving; null: no rate limit.
  void set_rate_limiter(std::shared_ptr<RateLimiter> limiter) { rate_limiter_ = std::move(limiter); }
  bool ready() const { return ready_ && !stopping_; }
  // True when `path` needs the API key (keys configured and the path is under /v1/).
  bool needs_key(std::string_view path) const;
  bool key_ok(std::string_view authorization) const { return key_index(authorization) >= 0; }
  // The index of the configured key the "Bearer KEY" header carries, or -1.
  int key_index(std::string_view authorization) const;

 private:
  struct ExtraRoute {
    std::string prefix;
    RouteHandler handler;
    std::string content_type;
  };
  std::optional<HttpReply> extra_route(const HttpRequestView& request, const std::string& path) const;
  Outcome generation(const HttpRequestView& request, Endpoint endpoint) const;
  Outcome tokenization(const HttpRequestView& request, bool tokenize) const;  // /tokenize, /detokenize

  TextBackend& backend_;
  ApiKeySet api_keys_;
  std::shared_ptr<RateLimiter> rate_limiter_;
  int64_t created_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};
  mutable std::mutex mutex_;
  std::vector<ExtraRoute> routes_;
};

}  // namespace shardlm::http
