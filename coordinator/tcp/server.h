// The TCP server of the client protocol (proto/client.proto, docs/protocol.md): accepts connections,
// checks each one's handshake (protocol version, API key), runs its generate requests concurrently on
// the text service and streams the results back as frames; batch-job messages go to a JobHandler
// (when one is set) on a job thread of its own. Connections are independent: a malformed frame closes
// only its own connection (after an Error frame). With a TLS context the frames run inside TLS; a
// client that does not complete the TLS handshake within handshake_timeout_ms (a plaintext one fails
// it at once) is closed. API keys are compared in constant time. Limits: connections beyond
// max_connections get ERROR_UNAVAILABLE "too many connections" and are closed; requests beyond the
// rate limit of their API key (client address without keys) get ERROR_RATE_LIMITED; prompts of more
// than max_prompt_tokens tokens get ERROR_CONTEXT_LENGTH. Serves on one I/O thread of its own; prompts
// are rendered, tokenized and queued on two threads of their own, so that a long one holds up no
// other connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/rate_limiter.h"
#include "proto/frame.h"

namespace boost::asio::ssl {
class context;
}

namespace shardlm {
class TextService;
}

namespace shardlm::tcp {

class JobHandler;

struct TcpServerOptions {
  std::string host = "127.0.0.1";    // address to listen on ("0.0.0.0" / "::" for every interface)
  int port = 7070;                   // 0: any free port (see TcpServer::port())
  std::vector<std::string> api_keys; // when not empty, Hello must carry one of them
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;  // largest client frame accepted
  uint32_t max_requests_per_connection = 256;        // generate requests in flight per connection
  int handshake_timeout_ms = 10000;  // a connection that sends no Hello in time is closed
  int frame_timeout_ms = 60000;      // after the Hello, a frame begun must be complete within this
  int close_linger_ms = 2000;        // after an Error that closes a connection: wait for the peer
  size_t max_pending_write_bytes = size_t{64} << 20;  // a client that reads slower is disconnected
  int write_timeout_ms = 60000;  // a write the client does not take within this closes the connection
  std::shared_ptr<boost::asio::ssl::context> tls;     // set: TLS (common/tls.h server_context)
  size_t max_connections = 0;                         // open connections at most; 0: no limit
  std::shared_ptr<RateLimiter> rate_limiter;          // generate / list_models / job requests
  int64_t max_prompt_tokens = 0;                      // > 0: longer prompts are refused
};

class TcpServer {
 public:
  TcpServer(TextService& service, TcpServerOptions options);
  ~TcpServer();  // stop()
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  // Batch-job messages go to `handler` (set before start(); without one they are answered with
  // ERROR_UNAVAILABLE: batch jobs are off). The handler must outlive the server.
  void set_job_handler(std::shared_ptr<JobHandler> handler);
  // Binds and listens (throws Error naming the address when it cannot), then serves on its own
  // thread. Once only.
  void start();
  // Stops accepting, sends every connection an ERROR_UNAVAILABLE frame, cancels their requests,
  // closes them and joins the thread. Idempotent.
  void stop();
  // While not ready (from start() on it is ready), health reports serving = false and new generate
  // requests are refused with ERROR_UNAVAILABLE; running ones go on (for a graceful shutdown).
  void set_ready(bool ready);
  // The port listened on (the chosen one when options.port was 0); valid after start().
  int port() const;
  // Connections open now.
  size_t connection_count() const;
  // Generate requests taken from clients and not yet queued (or refused) by the text service: a
  // draining server waits for them too.
  int64_t preparing() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm::tcp
