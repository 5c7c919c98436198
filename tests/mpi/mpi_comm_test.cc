// mpi_comm_test: exercises the MPI communicator under mpirun (or alone, as a world of one).
//   mpi_comm_test check [--expect-size N] [--expect-hosts H]  every operation, checked on every rank
//   mpi_comm_test idle [--seconds S] [--max-cpu F]  CPU use of ranks waiting for a late broadcast
//   mpi_comm_test bench [--iterations N]        all-reduce latency p50/p99 (4 KiB, 1 MiB)
//   mpi_comm_test throw                         rank 1 throws while the others wait in a barrier:
//                                               the job must end (MPI_Abort), not hang
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "tests/mpi/mpi_test_util.h"

int main(int argc, char** argv) {
  using namespace shardlm::comm::mpitest;
  Args args;
  if (argc > 1 && argv[1][0] != '-') args.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mpi_comm_test: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--expect-size")) args.expect_size = std::atoi(value("--expect-size"));
    else if (!std::strcmp(argv[i], "--expect-hosts")) args.expect_hosts = std::atoi(value("--expect-hosts"));
    else if (!std::strcmp(argv[i], "--seconds")) args.idle_seconds = std::atof(value("--seconds"));
    else if (!std::strcmp(argv[i], "--max-cpu")) args.max_idle_cpu = std::atof(value("--max-cpu"));
    else if (!std::strcmp(argv[i], "--iterations")) args.iterations = std::atoi(value("--iterations"));
  }
  try {
    if (args.mode == "check") return run_checks(&argc, &argv, args);
    if (args.mode == "idle") return run_idle(&argc, &argv, args);
    if (args.mode == "bench") return run_bench(&argc, &argv, args);
    if (args.mode == "throw") return run_throw(&argc, &argv, args);
    std::fprintf(stderr, "mpi_comm_test: unknown mode '%s' (check, idle, bench, throw)\n", args.mode.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_comm_test: error: %s\n", e.what());
    return 1;
  }
}
