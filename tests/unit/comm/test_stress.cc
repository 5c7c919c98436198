// Many rounds of mixed operations on the in-process communicator, every result checked.
#include <gtest/gtest.h>

#include <random>

#include "comm/in_process.h"
#include "tests/unit/comm/comm_test_data.h"

namespace shardlm::comm {
namespace {

using testing::expected_sum;
using testing::rank_bytes;
using testing::rank_values;
using testing::same_bits;

TEST(InProcessStress, ThousandsOfMixedRounds) {
  for (int n : {2, 3, 5}) {
    run_in_process(n, [n](Communicator& c) {
      std::mt19937 plan(1234);  // the same sequence of operations on every rank
      auto sub = c.split(c.rank() % 2, c.rank());
      for (int round = 0; round < 1500; ++round) {
        size_t count = plan() % 64;
        int root = static_cast<int>(plan() % n);
        uint64_t salt = round;
        switch (plan() % 6) {
          case 0: {
            auto v = rank_values<float>(c.rank(), count, salt);
            c.all_reduce_sum(v.data(), count);
            ASSERT_TRUE(same_bits(v, expected_sum<float>(n, count, salt))) << "round " << round;
            break;
          }
          case 1: {
            auto v = rank_values<double>(c.rank(), count, salt);
            Request r = c.iall_reduce_sum(v.data(), count);
            std::vector<uint8_t> b = c.rank() == root ? rank_bytes(root, count, salt) : std::vector<uint8_t>(count);
            Request rb = c.ibroadcast(b.data(), count, root);
            c.wait(rb);
            c.wait(r);
            ASSERT_TRUE(same_bits(v, expected_sum<double>(n, count, salt))) << "round " << round;
            ASSERT_EQ(b, rank_bytes(root, count, salt)) << "round " << round;
            break;
          }
          case 2: {
            auto mine = rank_bytes(c.rank(), count, salt);
            std::vector<uint8_t> all;  // gatherv with equal sizes here; unequal in test_in_process
            auto sizes = c.gatherv(mine.data(), count, all, root);
            if (c.rank() == root) {
              ASSERT_EQ(sizes, std::vector<size_t>(n, count)) << "round " << round;
              std::vector<uint8_t> want;
              for (int r = 0; r < n; ++r) {
                auto part = rank_bytes(r, count, salt);
                want.insert(want.end(), part.begin(), part.end());
              }
              ASSERT_EQ(all, want) << "round " << round;
            }
            break;
          }
          case 3: {
            int next = (c.rank() + 1) % n, prev = (c.rank() + n - 1) % n;
            auto mine = rank_bytes(c.rank(), count, salt);
            std::vector<uint8_t> got(count);
            Request rr = c.irecv(got.data(), count, prev, round);
            Request rs = c.isend(mine.data(), count, next, round);
            c.wait(rr);
            c.wait(rs);
            ASSERT_EQ(got, rank_bytes(prev, count, salt)) << "round " << round;
            break;
          }
          case 4: {
            // Sub-communicator traffic interleaved with the parent's.
            auto v = rank_values<float>(c.rank(), count, salt);
            sub->all_reduce_sum(v.data(), count);
            float first = count ? v[0] : 0.0f;
            std::vector<float> firsts(sub->size());
            sub->all_gather(&first, sizeof first, firsts.data());
            for (float f : firsts) ASSERT_EQ(f, first) << "round " << round;
            break;
          }
          default: {
            Request r = c.ibarrier();
            c.wait(r);
            c.barrier();
          }
        }
      }
    });
  }
}

}  // namespace
}  // namespace shardlm::comm
