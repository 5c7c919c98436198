#include "coordinator/tcp/client.h"

#include <array>
#include <chrono>
#include <deque>

#include <utility>  // before Boost.Asio 1.74: its awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "common/tls.h"
#include "coordinator/tcp/protocol.h"

namespace shardlm::tcp {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

Clock::time_point deadline_after(double seconds) {
  if (seconds < 0) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

ServerError::ServerError(client::ErrorCode code, const std::string& message)
    : Error(fmt::format("{} ({})", message, error_code_name(code))), code_(code), message_(message) {}

std::pair<std::string, int> parse_host_port(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      fail("server address '{}' is not [IPV6]:PORT", text);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) fail("server address '{}' is not HOST:PORT", text);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) fail("server address '{}' has no host", text);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    fail("server address '{}' has no valid port", text);
  }
  const int p = std::stoi(port);
  if (p < 1 || p > 65535) fail("port {} in server address '{}' is out of range (1..65535)", p, text);
  return {host, p};
}

struct Client::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)), decoder(options.max_frame_bytes) {}

  // Runs the I/O context until `done` or the deadline; false when the deadline came first.
  bool run_until(const bool& done, Clock::time_point deadline) {
    while (!done) {
      io.restart();
      if (deadline == Clock::time_point::max()) {
        if (io.run_one() == 0 && !done) fail("internal error: the client waits with nothing pending");
      } else {
        if (Clock::now() >= deadline) return false;
        io.run_one_until(deadline);
      }
    }
    return true;
  }

  // The TCP socket (under TLS, when on).
  asio::ip::tcp::socket& lowest() { return tls ? tls->next_layer() : socket; }

  void drop() {
    boost::system::error_code ec;
    lowest().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    lowest().close(ec);
    connected = false;
    // Complete (as aborted) any read still pending so its handler does not outlive the buffer use.
    io.restart();
    io.poll();
    tls.reset();
    read_pending = false;
    read_done = false;
  }

  // The next message from the wire, or nullopt at the deadline.
  std::optional<client::ServerMessage> read_message(Clock::time_point deadline) {
    if (!connected) fail("not connected to a server");
    for (;;) {
      std::string payload;
      const FrameDecoder::Status status = decoder.next(payload);
      if (status == FrameDecoder::Status::kFrame) {
        client::ServerMessage message;
        if (!parse_frame_payload(payload, message)) {
          drop();
          fail("the server sent a malformed frame ({} bytes)", payload.size());
        }
        return message;
      }
      if (status == FrameDecoder::Status::kTooLarge) {
        drop();
        // The length prefix of an HTTP reply spells "HTTP": the client was pointed at the HTTP port.
        const auto n = static_cast<uint32_t>(decoder.declared_length());
        peer_spoke_http = n == 0x48545450u;
        if (peer_spoke_http) {
          fail("the server answered in HTTP, not in the shardlm protocol (is this serve's --http-port? the protocol "
               "listens on --port)");
        }
        fail("the server sent a frame of {} bytes, more than the limit of {} bytes", decoder.declared_length(),
             decoder.max_frame_bytes());
      }
      if (!read_pending) {
        read_pending = true;
        read_done = false;
        const auto on_read = [this](const boost::system::error_code& ec, size_t n) {
          read_done = true;
          read_ec = ec;
          read_n = n;
        };
        if (tls) {
          tls->async_read_some(asio::buffer(buffer), on_read);
        } else {
          socket.async_read_some(asio::buffer(buffer), on_read);
        }
      }
      if (!run_until(read_done, deadline)) return std::nullopt;
      read_pending = false;
      read_done = false;
      if (read_ec) {
        const bool eof = read_ec == asio::error::eof || read_ec == asio::ssl::error::stream_truncated;
        const std::string reason = read_ec.message();
        drop();
        if (eof) fail("the server closed the connection");
        fail("connection to the server failed: {}", reason);
      }
      decoder.feed(std::string_view(buffer.data(), read_n));
    }
  }

  ClientOptions options;
  asio::io_context io;
  asio::ip::tcp::socket socket{io};  // moved into `tls` when TLS is on
  std::shared_ptr<asio::ssl::context> tls_context;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls;
  FrameDecoder decoder;
  std::array<char, 64 * 1024> buffer{};
  bool read_pending = false;
  bool read_done = false;
  boost::system::error_code read_ec;
  size_t read_n = 0;
  bool connected = false;
  bool peer_spoke_http = false;  // the last refused frame was an HTTP reply
  std::deque<client::ServerMessage> stash;  // received for other requests, not yet taken
  client::Welcome welcome;
  uint64_t next_id = 1;
  std::string peer;
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() { close(); }

void Client::connect(const std::string& host, int port, const std::string& api_key) {
  Impl& s = *impl_;
  if (s.connected) fail("the client is already connected to {}", s.peer);
  s.peer = fmt::format("{}:{}", host, port);
  s.decoder = FrameDecoder(s.options.max_frame_bytes);
  s.stash.clear();
  const Clock::time_point deadline = deadline_after(s.options.connect_timeout_s);

  asio::ip::tcp::resolver resolver(s.io);
  bool done = false;
  boost::system::error_code ec;
  asio::ip::tcp::resolver::results_type endpoints;
  resolver.async_resolve(host, std::to_string(port), [&](const boost::system::error_code& e, auto results) {
    done = true;
    ec = e;
    endpoints = std::move(results);
  });
  if (!s.run_until(done, deadline)) {
    resolver.cancel();
    s.io.restart();
    s.io.run();
    fail("cannot resolve {}: timed out after {} s", host, s.options.connect_timeout_s);
  }
  if (ec) fail("cannot resolve {}: {}", host, ec.message());

  done = false;
  asio::async_connect(s.socket, endpoints, [&](const boost::system::error_code& e, const asio::ip::tcp::endpoint&) {
    done = true;
    ec = e;
  });
  if (!s.run_until(done, deadline)) {
    boost::system::error_code ignored;
    s.socket.close(ignored);
    s.io.restart();
    s.io.run();
    fail("cannot connect to {}: timed out after {} s", s.peer, s.options.connect_timeout_s);
  }
  if (ec) {
    boost::system::error_code ignored;
    s.socket.close(ignored);
    fail("cannot connect to {}: {}", s.peer, ec.message());
  }
  s.socket.set_option(asio::ip::tcp::no_delay(true), ec);
  if (s.options.tls) tls_handshake(host, deadline);
  s.connected = true;

  client::ClientMessage hello;
  hello.mutable_hello()->set_protocol_major(kProtocolMajor);
  hello.mutable_hello()->set_protocol_minor(kProtocolMinor);
  hello.mutable_hello()->set_api_key(api_key);
  hello.mutable_hello()->set_client_name(s.options.client_name);
  send(hello);
  std::optional<client::ServerMessage> reply;
  try {
    reply = s.read_message(deadline);
  } catch (const Error& e) {
    // A TLS server drops a plaintext Hello (its TLS alert, if any, reads as an oversize frame).
    fail("handshake with {} failed: {}{}", s.peer, e.what(),
         s.options.tls || s.peer_spoke_http ? "" : " (a TLS server ends plaintext connections like this: is TLS needed?)");
  }
  if (!reply) {
    s.drop();
    fail("handshake with {} failed: no answer within {} s", s.peer, s.options.connect_timeout_s);
  }
  if (reply->has_error()) {
    s.drop();
    throw ServerError(reply->error().code(), "the server refused the connection: " + reply->error().message());
  }
  if (!reply->has_welcome()) {
    s.drop();
    fail("handshake with {} failed: expected a welcome message, got {}", s.peer, message_kind(*reply));
  }
  s.welcome = reply->welcome();
  if (s.welcome.protocol_major() != kProtocolMajor) {
    s.drop();
    fail("the server at {} speaks protocol {}.{}, this client {}.{}", s.peer, s.welcome.protocol_major(),
         s.welcome.protocol_minor(), kProtocolMajor, kProtocolMinor);
  }
}

void Client::tls_handshake(const std::string& host, std::chrono::steady_clock::time_point deadline) {
  Impl& s = *impl_;
  try {
    if (!s.tls_context) s.tls_context = tls::client_context(s.options.tls_ca_file, !s.options.tls_insecure);
  } catch (...) {
    boost::system::error_code ignored;
    s.socket.close(ignored);
    throw;
  }
  s.tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(s.socket), *s.tls_context);
  tls::prepare_client(*s.tls, host, !s.options.tls_insecure);
  bool done = false;
  boost::system::error_code ec;
  s.tls->async_handshake(asio::ssl::stream_base::client, [&](const boost::system::error_code& e) {
    done = true;
    ec = e;
  });
  if (!s.run_until(done, deadline)) {
    s.drop();
    fail("TLS handshake with {} failed: no answer within {} s", s.peer, s.options.connect_timeout_s);
  }
  if (ec) {
    std::string reason = tls::handshake_failure(*s.tls, ec);
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) reason += " (is it a TLS server?)";
    s.drop();
    fail("TLS handshake with {} failed: {}", s.peer, reason);
  }
}

bool Client::connected() const { return impl_->connected; }

const client::Welcome& Client::welcome() const { return impl_->welcome; }

void Client::close() {
  if (impl_->connected) impl_->drop();
}

void Client::send(const client::ClientMessage& message) {
  Impl& s = *impl_;
  if (!s.connected) fail("not connected to a server");
  const uint32_t limit = s.welcome.max_frame_bytes() > 0 ? s.welcome.max_frame_bytes() : kDefaultMaxFrameBytes;
  const std::string frame = encode_frame(message, limit);
  boost::system::error_code ec;
  if (s.tls) {
    asio::write(*s.tls, asio::buffer(frame), ec);
  } else {
    asio::write(s.socket, asio::buffer(frame), ec);
  }
  if (ec) {
    s.drop();
    fail("cannot send to {}: {}", s.peer, ec.message());
  }
}

uint64_t Client::send_generate(const client::GenerateRequest& request) {
  client::ClientMessage message;
  const uint64_t id = impl_->next_id++;
  message.set_request_id(id);
  *message.mutable_generate() = request;
  send(message);
  return id;
}

void Client::send_cancel(uint64_t request_id) {
  client::ClientMessage message;
  message.set_request_id(request_id);
  message.mutable_cancel();
  send(message);
}

std::optional<client::ServerMessage> Client::receive(double timeout_s) {
  Impl& s = *impl_;
  if (!s.stash.empty()) {
    client::ServerMessage m = std::move(s.stash.front());
    s.stash.pop_front();
    return m;
  }
  return s.read_message(deadline_after(timeout_s));
}

std::optional<client::ServerMessage> Client::receive_for(uint64_t request_id, double timeout_s) {
  Impl& s = *impl_;
  for (auto it = s.stash.begin(); it != s.stash.end(); ++it) {
    if (it->request_id() == request_id) {
      client::ServerMessage m = std::move(*it);
      s.stash.erase(it);
      return m;
    }
  }
  const Clock::time_point deadline = deadline_after(timeout_s);
  for (;;) {
    std::optional<client::ServerMessage> m = s.read_message(deadline);
    if (!m || m->request_id() == request_id || m->request_id() == 0) return m;
    s.stash.push_back(std::move(*m));
  }
}

namespace {

// A connection-level error (request id 0) ends the connection; a request-level one only the request.
[[noreturn]] void throw_server_error(Client& c, const client::ServerMessage& m) {
  if (m.request_id() == 0) c.close();
  throw ServerError(m.error().code(), m.error().message());
}

}  // namespace

client::Finish Client::run(const client::GenerateRequest& request, const DeltaCallback& on_delta) {
  const uint64_t id = send_generate(request);
  bool cancel_sent = false;
  for (;;) {
    if (interrupt_ != nullptr && !cancel_sent && interrupt_->load()) {
      send_cancel(id);
      cancel_sent = true;
    }
    std::optional<client::ServerMessage> m = receive_for(id, interrupt_ != nullptr ? 0.1 : -1.0);
    if (!m || (m->request_id() == 0 && !m->has_error())) continue;
    switch (m->body_case()) {
      case client::ServerMessage::kDelta:
        if (on_delta) on_delta(m->delta());
        break;
      case client::ServerMessage::kFinish:
        return m->finish();
      case client::ServerMessage::kError:
        throw_server_error(*this, *m);
      case client::ServerMessage::BODY_NOT_SET:
        break;  // a kind of a later minor version: ignored
      default:
        fail("the server answered request {} with a {} message", id, message_kind(*m));
    }
  }
}

client::GenerateRequest Client::make_request(const RequestOptions& o) {
  client::GenerateRequest r;
  r.set_model(o.model);
  if (o.max_tokens) r.set_max_tokens(*o.max_tokens);
  client::Sampling* s = r.mutable_sampling();
  if (o.temperature) s->set_temperature(*o.temperature);
  if (o.top_k) s->set_top_k(*o.top_k);
  if (o.top_p) s->set_top_p(*o.top_p);
  if (o.min_p) s->set_min_p(*o.min_p);
  if (o.seed) s->set_seed(*o.seed);
  if (o.presence_penalty) s->set_presence_penalty(*o.presence_penalty);
  if (o.frequency_penalty) s->set_frequency_penalty(*o.frequency_penalty);
  if (o.repetition_penalty) s->set_repetition_penalty(*o.repetition_penalty);
  for (const auto& [token, bias] : o.logit_bias) (*s->mutable_logit_bias())[token] = bias;
  if (o.min_tokens) r.set_min_tokens(*o.min_tokens);
  r.set_guided_json_object(o.guided_json_object);
  r.set_guided_json_schema(o.guided_json_schema);
  for (const std::string& c : o.guided_choice) r.add_guided_choice(c);
  r.set_include_stop_str_in_output(o.include_stop_str_in_output);
  for (const std::string& stop : o.stop) r.add_stop(stop);
  if (o.top_logprobs) r.set_top_logprobs(*o.top_logprobs);
  if (o.n) r.set_n(*o.n);
  if (o.prompt_logprobs) r.set_prompt_logprobs(*o.prompt_logprobs);
  r.set_echo(o.echo);
  r.set_ignore_eos(o.ignore_eos);
  return r;
}

client::Finish Client::generate(const std::string& prompt, const RequestOptions& options,
                                const DeltaCallback& on_delta) {
  client::GenerateRequest r = make_request(options);
  r.set_prompt(prompt);
  return run(r, on_delta);
}

client::Finish Client::chat(const std::vector<client::ChatMessage>& messages, const RequestOptions& options,
                            const DeltaCallback& on_delta) {
  client::GenerateRequest r = make_request(options);
  client::ChatInput* chat = r.mutable_chat();
  for (const client::ChatMessage& m : messages) *chat->add_messages() = m;
  chat->set_tools_json(options.tools_json);
  chat->set_tool_choice(options.tool_choice);
  chat->set_tool_choice_function(options.tool_choice_function);
  chat->set_continue_final_message(options.continue_final_message);
  chat->set_enable_thinking(options.enable_thinking);
  return run(r, on_delta);
}

namespace {

// Sends one request of the given kind and waits for its reply.
client::ServerMessage simple_request(Client& c, uint64_t id, const client::ClientMessage& message) {
  c.send(message);
  for (;;) {
    std::optional<client::ServerMessage> m = c.receive_for(id);
    if (m->has_error()) throw_server_error(c, *m);
    // Connection-level messages and kinds of a later minor version are ignored.
    if (m->request_id() == id && m->body_case() != client::ServerMessage::BODY_NOT_SET) return *m;
  }
}

}  // namespace

std::vector<client::ModelInfo> Client::models() {
  client::ClientMessage message;
  const uint64_t id = impl_->next_id++;
  message.set_request_id(id);
  message.mutable_list_models();
  const client::ServerMessage reply = simple_request(*this, id, message);
  if (!reply.has_models()) fail("the server answered list_models with a {} message", message_kind(reply));
  return {reply.models().models().begin(), reply.models().models().end()};
}

client::HealthStatus Client::health() {
  client::ClientMessage message;
  const uint64_t id = impl_->next_id++;
  message.set_request_id(id);
  message.mutable_health();
  const client::ServerMessage reply = simple_request(*this, id, message);
  if (!reply.has_health()) fail("the server answered health with a {} message", message_kind(reply));
  return reply.health();
}

}  // namespace shardlm::tcp

namespace shardlm::tcp {
namespace {

client::ServerMessage job_request(Client& c, uint64_t id, client::ClientMessage& message) {
  message.set_request_id(id);
  return simple_request(c, id, message);
}

}  // namespace

client::JobInfo Client::job_submit(const client::JobSubmitRequest& request) {
  client::ClientMessage message;
  *message.mutable_job_submit() = request;
  const client::ServerMessage reply = job_request(*this, impl_->next_id++, message);
  if (!reply.has_job()) fail("the server answered job_submit with a {} message", message_kind(reply));
  return reply.job();
}

client::JobInfo Client::job_status(const std::string& job_id) {
  client::ClientMessage message;
  message.mutable_job_status()->set_job_id(job_id);
  const client::ServerMessage reply = job_request(*this, impl_->next_id++, message);
  if (!reply.has_job()) fail("the server answered job_status with a {} message", message_kind(reply));
  return reply.job();
}

client::JobList Client::job_list(uint32_t limit, const std::string& after) {
  client::ClientMessage message;
  message.mutable_job_list()->set_limit(limit);
  message.mutable_job_list()->set_after(after);
  const client::ServerMessage reply = job_request(*this, impl_->next_id++, message);
  if (!reply.has_jobs()) fail("the server answered job_list with a {} message", message_kind(reply));
  return reply.jobs();
}

client::JobInfo Client::job_cancel(const std::string& job_id) {
  client::ClientMessage message;
  message.mutable_job_cancel()->set_job_id(job_id);
  const client::ServerMessage reply = job_request(*this, impl_->next_id++, message);
  if (!reply.has_job()) fail("the server answered job_cancel with a {} message", message_kind(reply));
  return reply.job();
}

int64_t Client::job_results(const client::JobResultsRequest& request,
                            const std::function<void(const client::JobResultChunk&)>& on_chunk) {
  client::ClientMessage message;
  const uint64_t id = impl_->next_id++;
  message.set_request_id(id);
  *message.mutable_job_results() = request;
  send(message);
  int64_t lines = 0;
  for (;;) {
    std::optional<client::ServerMessage> m = receive_for(id);
    if (m->has_error()) throw_server_error(*this, *m);
    if (m->request_id() != id) continue;  // connection-level messages other than errors
    if (!m->has_job_results()) {
      if (m->body_case() == client::ServerMessage::BODY_NOT_SET) continue;  // a later minor version's kind
      fail("the server answered job_results with a {} message", message_kind(*m));
    }
    lines += m->job_results().lines();
    if (on_chunk) on_chunk(m->job_results());
    if (m->job_results().last()) return lines;
  }
}

}  // namespace shardlm::tcp
