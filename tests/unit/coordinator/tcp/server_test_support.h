// Shared by the TCP server tests (test_server*.cc): a raw client socket for what a well-behaved client
// never sends, request builders, and the TcpServerTest fixture over the live service (live_service.h).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "common/error.h"
#include "coordinator/tcp/client.h"
#include "coordinator/tcp/protocol.h"
#include "coordinator/tcp/server.h"
#include "proto/frame.h"
#include "tests/unit/coordinator/tcp/live_service.h"

namespace shardlm::tcp::test_support {

const std::string kModel = std::string(SHARDLM_TEST_DATA) + "/dense";
constexpr int64_t kMaxContext = 256;

// A client socket that writes whatever bytes a test wants and reads frames with a timeout.
class RawConnection {
 public:
  // receive_buffer > 0: SO_RCVBUF (before connecting), for a client whose window fills quickly.
  explicit RawConnection(int port, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) fail("socket() failed");
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) fail("connect() failed");
  }
  ~RawConnection() { ::close(fd_); }

  void write(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) fail("send() failed");
      done += static_cast<size_t>(n);
    }
  }
  void send(const client::ClientMessage& m) { write(encode_frame(m)); }
  // True while no byte of an answer has arrived.
  bool nothing_arrived() {
    pollfd p{fd_, POLLIN, 0};
    return decoder_.buffered() == 0 && ::poll(&p, 1, 0) == 0;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void send_hello(uint32_t major = kProtocolMajor, uint32_t minor = kProtocolMinor, const std::string& key = {}) {
    client::ClientMessage m;
    m.mutable_hello()->set_protocol_major(major);
    m.mutable_hello()->set_protocol_minor(minor);
    m.mutable_hello()->set_api_key(key);
    send(m);
  }
  void handshake() {
    send_hello();
    const auto m = read();
    ASSERT_TRUE(m.has_value());
    ASSERT_TRUE(m->has_welcome()) << message_kind(*m);
  }

  // The next frame; nullopt when the server closed the connection. Throws after timeout_s.
  std::optional<client::ServerMessage> read(double timeout_s = 30) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      std::string payload;
      const auto status = decoder_.next(payload);
      if (status == FrameDecoder::Status::kFrame) {
        client::ServerMessage m;
        if (!parse_frame_payload(payload, m)) fail("the server sent a malformed frame");
        return m;
      }
      if (status == FrameDecoder::Status::kTooLarge) fail("the server sent an oversize frame");
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) fail("no frame from the server within {} s", timeout_s);
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) return std::nullopt;  // closed (or reset)
      decoder_.feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }

  // Expects a connection-level Error with `code`, then the end of the connection; returns its text.
  std::string expect_closed_with(client::ErrorCode code) {
    const auto m = read();
    if (!m.has_value()) {
      ADD_FAILURE() << "connection closed without an error frame";
      return {};
    }
    EXPECT_TRUE(m->has_error()) << message_kind(*m);
    EXPECT_EQ(m->request_id(), 0u);
    EXPECT_EQ(error_code_name(m->error().code()), std::string(error_code_name(code))) << m->error().message();
    std::optional<client::ServerMessage> rest;
    while ((rest = read()).has_value()) ADD_FAILURE() << "frame after the closing error: " << message_kind(*rest);
    return m->error().message();
  }

 private:
  int fd_ = -1;
  FrameDecoder decoder_;
};

client::ClientMessage generate_message(uint64_t id, const std::string& prompt, int max_tokens, bool ignore_eos = true) {
  client::ClientMessage m;
  m.set_request_id(id);
  client::GenerateRequest* g = m.mutable_generate();
  g->set_prompt(prompt);
  g->set_max_tokens(max_tokens);
  g->mutable_sampling()->set_temperature(0);
  g->set_ignore_eos(ignore_eos);
  return m;
}

// A prompt of about `bytes` bytes of words (tokenizing it takes ~60 ms per MB).
std::string long_prompt(size_t bytes) {
  const std::string words = "the quick brown fox jumps over the lazy dog while seven zebras quietly watch ";
  std::string prompt;
  while (prompt.size() + words.size() < bytes) prompt += words;
  return prompt;
}

RequestOptions greedy(int max_tokens) {
  RequestOptions o;
  o.max_tokens = max_tokens;
  o.temperature = 0.0f;
  o.ignore_eos = true;
  return o;
}

struct Result {
  std::string content;
  client::Finish finish;
  int deltas = 0;
};

class TcpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    live_.start(kModel, kMaxContext);
    engine_ = live_.engine;
    tokenizer_ = live_.tokenizer;
    scheduler_ = live_.scheduler;
    service_ = live_.service;
  }
  static void TearDownTestSuite() { live_.stop(); }

  std::unique_ptr<TcpServer> start_server(TcpServerOptions o = {}) { return live_.server(o); }

  static Result run(Client& c, const std::string& prompt, const RequestOptions& o) {
    Result r;
    r.finish = c.generate(prompt, o, [&](const client::Delta& d) {
      r.content += d.content();
      ++r.deltas;
    });
    return r;
  }

  inline static tcp_test::LiveService live_;
  inline static StepEngine* engine_ = nullptr;
  inline static Tokenizer* tokenizer_ = nullptr;
  inline static Scheduler* scheduler_ = nullptr;
  inline static TextService* service_ = nullptr;
};

}  // namespace shardlm::tcp::test_support
