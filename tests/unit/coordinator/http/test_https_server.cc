// The HTTP server's TLS and limits over real local sockets, with a scripted backend: HTTPS requests
// (plain and streamed) verified against a generated CA, a plaintext client and a silent client on the
// TLS port (dropped, the server serving others), a client that does not trust the certificate, the
// connection limit (503, over plain HTTP and over TLS), and the rate limit per API key and per client
// address (429 with Retry-After), also on an injected clock through the router.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/rate_limiter.h"
#include "common/tls.h"
#include "coordinator/http/api_router.h"
#include "coordinator/http/http_server.h"
#include "http_test_support.h"
#include "tls_test_support.h"

namespace shardlm::http {
namespace {

using nlohmann::json;
using testing::HttpResult;
using testing::Script;
using testing::ScriptedBackend;
using testing::sse_payloads;
using testing::TestClient;
using tls_testing::https_request;
using tls_testing::HttpsResult;

const std::string kChat = R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}]})";
const std::string kChatStream = R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}],"stream":true})";

Script words(std::vector<std::string> pieces) {
  Script s;
  for (const std::string& p : pieces) {
    TextDelta d;
    d.content = p;
    s.deltas.push_back(d);
  }
  s.finish.finish_reason = "stop";
  s.finish.prompt_tokens = 4;
  s.finish.completion_tokens = static_cast<int64_t>(pieces.size());
  return s;
}

class HttpsServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions options = {}) {
    options.port = 0;
    server_ = std::make_unique<HttpServer>(backend_, options);
    server_->start();
    server_->set_ready(true);
  }
  void start_tls(HttpServerOptions options = {}) {
    options.tls = tls::server_context(cert_.cert, cert_.key);
    start(std::move(options));
  }
  int port() const { return server_->port(); }

  tls_testing::TlsFiles files_;
  tls_testing::CertFiles cert_ = files_.self_signed("server");
  std::shared_ptr<ScriptedBackend> backend_ = std::make_shared<ScriptedBackend>();
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpsServerTest, ChatOverTls) {
  backend_->script = [](const TextRequest&) { return words({"Hello", " over", " TLS"}); };
  start_tls();
  HttpsResult h = https_request(port(), cert_.cert, "GET", "/health");
  EXPECT_EQ(h.status, 200);
  HttpsResult r = https_request(port(), cert_.cert, "POST", "/v1/chat/completions", kChat);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["choices"][0]["message"]["content"], "Hello over TLS");
  HttpsResult s = https_request(port(), cert_.cert, "POST", "/v1/chat/completions", kChatStream);
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.header("content-type"), "text/event-stream");
  std::vector<std::string> ev = sse_payloads(s.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    const json c = json::parse(ev[i]);
    if (!c["choices"].empty() && c["choices"][0]["delta"].contains("content")) text += c["choices"][0]["delta"]["content"];
  }
  EXPECT_EQ(text, "Hello over TLS");
  EXPECT_EQ(backend_->requests().size(), 2u);
}

TEST_F(HttpsServerTest, PlaintextClientIsDroppedAndOthersAreServed) {
  start_tls();
  for (int i = 0; i < 3; ++i) {
    TestClient plain(port(), 10);
    ASSERT_TRUE(plain.send(testing::request_text("GET", "/health")));
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(plain.closed_by_peer());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(plain.buffered().find("HTTP/"), std::string::npos) << plain.buffered();
    EXPECT_EQ(https_request(port(), cert_.cert, "GET", "/health").status, 200);
  }
}

TEST_F(HttpsServerTest, SilentClientIsDroppedAfterTheTimeout) {
  HttpServerOptions o;
  o.request_timeout_s = 0.5;
  start_tls(o);
  TestClient silent(port(), 10);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(https_request(port(), cert_.cert, "GET", "/health").status, 200);  // served meanwhile
  EXPECT_TRUE(silent.closed_by_peer());
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 0.4);
  EXPECT_LT(waited, 5.0);
}

TEST_F(HttpsServerTest, ClientRefusesAnUntrustedCertificate) {
  start_tls();
  const tls_testing::CertFiles other = files_.self_signed("other-ca");
  try {
    https_request(port(), other.cert, "GET", "/health");
    FAIL() << "the handshake succeeded with the wrong CA";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("TLS handshake failed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not trusted"), std::string::npos) << e.what();
  }
  // A certificate for another host name, from a trusted CA file, is refused as well.
  const tls_testing::CertFiles elsewhere = files_.self_signed("elsewhere", "DNS:elsewhere.example");
  server_.reset();
  HttpServerOptions o;
  o.tls = tls::server_context(elsewhere.cert, elsewhere.key);
  start(o);
  try {
    https_request(port(), elsewhere.cert, "GET", "/health");
    FAIL() << "the handshake succeeded with a certificate for another host";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("IP address mismatch"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(backend_->requests().empty());
}

TEST_F(HttpsServerTest, ConnectionLimitAnswers503) {
  HttpServerOptions o;
  o.max_connections = 2;
  start(o);
  auto a = std::make_unique<TestClient>(port());
  TestClient b(port());
  EXPECT_EQ(a->request("GET", "/health").status, 200);
  EXPECT_EQ(b.request("GET", "/health").status, 200);
  {
    TestClient c(port());
    HttpResult r = c.request("POST", "/v1/chat/completions", kChat);
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.json()["error"]["code"], "too_many_connections");
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("too many connections"), std::string::npos);
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closed_by_peer());
  }
  EXPECT_TRUE(backend_->requests().empty());
  EXPECT_EQ(b.request("GET", "/health").status, 200);  // the open ones are served as before
  a.reset();                                           // one leaves: a new one gets in
  EXPECT_TRUE(ScriptedBackend::eventually([&] {
    TestClient d(port());
    return d.request("POST", "/v1/chat/completions", kChat).status == 200;
  }));
}

TEST_F(HttpsServerTest, ConnectionLimitOverTls) {
  HttpServerOptions o;
  o.max_connections = 1;
  start_tls(o);
  TestClient holder(port());  // holds the only slot (its TLS handshake never comes: it is only counted)
  HttpsResult r = https_request(port(), cert_.cert, "GET", "/v1/models");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "too_many_connections");
  holder.close();
  EXPECT_TRUE(ScriptedBackend::eventually([&] { return https_request(port(), cert_.cert, "GET", "/v1/models").status == 200; }));
}

TEST_F(HttpsServerTest, RateLimitPerApiKey) {
  HttpServerOptions o;
  o.api_keys = {"key-one", "key-two"};
  o.rate_limiter = std::make_shared<RateLimiter>(3);
  start(o);
  TestClient c(port());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.request("POST", "/v1/chat/completions", kChat, {"Authorization: Bearer key-one"}).status, 200) << i;
  }
  HttpResult r = c.request("POST", "/v1/chat/completions", kChat, {"Authorization: Bearer key-one"});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.json()["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(r.json()["error"]["type"], "rate_limit_error");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("per API key"), std::string::npos);
  const int retry = std::stoi(r.header("retry-after"));
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 20);  // one token every 20 s
  EXPECT_EQ(c.request("GET", "/v1/models", "", {"Authorization: Bearer key-one"}).status, 429);
  // Another key has its own budget; a wrong key is still 401; /health is not limited.
  EXPECT_EQ(c.request("GET", "/v1/models", "", {"Authorization: Bearer key-two"}).status, 200);
  EXPECT_EQ(c.request("GET", "/v1/models", "", {"Authorization: Bearer key-three"}).status, 401);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.request("GET", "/health").status, 200);
  EXPECT_EQ(backend_->requests().size(), 3u);
}

TEST_F(HttpsServerTest, RateLimitPerClientAddressWithoutKeys) {
  HttpServerOptions o;
  o.rate_limiter = std::make_shared<RateLimiter>(2);
  start(o);
  TestClient c(port());
  EXPECT_EQ(c.request("GET", "/v1/models").status, 200);
  TestClient other_connection(port());  // same address, same budget
  EXPECT_EQ(other_connection.request("GET", "/v1/models").status, 200);
  HttpResult r = c.request("GET", "/v1/models");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("per client address"), std::string::npos);
  EXPECT_FALSE(r.header("retry-after").empty());
}

TEST(ApiRouterRateLimit, RefillsOnTheClock) {
  ScriptedBackend backend;
  double now = 50;
  ApiRouter router(backend, {"sk-a"});
  router.set_rate_limiter(std::make_shared<RateLimiter>(60, [&] { return now; }));
  HttpRequestView v;
  v.method = "GET";
  v.target = "/v1/models";
  v.authorization = "Bearer sk-a";
  for (int i = 0; i < 60; ++i) ASSERT_EQ(router.handle(v).reply->status, 200) << i;
  ApiRouter::Outcome refused = router.handle(v);
  ASSERT_TRUE(refused.reply);
  EXPECT_EQ(refused.reply->status, 429);
  bool retry_after = false;
  for (const auto& [name, value] : refused.reply->headers) retry_after |= name == "Retry-After" && value == "1";
  EXPECT_TRUE(retry_after);
  now += 1.0;  // one token back
  EXPECT_EQ(router.handle(v).reply->status, 200);
  EXPECT_EQ(router.handle(v).reply->status, 429);
  // A bad key is refused before it could use anyone's budget.
  v.authorization = "Bearer sk-b";
  EXPECT_EQ(router.handle(v).reply->status, 401);
  v.target = "/health";
  EXPECT_EQ(router.handle(v).reply->status, 200);
}

}  // namespace
}  // namespace shardlm::http
