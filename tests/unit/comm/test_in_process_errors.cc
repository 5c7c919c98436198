// Wrong use of the in-process communicator ends in shardlm::Error with a message, never a hang.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "comm/in_process.h"
#include "common/error.h"

namespace shardlm::comm {
namespace {

// Runs fn on every rank and expects it to throw Error containing `text` on each.
void expect_error_on_every_rank(int n, const std::string& text,
                                const std::function<void(Communicator&)>& fn) {
  run_in_process(n, [&](Communicator& c) {
    try {
      fn(c);
      ADD_FAILURE() << "rank " << c.rank() << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
          << "rank " << c.rank() << ": " << e.what();
    }
  });
}

TEST(InProcessErrors, BadRanksAndArguments) {
  auto world = make_in_process_world(3);
  Communicator& c = *world[1];
  int x = 0;
  EXPECT_THROW(c.broadcast(&x, sizeof x, 3), Error);
  EXPECT_THROW(c.broadcast(&x, sizeof x, -1), Error);
  EXPECT_THROW(c.ibroadcast(&x, sizeof x, 7), Error);
  EXPECT_THROW(c.gather(&x, sizeof x, &x, 5), Error);
  std::vector<uint8_t> v;
  EXPECT_THROW(c.gatherv(&x, sizeof x, v, 3), Error);
  EXPECT_THROW(c.send(&x, sizeof x, 3, 0), Error);
  EXPECT_THROW(c.send(&x, sizeof x, 0, -4), Error);
  EXPECT_THROW(c.isend(&x, sizeof x, -2, 0), Error);
  EXPECT_THROW(c.recv(&x, sizeof x, 9, 0), Error);
  EXPECT_THROW(c.irecv(&x, sizeof x, 0, -7), Error);
  EXPECT_THROW(c.send(nullptr, 4, 0, 0), Error);
  EXPECT_THROW(c.all_reduce_sum(static_cast<float*>(nullptr), 3), Error);
  EXPECT_THROW(c.split(-5, 0), Error);
  EXPECT_THROW(make_in_process_world(0), Error);
  try {
    c.broadcast(&x, sizeof x, 3);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "broadcast: root rank 3 is outside the communicator of 3 rank(s)");
  }
}

TEST(InProcessErrors, BroadcastSizeMismatchThrowsOnEveryRank) {
  expect_error_on_every_rank(3, "broadcast: ranks disagree on the size (rank 0: 8 byte(s), rank 2: 4",
                             [](Communicator& c) {
                               uint8_t buf[8] = {};
                               c.broadcast(buf, c.rank() == 2 ? 4 : 8, 0);
                             });
}

TEST(InProcessErrors, AllReduceCountMismatch) {
  expect_error_on_every_rank(2, "ranks disagree on the size (rank 0: 3 float(s), rank 1: 4 float(s))",
                             [](Communicator& c) {
                               float v[4] = {};
                               c.all_reduce_sum(v, c.rank() == 0 ? 3 : 4);
                             });
}

TEST(InProcessErrors, RootMismatch) {
  expect_error_on_every_rank(3, "ranks disagree on the root", [](Communicator& c) {
    int x = 0;
    c.broadcast(&x, sizeof x, c.rank() == 1 ? 1 : 0);
  });
}

TEST(InProcessErrors, DifferentCollectivesAndBlockingAgainstNonBlocking) {
  expect_error_on_every_rank(2, "rank 0 called barrier, rank 1 called all_gather", [](Communicator& c) {
    int x = 0, y[2];
    if (c.rank() == 0) c.barrier();
    else c.all_gather(&x, sizeof x, y);
  });
  expect_error_on_every_rank(2, "rank 0 called broadcast, rank 1 called ibroadcast", [](Communicator& c) {
    int x = 0;
    if (c.rank() == 0) {
      c.broadcast(&x, sizeof x, 0);
    } else {
      Request r = c.ibroadcast(&x, sizeof x, 0);
      c.wait(r);
    }
  });
}

TEST(InProcessErrors, ACommunicatorStaysUsableAfterAMismatch) {
  run_in_process(2, [](Communicator& c) {
    int x = 5;
    EXPECT_THROW(c.broadcast(&x, c.rank() == 0 ? 4 : 2, 0), Error);
    int y = c.rank() == 0 ? 9 : 0;
    c.broadcast(&y, sizeof y, 0);
    EXPECT_EQ(y, 9);
  });
}

TEST(InProcessErrors, ReceiveSizeMustMatchTheMessage) {
  run_in_process(2, [](Communicator& c) {
    if (c.rank() == 0) {
      uint64_t big = 1;
      uint32_t small = 2;
      c.send(&big, sizeof big, 1, 0);     // received as 4 bytes
      c.send(&small, sizeof small, 1, 1); // received as 8 bytes (already posted)
      c.send(&small, sizeof small, 1, 2); // received correctly
    } else {
      uint64_t buf8 = 0;
      Request posted = c.irecv(&buf8, 8, 0, 1);
      uint32_t buf4 = 0;
      try {
        c.recv(&buf4, 4, 0, 0);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "recv from rank 0 (tag 0): the message has 8 byte(s), the receive expects 4");
      }
      try {
        c.wait(posted);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "recv from rank 0 (tag 1): the message has 4 byte(s), the receive expects 8");
      }
      EXPECT_TRUE(posted.done());
      c.recv(&buf4, 4, 0, 2);
      EXPECT_EQ(buf4, 2u);
    }
  });
}

TEST(InProcessErrors, AbortUnblocksEveryRankAndRunRethrowsTheCause) {
  try {
    run_in_process(4, [](Communicator& c) {
      if (c.rank() == 2) throw Error("rank two failed on purpose");
      int x = 0;
      c.recv(&x, sizeof x, 2, 0);  // would wait forever without the abort
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rank two failed on purpose");
  }
}

TEST(InProcessErrors, AbortReachesSplitCommunicatorsAndLaterCalls) {
  auto world = make_in_process_world(2);
  std::atomic<bool> split_done{false};
  std::thread t([&] {
    auto sub = world[1]->split(0, 0);
    split_done = true;
    try {
      sub->barrier();  // rank 0 of sub never comes: it aborts instead
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("aborted by rank 0 of 2: giving up"), std::string::npos)
          << e.what();
    }
  });
  auto sub = world[0]->split(0, 0);
  while (!split_done) std::this_thread::yield();
  world[0]->abort("giving up");
  t.join();
  EXPECT_THROW(world[0]->barrier(), Error);
  int x = 0;
  EXPECT_THROW(world[0]->send(&x, sizeof x, 1, 0), Error);
}

}  // namespace
}  // namespace shardlm::comm
