// One client connection of the TCP server (internal to coordinator/tcp): reads frames, checks the
// handshake, submits generate requests to the text service and writes their deltas / finish back, and
// hands batch-job messages to the job handler on the server's job thread (result streams produce their
// next chunk only once the previous ones are written). Everything else runs on the server's I/O
// thread; the text service's observers (on the scheduler thread) and the job thread reach it through a
// PostGate. A protocol violation sends an Error frame, cancels the connection's
// requests, and closes it once the frame is written (lingering until the peer closes, so the frame is
// not lost to a reset). Over TLS the connection starts with the TLS handshake (bounded by the
// handshake timeout; a failed one closes the connection without a frame). A connection without a
// slot (the server is full) is sent ERROR_UNAVAILABLE "too many connections" and closed.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>

#include <utility>  // before Boost.Asio 1.74: its awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "common/connection_limit.h"
#include "common/constant_time.h"
#include "coordinator/tcp/server.h"
#include "coordinator/text_service.h"
#include "proto/client.pb.h"
#include "proto/frame.h"

namespace shardlm::tcp::detail {

namespace asio = boost::asio;

// Hands work from other threads to the I/O thread while the server runs; drops it after close().
class PostGate {
 public:
  explicit PostGate(asio::io_context& io) : io_(&io) {}
  bool post(std::function<void()> work);  // false: dropped (closed)
  void close();

 private:
  std::mutex mutex_;
  asio::io_context* io_;
};

class Connection;

}  // namespace shardlm::tcp::detail

namespace shardlm::tcp {
class JobHandler;
}

namespace shardlm::tcp::detail {

struct ServerContext {
  TextService& service;
  const TcpServerOptions& options;
  std::shared_ptr<PostGate> gate;
  std::chrono::steady_clock::time_point started;
  std::function<void(const std::shared_ptr<Connection>&)> on_closed;  // removes it from the server
  std::atomic<bool> ready{true};  // false: new generate requests are refused (shutting down)
  std::shared_ptr<JobHandler> jobs{};                         // null: batch jobs are off
  std::function<void(std::function<void()>)> run_job{};       // runs work on the job thread
  std::function<void(std::function<void()>)> run_prepare{};   // tokenizes and submits off the I/O thread
  std::atomic<int64_t> preparing{0};  // generate requests taken and not yet queued or refused, all connections
  ApiKeySet keys{};                                           // options.api_keys, as digests
  ConnectionLimit connection_limit{};                         // options.max_connections
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `slot` empty: the server is full; the connection is refused (after the TLS handshake, if any).
  Connection(asio::ip::tcp::socket socket, ServerContext& context, ConnectionLimit::Slot slot);
  void start();
  // Sends a connection-level Error (request_id 0) and closes the connection after it.
  void fail(client::ErrorCode code, const std::string& message);
  // Results of the connection's requests (called on the I/O thread).
  void deliver_delta(uint64_t request_id, uint64_t serial, const TextDelta& delta);
  void deliver_finish(uint64_t request_id, uint64_t serial, const TextFinish& finish);
  // With n > 1: choice `index` ended before the request's last choice.
  void deliver_choice_finish(uint64_t request_id, uint64_t serial, int32_t index, const TextFinish& finish);
  // The end of a generate request's preparation (rendering, tokenizing, queueing) on the prepare
  // threads: queued as `service_id`, or refused with an error.
  void on_submitted(uint64_t request_id, uint64_t serial, uint64_t service_id);
  void on_refused(uint64_t request_id, uint64_t serial, client::ErrorCode code, const std::string& message);
  // Replies of job requests, from the job thread.
  void deliver_job_reply(const client::ServerMessage& reply);
  void deliver_result_chunk(uint64_t request_id, uint64_t serial, const client::ServerMessage& reply);
  const std::string& peer() const { return peer_; }

 private:
  enum class State { kTlsHandshake, kHandshake, kReady, kClosing, kClosed };
  struct Inflight {
    uint64_t service_id = 0;  // 0: still being prepared (not queued yet)
    uint64_t serial = 0;      // tells results of an earlier request with the same client id apart
    std::map<int32_t, int> next_tool_call;  // per choice
    int32_t choices = 1;                    // n
    std::optional<std::string> echo;        // the prompt, sent first as each choice's text (echo)
    bool prompt_logprobs_sent = false;      // every choice computes them; they are sent once
    bool cancel_wanted = false;  // cancelled while being prepared: cancelled once queued
    std::shared_ptr<std::atomic<bool>> abandoned;  // set when the connection ends during preparation
  };
  // Sends the echo of an inflight request (each choice's text begins with the prompt) unless sent.
  void send_echo(uint64_t request_id, Inflight& request);
  // A generate request waiting for its turn on the prepare threads (one per connection at a time).
  struct ToPrepare {
    uint64_t id = 0;
    uint64_t serial = 0;
    client::GenerateRequest request;
  };
  // A job_results request being streamed.
  struct ResultStream {
    client::JobResultsRequest request;
    uint64_t serial = 0;
    int64_t after_line = 0;
    bool producing = false;  // a chunk is being read on the job thread
  };

  void begin();  // after the TLS handshake (at once without TLS)
  void read();
  void on_read(const boost::system::error_code& ec, size_t n);
  // After the Hello: a frame begun must be finished within frame_timeout_ms (a client that sends
  // part of a frame and stalls would hold its connection slot for ever); armed on its first bytes,
  // anew when `framed` (the last read completed a frame) and the next one has begun.
  void watch_partial_frame(bool framed);
  void handle(client::ClientMessage& message);
  void on_hello(const client::Hello& hello);
  void on_generate(uint64_t id, client::GenerateRequest request);
  // Hands the connection's next waiting generate request to the prepare threads, unless one of its
  // requests is there already (so that one connection's long prompts do not hold up the others').
  void prepare_next();
  // After a prepared request: the next one, and reading again once little waits to be prepared.
  void prepared();
  void on_cancel(uint64_t id);
  void on_job(uint64_t id, const client::ClientMessage& message);
  void next_result_chunk(uint64_t id);
  void resume_result_streams();
  // False (after answering MALFORMED for an id still in use, or QUEUE_FULL at the connection's limit of
  // open requests) when request `id` cannot start.
  bool take_request_id(uint64_t id);
  void send(const client::ServerMessage& message);
  void send_error(uint64_t id, client::ErrorCode code, const std::string& message);
  // False (after answering ERROR_RATE_LIMITED) when the client's rate limit is used up.
  bool admit_request(uint64_t id);
  // The socket under TLS (or the plain one).
  asio::ip::tcp::socket& socket() { return tls_ ? tls_->next_layer() : socket_; }
  template <typename F>
  void with_stream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(socket_);
    }
  }
  void flush();
  void cancel_requests();
  void close();  // at once

  asio::ip::tcp::socket socket_;  // moved into tls_ with TLS
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
  ServerContext& context_;
  ConnectionLimit::Slot slot_;
  std::string peer_;          // address:port, for logs
  std::string peer_address_;  // for the rate limit without API keys
  int key_index_ = -1;        // the API key the client gave (index in context_.keys)
  State state_ = State::kHandshake;
  FrameDecoder decoder_;
  std::array<char, 64 * 1024> read_buffer_{};
  std::string pending_;  // frames waiting to be written
  std::string writing_;  // frames being written
  bool write_in_flight_ = false;
  asio::steady_timer timer_;  // handshake timeout, then a partial frame's deadline, then the closing linger
  asio::steady_timer write_timer_;  // a write's deadline (write_timeout_ms)
  uint64_t write_serial_ = 0;       // the write the deadline belongs to
  bool frame_deadline_armed_ = false;
  uint64_t frame_deadline_id_ = 0;  // the armed deadline's number
  std::map<uint64_t, Inflight> inflight_;
  std::map<uint64_t, ResultStream> result_streams_;
  uint64_t next_serial_ = 1;
  std::deque<ToPrepare> to_prepare_;
  size_t to_prepare_bytes_ = 0;  // their frames' bytes: reading pauses beyond kMaxToPrepareBytes
  bool preparing_ = false;       // one of this connection's requests is on the prepare threads
  bool read_paused_ = false;
};

}  // namespace shardlm::tcp::detail
