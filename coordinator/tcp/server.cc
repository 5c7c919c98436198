#include "coordinator/tcp/server.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/log_throttle.h"
#include "coordinator/tcp/connection.h"
#include "coordinator/tcp/job_handler.h"
#include "coordinator/text_service.h"

namespace shardlm::tcp {

namespace asio = boost::asio;
using detail::Connection;

struct TcpServer::Impl {
  Impl(TextService& service, TcpServerOptions opts)
      : options(std::move(opts)),
        gate(std::make_shared<detail::PostGate>(io)),
        context{service, options, gate, std::chrono::steady_clock::now(), {}} {
    context.on_closed = [this](const std::shared_ptr<Connection>& c) {
      connections.erase(c);
      count = connections.size();
    };
    context.run_job = [this](std::function<void()> work) { asio::post(job_pool, std::move(work)); };
    context.run_prepare = [this](std::function<void()> work) { asio::post(prepare_pool, std::move(work)); };
    context.keys = ApiKeySet(options.api_keys);
    context.connection_limit = ConnectionLimit(options.max_connections);
  }

  void accept() {
    acceptor.async_accept([this](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // E.g. out of file descriptors: try again a little later instead of spinning.
        accept_failures.warn("tcp: accept failed: " + ec.message());
        retry_timer.expires_after(std::chrono::milliseconds(100));
        retry_timer.async_wait([this](const boost::system::error_code& e) {
          if (!e) accept();
        });
        return;
      }
      auto connection = std::make_shared<Connection>(std::move(socket), context, context.connection_limit.try_acquire());
      connections.insert(connection);
      count = connections.size();
      connection->start();
      accept();
    });
  }

  TcpServerOptions options;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::ip::tcp::acceptor acceptor{io};
  asio::steady_timer retry_timer{io};
  LogThrottle accept_failures;  // out of descriptors, accept fails every retry
  std::shared_ptr<detail::PostGate> gate;
  detail::ServerContext context;
  asio::thread_pool job_pool{1};  // batch-job calls (they may block on storage)
  // Generate requests rendered, tokenized and queued: two, and one request of a connection at a time,
  // so that a short prompt is not held up by long ones.
  asio::thread_pool prepare_pool{2};
  std::set<std::shared_ptr<Connection>> connections;  // I/O thread only
  std::atomic<size_t> count{0};
  std::thread thread;
  int port = 0;
  bool started = false;
  bool stopped = false;
};

TcpServer::TcpServer(TextService& service, TcpServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {}

TcpServer::~TcpServer() {
  stop();
  impl_->gate->close();
  impl_->job_pool.join();
  impl_->prepare_pool.join();
}

void TcpServer::set_job_handler(std::shared_ptr<JobHandler> handler) {
  if (impl_->started) fail("the TCP server's job handler must be set before start()");
  impl_->context.jobs = std::move(handler);
}

void TcpServer::start() {
  Impl& s = *impl_;
  if (s.started) fail("the TCP server was already started");
  const TcpServerOptions& o = s.options;
  if (o.port < 0 || o.port > 65535) fail("TCP port {} is out of range (0..65535)", o.port);
  if (o.max_frame_bytes < 64) fail("max_frame_bytes {} is too small (at least 64)", o.max_frame_bytes);
  if (o.max_requests_per_connection < 1) fail("max_requests_per_connection must be >= 1");
  for (const std::string& key : o.api_keys) {
    if (key.empty()) fail("an API key is empty");
  }
  boost::system::error_code ec;
  asio::ip::tcp::resolver resolver(s.io);
  const auto endpoints = resolver.resolve(o.host, std::to_string(o.port),
                                          asio::ip::tcp::resolver::passive | asio::ip::tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) fail("cannot listen on {}:{}: {}", o.host, o.port, ec ? ec.message() : "no address");
  const asio::ip::tcp::endpoint endpoint = endpoints.begin()->endpoint();
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    fail("cannot listen on {}:{}: {}", o.host, o.port, ec.message());
  }
  s.port = s.acceptor.local_endpoint().port();
  s.started = true;
  s.context.started = std::chrono::steady_clock::now();
  s.work.emplace(s.io.get_executor());
  s.accept();
  s.thread = std::thread([&s] {
    for (;;) {
      try {
        s.io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("tcp: server thread: {}", e.what());
      }
    }
  });
  spdlog::info("tcp: listening on {}:{}{}{}", o.host, s.port, o.tls ? " (TLS)" : "", o.api_keys.empty() ? "" : " (API keys required)");
}

void TcpServer::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  asio::post(s.io, [&s] {
    boost::system::error_code ec;
    s.acceptor.close(ec);
    s.retry_timer.cancel();
    const std::vector<std::shared_ptr<Connection>> open(s.connections.begin(), s.connections.end());
    for (const auto& c : open) c->fail(client::ERROR_UNAVAILABLE, "the server is shutting down");
  });
  s.work.reset();
  s.thread.join();
  s.gate->close();
  s.job_pool.join();  // job calls still running finish; their replies are dropped by the gate
  s.prepare_pool.join();  // requests queued after the gate closed are cancelled by their task
  s.connections.clear();
  s.count = 0;
}

void TcpServer::set_ready(bool ready) { impl_->context.ready = ready; }

int TcpServer::port() const { return impl_->port; }

size_t TcpServer::connection_count() const { return impl_->count; }

int64_t TcpServer::preparing() const { return std::max<int64_t>(0, impl_->context.preparing.load()); }

}  // namespace shardlm::tcp
