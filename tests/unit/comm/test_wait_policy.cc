// The generic spin-then-sleep wait of Communicator (the one the MPI communicator uses): it
// completes, times out with a message naming the operation, and sleeps while idle.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <chrono>
#include <string>
#include <thread>

#include "comm/communicator.h"
#include "comm/in_process.h"
#include "common/error.h"

namespace shardlm::comm {
namespace {

using Clock = std::chrono::steady_clock;

// Completes at a given time; counts how often it was tested.
class TimedState : public RequestState {
 public:
  TimedState(Clock::time_point ready, int* tests) : ready_(ready), tests_(tests) {}
  bool test() override {
    ++*tests_;
    return Clock::now() >= ready_;
  }
  std::string describe() const override { return "broadcast from rank 3"; }

 private:
  Clock::time_point ready_;
  int* tests_;
};

class FailingState : public RequestState {
 public:
  bool test() override { throw Error("the operation failed"); }
  std::string describe() const override { return "failing"; }
};

// The base-class wait, reached through a communicator that does not override it.
class BaseWaitCommunicator : public Communicator {
 public:
  int rank() const override { return 1; }
  int size() const override { return 4; }
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void all_gather(const void*, size_t, void*) override {}
  void broadcast(void*, size_t, int) override {}
  void gather(const void*, size_t, void*, int) override {}
  std::vector<size_t> gatherv(const void*, size_t, std::vector<uint8_t>&, int) override { return {}; }
  void barrier() override {}
  void send(const void*, size_t, int, int) override {}
  void recv(void*, size_t, int, int) override {}
  Request ibroadcast(void*, size_t, int) override { return {}; }
  Request iall_reduce_sum(float*, size_t) override { return {}; }
  Request iall_reduce_sum(double*, size_t) override { return {}; }
  Request isend(const void*, size_t, int, int) override { return {}; }
  Request irecv(void*, size_t, int, int) override { return {}; }
  Request ibarrier() override { return {}; }
  std::unique_ptr<Communicator> split(int, int) override { return nullptr; }
  void abort(const std::string&, int) override {}
};

double thread_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

TEST(WaitPolicy, CompletesAndReleasesTheRequest) {
  BaseWaitCommunicator c;
  int tests = 0;
  Request r(std::make_unique<TimedState>(Clock::now() + std::chrono::milliseconds(20), &tests));
  EXPECT_FALSE(r.done());
  c.wait(r);
  EXPECT_TRUE(r.done());
  EXPECT_TRUE(c.test(r));
  EXPECT_GT(tests, 1);
}

TEST(WaitPolicy, IdleWaitSleepsInsteadOfSpinning) {
  BaseWaitCommunicator c;
  int tests = 0;
  auto start = Clock::now();
  double cpu0 = thread_cpu_seconds();
  Request r(std::make_unique<TimedState>(start + std::chrono::milliseconds(600), &tests));
  c.wait(r);
  double cpu = thread_cpu_seconds() - cpu0;
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(wall, 0.6);
  // A busy loop would be ~100%; the 2% target is checked by the MPI idle test (tests/mpi). On a
  // loaded machine even a plain sleep loop is sometimes charged a few percent, hence 10% here.
  EXPECT_LT(cpu / wall, 0.10) << "cpu " << cpu << " s over " << wall << " s";
}

TEST(WaitPolicy, AfterTheSpinItPollsAboutEveryMillisecond) {
  BaseWaitCommunicator c;
  int tests = 0;
  WaitPolicy policy;
  policy.spin = std::chrono::nanoseconds(0);
  Request r(std::make_unique<TimedState>(Clock::now() + std::chrono::milliseconds(500), &tests));
  c.wait(r, policy);
  EXPECT_LT(tests, 1500);  // sleeps grow to 1 ms: at most ~500 polls plus the ramp
  EXPECT_GT(tests, 50);    // but it does not oversleep either
}

TEST(WaitPolicy, TimeoutNamesTheOperationAndLeavesItPending) {
  BaseWaitCommunicator c;
  int tests = 0;
  Request r(std::make_unique<TimedState>(Clock::now() + std::chrono::hours(1), &tests));
  try {
    c.wait(r, WaitPolicy::with_timeout(std::chrono::milliseconds(30)));
    FAIL() << "no timeout";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind("timed out after 0.03", 0), 0u) << what;
    EXPECT_NE(what.find("waiting for broadcast from rank 3 (rank 1 of 4)"), std::string::npos) << what;
  }
  EXPECT_FALSE(r.done());
}

TEST(WaitPolicy, SpinningNeverSleepsButStillTimesOut) {
  BaseWaitCommunicator c;
  int tests = 0;
  Request r(std::make_unique<TimedState>(Clock::now() + std::chrono::hours(1), &tests));
  auto policy = WaitPolicy::spinning();
  policy.timeout = std::chrono::milliseconds(50);
  auto start = Clock::now();
  EXPECT_THROW(c.wait(r, policy), Error);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_GT(tests, 2000);  // polled continuously (a sleeping wait polls ~50 times in 50 ms)
}

TEST(WaitPolicy, FailuresPropagateAndReleaseTheRequest) {
  BaseWaitCommunicator c;
  Request r(std::make_unique<FailingState>());
  EXPECT_THROW(c.wait(r), Error);
  EXPECT_TRUE(r.done());
  Request empty;
  EXPECT_TRUE(c.test(empty));
  c.wait(empty);
}

TEST(WaitPolicy, InProcessWaiterUsesNoCpuWhileIdle) {
  run_in_process(2, [](Communicator& c) {
    int value = 0;
    if (c.rank() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      value = 7;
      Request r = c.ibroadcast(&value, sizeof value, 0);
      c.wait(r);
      return;
    }
    double cpu0 = thread_cpu_seconds();
    auto start = Clock::now();
    Request r = c.ibroadcast(&value, sizeof value, 0);
    c.wait(r);
    double wall = std::chrono::duration<double>(Clock::now() - start).count();
    double cpu = thread_cpu_seconds() - cpu0;
    EXPECT_EQ(value, 7);
    EXPECT_GE(wall, 0.4);
    EXPECT_LT(cpu / wall, 0.10) << "cpu " << cpu << " s over " << wall << " s";  // blocks on a condvar
  });
}

}  // namespace
}  // namespace shardlm::comm
