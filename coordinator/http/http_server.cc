// The listening side of the HTTP server: binds in the constructor, accepts on the io_context's
// threads, and stops by closing the acceptor and every connection, then detaching (and cancelling)
// the generations still running so that the text service never calls into a stopped server.
#include "coordinator/http/http_server.h"

#include <utility>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/log_throttle.h"
#include "coordinator/http/http_connection.h"

namespace shardlm::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kStopGrace = std::chrono::seconds(5);
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);
}  // namespace

struct HttpServer::Impl {
  // Declaration order is destruction order reversed: the io_context (and the connections its
  // queued handlers hold) goes before the state, router and backend they refer to.
  std::shared_ptr<TextBackend> backend;
  HttpServerOptions options;
  ApiRouter router;
  std::shared_ptr<ServerState> state;
  asio::io_context io;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  LogThrottle accept_failures;  // out of descriptors, accept fails every retry
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  asio::thread_pool prepare_pool{2};  // requests' parsing and tokenizing (ServerState::run_prepare)
  std::mutex mutex;
  std::condition_variable exited;
  int running = 0;
  bool started = false;
  bool stopped = false;
  int port = 0;

  Impl(std::shared_ptr<TextBackend> b, HttpServerOptions o)
      : backend(std::move(b)),
        options(std::move(o)),
        router(*backend, options.api_keys),
        state(std::make_shared<ServerState>(*backend, router, options)),
        io(std::max(1, options.threads)),
        acceptor(asio::make_strand(io)),
        retry_timer(acceptor.get_executor()) {
    router.set_rate_limiter(options.rate_limiter);
    state->run_prepare = [this](std::function<void()> work) { asio::post(prepare_pool, std::move(work)); };
  }

  void bind() {
    const std::string where = fmt::format("{}:{}", options.host, options.port);
    boost::system::error_code ec;
    tcp::resolver resolver(io);
    auto results = resolver.resolve(options.host, std::to_string(options.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) fail("cannot listen on {}: cannot resolve the host: {}", where, ec.message());
    tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor.open(endpoint.protocol(), ec);
    if (ec) fail("cannot listen on {}: {}", where, ec.message());
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    acceptor.bind(endpoint, ec);
    if (ec) fail("cannot listen on {}: {}", where, ec.message());
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail("cannot listen on {}: {}", where, ec.message());
    port = acceptor.local_endpoint().port();
  }

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open() || state->stopping) return;
      if (ec) {
        // Out of file descriptors and the like: try again shortly instead of spinning.
        accept_failures.warn("http: accept failed: " + ec.message());
        retry_timer.expires_after(kAcceptRetry);
        retry_timer.async_wait([this](boost::system::error_code e) {
          if (!e) accept();
        });
        return;
      }
      start_connection(std::move(socket), state);
      accept();
    });
  }

  void run_thread() {
    for (;;) {
      try {
        io.run();
        break;
      } catch (const std::exception& e) {
        spdlog::error("http: unexpected exception in a handler: {}", e.what());
      }
    }
    std::lock_guard lock(mutex);
    --running;
    exited.notify_all();
  }
};

HttpServer::HttpServer(std::shared_ptr<TextBackend> backend, HttpServerOptions options) {
  if (!backend) fail("HttpServer needs a text backend");
  if (options.threads < 1) fail("HTTP server threads must be >= 1 (got {})", options.threads);
  if (options.port < 0 || options.port > 65535) fail("HTTP port must be in 0..65535 (got {})", options.port);
  if (options.max_body_bytes == 0) fail("HTTP max_body_bytes must be > 0");
  impl_ = std::make_unique<Impl>(std::move(backend), std::move(options));
  impl_->bind();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::port() const { return impl_->port; }

void HttpServer::set_ready(bool ready) { impl_->router.set_ready(ready); }

void HttpServer::set_draining() {
  impl_->router.set_ready(false);
  impl_->router.set_draining();
}

void HttpServer::add_route(std::string prefix, Route route) {
  impl_->router.add_route(std::move(prefix), std::move(route));
}

void HttpServer::add_route(std::string prefix, Route route, std::string content_type) {
  impl_->router.add_route(std::move(prefix), std::move(route), std::move(content_type));
}

void HttpServer::start() {
  Impl& s = *impl_;
  std::lock_guard lock(s.mutex);
  if (s.stopped) fail("the HTTP server was stopped; it cannot start again");
  if (s.started) return;
  s.started = true;
  s.work.emplace(s.io.get_executor());
  asio::post(s.acceptor.get_executor(), [&s] { s.accept(); });
  s.running = s.options.threads;
  for (int i = 0; i < s.options.threads; ++i) s.threads.emplace_back([&s] { s.run_thread(); });
}

void HttpServer::stop() {
  if (!impl_) return;
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopped) return;
    s.stopped = true;
  }
  s.router.set_stopping();
  s.state->stopping = true;
  if (s.started) {
    asio::post(s.acceptor.get_executor(), [&s] {
      boost::system::error_code ec;
      s.acceptor.close(ec);
      s.retry_timer.cancel();
    });
    for (const auto& c : s.state->connections()) c->close();
    s.work.reset();
    {
      std::unique_lock lock(s.mutex);
      if (!s.exited.wait_for(lock, kStopGrace, [&s] { return s.running == 0; })) s.io.stop();
    }
    for (std::thread& t : s.threads) t.join();
    s.threads.clear();
    s.prepare_pool.stop();  // requests still being prepared are dropped with their connections
    s.prepare_pool.join();
  } else {
    boost::system::error_code ec;
    s.acceptor.close(ec);
  }
  // No io thread runs any more: detach what is still running so the backend's observers no longer
  // reach this server, and cancel it.
  for (const auto& g : s.state->generations()) {
    if (uint64_t id = g->detach(); id != 0) s.backend->cancel(id);
  }
}

}  // namespace shardlm::http
