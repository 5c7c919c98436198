// Helpers of the MPI test program mpi_comm_test: a failure counter that every rank reports into,
// and the modes the program runs (check, idle, bench).
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "comm/communicator.h"

namespace shardlm::comm::mpitest {

// Counts failed expectations on this rank and prints each one with the rank.
class Checker {
 public:
  explicit Checker(int rank) : rank_(rank) {}
  template <typename... Args>
  void expect(bool ok, fmt::format_string<Args...> format, Args&&... args) {
    ++checks_;
    if (ok) return;
    ++failures_;
    std::fprintf(stderr, "rank %d: FAIL: %s\n", rank_, fmt::format(format, std::forward<Args>(args)...).c_str());
  }
  // Expects fn to throw Error whose message contains `text`.
  template <typename Fn>
  void expect_error(const std::string& text, const char* what, Fn&& fn) {
    try {
      fn();
      expect(false, "{}: no error (expected one containing \"{}\")", what, text);
    } catch (const std::exception& e) {
      expect(std::string(e.what()).find(text) != std::string::npos, "{}: error \"{}\" lacks \"{}\"", what,
             e.what(), text);
    }
  }
  int checks() const { return checks_; }
  int failures() const { return failures_; }

 private:
  int rank_;
  int checks_ = 0;
  int failures_ = 0;
};

struct Args {
  std::string mode = "check";
  int expect_size = -1;
  int expect_hosts = -1;  // check: distinct host names among the ranks
  double idle_seconds = 3.0;
  double max_idle_cpu = 0.02;
  int iterations = 0;  // bench: 0 = defaults per size
};

// Each returns the process exit code (0 = passed); every rank returns the same.
int run_checks(int* argc, char*** argv, const Args& args);
int run_idle(int* argc, char*** argv, const Args& args);
int run_bench(int* argc, char*** argv, const Args& args);
int run_throw(int* argc, char*** argv, const Args& args);

}  // namespace shardlm::comm::mpitest
