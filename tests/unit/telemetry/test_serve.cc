#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <chrono>
#include <functional>
#include <sstream>
#include <utility>  // before Boost.Asio (Boost 1.74 uses std::exchange without including it)

#include <boost/asio.hpp>

#include "common/error.h"
#include "telemetry/metrics.h"
#include "tests/unit/telemetry/exposition.h"

namespace shardlm::telemetry {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct HttpReply {
  bool ok = false;  // connected and read a whole reply within the deadline
  std::string status_line;
  std::string body;
};

// GET PATH from 127.0.0.1:PORT over a plain socket (HTTP/1.0: the server closes at the end),
// giving up after 10 s.
HttpReply http_get(int port, const std::string& path) {
  asio::io_context io;
  tcp::socket socket(io);
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::string response;
  std::array<char, 4096> chunk{};
  bool done = false;
  std::function<void(const boost::system::error_code&, size_t)> on_read =
      [&](const boost::system::error_code& ec, size_t n) {
        response.append(chunk.data(), n);
        if (ec) {
          done = ec == asio::error::eof;
          return;
        }
        socket.async_read_some(asio::buffer(chunk), on_read);
      };
  socket.async_connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
      [&](const boost::system::error_code& ec) {
        if (ec) return;
        asio::async_write(socket, asio::buffer(request),
                          [&](const boost::system::error_code& wec, size_t) {
                            if (!wec) socket.async_read_some(asio::buffer(chunk), on_read);
                          });
      });
  io.run_for(std::chrono::seconds(10));
  HttpReply reply;
  reply.ok = done;
  const size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    reply.ok = false;
    return reply;
  }
  reply.status_line = response.substr(0, response.find("\r\n"));
  reply.body = response.substr(head_end + 4);
  return reply;
}

TEST(MetricsServe, GetMetricsOnPickedPortReturnsTheSamples) {
  Metrics m("served-model", 2);
  EXPECT_EQ(m.bound_port(), 0);
  m.serve("127.0.0.1", 0);
  const int port = m.bound_port();
  ASSERT_GT(port, 0);
  RequestRecord r;
  r.e2e_s = 1.5;
  r.finished_reason = "stop";
  m.observe_request(r);
  m.count_tokens(11, 4);
  m.set_worker_up(1, true);

  const std::string text = m.text();
  HttpReply reply = http_get(port, "/metrics");
  ASSERT_TRUE(reply.ok) << "no complete reply from port " << port;
  EXPECT_NE(reply.status_line.find(" 200"), std::string::npos) << reply.status_line;
  EXPECT_EQ(test::sample_value(reply.body, "shardlm_prompt_tokens_total",
                               {{"model_name", "served-model"}}),
            11.0);
  EXPECT_EQ(test::sample_value(reply.body, "shardlm_request_success_total",
                               {{"model_name", "served-model"}, {"finished_reason", "stop"}}),
            1.0);
  EXPECT_EQ(test::sample_value(reply.body, "shardlm_worker_up",
                               {{"model_name", "served-model"}, {"worker", "1"}}),
            1.0);
  // /metrics serves what text() says, line for line (plus the exposer's own exposer_* families).
  std::istringstream lines(text);
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    EXPECT_NE(reply.body.find(line + "\n"), std::string::npos) << "missing from /metrics: " << line;
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

// Idle connections that never send a request do not hold up a scrape (two did for 30 s).
TEST(MetricsServe, IdleConnectionsDoNotBlockScrapes) {
  Metrics m("served-model", 1);
  m.serve("127.0.0.1", 0);
  const int port = m.bound_port();
  asio::io_context io;
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 4; ++i) {
    idle.emplace_back(io);
    idle.back().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(http_get(port, "/metrics").ok);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST(MetricsServe, PortInUseIsAClearError) {
  Metrics first("a", 1);
  first.serve("127.0.0.1", 0);
  const int port = first.bound_port();
  Metrics second("b", 1);
  try {
    second.serve("127.0.0.1", port);
    FAIL() << "serving twice on port " << port << " should fail";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cannot serve metrics on 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("already in use"), std::string::npos) << what;
  }
  EXPECT_EQ(second.bound_port(), 0);
  // The first server still answers.
  EXPECT_TRUE(http_get(port, "/metrics").ok);
}

TEST(MetricsServe, BadAddressesAndSecondServeAreRejected) {
  Metrics m("a", 1);
  EXPECT_THROW(m.serve("127.0.0.1", 70000), Error);
  EXPECT_THROW(m.serve("127.0.0.1", -1), Error);
  try {
    m.serve("metrics.example", 0);
    FAIL() << "a host name is not an address";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'metrics.example' is not an IPv4 address"),
              std::string::npos)
        << e.what();
  }
  try {
    m.serve("::1", 0);
    FAIL() << "IPv6 is not supported by the exposer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("IPv4 only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.serve("192.0.2.1", 0), Error);  // TEST-NET-1: never an address of this machine
  EXPECT_EQ(m.bound_port(), 0);
  m.serve("localhost", 0);
  EXPECT_GT(m.bound_port(), 0);
  EXPECT_THROW(m.serve("127.0.0.1", 0), Error);
}

}  // namespace
}  // namespace shardlm::telemetry
