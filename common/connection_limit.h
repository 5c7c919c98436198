// A server's open connections counted against a limit: try_acquire() hands out a Slot while fewer
// than `max` are held (max 0: no limit), and a Slot gives its place back when released or
// destroyed. Slots may outlive the ConnectionLimit. Thread-safe. Header-only.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <utility>

namespace shardlm {

class ConnectionLimit {
  struct Count {
    std::atomic<size_t> open{0};
  };

 public:
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : count_(std::move(o.count_)) {}
    Slot& operator=(Slot&& o) noexcept {
      if (this != &o) {
        release();
        count_ = std::move(o.count_);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }

    explicit operator bool() const { return count_ != nullptr; }
    void release() {
      if (count_) count_->open.fetch_sub(1);
      count_.reset();
    }

   private:
    friend class ConnectionLimit;
    explicit Slot(std::shared_ptr<Count> count) : count_(std::move(count)) {}
    std::shared_ptr<Count> count_;
  };

  ConnectionLimit() : ConnectionLimit(0) {}
  explicit ConnectionLimit(size_t max) : max_(max), count_(std::make_shared<Count>()) {}

  // An empty Slot when `max` slots are held already.
  Slot try_acquire() {
    size_t n = count_->open.load();
    do {
      if (max_ != 0 && n >= max_) return Slot();
    } while (!count_->open.compare_exchange_weak(n, n + 1));
    return Slot(count_);
  }

  size_t max() const { return max_; }
  size_t open() const { return count_->open.load(); }

 private:
  size_t max_;
  std::shared_ptr<Count> count_;
};

}  // namespace shardlm
