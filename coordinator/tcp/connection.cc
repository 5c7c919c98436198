#include "coordinator/tcp/connection.h"

#include <netinet/tcp.h>
#include <algorithm>
#include <cmath>
#include <limits>

#include <spdlog/spdlog.h>

#include "coordinator/request_error.h"
#include "coordinator/tcp/job_handler.h"
#include "coordinator/tcp/protocol.h"
#include "coordinator/tcp/text_conversion.h"

namespace shardlm::tcp::detail {
namespace {

constexpr size_t kResultChunkBytes = 256 * 1024;    // job results per frame, about
constexpr size_t kResultResumeBytes = 1024 * 1024;  // read the next chunk while less waits to be written
// Generate requests waiting to be prepared, per connection: beyond this many bytes of them the
// connection is not read until they shrink (a client sending prompts faster than they are
// tokenized holds at most this much memory, plus the frame being read).
constexpr size_t kMaxToPrepareBytes = 64u << 20;
// Frames before the Hello: a Hello is well under 1 KiB; a client that has not said who it is gets
// no more buffer than this.
constexpr uint32_t kMaxHelloFrameBytes = 64 * 1024;

client::ServerMessage error_message(uint64_t id, client::ErrorCode code, const std::string& text) {
  client::ServerMessage message;
  message.set_request_id(id);
  message.mutable_error()->set_code(code);
  message.mutable_error()->set_message(valid_utf8(text));
  return message;
}

// Runs one job call (on the job thread), turning its exceptions into an Error reply.
template <typename F>
client::ServerMessage job_call(uint64_t id, F&& f) {
  client::ServerMessage reply;
  reply.set_request_id(id);
  try {
    f(reply);
  } catch (const RequestError& e) {
    return error_message(id, to_proto_error_code(e.code()), e.what());
  } catch (const Error& e) {
    return error_message(id, client::ERROR_INVALID_REQUEST, e.what());
  } catch (const std::exception& e) {
    return error_message(id, client::ERROR_INTERNAL, fmt::format("batch jobs: {}", e.what()));
  }
  return reply;
}

// Forwards one request's results from the scheduler thread to the connection's I/O thread.
class RequestObserver : public TextObserver {
 public:
  RequestObserver(std::shared_ptr<PostGate> gate, std::weak_ptr<Connection> connection, uint64_t id, uint64_t serial)
      : gate_(std::move(gate)), connection_(std::move(connection)), id_(id), serial_(serial) {}

  void on_delta(const TextDelta& delta) override {
    gate_->post([c = connection_, id = id_, serial = serial_, delta] {
      if (auto connection = c.lock()) connection->deliver_delta(id, serial, delta);
    });
  }
  void on_finish(const TextFinish& finish) override {
    gate_->post([c = connection_, id = id_, serial = serial_, finish] {
      if (auto connection = c.lock()) connection->deliver_finish(id, serial, finish);
    });
  }
  void on_choice_finish(int32_t index, const TextFinish& finish) override {
    gate_->post([c = connection_, id = id_, serial = serial_, index, finish] {
      if (auto connection = c.lock()) connection->deliver_choice_finish(id, serial, index, finish);
    });
  }

 private:
  std::shared_ptr<PostGate> gate_;
  std::weak_ptr<Connection> connection_;
  uint64_t id_;
  uint64_t serial_;
};

}  // namespace

bool PostGate::post(std::function<void()> work) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!io_) return false;
  asio::post(*io_, std::move(work));
  return true;
}

void PostGate::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  io_ = nullptr;
}

Connection::Connection(asio::ip::tcp::socket socket, ServerContext& context, ConnectionLimit::Slot slot)
    : socket_(std::move(socket)),
      context_(context),
      slot_(std::move(slot)),
      decoder_(std::min(context.options.max_frame_bytes, kMaxHelloFrameBytes)),  // raised by the Hello
      timer_(socket_.get_executor()),
      write_timer_(socket_.get_executor()) {
  boost::system::error_code ec;
  const auto endpoint = socket_.remote_endpoint(ec);
  peer_address_ = ec ? std::string("unknown") : endpoint.address().to_string();
  peer_ = ec ? std::string("unknown peer") : peer_address_ + ":" + std::to_string(endpoint.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  // A peer that vanishes without a FIN (a crashed host, a NAT that forgot the flow) is found by TCP
  // keepalive: first probe after 60 s idle, then every 10 s, given up after 6 unanswered.
  socket_.set_option(asio::socket_base::keep_alive(true), ec);
  const int fd = socket_.native_handle();
  const int idle = 60, interval = 10, probes = 6;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
  if (context.options.tls) {
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(socket_), *context.options.tls);
    state_ = State::kTlsHandshake;
  }
}

void Connection::start() {
  spdlog::debug("tcp: connection from {}", peer_);
  // Bounds the TLS handshake and the Hello together.
  timer_.expires_after(std::chrono::milliseconds(context_.options.handshake_timeout_ms));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (self->state_ == State::kTlsHandshake) {
      spdlog::debug("tcp: {}: no TLS handshake within {} ms of connecting", self->peer_,
                    self->context_.options.handshake_timeout_ms);
      self->close();
    } else if (self->state_ == State::kHandshake) {
      self->fail(client::ERROR_MALFORMED, fmt::format("no hello message within {} ms of connecting",
                                                      self->context_.options.handshake_timeout_ms));
    }
  });
  if (!tls_) {
    begin();
    return;
  }
  tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](const boost::system::error_code& ec) {
    if (self->state_ != State::kTlsHandshake) return;  // closed meanwhile
    if (ec) {
      // A plaintext client, or one that does not trust the certificate: nothing can be said to it.
      spdlog::debug("tcp: {}: TLS handshake failed: {}", self->peer_, ec.message());
      self->close();
      return;
    }
    self->state_ = State::kHandshake;
    self->begin();
  });
}

void Connection::begin() {
  if (!slot_) {
    spdlog::debug("tcp: {}: refused: {} connections are open (the limit)", peer_, context_.options.max_connections);
    fail(client::ERROR_UNAVAILABLE, fmt::format("too many connections: the server holds at most {} at once; retry later",
                                                context_.options.max_connections));
  }
  read();
}

void Connection::read() {
  with_stream([&](auto& stream) {
    stream.async_read_some(asio::buffer(read_buffer_), [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
      self->on_read(ec, n);
    });
  });
}

void Connection::on_read(const boost::system::error_code& ec, size_t n) {
  if (state_ == State::kClosed) return;
  if (ec) {
    if (ec != asio::error::eof && ec != asio::error::operation_aborted && ec != asio::ssl::error::stream_truncated) {
      spdlog::debug("tcp: {}: read failed: {}", peer_, ec.message());
    }
    close();
    return;
  }
  if (state_ == State::kClosing) {  // draining until the peer closes; nothing more is handled
    read();
    return;
  }
  decoder_.feed(std::string_view(read_buffer_.data(), n));
  std::string payload;
  bool framed = false;  // a frame was completed by these bytes
  while (state_ == State::kHandshake || state_ == State::kReady) {
    const FrameDecoder::Status status = decoder_.next(payload);
    if (status == FrameDecoder::Status::kNeedMore) break;
    if (status == FrameDecoder::Status::kTooLarge) {
      fail(client::ERROR_FRAME_TOO_LARGE, fmt::format("frame of {} bytes exceeds the limit of {} bytes{}", decoder_.declared_length(),
                                                      decoder_.max_frame_bytes(), state_ == State::kHandshake ? " before the Hello" : ""));
      break;
    }
    framed = true;
    client::ClientMessage message;
    if (!parse_frame_payload(payload, message)) {
      fail(client::ERROR_MALFORMED,
           fmt::format("a frame of {} bytes is not a valid ClientMessage", payload.size()));
      break;
    }
    try {
      handle(message);
    } catch (const std::exception& e) {
      spdlog::error("tcp: {}: {} message failed: {}", peer_, message_kind(message), e.what());
      fail(client::ERROR_INTERNAL, fmt::format("the server failed on a {} message: {}", message_kind(message), e.what()));
    }
  }
  if (state_ == State::kReady) watch_partial_frame(framed);
  if (state_ == State::kReady && to_prepare_bytes_ > kMaxToPrepareBytes) {
    // Enough waits to be prepared: read on once it shrinks (prepared()). Meanwhile a frame begun is
    // not the client's to finish in time.
    read_paused_ = true;
    if (frame_deadline_armed_) timer_.cancel();
    frame_deadline_armed_ = false;
    return;
  }
  if (state_ != State::kClosed) read();
}

void Connection::watch_partial_frame(bool framed) {
  if (framed || decoder_.buffered() == 0) {  // the frame the deadline was for is complete
    if (frame_deadline_armed_) timer_.cancel();
    frame_deadline_armed_ = false;
  }
  if (decoder_.buffered() == 0 || frame_deadline_armed_) return;  // it runs from a frame's first bytes
  frame_deadline_armed_ = true;
  const uint64_t deadline = ++frame_deadline_id_;  // a wait that fired before a cancel finds another id
  timer_.expires_after(std::chrono::milliseconds(context_.options.frame_timeout_ms));
  timer_.async_wait([self = shared_from_this(), deadline](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::kReady || !self->frame_deadline_armed_) return;
    if (self->frame_deadline_id_ != deadline) return;
    self->frame_deadline_armed_ = false;
    self->fail(client::ERROR_MALFORMED, fmt::format("a frame was begun but not finished within {} ms ({} bytes of it arrived)",
                                                    self->context_.options.frame_timeout_ms, self->decoder_.buffered()));
  });
}

void Connection::handle(client::ClientMessage& message) {
  const uint64_t id = message.request_id();
  if (state_ == State::kHandshake) {
    if (!message.has_hello()) {
      fail(client::ERROR_MALFORMED, fmt::format("expected a hello message first, got {}", message_kind(message)));
      return;
    }
    on_hello(message.hello());
    return;
  }
  if (message.has_hello()) {
    fail(client::ERROR_MALFORMED, "hello sent twice");
    return;
  }
  if (id == 0) {
    fail(client::ERROR_MALFORMED, message.body_case() == client::ClientMessage::BODY_NOT_SET
                                      ? std::string("empty ClientMessage (no request_id and no body)")
                                      : fmt::format("a {} message needs a non-zero request_id", message_kind(message)));
    return;
  }
  switch (message.body_case()) {
    case client::ClientMessage::kGenerate:
      on_generate(id, std::move(*message.mutable_generate()));
      break;
    case client::ClientMessage::kCancel:
      on_cancel(id);
      break;
    case client::ClientMessage::kJobSubmit:
    case client::ClientMessage::kJobStatus:
    case client::ClientMessage::kJobList:
    case client::ClientMessage::kJobCancel:
    case client::ClientMessage::kJobResults:
      on_job(id, message);
      break;
    case client::ClientMessage::kListModels: {
      if (!admit_request(id)) break;
      client::ServerMessage reply;
      reply.set_request_id(id);
      client::ModelInfo* model = reply.mutable_models()->add_models();
      model->set_name(context_.service.model_name());
      model->set_max_context(context_.service.max_context());
      send(reply);
      break;
    }
    case client::ClientMessage::kHealth: {
      const SchedulerStats stats = context_.service.stats();
      client::ServerMessage reply;
      reply.set_request_id(id);
      client::HealthStatus* h = reply.mutable_health();
      h->set_serving(context_.ready.load());
      h->set_model(context_.service.model_name());
      h->set_running(stats.running);
      h->set_waiting(stats.waiting);
      h->set_kv_usage(stats.kv_usage);
      h->set_steps(stats.steps);
      h->set_uptime_seconds(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - context_.started).count());
      send(reply);
      break;
    }
    default:
      // A message kind of a later minor version (its fields are unknown here): refuse just the request.
      send_error(id, client::ERROR_INVALID_REQUEST,
                 fmt::format("message kind not known to this server (protocol {}.{})", kProtocolMajor, kProtocolMinor));
      break;
  }
}

void Connection::on_hello(const client::Hello& hello) {
  if (hello.protocol_major() != kProtocolMajor) {
    fail(client::ERROR_VERSION_MISMATCH,
         fmt::format("client speaks protocol {}.{} but this server speaks {}.{}; the major versions must match",
                     hello.protocol_major(), hello.protocol_minor(), kProtocolMajor, kProtocolMinor));
    return;
  }
  const ApiKeySet& keys = context_.keys;
  if (!keys.empty()) {
    if (hello.api_key().empty()) {
      fail(client::ERROR_UNAUTHORIZED, "this server requires an API key");
      return;
    }
    key_index_ = keys.find(hello.api_key());
    if (key_index_ < 0) {
      spdlog::warn("tcp: {}: refused an invalid API key", peer_);
      fail(client::ERROR_UNAUTHORIZED, "the API key is not valid");
      return;
    }
  }
  timer_.cancel();
  state_ = State::kReady;
  decoder_.set_max_frame_bytes(context_.options.max_frame_bytes);
  spdlog::debug("tcp: {}: hello from '{}' (protocol {}.{})", peer_, hello.client_name(), hello.protocol_major(),
                hello.protocol_minor());
  client::ServerMessage reply;
  client::Welcome* w = reply.mutable_welcome();
  w->set_protocol_major(kProtocolMajor);
  w->set_protocol_minor(kProtocolMinor);
  w->set_server_name(kSoftwareName);
  w->set_max_frame_bytes(context_.options.max_frame_bytes);
  w->set_model(context_.service.model_name());
  w->set_max_context(context_.service.max_context());
  w->set_max_requests(context_.options.max_requests_per_connection);
  send(reply);
}

bool Connection::take_request_id(uint64_t id) {
  if (inflight_.count(id) != 0 || result_streams_.count(id) != 0) {
    fail(client::ERROR_MALFORMED, fmt::format("request id {} is already used by a request that has not ended", id));
    return false;
  }
  const size_t open = inflight_.size() + result_streams_.size();
  if (open >= context_.options.max_requests_per_connection) {
    send_error(id, client::ERROR_QUEUE_FULL, fmt::format("this connection already has {} requests in flight (the limit)", open));
    return false;
  }
  return true;
}

void Connection::on_generate(uint64_t id, client::GenerateRequest request) {
  if (!take_request_id(id)) return;
  if (!context_.ready.load()) {
    send_error(id, client::ERROR_UNAVAILABLE, "the server is shutting down and takes no new requests");
    return;
  }
  if (!admit_request(id)) return;
  const std::string& served = context_.service.model_name();
  if (!request.model().empty() && request.model() != served) {
    send_error(id, client::ERROR_NOT_FOUND,
               fmt::format("model '{}' is not served here (this server serves '{}')", request.model(), served));
    return;
  }
  // Rendering and tokenizing a long prompt takes a while (~60 ms per MB): done on the prepare
  // threads, so that this thread goes on serving the other connections.
  const uint64_t serial = next_serial_++;
  Inflight& inflight = inflight_[id];
  inflight.serial = serial;
  inflight.abandoned = std::make_shared<std::atomic<bool>>(false);
  if (request.has_n()) inflight.choices = std::max(request.n(), 1);  // its range is checked when prepared
  if (request.echo() && request.input_case() == client::GenerateRequest::kPrompt) inflight.echo = request.prompt();
  to_prepare_bytes_ += request.ByteSizeLong();
  to_prepare_.push_back(ToPrepare{id, serial, std::move(request)});
  ++context_.preparing;
  prepare_next();
}

void Connection::prepare_next() {
  if (preparing_ || to_prepare_.empty()) return;
  ToPrepare next = std::move(to_prepare_.front());
  to_prepare_.pop_front();
  to_prepare_bytes_ -= std::min(to_prepare_bytes_, next.request.ByteSizeLong());
  const auto it = inflight_.find(next.id);
  if (it == inflight_.end() || it->second.serial != next.serial) {  // ended meanwhile
    --context_.preparing;
    prepare_next();
    return;
  }
  preparing_ = true;
  context_.run_prepare([service = &context_.service, gate = context_.gate, self = weak_from_this(), id = next.id,
                        serial = next.serial, abandoned = it->second.abandoned, preparing = &context_.preparing,
                        limit = context_.options.max_prompt_tokens, request = std::move(next.request)] {
    if (abandoned->load()) {  // the connection ended meanwhile
      --*preparing;
      return;
    }
    client::ErrorCode code = client::ERROR_INTERNAL;
    std::string error;
    try {
      const TextRequest text_request = to_text_request(request);
      const uint64_t service_id = service->submit(text_request, std::make_shared<RequestObserver>(gate, self, id, serial), limit);
      const bool posted = gate->post([service, self, id, serial, service_id] {
        if (auto c = self.lock()) {
          c->on_submitted(id, serial, service_id);
        } else {
          service->cancel(service_id);
        }
      });
      if (!posted) service->cancel(service_id);  // the server stopped: nobody takes its results
      --*preparing;
      return;
    } catch (const RequestError& e) {
      code = to_proto_error_code(e.code());
      error = e.what();
    } catch (const Error& e) {
      code = client::ERROR_INVALID_REQUEST;
      error = e.what();
    } catch (const std::exception& e) {
      error = e.what();
    }
    gate->post([self, id, serial, code, error] {
      if (auto c = self.lock()) c->on_refused(id, serial, code, error);
    });
    --*preparing;
  });
}

void Connection::prepared() {
  preparing_ = false;
  if (state_ != State::kReady) return;
  prepare_next();
  if (read_paused_ && to_prepare_bytes_ <= kMaxToPrepareBytes) {
    read_paused_ = false;
    watch_partial_frame(false);
    read();
  }
}

void Connection::on_submitted(uint64_t request_id, uint64_t serial, uint64_t service_id) {
  prepared();
  const auto it = inflight_.find(request_id);
  if (state_ != State::kReady || it == inflight_.end() || it->second.serial != serial) {
    // Ended meanwhile (finished already, or the connection is closing): a cancel of a request that
    // ended is ignored.
    context_.service.cancel(service_id);
    return;
  }
  it->second.service_id = service_id;
  if (it->second.cancel_wanted) context_.service.cancel(service_id);
}

void Connection::on_refused(uint64_t request_id, uint64_t serial, client::ErrorCode code, const std::string& message) {
  prepared();
  if (state_ != State::kReady) return;
  const auto it = inflight_.find(request_id);
  if (it == inflight_.end() || it->second.serial != serial) return;
  inflight_.erase(it);
  send_error(request_id, code, message);
}

void Connection::on_cancel(uint64_t id) {
  // Unknown ids (requests that already ended) are ignored: their Finish / Error is on its way.
  const auto it = inflight_.find(id);
  if (it != inflight_.end()) {
    if (it->second.service_id != 0) {
      context_.service.cancel(it->second.service_id);
    } else {
      it->second.cancel_wanted = true;  // cancelled as soon as it is queued
    }
  }
  // A result stream ends at once with an empty last chunk.
  if (result_streams_.erase(id) != 0) {
    client::ServerMessage message;
    message.set_request_id(id);
    message.mutable_job_results()->set_last(true);
    send(message);
  }
}

void Connection::on_job(uint64_t id, const client::ClientMessage& message) {
  if (!context_.jobs) {
    send_error(id, client::ERROR_UNAVAILABLE,
               "batch jobs are off on this server: start `shardlm serve` with --state-dir DIR (where jobs are kept)");
    return;
  }
  if (message.has_job_results()) {
    if (!take_request_id(id)) return;
    if (!admit_request(id)) return;
    ResultStream stream;
    stream.request = message.job_results();
    stream.serial = next_serial_++;
    stream.after_line = std::max<int64_t>(0, stream.request.after_line());
    result_streams_[id] = std::move(stream);
    next_result_chunk(id);
    return;
  }
  if (message.has_job_submit() && !context_.ready.load()) {
    send_error(id, client::ERROR_UNAVAILABLE, "the server is shutting down and takes no new jobs");
    return;
  }
  if (!admit_request(id)) return;
  context_.run_job([handler = context_.jobs, gate = context_.gate, self = weak_from_this(), id, message] {
    client::ServerMessage reply = job_call(id, [&](client::ServerMessage& r) {
      switch (message.body_case()) {
        case client::ClientMessage::kJobSubmit: *r.mutable_job() = handler->submit(message.job_submit()); break;
        case client::ClientMessage::kJobStatus: *r.mutable_job() = handler->status(message.job_status()); break;
        case client::ClientMessage::kJobList: *r.mutable_jobs() = handler->list(message.job_list()); break;
        case client::ClientMessage::kJobCancel: *r.mutable_job() = handler->cancel(message.job_cancel()); break;
        default: shardlm::fail("not a job message");
      }
    });
    gate->post([self, reply = std::move(reply)] {
      if (auto c = self.lock()) c->deliver_job_reply(reply);
    });
  });
}

void Connection::deliver_job_reply(const client::ServerMessage& reply) {
  if (state_ == State::kReady) send(reply);
}

void Connection::next_result_chunk(uint64_t id) {
  const auto it = result_streams_.find(id);
  if (it == result_streams_.end() || it->second.producing) return;
  ResultStream& stream = it->second;
  stream.producing = true;
  context_.run_job([handler = context_.jobs, gate = context_.gate, self = weak_from_this(), id, serial = stream.serial,
                    request = stream.request, after = stream.after_line] {
    client::ServerMessage reply = job_call(id, [&](client::ServerMessage& r) {
      *r.mutable_job_results() = handler->results(request, after, kResultChunkBytes);
    });
    gate->post([self, id, serial, reply = std::move(reply)] {
      if (auto c = self.lock()) c->deliver_result_chunk(id, serial, reply);
    });
  });
}

void Connection::deliver_result_chunk(uint64_t request_id, uint64_t serial, const client::ServerMessage& reply) {
  if (state_ != State::kReady) return;
  auto it = result_streams_.find(request_id);
  if (it == result_streams_.end() || it->second.serial != serial) return;  // cancelled meanwhile
  const bool last = reply.has_error() || reply.job_results().last();
  if (last) {
    result_streams_.erase(it);
  } else {
    it->second.producing = false;
    it->second.after_line = reply.job_results().last_line();
  }
  send(reply);
  if (!last && state_ == State::kReady && pending_.size() + writing_.size() < kResultResumeBytes) next_result_chunk(request_id);
}

void Connection::resume_result_streams() {
  std::vector<uint64_t> ids;
  for (const auto& [id, stream] : result_streams_) {
    if (!stream.producing) ids.push_back(id);
  }
  for (uint64_t id : ids) next_result_chunk(id);
}

void Connection::deliver_delta(uint64_t request_id, uint64_t serial, const TextDelta& delta) {
  if (state_ != State::kReady || delta.empty()) return;
  const auto it = inflight_.find(request_id);
  if (it == inflight_.end() || it->second.serial != serial) return;
  Inflight& request = it->second;
  client::ServerMessage message;
  message.set_request_id(request_id);
  if (delta.prompt_logprobs) {  // a delta of its own, from each choice
    if (request.prompt_logprobs_sent) return;
    request.prompt_logprobs_sent = true;
    to_proto_delta(delta, request.next_tool_call[0], *message.mutable_delta());
    message.mutable_delta()->set_index(0);  // whichever choice's came first
    send(message);
    return;
  }
  send_echo(request_id, request);
  to_proto_delta(delta, request.next_tool_call[delta.index], *message.mutable_delta());
  send(message);
}

void Connection::send_echo(uint64_t request_id, Inflight& request) {
  if (!request.echo) return;
  for (int32_t i = 0; i < request.choices; ++i) {
    client::ServerMessage message;
    message.set_request_id(request_id);
    message.mutable_delta()->set_index(i);
    message.mutable_delta()->set_content(*request.echo);
    send(message);
  }
  request.echo.reset();
}

void Connection::deliver_choice_finish(uint64_t request_id, uint64_t serial, int32_t index, const TextFinish& finish) {
  if (state_ != State::kReady) return;
  const auto it = inflight_.find(request_id);
  if (it == inflight_.end() || it->second.serial != serial) return;
  send_echo(request_id, it->second);
  client::ServerMessage message;
  message.set_request_id(request_id);
  message.mutable_delta()->set_index(index);
  message.mutable_delta()->set_choice_finish_reason(to_proto_finish_reason(finish.finish_reason));
  send(message);
}

void Connection::deliver_finish(uint64_t request_id, uint64_t serial, const TextFinish& finish) {
  if (state_ != State::kReady) return;
  const auto it = inflight_.find(request_id);
  if (it == inflight_.end() || it->second.serial != serial) return;
  if (finish.finish_reason != "error") send_echo(request_id, it->second);
  inflight_.erase(it);
  if (finish.finish_reason == "error") {
    const client::ErrorCode code =
        finish.error_code == RequestErrorCode::kUnavailable ? client::ERROR_UNAVAILABLE : client::ERROR_INTERNAL;
    send_error(request_id, code, finish.error.empty() ? "generation failed" : finish.error);
    return;
  }
  client::ServerMessage message;
  message.set_request_id(request_id);
  to_proto_finish(finish, *message.mutable_finish());
  send(message);
}

bool Connection::admit_request(uint64_t id) {
  const std::shared_ptr<RateLimiter>& limiter = context_.options.rate_limiter;
  if (!limiter) return true;
  const bool per_key = !context_.keys.empty();
  const RateLimiter::Decision d =
      limiter->acquire(per_key ? "key:" + std::to_string(key_index_) : "ip:" + peer_address_);
  if (d.allowed) return true;
  send_error(id, client::ERROR_RATE_LIMITED,
             fmt::format("rate limit reached: at most {:g} requests per minute per {}; retry in {} s", limiter->per_minute(),
                         per_key ? "API key" : "client address", std::max(1, static_cast<int>(std::ceil(d.retry_after_s)))));
  return false;
}

void Connection::send_error(uint64_t id, client::ErrorCode code, const std::string& text) {
  client::ServerMessage message;
  message.set_request_id(id);
  message.mutable_error()->set_code(code);
  message.mutable_error()->set_message(valid_utf8(text));
  send(message);
}

void Connection::send(const client::ServerMessage& message) {
  if (state_ == State::kClosed) return;
  append_frame(pending_, message, std::numeric_limits<uint32_t>::max());
  if (pending_.size() + writing_.size() > context_.options.max_pending_write_bytes) {
    spdlog::warn("tcp: {}: disconnected: more than {} bytes wait to be written (the client does not read)", peer_,
                 context_.options.max_pending_write_bytes);
    close();
    return;
  }
  if (!write_in_flight_) flush();
}

void Connection::flush() {
  if (state_ == State::kClosed) return;
  if (pending_.empty()) {
    if (state_ == State::kClosing) {
      // Everything is written: end our side; the read loop drains until the peer closes.
      boost::system::error_code ec;
      socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    }
    if (state_ == State::kReady && !result_streams_.empty()) resume_result_streams();
    return;
  }
  writing_.swap(pending_);
  pending_.clear();
  write_in_flight_ = true;
  // A client that stops reading (and keeps its connection open) is closed once a write has waited
  // write_timeout_ms: its requests would otherwise run on for nobody.
  write_timer_.expires_after(std::chrono::milliseconds(context_.options.write_timeout_ms));
  write_timer_.async_wait([self = weak_from_this(), serial = ++write_serial_](const boost::system::error_code& ec) {
    auto c = self.lock();
    // (serial: a deadline that fired as its write completed is not taken for the next write's)
    if (ec || !c || !c->write_in_flight_ || c->write_serial_ != serial || c->state_ == State::kClosed) return;
    spdlog::warn("tcp: {}: the client took nothing written for {} ms; closing the connection", c->peer_,
                 c->context_.options.write_timeout_ms);
    c->close();
  });
  with_stream([&](auto& stream) {
    asio::async_write(stream, asio::buffer(writing_), [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
      self->write_in_flight_ = false;
      self->write_timer_.cancel();
      self->writing_.clear();
      if (ec) {
        self->close();
        return;
      }
      self->flush();
    });
  });
}

void Connection::fail(client::ErrorCode code, const std::string& message) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  if (state_ == State::kTlsHandshake) {  // no channel to say it on yet
    close();
    return;
  }
  if (code != client::ERROR_UNAVAILABLE) {
    spdlog::warn("tcp: {}: closing the connection: {} ({})", peer_, message, error_code_name(code));
  }
  cancel_requests();
  slot_.release();
  send_error(0, code, message);
  if (state_ == State::kClosed) return;  // the error could not even be queued
  state_ = State::kClosing;
  timer_.cancel();
  timer_.expires_after(std::chrono::milliseconds(context_.options.close_linger_ms));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close();
  });
  if (!write_in_flight_) flush();
}

void Connection::cancel_requests() {
  for (const auto& [id, request] : inflight_) {
    if (request.service_id != 0) {
      context_.service.cancel(request.service_id);
    } else {
      request.abandoned->store(true);  // not queued if not yet; cancelled in on_submitted otherwise
    }
  }
  context_.preparing -= static_cast<int64_t>(to_prepare_.size());  // never handed to the prepare threads
  to_prepare_.clear();
  to_prepare_bytes_ = 0;
  inflight_.clear();
  result_streams_.clear();
}

void Connection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  cancel_requests();
  timer_.cancel();
  write_timer_.cancel();
  slot_.release();
  boost::system::error_code ec;
  socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket().close(ec);
  pending_.clear();
  spdlog::debug("tcp: {}: closed", peer_);
  if (context_.on_closed) context_.on_closed(shared_from_this());
}

}  // namespace shardlm::tcp::detail
