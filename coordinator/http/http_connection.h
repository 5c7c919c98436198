// Internal to the HTTP server: the state its connections share (backend, router, options, and the
// live connections and generations, so that stop() can close and cancel them, and the count of open
// connections against max_connections), and the start of one connection on an accepted socket (over
// TLS when the options have a TLS context). The connection itself (Boost.Beast) is in
// http_connection.cc.
#pragma once

#include <utility>  // before Asio (it uses std::exchange etc. without including it in 1.74)

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "common/connection_limit.h"
#include "coordinator/http/api_router.h"
#include "coordinator/http/http_server.h"
#include "coordinator/http/text_backend.h"

namespace shardlm::http {

// A connection as the server sees it at stop().
class ConnectionHandle {
 public:
  virtual ~ConnectionHandle() = default;
  // Closes the socket and cancels the request it runs (posted to the connection's strand).
  virtual void close() = 0;
};

// One generation's link between its observer (called on the scheduler thread) and its connection.
class GenerationHandle {
 public:
  virtual ~GenerationHandle() = default;
  // No more deliveries to the connection (which it stops holding). Returns the backend id to
  // cancel when the generation has not finished, else 0.
  virtual uint64_t detach() = 0;
};

class ServerState {
 public:
  ServerState(TextBackend& backend, ApiRouter& router, HttpServerOptions options)
      : backend(backend), router(router), options(std::move(options)), connection_limit(this->options.max_connections) {}

  TextBackend& backend;
  ApiRouter& router;
  const HttpServerOptions options;
  ConnectionLimit connection_limit;
  std::atomic<bool> stopping{false};
  // Runs the costly part of a request with a body (parsing it, rendering and tokenizing a prompt, an
  // upload's storage) off the I/O threads; unset: in place. Requests without a body run in place.
  std::function<void(std::function<void()>)> run_prepare;

  void add_connection(const std::shared_ptr<ConnectionHandle>& c);
  void add_generation(const std::shared_ptr<GenerationHandle>& g);
  std::vector<std::shared_ptr<ConnectionHandle>> connections();
  std::vector<std::shared_ptr<GenerationHandle>> generations();

 private:
  std::mutex mutex_;
  std::vector<std::weak_ptr<ConnectionHandle>> connections_;
  std::vector<std::weak_ptr<GenerationHandle>> generations_;
};

// Serves HTTP (HTTPS with options.tls) on `socket` (whose executor must be a strand) until the client
// or the server closes it. Beyond max_connections: answers 503 "too many connections" and closes.
void start_connection(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state);

}  // namespace shardlm::http
