// Every operation of the in-process communicator for 1..5 ranks and sizes 0, 1, 17, 100000.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <string>
#include <tuple>

#include "comm/in_process.h"
#include "common/error.h"
#include "tests/unit/comm/comm_test_data.h"

namespace shardlm::comm {
namespace {

using testing::expected_sum;
using testing::rank_bytes;
using testing::rank_values;
using testing::same_bits;

class EveryOp : public ::testing::TestWithParam<std::tuple<int, size_t>> {
 protected:
  int ranks() const { return std::get<0>(GetParam()); }
  size_t count() const { return std::get<1>(GetParam()); }
};

TEST_P(EveryOp, AllReduceFloatIsTheRankOrderSumOnEveryRank) {
  const size_t n = count();
  const auto want = expected_sum<float>(ranks(), n);
  run_in_process(ranks(), [&](Communicator& c) {
    auto v = rank_values<float>(c.rank(), n);
    c.all_reduce_sum(v.data(), v.size());
    EXPECT_TRUE(same_bits(v, want)) << "rank " << c.rank();
  });
}

TEST_P(EveryOp, AllReduceDouble) {
  const size_t n = count();
  const auto want = expected_sum<double>(ranks(), n, 3);
  run_in_process(ranks(), [&](Communicator& c) {
    auto v = rank_values<double>(c.rank(), n, 3);
    c.all_reduce_sum(v.data(), v.size());
    EXPECT_TRUE(same_bits(v, want)) << "rank " << c.rank();
  });
}

TEST_P(EveryOp, NonBlockingAllReduce) {
  const size_t n = count();
  const auto want_f = expected_sum<float>(ranks(), n, 5);
  const auto want_d = expected_sum<double>(ranks(), n, 6);
  run_in_process(ranks(), [&](Communicator& c) {
    auto f = rank_values<float>(c.rank(), n, 5);
    auto d = rank_values<double>(c.rank(), n, 6);
    Request rf = c.iall_reduce_sum(f.data(), f.size());
    Request rd = c.iall_reduce_sum(d.data(), d.size());
    c.wait(rd);  // completion order need not follow the call order
    c.wait(rf);
    EXPECT_TRUE(rf.done());
    EXPECT_TRUE(same_bits(f, want_f)) << "rank " << c.rank();
    EXPECT_TRUE(same_bits(d, want_d)) << "rank " << c.rank();
  });
}

TEST_P(EveryOp, AllGather) {
  const size_t n = count();
  run_in_process(ranks(), [&](Communicator& c) {
    auto mine = rank_bytes(c.rank(), n);
    std::vector<uint8_t> all(n * c.size(), 0xee);
    c.all_gather(mine.data(), n, all.data());
    for (int r = 0; r < c.size(); ++r) {
      auto want = rank_bytes(r, n);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), all.begin() + r * n)) << "part of rank " << r;
    }
  });
}

TEST_P(EveryOp, BroadcastFromEveryRoot) {
  const size_t n = count();
  run_in_process(ranks(), [&](Communicator& c) {
    for (int root = 0; root < c.size(); ++root) {
      auto buf = c.rank() == root ? rank_bytes(root, n, 11) : std::vector<uint8_t>(n, 0);
      c.broadcast(buf.data(), n, root);
      EXPECT_EQ(buf, rank_bytes(root, n, 11)) << "root " << root << " at rank " << c.rank();
      auto buf2 = c.rank() == root ? rank_bytes(root, n, 12) : std::vector<uint8_t>(n, 0);
      Request r = c.ibroadcast(buf2.data(), n, root);
      c.wait(r);
      EXPECT_EQ(buf2, rank_bytes(root, n, 12)) << "ibroadcast root " << root;
    }
  });
}

TEST_P(EveryOp, GatherAtEveryRoot) {
  const size_t n = count();
  run_in_process(ranks(), [&](Communicator& c) {
    for (int root = 0; root < c.size(); ++root) {
      auto mine = rank_bytes(c.rank(), n, root);
      std::vector<uint8_t> all(c.rank() == root ? n * c.size() : 0, 0xee);
      c.gather(mine.data(), n, c.rank() == root ? all.data() : nullptr, root);
      if (c.rank() != root) continue;
      for (int r = 0; r < c.size(); ++r) {
        auto want = rank_bytes(r, n, root);
        EXPECT_TRUE(std::equal(want.begin(), want.end(), all.begin() + r * n)) << "rank " << r;
      }
    }
  });
}

TEST_P(EveryOp, GathervWithDifferentSizes) {
  const size_t n = count();
  auto size_of = [&](int r) { return r % 2 == 1 ? n / 2 : n; };  // rank 1, 3 send half
  run_in_process(ranks(), [&](Communicator& c) {
    for (int root = 0; root < c.size(); ++root) {
      auto mine = rank_bytes(c.rank(), size_of(c.rank()), 40 + root);
      std::vector<uint8_t> all = {1, 2, 3};
      auto sizes = c.gatherv(mine.data(), mine.size(), all, root);
      if (c.rank() != root) {
        EXPECT_TRUE(sizes.empty());
        EXPECT_EQ(all.size(), 3u);
        continue;
      }
      ASSERT_EQ(sizes.size(), static_cast<size_t>(c.size()));
      std::vector<uint8_t> want;
      for (int r = 0; r < c.size(); ++r) {
        EXPECT_EQ(sizes[r], size_of(r));
        auto part = rank_bytes(r, size_of(r), 40 + root);
        want.insert(want.end(), part.begin(), part.end());
      }
      EXPECT_EQ(all, want);
    }
  });
}

TEST_P(EveryOp, SendRecvRing) {
  const size_t n = count();
  run_in_process(ranks(), [&](Communicator& c) {
    int next = (c.rank() + 1) % c.size(), prev = (c.rank() + c.size() - 1) % c.size();
    auto mine = rank_bytes(c.rank(), n, 77);
    std::vector<uint8_t> got(n, 0);
    Request rr = c.irecv(got.data(), n, prev, 5);
    Request rs = c.isend(mine.data(), n, next, 5);
    c.wait(rs);
    c.wait(rr);
    EXPECT_EQ(got, rank_bytes(prev, n, 77));
    // Blocking pair, the other way round (sends are buffered in-process; under MPI the ring
    // above is the safe pattern).
    c.send(mine.data(), n, prev, 6);
    std::vector<uint8_t> got2(n, 0);
    c.recv(got2.data(), n, next, 6);
    EXPECT_EQ(got2, rank_bytes(next, n, 77));
  });
}

TEST_P(EveryOp, Barriers) {
  std::atomic<int> arrived{0};
  run_in_process(ranks(), [&](Communicator& c) {
    arrived.fetch_add(1);
    c.barrier();
    EXPECT_EQ(arrived.load(), c.size());  // nobody leaves before all arrived
    c.barrier();
    arrived.fetch_add(1);
    Request r = c.ibarrier();
    c.wait(r);
    EXPECT_EQ(arrived.load(), 2 * c.size());
  });
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<int, size_t>>& info) {
  return "ranks" + std::to_string(std::get<0>(info.param)) + "_size" + std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(RanksAndSizes, EveryOp,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 5),
                                            ::testing::Values(size_t{0}, size_t{1}, size_t{17}, size_t{100000})),
                         param_name);

TEST(InProcessAllReduce, SumsInRankOrderNotAnyOther) {
  // (1e8 + 1) - 1e8 == 0 in float while 1e8 - 1e8 + 1 == 1: the order is observable.
  run_in_process(3, [](Communicator& c) {
    const float inputs[3] = {1e8f, 1.0f, -1e8f};
    float v = inputs[c.rank()];
    c.all_reduce_sum(&v, 1);
    EXPECT_EQ(v, 0.0f);
  });
  run_in_process(3, [](Communicator& c) {
    const float inputs[3] = {1e8f, -1e8f, 1.0f};
    float v = inputs[c.rank()];
    c.all_reduce_sum(&v, 1);
    EXPECT_EQ(v, 1.0f);
  });
}

TEST(InProcessAllReduce, RepeatedRunsGiveTheSameBits) {
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    std::vector<std::vector<float>> results(4);
    run_in_process(4, [&](Communicator& c) {
      auto v = rank_values<float>(c.rank(), 1000, 9);
      c.all_reduce_sum(v.data(), v.size());
      results[c.rank()] = v;
    });
    for (auto& r : results) EXPECT_TRUE(same_bits(r, results[0]));
    if (run == 0) first = results[0];
    EXPECT_TRUE(same_bits(results[0], first));
  }
}

TEST(InProcessPointToPoint, MessagesOfOneTagArriveInSendOrder) {
  run_in_process(2, [](Communicator& c) {
    if (c.rank() == 0) {
      for (int i = 0; i < 50; ++i) c.send(&i, sizeof i, 1, 3);
    } else {
      for (int i = 0; i < 50; ++i) {
        int got = -1;
        c.recv(&got, sizeof got, 0, 3);
        EXPECT_EQ(got, i);
      }
    }
  });
}

TEST(InProcessPointToPoint, PostedReceivesMatchInPostOrderAndByTag) {
  run_in_process(3, [](Communicator& c) {
    if (c.rank() == 0) {
      int a = -1, b = -1, t7 = -1, any = -1;
      Request ra = c.irecv(&a, sizeof a, kAnySource, 1);
      Request rb = c.irecv(&b, sizeof b, kAnySource, 1);
      Request r7 = c.irecv(&t7, sizeof t7, 2, 7);
      c.barrier();  // receives are posted before anything is sent
      c.wait(rb);
      c.wait(ra);
      c.wait(r7);
      EXPECT_EQ(t7, 700);
      EXPECT_TRUE((a == 100 && b == 101) || (a == 200 && b == 201) || (a == 100 && b == 200) ||
                  (a == 200 && b == 100))
          << a << " " << b;
      int rest[2];
      c.recv(&rest[0], sizeof(int), kAnySource, 1);
      c.recv(&rest[1], sizeof(int), kAnySource, 1);
      std::vector<int> all = {a, b, rest[0], rest[1]};
      std::sort(all.begin(), all.end());
      EXPECT_EQ(all, (std::vector<int>{100, 101, 200, 201}));
      c.recv(&any, sizeof any, 1, kAnyTag);
      EXPECT_EQ(any, 102);
    } else {
      c.barrier();
      int base = c.rank() * 100;
      if (c.rank() == 2) {
        int v = 700;
        c.send(&v, sizeof v, 0, 7);
      }
      for (int i = 0; i < 2; ++i) {
        int v = base + i;
        c.send(&v, sizeof v, 0, 1);
      }
      if (c.rank() == 1) {
        int v = 102;
        c.send(&v, sizeof v, 0, 9);
      }
    }
  });
}

TEST(InProcessNonBlocking, SeveralOutstandingCollectivesCompleteInAnyOrder) {
  run_in_process(4, [](Communicator& c) {
    std::vector<uint8_t> b1 = c.rank() == 1 ? rank_bytes(1, 33) : std::vector<uint8_t>(33);
    std::vector<uint8_t> b3 = c.rank() == 3 ? rank_bytes(3, 5) : std::vector<uint8_t>(5);
    auto sum = rank_values<float>(c.rank(), 17, 2);
    Request r1 = c.ibroadcast(b1.data(), b1.size(), 1);
    Request r2 = c.iall_reduce_sum(sum.data(), sum.size());
    Request r3 = c.ibroadcast(b3.data(), b3.size(), 3);
    Request r4 = c.ibarrier();
    while (!c.test(r3)) {
    }
    c.wait(r4);
    c.wait(r2);
    c.wait(r1);
    EXPECT_EQ(b1, rank_bytes(1, 33));
    EXPECT_EQ(b3, rank_bytes(3, 5));
    EXPECT_TRUE(same_bits(sum, expected_sum<float>(4, 17, 2)));
    EXPECT_TRUE(c.test(r1));  // completed requests stay complete
  });
}

TEST(InProcessNonBlocking, WaitTimesOutNamingTheOperationAndCanBeResumed) {
  run_in_process(2, [](Communicator& c) {
    int value = c.rank() == 0 ? 42 : 0;
    if (c.rank() == 0) {
      int go = 0;
      c.recv(&go, sizeof go, 1, 1);  // rank 1 has timed out once
      Request r = c.ibroadcast(&value, sizeof value, 0);
      c.wait(r);
      return;
    }
    Request r = c.ibroadcast(&value, sizeof value, 0);
    try {
      c.wait(r, WaitPolicy::with_timeout(std::chrono::milliseconds(50)));
      ADD_FAILURE() << "wait did not time out";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("timed out after"), std::string::npos) << what;
      EXPECT_NE(what.find("ibroadcast with root rank 0"), std::string::npos) << what;
      EXPECT_NE(what.find("rank(s) 0 have not called it yet"), std::string::npos) << what;
    }
    EXPECT_FALSE(r.done());
    int go = 1;
    c.send(&go, sizeof go, 0, 1);
    c.wait(r, WaitPolicy::with_timeout(std::chrono::seconds(30)));
    EXPECT_EQ(value, 42);
  });
}

TEST(InProcessSplit, GroupsByColorOrderedByKey) {
  run_in_process(5, [](Communicator& c) {
    // Even and odd ranks, ordered by descending world rank.
    auto sub = c.split(c.rank() % 2, -c.rank());
    ASSERT_NE(sub, nullptr);
    int expected_size = c.rank() % 2 == 0 ? 3 : 2;
    EXPECT_EQ(sub->size(), expected_size);
    std::vector<int> members(sub->size());
    int me = c.rank();
    sub->all_gather(&me, sizeof me, members.data());
    std::vector<int> want = c.rank() % 2 == 0 ? std::vector<int>{4, 2, 0} : std::vector<int>{3, 1};
    EXPECT_EQ(members, want);
    EXPECT_EQ(members[sub->rank()], c.rank());
    // The workers-only communicator: rank 0 joins none.
    auto workers = c.split(c.rank() == 0 ? kNoColor : 0, c.rank());
    if (c.rank() == 0) {
      EXPECT_EQ(workers, nullptr);
    } else {
      ASSERT_NE(workers, nullptr);
      EXPECT_EQ(workers->size(), 4);
      EXPECT_EQ(workers->rank(), c.rank() - 1);
      double v = c.rank();
      Request r = workers->iall_reduce_sum(&v, 1);
      c.barrier();  // a parent collective while the sub-communicator's is outstanding
      workers->wait(r);
      EXPECT_EQ(v, 1.0 + 2 + 3 + 4);
    }
    if (c.rank() == 0) c.barrier();
    c.barrier();
  });
}

}  // namespace
}  // namespace shardlm::comm
