// ShareScheduler: every unit handed out exactly once, each thread's own share in order from its front,
// and a thread that is done takes the rest of a slow thread's share from its back.
#include "kernels/share_scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "common/error.h"

namespace shardlm {
namespace {

TEST(ShareScheduler, OneThreadTakesEverythingInOrder) {
  ShareScheduler s(10, 1, 3);
  int64_t b, e;
  std::vector<std::pair<int64_t, int64_t>> got;
  while (s.next(0, b, e)) got.emplace_back(b, e);
  const std::vector<std::pair<int64_t, int64_t>> want = {{0, 3}, {3, 6}, {6, 9}, {9, 10}};
  EXPECT_EQ(got, want);
}

TEST(ShareScheduler, OwnShareInShrinkingChunks) {
  // A quarter of what is left of the share at a time, at least the chunk: few claims for a long share.
  ShareScheduler s(1000, 1, 50);
  int64_t b, e;
  std::vector<std::pair<int64_t, int64_t>> got;
  while (s.next(0, b, e)) got.emplace_back(b, e);
  const std::vector<std::pair<int64_t, int64_t>> want = {{0, 250},   {250, 437}, {437, 577}, {577, 682},
                                                          {682, 761}, {761, 820}, {820, 870}, {870, 920},
                                                          {920, 970}, {970, 1000}};
  EXPECT_EQ(got, want);
}

TEST(ShareScheduler, EmptyAndTinyRanges) {
  ShareScheduler empty(0, 4, 8);
  int64_t b, e;
  for (int t = 0; t < 4; ++t) EXPECT_FALSE(empty.next(t, b, e));
  // Fewer units than threads: some shares are empty, every unit still comes out once.
  ShareScheduler tiny(3, 8, 1);
  std::vector<int> seen(3, 0);
  for (int t = 0; t < 8; ++t) {
    while (tiny.next(t, b, e)) {
      for (int64_t u = b; u < e; ++u) ++seen[static_cast<size_t>(u)];
    }
  }
  EXPECT_EQ(seen, std::vector<int>(3, 1));
}

TEST(ShareScheduler, OwnShareFirstThenStealsFromTheBack) {
  // Thread 1 never asks: thread 0 takes its own share [0, 50) from the front, then thread 1's share
  // [50, 100) from the back, chunk by chunk.
  ShareScheduler s(100, 2, 20);
  int64_t b, e;
  std::vector<std::pair<int64_t, int64_t>> got;
  while (s.next(0, b, e)) got.emplace_back(b, e);
  const std::vector<std::pair<int64_t, int64_t>> want = {{0, 20}, {20, 40}, {40, 50}, {80, 100}, {60, 80}, {50, 60}};
  EXPECT_EQ(got, want);
  EXPECT_FALSE(s.next(1, b, e));
}

TEST(ShareScheduler, ThreadsRacingCoverEveryUnitOnce) {
  for (int threads : {2, 3, 7}) {
    const int64_t n = 100003;
    ShareScheduler s(n, threads, 5);
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    std::vector<int64_t> taken(static_cast<size_t>(threads), 0);
    std::atomic<bool> stolen{false};  // another thread took units of thread 0's share
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        int64_t b, e;
        while (s.next(t, b, e)) {
          ASSERT_LT(b, e);
          for (int64_t u = b; u < e; ++u) seen[static_cast<size_t>(u)].fetch_add(1);
          taken[static_cast<size_t>(t)] += e - b;
          if (t != 0 && b < n / threads) stolen = true;
          // Thread 0 is slow: it waits (in all at most 10 s, on a loaded machine too) until another
          // thread has taken from its share.
          if (t == 0) {
            do {
              std::this_thread::sleep_for(std::chrono::microseconds(50));
            } while (!stolen && std::chrono::steady_clock::now() < deadline);
          }
        }
      });
    }
    for (auto& th : pool) th.join();
    for (int64_t u = 0; u < n; ++u) ASSERT_EQ(seen[static_cast<size_t>(u)].load(), 1) << "unit " << u << ", " << threads << " threads";
    EXPECT_LT(taken[0], n / threads) << threads << " threads: the slow thread's share was not taken over";
  }
}

TEST(ShareScheduler, SharesAsGivenByTheirBounds) {
  // Three shares [0, 10), [10, 10) (empty), [10, 25): thread 0 takes its own from the front; thread 1,
  // with none, takes from the back of the share with the most left (thread 2's); every unit once.
  const std::vector<int64_t> bounds = {0, 10, 10, 25};
  ShareScheduler s(bounds, 4);
  int64_t b, e;
  ASSERT_TRUE(s.next(0, b, e));
  EXPECT_EQ(std::make_pair(b, e), std::make_pair(int64_t{0}, int64_t{4}));  // at least the chunk
  ASSERT_TRUE(s.next(1, b, e));
  EXPECT_EQ(std::make_pair(b, e), std::make_pair(int64_t{21}, int64_t{25}));
  ASSERT_TRUE(s.next(2, b, e));
  EXPECT_EQ(std::make_pair(b, e), std::make_pair(int64_t{10}, int64_t{14}));
  std::vector<int> seen(25, 0);
  for (int64_t u = 0; u < 4; ++u) ++seen[static_cast<size_t>(u)];
  for (int64_t u = 10; u < 14; ++u) ++seen[static_cast<size_t>(u)];
  for (int64_t u = 21; u < 25; ++u) ++seen[static_cast<size_t>(u)];
  for (int t : {2, 1, 0}) {
    while (s.next(t, b, e)) {
      for (int64_t u = b; u < e; ++u) ++seen[static_cast<size_t>(u)];
    }
  }
  EXPECT_EQ(seen, std::vector<int>(25, 1));
}

TEST(ShareScheduler, RefusesBoundsThatAreNotShares) {
  EXPECT_THROW(ShareScheduler(std::vector<int64_t>{0}, 1), Error);                      // no share
  EXPECT_THROW(ShareScheduler(std::vector<int64_t>{1, 5}, 1), Error);                   // not from 0
  EXPECT_THROW(ShareScheduler(std::vector<int64_t>{0, 5, 3}, 1), Error);                // decreasing
  EXPECT_THROW(ShareScheduler(std::vector<int64_t>{0, int64_t{1} << 31}, 1), Error);    // too many units
  ShareScheduler one(std::vector<int64_t>{0, 0}, 1);                                    // one empty share
  int64_t b, e;
  EXPECT_FALSE(one.next(0, b, e));
}

TEST(ShareScheduler, RefusesTooManyUnits) {
  EXPECT_THROW(ShareScheduler(int64_t{1} << 31, 2, 1), std::exception);
  EXPECT_THROW(ShareScheduler(-1, 2, 1), std::exception);
}

}  // namespace
}  // namespace shardlm
