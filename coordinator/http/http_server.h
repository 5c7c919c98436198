// The OpenAI-compatible HTTP server (HTTP/1.1, keep-alive) in front of the text service:
//   POST /v1/chat/completions, POST /v1/completions   (streamed as server-sent events or not)
//   GET  /v1/models, GET /v1/models/{id}
//   GET  /health (always 200 while running), GET /ready (200 only when set_ready(true) and not stopping)
// plus extra routes by prefix (batch API, metrics). Request fields and their checks: openai_request.h;
// response shapes: openai_response.h; errors: api_error.h. Bodies over max_body_bytes get 413 (on the
// Content-Length and while reading a chunked body). A client that disconnects while its request runs
// has the request cancelled. With a TLS context it speaks HTTPS only: a client that does not complete
// the TLS handshake within request_timeout_s (a plaintext one fails it at once) is closed. Connections
// beyond max_connections get 503 "too many connections" and are closed; with a rate limiter, /v1/*
// requests beyond the limit of their API key (or client address, without keys) get 429 (ApiRouter).
// Runs an Asio io_context on `threads` threads of its own.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/rate_limiter.h"
#include "coordinator/http/api_router.h"
#include "coordinator/http/text_backend.h"
#include "coordinator/text_service.h"

namespace boost::asio::ssl {
class context;
}

namespace shardlm::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // IPv4 / IPv6 address or host name
  int port = 8000;                 // 0 = any free port (see port())
  std::vector<std::string> api_keys;  // non-empty: /v1/* need "Authorization: Bearer KEY"
  size_t max_body_bytes = 8 << 20;
  int threads = 1;
  double request_timeout_s = 60;  // the TLS handshake, reading one request (headers and body), writing a reply or one stream write
  std::shared_ptr<boost::asio::ssl::context> tls;  // set: HTTPS (common/tls.h server_context)
  size_t max_connections = 0;                      // open connections at most; 0: no limit
  std::shared_ptr<RateLimiter> rate_limiter;       // /v1/* requests per API key (or client address)
};

class HttpServer {
 public:
  // Binds and listens at once. Throws Error naming the address and the reason when it cannot.
  HttpServer(TextService& service, HttpServerOptions options);
  HttpServer(std::shared_ptr<TextBackend> backend, HttpServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;  // the bound port (the real one when 0 was asked for)
  void start();      // serves on `threads` threads of its own
  // Stops accepting, closes every connection (cancelling the requests still running) and joins the
  // threads. Idempotent.
  void stop();
  void set_ready(bool ready);
  // Not ready, and completions are refused with 503 from now on (requests already taken go on).
  void set_draining();

  using Route = RouteHandler;
  // Extra routes (see ApiRouter::add_route); replies are application/json unless content_type says
  // otherwise. Paths under /v1/ need the API key like the built-in ones.
  void add_route(std::string prefix, Route route);
  void add_route(std::string prefix, Route route, std::string content_type);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm::http
