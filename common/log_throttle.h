// A warning that can repeat many times a second (accept() failing while file descriptors run out)
// logged at most once per interval, with the count of the ones held back since the last.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>

namespace shardlm {

class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval = std::chrono::seconds(10)) : interval_(interval) {}

  void warn(const std::string& message) {
    const auto now = std::chrono::steady_clock::now();
    int64_t held = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (logged_once_ && now - last_ < interval_) {
        ++held_;
        return;
      }
      logged_once_ = true;
      last_ = now;
      held = held_;
      held_ = 0;
    }
    if (held > 0) {
      spdlog::warn("{} ({} more like it since the last)", message, held);
    } else {
      spdlog::warn("{}", message);
    }
  }

 private:
  std::chrono::steady_clock::duration interval_;
  std::mutex mutex_;
  bool logged_once_ = false;
  std::chrono::steady_clock::time_point last_;
  int64_t held_ = 0;
};

}  // namespace shardlm
