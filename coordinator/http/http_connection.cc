// One HTTP/1.1 connection (Boost.Beast): reads requests one after the other (keep-alive), answers
// plain requests through the ApiRouter, and runs generations: the request goes to the backend, whose
// observer posts deltas to this connection's strand; a non-streamed request gets its response at the
// finish, a streamed one gets server-sent events in a chunked body as deltas arrive. While a
// generation runs the socket is watched for the client going away, which cancels it. The connection
// is a template over its stream: beast::tcp_stream, or beast::ssl_stream over one for HTTPS (which
// starts with the TLS handshake). A connection beyond the server's limit is answered with 503 at once
// and closed.
#include "coordinator/http/http_connection.h"

#include <utility>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <type_traits>

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "coordinator/http/openai_response.h"

namespace shardlm::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// ---- ServerState --------------------------------------------------------------------------------

namespace {

template <typename T>
void add_live(std::vector<std::weak_ptr<T>>& list, const std::shared_ptr<T>& item) {
  list.erase(std::remove_if(list.begin(), list.end(), [](const std::weak_ptr<T>& w) { return w.expired(); }), list.end());
  list.push_back(item);
}

template <typename T>
std::vector<std::shared_ptr<T>> live(const std::vector<std::weak_ptr<T>>& list) {
  std::vector<std::shared_ptr<T>> out;
  for (const auto& w : list) {
    if (auto s = w.lock()) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

void ServerState::add_connection(const std::shared_ptr<ConnectionHandle>& c) {
  std::lock_guard lock(mutex_);
  add_live(connections_, c);
}

void ServerState::add_generation(const std::shared_ptr<GenerationHandle>& g) {
  std::lock_guard lock(mutex_);
  add_live(generations_, g);
}

std::vector<std::shared_ptr<ConnectionHandle>> ServerState::connections() {
  std::lock_guard lock(mutex_);
  return live(connections_);
}

std::vector<std::shared_ptr<GenerationHandle>> ServerState::generations() {
  std::lock_guard lock(mutex_);
  return live(generations_);
}

// ---- the connection -----------------------------------------------------------------------------

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;
constexpr uint64_t kUnauthorizedBodyBytes = 64 * 1024;  // most body read for a request without a valid API key
constexpr auto kLingerTime = std::chrono::seconds(2);

class Link;

// What a generation's results go to: a connection, whatever its stream.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual asio::any_io_executor executor() = 0;
  virtual void on_delta(const std::shared_ptr<Link>& link, const TextDelta& delta) = 0;
  virtual void on_finish(const std::shared_ptr<Link>& link, const TextFinish& finish) = 0;
  virtual void on_choice_finish(const std::shared_ptr<Link>& link, int32_t index, const TextFinish& finish) = 0;
};

// Holds the connection while a generation runs; detached when it finishes, when the client goes
// away, or at server stop (then no more deliveries, and the connection is no longer held).
class Link final : public GenerationHandle, public std::enable_shared_from_this<Link> {
 public:
  explicit Link(std::shared_ptr<Sink> conn) : conn_(std::move(conn)) {}

  template <typename F>
  void deliver(F&& f);

  void set_id(uint64_t id) {
    std::lock_guard lock(mutex_);
    id_ = id;
  }
  void mark_finished() {
    std::lock_guard lock(mutex_);
    finished_ = true;
  }
  uint64_t detach() override {
    std::shared_ptr<Sink> conn;
    uint64_t id = 0;
    {
      std::lock_guard lock(mutex_);
      conn = std::move(conn_);
      conn_.reset();
      id = finished_ ? 0 : id_;
      finished_ = true;
    }
    return id;  // `conn` is released here, outside the lock
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<Sink> conn_;
  uint64_t id_ = 0;
  bool finished_ = false;
};

class LinkObserver final : public TextObserver {
 public:
  explicit LinkObserver(std::shared_ptr<Link> link) : link_(std::move(link)) {}
  void on_delta(const TextDelta& delta) override;
  void on_finish(const TextFinish& finish) override;
  void on_choice_finish(int32_t index, const TextFinish& finish) override;

 private:
  std::shared_ptr<Link> link_;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <typename Stream>
class HttpConnection final : public ConnectionHandle,
                             public Sink,
                             public std::enable_shared_from_this<HttpConnection<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using std::enable_shared_from_this<HttpConnection<Stream>>::shared_from_this;

 public:
  // `slot` empty: the server holds max_connections already; this one is answered 503 and closed.
  HttpConnection(tcp::socket socket, std::shared_ptr<ServerState> state, ConnectionLimit::Slot slot)
      : stream_(make_stream(std::move(socket), *state)),
        hangup_timer_(stream_.get_executor()),
        state_(std::move(state)),
        slot_(std::move(slot)) {}
  ~HttpConnection() override { cancel_generation(); }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

  void run() {
    beast::error_code ec;
    tcp_layer().socket().set_option(tcp::no_delay(true), ec);
    asio::dispatch(executor(), [self = shared_from_this()] { self->handshake(); });
  }

  void close() override {
    asio::post(executor(), [self = shared_from_this()] { self->abort(); });
  }

  void on_delta(const std::shared_ptr<Link>& link, const TextDelta& delta) override {
    if (link != link_) return;
    if (chunks_) {
      queue_data(chunks_->delta(delta));
    } else if (builder_) {
      builder_->add(delta);
    }
  }

  void on_choice_finish(const std::shared_ptr<Link>& link, int32_t index, const TextFinish& finish) override {
    if (link != link_ || !chunks_) return;
    queue_data(chunks_->choice_finish(index, finish));
  }

  void on_finish(const std::shared_ptr<Link>& link, const TextFinish& finish) override {
    if (link != link_) return;
    link_->detach();
    link_.reset();
    if (chunks_) {
      stream_failed_ = finish_is_error(finish);
      queue_data(chunks_->finish(finish));
      end_stream();
      return;
    }
    HttpReply reply;
    try {
      reply = finish_is_error(finish) ? error_reply(finish_error(finish)) : json_reply(200, builder_->finish(finish));
    } catch (...) {
      reply = error_reply(current_api_error());
    }
    builder_.reset();
    send_reply(std::move(reply), !keep_alive_);
  }

 private:
  std::chrono::steady_clock::duration timeout() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(std::max(0.001, state_->options.request_timeout_s)));
  }

  static Stream make_stream(tcp::socket socket, ServerState& state) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *state.options.tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }

  // ---- the start: TLS handshake, connection limit ----

  void handshake() {
    if constexpr (kTls) {
      tcp_layer().expires_after(timeout());
      stream_.async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
        if (ec) {
          // A plaintext client, a client that does not trust the certificate, or no handshake in time.
          spdlog::debug("http: TLS handshake failed: {}", ec.message());
          return self->abort();
        }
        self->admit();
      });
    } else {
      admit();
    }
  }

  void admit() {
    if (closed_) return;
    if (!slot_) {
      spdlog::debug("http: refused a connection: {} are open (the limit)", state_->options.max_connections);
      return send_reply(error_reply(too_many_connections(state_->options.max_connections)), true);
    }
    read_request();
  }

  // ---- reading a request ----

  void read_request() {
    if (closed_) return;
    head_ = false;
    parser_.emplace();
    parser_->body_limit(static_cast<std::uint64_t>(state_->options.max_body_bytes));
    parser_->header_limit(kHeaderLimit);
    tcp_layer().expires_after(timeout());
    bhttp::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpConnection::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return read_failed(ec);
    if (auto declared = parser_->content_length(); declared && *declared > state_->options.max_body_bytes) {
      return send_reply(error_reply(body_too_large(state_->options.max_body_bytes)), true);
    }
    // A request that needs an API key and has no valid one gets no more than kUnauthorizedBodyBytes of
    // body buffered: a larger (or chunked) one is answered before it is read, without 100 Continue,
    // and the connection closed. (A smaller one is read and refused as usual, keeping the connection.)
    const beast::string_view raw_target = parser_->get().target(), raw_authorization = parser_->get()[bhttp::field::authorization];
    const std::string_view target(raw_target.data(), raw_target.size());
    const std::string_view authorization(raw_authorization.data(), raw_authorization.size());
    const auto length = parser_->content_length();
    const bool small_body = length ? *length <= kUnauthorizedBodyBytes : !parser_->chunked();
    if (!small_body && state_->router.needs_key(target.substr(0, target.find('?'))) && !state_->router.key_ok(authorization)) {
      version_ = parser_->get().version();
      head_ = parser_->get().method() == bhttp::verb::head;
      return send_reply(error_reply(unauthorized(!authorization.empty())), true);
    }
    if (beast::iequals(parser_->get()[bhttp::field::expect], "100-continue")) {
      auto msg = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*msg), [self = shared_from_this(), msg](beast::error_code e, size_t) {
        if (e) return self->abort();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpConnection::on_body, shared_from_this()));
  }

  void read_failed(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return send_reply(error_reply(body_too_large(state_->options.max_body_bytes)), true);
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::bad_descriptor) {
      return abort();
    }
    if (&ec.category() == &beast::error_code(bhttp::error::bad_target).category()) {
      ApiError e;
      e.status = ec == bhttp::error::header_limit ? 431 : 400;
      e.type = "invalid_request_error";
      e.message = "Malformed HTTP request: " + ec.message();
      return send_reply(error_reply(e), true);
    }
    abort();  // a socket error
  }

  void on_body(beast::error_code ec, size_t) {
    if (ec) return read_failed(ec);
    bhttp::request<bhttp::string_body>& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    head_ = req.method() == bhttp::verb::head;
    HttpRequestView view;
    view.method = std::string(req.method_string());
    view.target = std::string(req.target());
    view.authorization = std::string(req[bhttp::field::authorization]);
    view.body = std::move(req.body());
    view.client = client_address();
    parser_.reset();
    if (state_->stopping) {
      return send_reply(error_reply(api_error(RequestErrorCode::kUnavailable, "The server is shutting down")), true);
    }
    // Parsing a body of megabytes and tokenizing its prompt take a while: not on an I/O thread, where
    // they would hold up every other connection it serves. A request without a body (health, ready,
    // models, reading a batch) is answered here, so that busy prepare threads do not hold it up.
    if (!state_->run_prepare || view.body.empty()) return prepare(std::move(view));
    state_->run_prepare([self = shared_from_this(), view = std::move(view)]() mutable { self->prepare(std::move(view)); });
  }

  // The request's costly part (on a prepare thread, or in place), then back on the connection.
  void prepare(HttpRequestView view) {
    auto outcome = std::make_shared<ApiRouter::Outcome>();
    auto prepared = std::make_shared<PreparedText>();
    try {
      *outcome = state_->router.handle(view);
      if (!outcome->reply) *prepared = state_->backend.prepare(outcome->generation->text);
    } catch (...) {
      outcome->generation.reset();
      outcome->reply = error_reply(current_api_error());
    }
    asio::dispatch(executor(), [self = shared_from_this(), outcome, prepared] {
      if (self->closed_) return;
      if (outcome->reply) return self->send_reply(std::move(*outcome->reply), !self->keep_alive_);
      if (self->state_->stopping) {
        return self->send_reply(error_reply(api_error(RequestErrorCode::kUnavailable, "The server is shutting down")), true);
      }
      self->start_generation(std::move(*outcome->generation), std::move(*prepared));
    });
  }

  // ---- plain replies ----

  void send_reply(HttpReply reply, bool close) {
    if (closed_) return;
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version_);
    res->result(static_cast<unsigned>(reply.status));
    res->set(bhttp::field::server, "shardlm");
    res->set(bhttp::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res->set(name, value);
    res->keep_alive(!close && keep_alive_);
    if (head_) {
      res->content_length(reply.body.size());  // the length a GET would get, without the body
    } else {
      res->body() = std::move(reply.body);
      res->prepare_payload();
    }
    tcp_layer().expires_after(timeout());
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec) return self->abort();
      if (!res->keep_alive()) return self->graceful_close();
      self->read_request();
    });
  }

  // ---- generations ----

  void start_generation(OpenAIRequest request, PreparedText prepared) {
    auto link = std::make_shared<Link>(shared_from_this());
    uint64_t id = 0;
    try {
      id = state_->backend.submit_prepared(std::move(prepared), std::make_shared<LinkObserver>(link));
    } catch (...) {
      link->detach();
      return send_reply(error_reply(current_api_error()), !keep_alive_);
    }
    link->set_id(id);
    state_->add_generation(link);
    link_ = link;
    if (state_->stopping) return abort();  // stop() may have collected the generations already

    ResponseMeta meta = make_meta(request);
    tcp_layer().expires_never();  // a generation may take long; stream writes set their own expiry
    if (request.stream) {
      chunks_.emplace(meta);
      chunked_ = version_ >= 11;
      stream_failed_ = false;
      pending_ += stream_head();
      queue_data(chunks_->start());
      flush();
    } else {
      builder_.emplace(meta);
    }
    watch_disconnect();
  }

  std::string stream_head() const {
    std::string h = version_ >= 11 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.0 200 OK\r\n";
    h += "Server: shardlm\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
    if (chunked_) h += "Transfer-Encoding: chunked\r\n";
    h += keep_alive_ && chunked_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    h += "\r\n";
    return h;
  }

  void queue_data(const std::string& data) {
    if (data.empty()) return;
    if (chunked_) {
      pending_ += fmt::format("{:x}\r\n", data.size());
      pending_ += data;
      pending_ += "\r\n";
    } else {
      pending_ += data;
    }
    flush();
  }

  void end_stream() {
    if (chunked_) pending_ += "0\r\n\r\n";
    stream_ended_ = true;
    flush();
  }

  void flush() {
    if (writing_ || closed_) return;
    if (pending_.empty()) {
      if (stream_ended_) stream_done();
      return;
    }
    writing_ = true;
    inflight_.swap(pending_);
    pending_.clear();
    tcp_layer().expires_after(timeout());  // a client that stops reading is dropped (and its request cancelled)
    asio::async_write(stream_, asio::buffer(inflight_), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->inflight_.clear();
      if (ec) return self->abort();  // the client went away: cancels the generation
      self->flush();
    });
  }

  void stream_done() {
    stream_ended_ = false;
    chunks_.reset();
    if (!keep_alive_ || !chunked_ || stream_failed_) return graceful_close();
    read_request();
  }

  // Completes when the client sends something or goes away while a generation runs.
  void watch_disconnect() {
    tcp_layer().socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), link = link_](beast::error_code ec) {
      self->on_readable(link, ec);
    });
  }

  // A wait for readability may complete without the socket being readable: the reactor can deliver
  // readiness that was reported for a closed connection whose descriptor this one now reuses. So
  // the socket is peeked at before concluding: data is a pipelined request (read once this one is
  // answered: then the connection is polled for the peer's hang-up, which data ahead of it would
  // hide from a read), nothing yet means wait again, and only end of stream or an error is the
  // client gone.
  void on_readable(const std::shared_ptr<Link>& link, beast::error_code ec) {
    if (link != link_ || closed_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      char byte = 0;
      const ssize_t n = ::recv(tcp_layer().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return watch_hangup(link);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return watch_disconnect();
    }
    client_gone();
  }

  // Every 200 ms while the request runs: POLLRDHUP / POLLHUP / POLLERR say the peer closed (its
  // pipelined bytes still unread).
  void watch_hangup(const std::shared_ptr<Link>& link) {
    hangup_timer_.expires_after(std::chrono::milliseconds(200));
    hangup_timer_.async_wait([self = shared_from_this(), link](beast::error_code ec) {
      if (ec || link != self->link_ || self->closed_) return;
      pollfd p{self->tcp_layer().socket().native_handle(), POLLRDHUP, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return self->client_gone();
      self->watch_hangup(link);
    });
  }

  void client_gone() {
    spdlog::debug("http: client went away during a request; cancelling it");
    abort();
  }

  void cancel_generation() {
    if (link_) {
      uint64_t id = link_->detach();
      link_.reset();
      if (id != 0) state_->backend.cancel(id);
    }
    builder_.reset();
    chunks_.reset();
  }

  // ---- closing ----

  void abort() {
    cancel_generation();
    slot_.release();
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_layer().close();
  }

  // Sends FIN, then reads (and drops) what the client still sends for a moment before closing, so
  // that a reply sent before the whole request was read (413) is not lost to a connection reset.
  // Over TLS: sends close_notify and waits (as long) for the client's before closing.
  void graceful_close() {
    cancel_generation();
    slot_.release();
    if (closed_) return;
    tcp_layer().expires_after(kLingerTime);
    if constexpr (kTls) {
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->abort(); });
    } else {
      beast::error_code ec;
      tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return abort();
      drain();
    }
  }

  std::string client_address() {
    beast::error_code ec;
    const tcp::endpoint peer = tcp_layer().socket().remote_endpoint(ec);
    return ec ? std::string("unknown") : peer.address().to_string();
  }

  void drain() {
    auto scratch = std::make_shared<std::array<char, 16384>>();
    stream_.async_read_some(asio::buffer(*scratch), [self = shared_from_this(), scratch](beast::error_code ec, size_t) {
      if (ec) return self->abort();
      self->drain();
    });
  }

  Stream stream_;
  asio::steady_timer hangup_timer_;  // polls for a hang-up behind pipelined bytes (watch_hangup)
  beast::flat_buffer buffer_;
  std::shared_ptr<ServerState> state_;
  ConnectionLimit::Slot slot_;  // released when the connection closes
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = true;
  bool head_ = false;  // the request being answered is a HEAD request
  unsigned version_ = 11;
  bool closed_ = false;

  // The running generation.
  std::shared_ptr<Link> link_;
  std::optional<CompletionBuilder> builder_;
  std::optional<ChunkStream> chunks_;

  // Stream output.
  bool chunked_ = true;
  bool writing_ = false;
  bool stream_ended_ = false;
  bool stream_failed_ = false;
  std::string pending_;
  std::string inflight_;
};

template <typename F>
void Link::deliver(F&& f) {
  std::lock_guard lock(mutex_);
  if (!conn_) return;
  std::shared_ptr<Sink> conn = conn_;
  asio::post(conn->executor(), [conn, link = shared_from_this(), f = std::forward<F>(f)]() mutable { f(*conn, link); });
}

void LinkObserver::on_delta(const TextDelta& delta) {
  link_->deliver([delta](Sink& c, const std::shared_ptr<Link>& link) { c.on_delta(link, delta); });
}

void LinkObserver::on_choice_finish(int32_t index, const TextFinish& finish) {
  link_->deliver([index, finish](Sink& c, const std::shared_ptr<Link>& link) { c.on_choice_finish(link, index, finish); });
}

void LinkObserver::on_finish(const TextFinish& finish) {
  link_->mark_finished();
  link_->deliver([finish](Sink& c, const std::shared_ptr<Link>& link) { c.on_finish(link, finish); });
}

}  // namespace

namespace {

template <typename Stream>
void start(tcp::socket socket, const std::shared_ptr<ServerState>& state, ConnectionLimit::Slot slot) {
  auto conn = std::make_shared<HttpConnection<Stream>>(std::move(socket), state, std::move(slot));
  state->add_connection(conn);
  conn->run();
  if (state->stopping) conn->close();
}

}  // namespace

void start_connection(tcp::socket socket, std::shared_ptr<ServerState> state) {
  ConnectionLimit::Slot slot = state->connection_limit.try_acquire();
  if (state->options.tls) {
    start<TlsStream>(std::move(socket), state, std::move(slot));
  } else {
    start<beast::tcp_stream>(std::move(socket), state, std::move(slot));
  }
}

}  // namespace shardlm::http
