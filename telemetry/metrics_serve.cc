// Metrics::serve / bound_port: the prometheus-cpp (civetweb) exposer on HOST:PORT, with a clear
// error when the address cannot be bound.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "telemetry/metrics_impl.h"

namespace shardlm::telemetry {
namespace {

struct ListenAddress {
  std::string host;   // numeric IPv4 address
  std::string civet;  // civetweb's listening_ports form: 1.2.3.4:80
};

ListenAddress parse_address(const std::string& host, int port) {
  if (port < 0 || port > 65535) fail("metrics port {} is outside 0..65535", port);
  ListenAddress a;
  a.host = host == "localhost" ? "127.0.0.1" : host;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.host.c_str(), &v6) == 1) {
    // The civetweb that prometheus-cpp uses (Debian's) is built without IPv6.
    fail(
        "metrics host '{}' is an IPv6 address; the metrics server listens on IPv4 only (use e.g. "
        "0.0.0.0 or 127.0.0.1)",
        host);
  }
  if (inet_pton(AF_INET, a.host.c_str(), &v4) != 1) {
    fail("metrics host '{}' is not an IPv4 address (use e.g. 0.0.0.0, 127.0.0.1 or localhost)",
         host);
  }
  a.civet = a.host + ":" + std::to_string(port);
  return a;
}

// Why ADDRESS cannot be bound, found by binding it the way civetweb does (SO_REUSEADDR).
std::string bind_diagnosis(const ListenAddress& a, int port, const std::string& server_error) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return fmt::format("cannot create a socket: {}", std::strerror(errno));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  const int err = errno;
  close(fd);
  if (rc == 0) return "the HTTP server did not start (" + server_error + ")";
  if (err == EADDRINUSE) return fmt::format("port {} is already in use by another process", port);
  return std::strerror(err);
}

}  // namespace

void Metrics::serve(const std::string& host, int port) {
  Impl& m = *impl_;
  const ListenAddress address = parse_address(host, port);
  std::lock_guard lock(m.serve_mutex);
  if (m.exposer) {
    fail("metrics are already served on port {}; serve() is called once",
         m.exposer->GetListeningPorts().at(0));
  }
  try {
    // civetweb gives each connection a thread until its request is read: 8 threads and a 5 s read
    // timeout, so that a few idle connections do not block the scrapes (2 threads and civetweb's
    // 30 s did: two idle connections held /metrics for 30 s).
    m.exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address.civet, "num_threads", "8", "request_timeout_ms", "5000"});
  } catch (const std::exception& e) {
    fail("cannot serve metrics on {}: {}", address.civet, bind_diagnosis(address, port, e.what()));
  }
  m.exposer->RegisterCollectable(m.registry);
}

int Metrics::bound_port() const {
  std::lock_guard lock(impl_->serve_mutex);
  if (!impl_->exposer) return 0;
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace shardlm::telemetry
