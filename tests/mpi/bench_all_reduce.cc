// mpi_comm_test bench: latency of all-reduce (sum of floats) at 4 KiB and 1 MiB: the
// deterministic all_reduce_sum (default, gather-only and chunked strategies), iall_reduce_sum +
// wait, and plain MPI_Allreduce for comparison, taking turns. Each sample starts after a barrier;
// its time is the slowest rank's. Prints p50 and p99 in microseconds on rank 0.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "comm/mpi_world.h"
#include "tests/mpi/mpi_test_util.h"

namespace shardlm::comm::mpitest {
namespace {

struct Stats {
  double p50 = 0, p99 = 0;
};

// Times every op `iterations` times, the ops taking turns so that changes in machine load hit
// them alike. Each sample starts after a barrier and is the slowest rank's time.
std::vector<Stats> measure(Communicator& c, int iterations, const std::vector<std::function<void()>>& ops) {
  const size_t m = ops.size();
  for (int i = 0; i < std::max(3, iterations / 10); ++i) {
    for (auto& op : ops) op();  // warm-up
  }
  std::vector<double> times(m * iterations);
  for (int i = 0; i < iterations; ++i) {
    for (size_t k = 0; k < m; ++k) {
      c.barrier();
      auto t0 = std::chrono::steady_clock::now();
      ops[k]();
      times[k * iterations + i] =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, times.data(), static_cast<int>(times.size()), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  std::vector<Stats> stats(m);
  for (size_t k = 0; k < m; ++k) {
    auto begin = times.begin() + k * iterations, end = begin + iterations;
    std::sort(begin, end);
    stats[k] = {begin[iterations / 2], begin[std::min(iterations - 1, iterations * 99 / 100)]};
  }
  return stats;
}

}  // namespace

int run_bench(int* argc, char*** argv, const Args& args) {
  auto world = make_mpi_world(argc, argv);
  MpiOptions gather_only, chunked_only;
  gather_only.gather_reduce_max_bytes = SIZE_MAX;
  chunked_only.gather_reduce_max_bytes = 0;
  auto gather_world = make_mpi_world(argc, argv, gather_only);
  auto chunked_world = make_mpi_world(argc, argv, chunked_only);
  Communicator& c = *world;
  if (c.rank() == 0) {
    std::printf("all-reduce latency, %d rank(s), microseconds (p50 / p99 of the slowest rank)\n", c.size());
    std::printf("%-34s %18s %18s\n", "method", "4 KiB", "1 MiB");
  }
  const size_t sizes[2] = {1024, 262144};
  std::vector<float> data(sizes[1]);
  struct Method {
    std::string name;
    std::function<void(size_t)> run;
  };
  std::vector<Method> methods = {
      {"all_reduce_sum (default)", [&](size_t n) { c.all_reduce_sum(data.data(), n); }},
      {"all_reduce_sum (gather strategy)", [&](size_t n) { gather_world->all_reduce_sum(data.data(), n); }},
      {"all_reduce_sum (chunked strategy)", [&](size_t n) { chunked_world->all_reduce_sum(data.data(), n); }},
      {"iall_reduce_sum + wait(spinning)", [&](size_t n) {
         Request r = c.iall_reduce_sum(data.data(), n);
         c.wait(r, WaitPolicy::spinning());
       }},
      {"iall_reduce_sum + wait(default)", [&](size_t n) {
         Request r = c.iall_reduce_sum(data.data(), n);
         c.wait(r);
       }},
      {"MPI_Allreduce (not deterministic)", [&](size_t n) {
         MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
       }},
  };
  std::vector<Stats> results[2];
  for (int k = 0; k < 2; ++k) {
    int iterations = args.iterations > 0 ? args.iterations : (k == 0 ? 2000 : 200);
    std::fill(data.begin(), data.end(), 1e-3f * (c.rank() + 1));  // sums stay finite
    std::vector<std::function<void()>> ops;
    for (auto& m : methods) ops.push_back([&m, n = sizes[k]] { m.run(n); });
    results[k] = measure(c, iterations, ops);
  }
  if (c.rank() == 0) {
    for (size_t i = 0; i < methods.size(); ++i) {
      std::printf("%-34s %8.1f / %7.1f %8.1f / %7.1f\n", methods[i].name.c_str(), results[0][i].p50,
                  results[0][i].p99, results[1][i].p50, results[1][i].p99);
    }
  }
  return 0;
}

}  // namespace shardlm::comm::mpitest
