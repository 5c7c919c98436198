// Hands the units [0, n) of a parallel loop (the weight panels of a decode GEMV) to threads in chunks
// so that every thread reads one long sequential stream and none is waited for: each thread takes
// chunks from the front of its own share (an even one, or as the caller lays them out) and, when that
// is done, from the back of the share with the most left. On a machine whose cores get unequal memory
// bandwidth for a while, a static even split makes the fast core wait for the slow one; a single
// shared counter balances, but interleaves the threads' chunks, so each thread's stream jumps every
// chunk. A thread takes a quarter of what is left of its share at a time (at least `chunk`), so it
// claims a few dozen times per product: each claim is a locked compare-and-swap, which waits for the
// thread's loads in flight (claiming every 64 KiB cost ~4% of a q4 decode).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "common/error.h"

namespace shardlm {

class ShareScheduler {
 public:
  // n units (< 2^31) for `threads` threads, taken `chunk` (>= 1) at a time; thread t's own share is
  // [n t / threads, n (t + 1) / threads).
  ShareScheduler(int64_t n, int threads, int64_t chunk) : threads_(std::max(threads, 1)), chunk_(std::max<int64_t>(chunk, 1)) {
    if (n < 0 || n >= (int64_t{1} << 31)) fail("cannot schedule {} units (at most 2^31 - 1)", n);
    allocate();
    for (int t = 0; t < threads_; ++t) {
      shares_[t].range.store(pack(n * t / threads_, n * (t + 1) / threads_), std::memory_order_relaxed);
    }
  }

  // The shares given, one per thread: thread t's is [bounds[t], bounds[t + 1]) (at least two
  // non-decreasing bounds from 0, the last < 2^31), so that a share can follow where the work's
  // layout divides it.
  ShareScheduler(std::span<const int64_t> bounds, int64_t chunk)
      : threads_(static_cast<int>(std::max<size_t>(bounds.size(), 2) - 1)), chunk_(std::max<int64_t>(chunk, 1)) {
    if (bounds.size() < 2) fail("cannot schedule shares from {} bounds (at least 2)", bounds.size());
    if (bounds[0] != 0) fail("the first share begins at unit {}, not 0", bounds[0]);
    for (int t = 0; t < threads_; ++t) {
      if (bounds[t + 1] < bounds[t]) fail("share {} ends at unit {} before it begins ({})", t, bounds[t + 1], bounds[t]);
    }
    if (bounds.back() >= (int64_t{1} << 31)) fail("cannot schedule {} units (at most 2^31 - 1)", bounds.back());
    allocate();
    for (int t = 0; t < threads_; ++t) shares_[t].range.store(pack(bounds[t], bounds[t + 1]), std::memory_order_relaxed);
  }

  // The next range [begin, end) for thread t (0 <= t < threads); false when every unit is taken. Its
  // own share comes in chunks of a quarter of what is left of it (at least `chunk`), others' shares
  // in chunks of `chunk` from their back.
  bool next(int t, int64_t& begin, int64_t& end) {
    Share& own = shares_[t];
    uint64_t v = own.range.load(std::memory_order_relaxed);
    while (first(v) < last(v)) {
      const int64_t b = first(v), e = std::min(b + std::max(chunk_, (last(v) - b) / 4), last(v));
      if (own.range.compare_exchange_weak(v, pack(e, last(v)), std::memory_order_relaxed)) {
        begin = b;
        end = e;
        return true;
      }
    }
    for (;;) {
      int victim = -1;
      int64_t most = 0;
      for (int i = 0; i < threads_; ++i) {
        const uint64_t s = shares_[i].range.load(std::memory_order_relaxed);
        if (last(s) - first(s) > most) {
          most = last(s) - first(s);
          victim = i;
        }
      }
      if (victim < 0) return false;
      uint64_t s = shares_[victim].range.load(std::memory_order_relaxed);
      while (first(s) < last(s)) {
        const int64_t e = last(s), b = std::max(first(s), e - chunk_);
        if (shares_[victim].range.compare_exchange_weak(s, pack(first(s), b), std::memory_order_relaxed)) {
          begin = b;
          end = e;
          return true;
        }
      }
    }
  }

 private:
  // A share's range [first, last) in one word, so that its owner (at the front) and a thief (at the
  // back) claim with one compare-and-swap each. Each share has its own cache line.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  static uint64_t pack(int64_t first, int64_t last) { return static_cast<uint64_t>(first) << 32 | static_cast<uint64_t>(last); }
  static int64_t first(uint64_t v) { return static_cast<int64_t>(v >> 32); }
  static int64_t last(uint64_t v) { return static_cast<int64_t>(v & 0xFFFFFFFFu); }
  void allocate() {
    if (threads_ > kInlineShares) {
      heap_.reset(new Share[static_cast<size_t>(threads_)]);
      shares_ = heap_.get();
    }
  }

  // A decode calls this for every matrix: up to kInlineShares threads need no allocation.
  static constexpr int kInlineShares = 16;
  Share inline_[kInlineShares];
  std::unique_ptr<Share[]> heap_;
  Share* shares_ = inline_;
  int threads_;
  int64_t chunk_;
};

}  // namespace shardlm
