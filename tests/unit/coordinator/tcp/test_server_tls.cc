// The TCP client protocol's TLS and limits in one process: a TcpServer over real sockets on a real
// TextService (the golden tiny dense model) with a generated self-signed certificate, driven by the
// blocking Client (with and without TLS, trusting the right CA, the wrong one, or none) and by raw
// sockets; the connection limit, the rate limit per API key and per address, and the prompt limit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/error.h"
#include "common/rate_limiter.h"
#include "common/tls.h"
#include "coordinator/scheduler.h"
#include "coordinator/tcp/client.h"
#include "coordinator/tcp/protocol.h"
#include "coordinator/tcp/server.h"
#include "tests/unit/coordinator/tcp/server_test_support.h"
#include "coordinator/text_service.h"
#include "engine/engine.h"
#include "model/tokenizer.h"
#include "tests/unit/coordinator/http/tls_test_support.h"

namespace shardlm::tcp {
namespace {

using namespace test_support;

// The error text of `f`, or "no error".
template <typename E = Error, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "no error";
}

bool eventually(const std::function<bool()>& pred, double timeout_s = 10) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// A raw TCP connection that sends nothing: true when the server closes it within timeout_s.
bool silent_connection_closed(int port, double timeout_s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return false;
  }
  bool closed = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!closed && std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buffer[256];
    closed = ::recv(fd, buffer, sizeof(buffer), 0) <= 0;
  }
  ::close(fd);
  return closed;
}

// The shared fixture (its live service and plain servers), with TLS servers and clients.
class TcpTlsTest : public TcpServerTest {
 protected:
  std::unique_ptr<TcpServer> start_tls_server(TcpServerOptions o = {}) {
    o.tls = tls::server_context(cert_.cert, cert_.key);
    return start_server(std::move(o));
  }
  ClientOptions tls_client(const std::string& ca) const {
    ClientOptions c;
    c.connect_timeout_s = 10;
    c.tls = true;
    c.tls_ca_file = ca;
    return c;
  }
  static std::string generate(Client& c, const std::string& prompt, int max_tokens) {
    std::string text;
    c.generate(prompt, greedy(max_tokens), [&](const client::Delta& d) { text += d.content(); });
    return text;
  }

  tls_testing::TlsFiles files_;
  tls_testing::CertFiles cert_ = files_.self_signed("server");
};

TEST_F(TcpTlsTest, GenerateOverTlsMatchesPlain) {
  auto plain_server = start_server();
  Client plain;
  plain.connect("127.0.0.1", plain_server->port());
  const std::string expected = generate(plain, "The sea", 8);

  auto server = start_tls_server();
  Client c(tls_client(cert_.cert));
  c.connect("127.0.0.1", server->port());
  EXPECT_EQ(c.welcome().protocol_minor(), kProtocolMinor);
  EXPECT_EQ(generate(c, "The sea", 8), expected);
  EXPECT_EQ(c.models().at(0).name(), "tiny");
  EXPECT_TRUE(c.health().serving());
  // Several requests in flight on the TLS connection.
  client::GenerateRequest r = Client::make_request(greedy(5));
  r.set_prompt("Waves");
  const uint64_t a = c.send_generate(r);
  const uint64_t b = c.send_generate(r);
  int finished = 0;
  while (finished < 2) {
    auto m = c.receive(30);
    ASSERT_TRUE(m.has_value());
    ASSERT_FALSE(m->has_error()) << m->error().message();
    if (m->has_finish()) {
      EXPECT_TRUE(m->request_id() == a || m->request_id() == b);
      ++finished;
    }
  }
}

TEST_F(TcpTlsTest, PlaintextClientFailsAndTheServerKeepsServing) {
  TcpServerOptions o;
  o.handshake_timeout_ms = 500;
  auto server = start_tls_server(o);
  for (int i = 0; i < 3; ++i) {
    Client plain;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string e = error_of([&] { plain.connect("127.0.0.1", server->port()); });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_NE(e.find("handshake with 127.0.0.1"), std::string::npos) << e;
    EXPECT_NE(e.find("is TLS needed?"), std::string::npos) << e;
    EXPECT_FALSE(plain.connected());
    Client ok(tls_client(cert_.cert));
    ok.connect("127.0.0.1", server->port());
    EXPECT_FALSE(generate(ok, "Hi", 2).empty());
  }
  // A connection that sends nothing is closed after the handshake timeout.
  EXPECT_TRUE(silent_connection_closed(server->port(), 5));
  EXPECT_TRUE(eventually([&] { return server->connection_count() == 0; }));
}

TEST_F(TcpTlsTest, UntrustedCertificatesAreRefusedByTheClient) {
  auto server = start_tls_server();
  const tls_testing::CertFiles other = files_.self_signed("other-ca");
  Client wrong_ca(tls_client(other.cert));
  std::string e = error_of([&] { wrong_ca.connect("127.0.0.1", server->port()); });
  EXPECT_NE(e.find("TLS handshake with 127.0.0.1"), std::string::npos) << e;
  EXPECT_NE(e.find("not trusted"), std::string::npos) << e;
  // The system's CAs do not know a self-signed certificate either.
  Client system_cas(tls_client(""));
  e = error_of([&] { system_cas.connect("127.0.0.1", server->port()); });
  EXPECT_NE(e.find("not trusted"), std::string::npos) << e;
  // The right CA but another name: refused.
  Client by_name(tls_client(cert_.cert));
  EXPECT_NO_THROW(by_name.connect("localhost", server->port()));  // DNS:localhost is in the certificate
  const tls_testing::CertFiles elsewhere = files_.self_signed("elsewhere", "DNS:elsewhere.example");
  TcpServerOptions o;
  o.tls = tls::server_context(elsewhere.cert, elsewhere.key);
  auto wrong_name = start_server(o);
  Client mismatch(tls_client(elsewhere.cert));
  e = error_of([&] { mismatch.connect("127.0.0.1", wrong_name->port()); });
  EXPECT_NE(e.find("IP address mismatch"), std::string::npos) << e;
  // Without verification anything goes.
  ClientOptions insecure = tls_client("");
  insecure.tls_insecure = true;
  Client any(insecure);
  any.connect("127.0.0.1", wrong_name->port());
  EXPECT_TRUE(any.health().serving());
  // The servers served on after the refused handshakes.
  Client ok(tls_client(cert_.cert));
  ok.connect("127.0.0.1", server->port());
  EXPECT_TRUE(ok.health().serving());
}

TEST_F(TcpTlsTest, TlsClientAgainstAPlainServerFailsCleanly) {
  auto server = start_server();
  Client c(tls_client(cert_.cert));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { c.connect("127.0.0.1", server->port()); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(e.find("TLS handshake with 127.0.0.1"), std::string::npos) << e;
  Client plain;
  plain.connect("127.0.0.1", server->port());
  EXPECT_TRUE(plain.health().serving());
}

TEST_F(TcpTlsTest, ConnectionLimit) {
  for (const bool use_tls : {false, true}) {
    SCOPED_TRACE(use_tls ? "TLS" : "plain");
    TcpServerOptions o;
    o.max_connections = 2;
    auto server = use_tls ? start_tls_server(o) : start_server(o);
    const ClientOptions co = use_tls ? tls_client(cert_.cert) : ClientOptions{};
    auto a = std::make_unique<Client>(co);
    Client b(co);
    a->connect("127.0.0.1", server->port());
    b.connect("127.0.0.1", server->port());
    Client c(co);
    try {
      c.connect("127.0.0.1", server->port());
      FAIL() << "a third connection was let in";
    } catch (const ServerError& e) {
      EXPECT_EQ(e.code(), client::ERROR_UNAVAILABLE);
      EXPECT_NE(e.message().find("too many connections"), std::string::npos) << e.message();
    }
    EXPECT_FALSE(c.connected());
    EXPECT_FALSE(generate(b, "Hi", 2).empty());  // the others are served as before
    a.reset();
    EXPECT_TRUE(eventually([&] {
      Client d(co);
      try {
        d.connect("127.0.0.1", server->port());
      } catch (const ServerError&) {
        return false;
      }
      return !generate(d, "Hi", 2).empty();
    }));
  }
}

TEST_F(TcpTlsTest, RateLimitPerApiKey) {
  TcpServerOptions o;
  o.api_keys = {"key-one", "key-two"};
  o.rate_limiter = std::make_shared<RateLimiter>(2);
  auto server = start_server(o);
  Client c;
  c.connect("127.0.0.1", server->port(), "key-one");
  EXPECT_FALSE(generate(c, "Hi", 2).empty());
  EXPECT_EQ(c.models().size(), 1u);
  try {
    generate(c, "Hi", 2);
    FAIL() << "a third request got through";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.code(), client::ERROR_RATE_LIMITED);
    EXPECT_NE(e.message().find("rate limit reached"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("per API key"), std::string::npos) << e.message();
    EXPECT_NE(std::string(e.what()).find("(rate_limited)"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(c.connected());           // a request-level error
  EXPECT_TRUE(c.health().serving());    // health is not limited
  Client same_key;                      // the budget is the key's, not the connection's
  same_key.connect("127.0.0.1", server->port(), "key-one");
  EXPECT_THROW(same_key.models(), ServerError);
  Client other_key;
  other_key.connect("127.0.0.1", server->port(), "key-two");
  EXPECT_FALSE(generate(other_key, "Hi", 2).empty());
}

TEST_F(TcpTlsTest, RateLimitPerAddressWithoutKeys) {
  TcpServerOptions o;
  o.rate_limiter = std::make_shared<RateLimiter>(1);
  auto server = start_server(o);
  Client c;
  c.connect("127.0.0.1", server->port());
  EXPECT_EQ(c.models().size(), 1u);
  Client d;
  d.connect("127.0.0.1", server->port());
  const std::string e = error_of<ServerError>([&] { d.models(); });
  EXPECT_NE(e.find("per client address"), std::string::npos) << e;
}

TEST_F(TcpTlsTest, PromptLimit) {
  TcpServerOptions o;
  o.max_prompt_tokens = 6;
  auto server = start_server(o);
  Client c;
  c.connect("127.0.0.1", server->port());
  EXPECT_FALSE(generate(c, "Hi", 2).empty());
  try {
    generate(c, "one two three four five six seven eight nine ten eleven twelve", 2);
    FAIL() << "a long prompt got through";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.code(), client::ERROR_CONTEXT_LENGTH);
    EXPECT_NE(e.message().find("limit of 6 prompt tokens"), std::string::npos) << e.message();
  }
  EXPECT_FALSE(generate(c, "Hi", 2).empty());  // the connection goes on
}

}  // namespace
}  // namespace shardlm::tcp
