// mpi_comm_test idle: rank 0 broadcasts only after S seconds; every other rank waits for it with
// ibroadcast + Communicator::wait and measures the CPU time its process used meanwhile
// (getrusage, all threads, MPI's included). Fails if any rank used more than --max-cpu of the
// wall time. For contrast it also reports (without judging) a wait in the blocking MPI_Bcast.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "comm/mpi_world.h"
#include "tests/mpi/mpi_test_util.h"

namespace shardlm::comm::mpitest {
namespace {

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

double thread_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

struct Usage {
  double wall = 0, cpu = 0, thread_cpu = 0;
};

// Rank 0 sleeps `seconds` then broadcasts; others wait, blocking or not.
Usage late_broadcast(Communicator& c, double seconds, bool blocking) {
  int value = 0;
  c.barrier();
  auto start = std::chrono::steady_clock::now();
  double cpu0 = process_cpu_seconds(), thread0 = thread_cpu_seconds();
  if (c.rank() == 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    value = 12345;
  }
  if (blocking) {
    c.broadcast(&value, sizeof value, 0);
  } else {
    Request r = c.ibroadcast(&value, sizeof value, 0);
    c.wait(r);
  }
  Usage u;
  u.cpu = process_cpu_seconds() - cpu0;
  u.thread_cpu = thread_cpu_seconds() - thread0;
  u.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (value != 12345) u.wall = -1;  // marks a wrong broadcast
  return u;
}

}  // namespace

int run_idle(int* argc, char*** argv, const Args& args) {
  auto world = make_mpi_world(argc, argv);
  Communicator& c = *world;
  if (c.size() < 2) {
    std::printf("idle: a world of one rank has nobody waiting\n");
    return 0;
  }
  // On a shared, loaded machine even a plain sleep loop is sometimes charged a few percent, so a
  // measurement over the limit is repeated (up to 3 attempts); a busy-polling wait never passes.
  int passed = 0;
  for (int attempt = 1; attempt <= 3 && !passed; ++attempt) {
    Usage idle = late_broadcast(c, args.idle_seconds, false);
    double mine[3] = {idle.wall, idle.cpu, idle.thread_cpu};
    std::vector<double> all(3 * c.size());
    c.all_gather(mine, sizeof mine, all.data());
    if (c.rank() == 0) {
      passed = 1;
      for (int r = 1; r < c.size(); ++r) {
        const double* u = &all[3 * r];
        double share = u[0] > 0 ? u[1] / u[0] : 1.0;
        bool ok = u[0] > 0 && share < args.max_idle_cpu;
        std::printf("idle (attempt %d): rank %d waited %.2f s in ibroadcast+wait using %.4f s CPU "
                    "(%.2f%%, limit %.1f%%; the waiting thread itself %.4f s)%s\n",
                    attempt, r, u[0], u[1], 100 * share, 100 * args.max_idle_cpu, u[2],
                    ok ? "" : " over the limit");
        if (!ok) passed = 0;
      }
      std::fflush(stdout);
    }
    c.broadcast(&passed, sizeof passed, 0);
  }
  // For contrast (not judged): the same wait inside the blocking MPI_Bcast.
  Usage busy = late_broadcast(c, std::min(args.idle_seconds, 1.0), true);
  double mine[2] = {busy.wall, busy.cpu};
  std::vector<double> all(2 * c.size());
  c.all_gather(mine, sizeof mine, all.data());
  if (c.rank() == 0) {
    for (int r = 1; r < c.size(); ++r) {
      std::printf("for contrast: rank %d waited %.2f s in blocking MPI_Bcast using %.3f s CPU (%.0f%%)\n", r,
                  all[2 * r], all[2 * r + 1], all[2 * r] > 0 ? 100 * all[2 * r + 1] / all[2 * r] : 0.0);
    }
    std::printf("idle: %s\n", passed ? "passed" : "FAILED");
  }
  return passed ? 0 : 1;
}

}  // namespace shardlm::comm::mpitest
