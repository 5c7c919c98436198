// Test support for the HTTP API: a plain blocking HTTP/1.1 client over POSIX sockets (timeouts on
// every read, so a broken server fails a test instead of hanging it) that reads Content-Length and
// chunked bodies and splits server-sent events, and a scripted TextBackend that plays given deltas
// on a thread of its own, as the text service's scheduler thread would, recording cancellations.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/http/text_backend.h"
#include "coordinator/request_error.h"

namespace shardlm::http::testing {

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  bool chunked = false;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// "data: ..." payloads of a server-sent-event body.
inline std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t start = body.find("data: ", pos);
    if (start == std::string::npos) break;
    size_t end = body.find("\n\n", start);
    if (end == std::string::npos) break;
    out.push_back(body.substr(start + 6, end - start - 6));
    pos = end + 2;
  }
  return out;
}

inline std::string request_text(const std::string& method, const std::string& target, const std::string& body = "",
                                const std::vector<std::string>& headers = {}) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n";
  for (const std::string& h : headers) r += h + "\r\n";
  if (!body.empty() || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "\r\n" + body;
  return r;
}

class TestClient {
 public:
  explicit TestClient(int port, double timeout_s = 20) : timeout_ms_(static_cast<int>(timeout_s * 1000)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect() failed: " + std::string(std::strerror(errno)));
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~TestClient() { close(); }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with a reset (SO_LINGER 0), as a killed client would.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close();
  }

  // Sends everything; false when the peer closed (EPIPE / reset).
  bool send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  HttpResult request(const std::string& method, const std::string& target, const std::string& body = "",
                     const std::vector<std::string>& headers = {}) {
    if (!send(request_text(method, target, body, headers))) throw std::runtime_error("send failed");
    return read_response(method == "HEAD");
  }

  // Reads one whole response (throws on timeout or on a close before it is complete). The response
  // to a HEAD request has no body whatever its Content-Length says.
  HttpResult read_response(bool head_request = false) {
    HttpResult r;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) fill_or_throw();
    std::string head = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    r.status = std::stoi(status_line.substr(status_line.find(' ') + 1, 3));
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
      pos = e + 2;
    }
    if (r.status == 100) return read_response(head_request);
    std::string te = r.header("transfer-encoding");
    if (head_request) return r;
    if (te.find("chunked") != std::string::npos) {
      r.chunked = true;
      while (true) {
        size_t e;
        while ((e = buf_.find("\r\n")) == std::string::npos) fill_or_throw();
        size_t size = std::stoul(buf_.substr(0, e), nullptr, 16);
        while (buf_.size() < e + 2 + size + 2) fill_or_throw();
        r.body += buf_.substr(e + 2, size);
        buf_.erase(0, e + 2 + size + 2);
        if (size == 0) break;
      }
    } else if (!r.header("content-length").empty()) {
      size_t length = std::stoul(r.header("content-length"));
      while (buf_.size() < length) fill_or_throw();
      r.body = buf_.substr(0, length);
      buf_.erase(0, length);
    } else {
      while (fill()) {
      }
      r.body = std::move(buf_);
      buf_.clear();
    }
    return r;
  }

  // Reads until `needle` has arrived (raw bytes, framing included); false on close or timeout.
  bool read_until(const std::string& needle) {
    while (buf_.find(needle) == std::string::npos) {
      if (!fill()) return false;
    }
    return true;
  }
  const std::string& buffered() const { return buf_; }

  // True when the server closes the connection (EOF or reset) within the timeout.
  bool closed_by_peer() {
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      int ready = ::poll(&p, 1, timeout_ms_);
      if (ready <= 0) return false;
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) return true;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  bool fill() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms_) <= 0) return false;
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  void fill_or_throw() {
    if (!fill()) throw std::runtime_error("connection closed or timed out before the response was complete; got: " + buf_);
  }

  int fd_ = -1;
  int timeout_ms_;
  std::string buf_;
};

// Plays a script for each submitted request on its own thread: the deltas with a pause between them,
// then the finish. A script with `until_cancelled` sends its deltas and then waits for cancel(), which
// ends it with "cancelled" (as the text service does).
struct Script {
  std::vector<TextDelta> deltas;
  TextFinish finish;
  int pause_ms = 0;
  bool until_cancelled = false;
};

class ScriptedBackend : public TextBackend {
 public:
  explicit ScriptedBackend(std::string model = "tiny") : model_(std::move(model)) {
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedBackend() override {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  std::string model_name() const override { return model_; }
  int64_t max_context() const override { return 4096; }

  // The script the next submits get; an exception to throw from submit instead, when set.
  std::function<Script(const TextRequest&)> script = [](const TextRequest&) {
    Script s;
    TextDelta d;
    d.content = "ok";
    s.deltas.push_back(d);
    s.finish.finish_reason = "stop";
    s.finish.prompt_tokens = 3;
    s.finish.completion_tokens = 1;
    return s;
  };
  std::function<void(const TextRequest&)> before_submit;
  std::function<void(const TextRequest&)> on_prepare;  // called by prepare (the costly part of a real backend)

  PreparedText prepare(const TextRequest& request) override {
    if (on_prepare) on_prepare(request);
    return TextBackend::prepare(request);
  }

  uint64_t submit(const TextRequest& request, std::shared_ptr<TextObserver> observer) override {
    if (before_submit) before_submit(request);
    Script s = script(request);
    std::lock_guard lock(mutex_);
    uint64_t id = next_id_++;
    requests_.push_back(request);
    jobs_.push_back({id, std::move(s), std::move(observer)});
    wake_.notify_all();
    return id;
  }

  void cancel(uint64_t id) override {
    std::lock_guard lock(mutex_);
    cancelled_.insert(id);
    wake_.notify_all();
  }

  // A tokenizer of bytes: each byte of the prompt is a token (the tests of the real tokenizer's routes
  // run against the text service, test_live_server.cc).
  std::vector<int32_t> tokenize(const TextRequest& request) override {
    std::vector<int32_t> ids;
    for (unsigned char c : request.prompt) ids.push_back(c);
    return ids;
  }
  std::vector<std::string> token_pieces(const std::vector<int32_t>& ids) override {
    std::vector<std::string> out;
    for (int32_t id : ids) out.emplace_back(1, static_cast<char>(id));
    return out;
  }
  std::string detokenize(const std::vector<int32_t>& ids) override {
    std::string out;
    for (int32_t id : ids) out.push_back(static_cast<char>(id));
    return out;
  }

  std::vector<TextRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::set<uint64_t> cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }
  int finished() const { return finished_.load(); }

  // Waits until `pred` holds (checked every 10 ms); false after `timeout_s`.
  static bool eventually(const std::function<bool()>& pred, double timeout_s = 10) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    while (std::chrono::steady_clock::now() < until) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

 private:
  struct Job {
    uint64_t id;
    Script script;
    std::shared_ptr<TextObserver> observer;
  };

  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [this] { return quit_ || !jobs_.empty(); });
      if (quit_) break;
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      // Jobs run one after another; good enough for these tests.
      bool cancelled = false;
      for (const TextDelta& d : job.script.deltas) {
        if (job.script.pause_ms > 0) {
          wake_.wait_for(lock, std::chrono::milliseconds(job.script.pause_ms), [&] { return quit_ || cancelled_.count(job.id); });
        }
        if (quit_ || cancelled_.count(job.id)) {
          cancelled = true;
          break;
        }
        lock.unlock();
        job.observer->on_delta(d);
        lock.lock();
      }
      if (job.script.until_cancelled && !cancelled) {
        wake_.wait(lock, [&] { return quit_ || cancelled_.count(job.id); });
        cancelled = true;
      }
      TextFinish f = job.script.finish;
      if (cancelled) f.finish_reason = "cancelled";
      lock.unlock();
      job.observer->on_finish(f);
      job.observer.reset();
      ++finished_;
      lock.lock();
    }
  }

  std::string model_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  std::vector<TextRequest> requests_;
  std::set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  bool quit_ = false;
  std::atomic<int> finished_{0};
  std::thread thread_;
};

}  // namespace shardlm::http::testing
