#include "coordinator/http/api_router.h"

#include <cctype>
#include <random>

#include "common/version.h"
#include "coordinator/http/openai_response.h"

namespace shardlm::http {
namespace {

using nlohmann::json;

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

ApiRouter::Outcome reply(HttpReply r) {
  ApiRouter::Outcome o;
  o.reply = std::move(r);
  return o;
}

ApiRouter::Outcome error(const ApiError& e) { return reply(error_reply(e)); }

uint64_t random_seed() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

HttpReply json_reply(int status, const json& body) {
  HttpReply r;
  r.status = status;
  r.body = dump_json(body);
  return r;
}

HttpReply error_reply(const ApiError& error) {
  HttpReply r = json_reply(error.status, error.to_json());
  if (error.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(error.retry_after_s));
  if (!error.allow.empty()) r.headers.emplace_back("Allow", error.allow);
  return r;
}

ApiRouter::ApiRouter(TextBackend& backend, std::vector<std::string> api_keys)
    : backend_(backend), api_keys_(api_keys), created_(unix_time()) {}

void ApiRouter::add_route(std::string prefix, RouteHandler route, std::string content_type) {
  std::lock_guard lock(mutex_);
  routes_.push_back({std::move(prefix), std::move(route), std::move(content_type)});
}

bool is_api_path(std::string_view path) {
  return path == "/v1" || path.substr(0, 4) == "/v1/" || path == "/tokenize" || path == "/detokenize";
}

bool ApiRouter::needs_key(std::string_view path) const { return !api_keys_.empty() && is_api_path(path); }

int ApiRouter::key_index(std::string_view authorization) const {
  // "Bearer KEY", scheme case-insensitive.
  if (authorization.size() < 7) return -1;
  std::string scheme(authorization.substr(0, 7));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return -1;
  std::string_view key = authorization.substr(7);
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  if (key.empty()) return -1;
  return api_keys_.find(key);
}

std::optional<HttpReply> ApiRouter::extra_route(const HttpRequestView& request, const std::string& path) const {
  const ExtraRoute* best = nullptr;
  ExtraRoute chosen;
  {
    std::lock_guard lock(mutex_);
    for (const ExtraRoute& r : routes_) {
      if (path.compare(0, r.prefix.size(), r.prefix) == 0 && (!best || r.prefix.size() > best->prefix.size())) best = &r;
    }
    if (!best) return std::nullopt;
    chosen = *best;
  }
  try {
    auto [status, body] = chosen.handler(request.method, request.target, request.body);
    HttpReply r;
    r.status = status;
    r.content_type = chosen.content_type;
    r.body = std::move(body);
    return r;
  } catch (...) {
    return error_reply(current_api_error());
  }
}

ApiRouter::Outcome ApiRouter::tokenization(const HttpRequestView& request, bool tokenize) const {
  try {
    const json body = parse_json_body(request.body);
    // The model is optional on both endpoints (vLLM's); one that is given must be the served one.
    const auto check_model = [&](const std::string& model) {
      if (!model.empty() && model != backend_.model_name()) throw ApiException(model_not_found(model));
    };
    if (tokenize) {
      TokenizeRequest r = parse_tokenize_request(body);
      check_model(r.model);
      const std::vector<int32_t> tokens = backend_.tokenize(r.text);
      json out = {{"count", tokens.size()}, {"max_model_len", backend_.max_context()}, {"tokens", tokens}, {"token_strs", nullptr}};
      if (r.return_token_strs) out["token_strs"] = backend_.token_pieces(tokens);
      return reply(json_reply(200, out));
    }
    const DetokenizeRequest r = parse_detokenize_request(body);
    check_model(r.model);
    return reply(json_reply(200, {{"prompt", backend_.detokenize(r.tokens)}}));
  } catch (...) {
    return error(current_api_error());
  }
}

ApiRouter::Outcome ApiRouter::generation(const HttpRequestView& request, Endpoint endpoint) const {
  try {
    json body = parse_json_body(request.body);
    OpenAIRequest r = endpoint == Endpoint::kChat ? parse_chat_request(body) : parse_completion_request(body);
    if (r.model != backend_.model_name()) return error(model_not_found(r.model));
    if (!r.seed_given) r.text.sampling.seed = random_seed();
    Outcome o;
    o.generation = std::move(r);
    return o;
  } catch (...) {
    return error(current_api_error());
  }
}

ApiRouter::Outcome ApiRouter::handle(const HttpRequestView& request) const {
  const std::string path = path_of(request.target);
  const std::string& method = request.method;
  const bool api_path = is_api_path(path);
  int key = -1;
  if (needs_key(path) && (key = key_index(request.authorization)) < 0) return error(unauthorized(!request.authorization.empty()));
  if (api_path && rate_limiter_) {
    const std::string client = api_keys_.empty() ? "ip:" + request.client : "key:" + std::to_string(key);
    const RateLimiter::Decision d = rate_limiter_->acquire(client);
    if (!d.allowed) return error(rate_limited(rate_limiter_->per_minute(), d.retry_after_s, !api_keys_.empty()));
  }

  auto only = [&](const char* allowed) -> std::optional<Outcome> {
    if (method == allowed || (method == "HEAD" && std::string_view(allowed) == "GET")) return std::nullopt;
    ApiError e = method_not_allowed(method, path);
    e.allow = allowed;
    return reply(error_reply(e));
  };

  if (path == "/health") {
    if (auto o = only("GET")) return *o;
    return reply(json_reply(200, {{"status", "ok"}}));
  }
  if (path == "/version") {
    if (auto o = only("GET")) return *o;
    return reply(json_reply(200, {{"version", kVersion}}));
  }
  if (path == "/ready") {
    if (auto o = only("GET")) return *o;
    if (ready()) return reply(json_reply(200, {{"status", "ready"}}));
    return reply(json_reply(503, {{"status", stopping_ ? "stopping" : "not ready"}}));
  }
  if (path == "/v1/models") {
    if (auto o = only("GET")) return *o;
    return reply(json_reply(200, models_json(backend_.model_name(), created_, backend_.max_context())));
  }
  if (path.rfind("/v1/models/", 0) == 0) {
    if (auto o = only("GET")) return *o;
    std::string id = percent_decode(std::string_view(path).substr(11));
    if (id != backend_.model_name()) return error(model_not_found(id));
    return reply(json_reply(200, model_json(id, created_, backend_.max_context())));
  }
  const bool chat = path == "/v1/chat/completions";
  if (chat || path == "/v1/completions") {
    if (auto o = only("POST")) return *o;
    if (draining_ || stopping_) {
      return error(api_error(RequestErrorCode::kUnavailable, "the server is shutting down and takes no new requests"));
    }
    return generation(request, chat ? Endpoint::kChat : Endpoint::kCompletions);
  }
  if (path == "/tokenize" || path == "/detokenize") {
    if (auto o = only("POST")) return *o;
    return tokenization(request, path == "/tokenize");
  }
  if (auto r = extra_route(request, path)) return reply(std::move(*r));
  return error(not_found_route(method, path));
}

}  // namespace shardlm::http
