// mpi_comm_test check: every Communicator operation under MPI, each result compared with what the
// specification says every rank must hold (all-reduce bit for bit, in rank order).
#include <mpi.h>

#include <unistd.h>

#include <climits>
#include <set>
#include <string>
#include <cstring>
#include <thread>
#include <vector>

#include "comm/mpi_world.h"
#include "common/error.h"
#include "tests/mpi/mpi_test_util.h"
#include "tests/unit/comm/comm_test_data.h"

namespace shardlm::comm::mpitest {
namespace {

using testing::expected_sum;
using testing::mix;
using testing::rank_bytes;
using testing::rank_values;
using testing::same_bits;

const size_t kSizes[] = {0, 1, 17, 5000, 100000};

template <typename T>
uint64_t hash_of(const std::vector<T>& v) {
  uint64_t h = v.size();
  std::vector<uint8_t> bytes(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
  for (uint8_t b : bytes) h = mix(h * 1099511628211ULL + b);
  return h;
}

// Every rank must hold the same hash.
void expect_same_everywhere(Communicator& c, Checker& check, uint64_t h, const char* what) {
  std::vector<uint64_t> all(c.size());
  c.all_gather(&h, sizeof h, all.data());
  for (int r = 0; r < c.size(); ++r) check.expect(all[r] == h, "{}: rank {} holds other bits", what, r);
}

template <typename T>
void check_all_reduce(Communicator& c, Checker& check, const char* label) {
  for (size_t n : kSizes) {
    auto v = rank_values<T>(c.rank(), n, 100 + n);
    c.all_reduce_sum(v.data(), n);
    check.expect(same_bits(v, expected_sum<T>(c.size(), n, 100 + n)), "{} all_reduce_sum({}) differs from the "
                 "rank-order sum", label, n);
    expect_same_everywhere(c, check, hash_of(v), label);
    auto w = rank_values<T>(c.rank(), n, 200 + n);
    Request r = c.iall_reduce_sum(w.data(), n);
    c.wait(r);
    check.expect(same_bits(w, expected_sum<T>(c.size(), n, 200 + n)), "{} iall_reduce_sum({}) differs", label, n);
  }
}

void check_data_movement(Communicator& c, Checker& check) {
  const int me = c.rank(), n = c.size();
  for (size_t bytes : kSizes) {
    auto mine = rank_bytes(me, bytes, 1);
    std::vector<uint8_t> all(bytes * n, 0xee);
    c.all_gather(mine.data(), bytes, all.data());
    for (int r = 0; r < n; ++r) {
      auto want = rank_bytes(r, bytes, 1);
      check.expect(std::equal(want.begin(), want.end(), all.begin() + r * bytes), "all_gather({}) part of rank {}",
                   bytes, r);
    }
    for (int root = 0; root < n; ++root) {
      auto b = me == root ? rank_bytes(root, bytes, 2) : std::vector<uint8_t>(bytes);
      c.broadcast(b.data(), bytes, root);
      check.expect(b == rank_bytes(root, bytes, 2), "broadcast({}) from root {}", bytes, root);
      auto ib = me == root ? rank_bytes(root, bytes, 3) : std::vector<uint8_t>(bytes);
      Request req = c.ibroadcast(ib.data(), bytes, root);
      c.wait(req);
      check.expect(ib == rank_bytes(root, bytes, 3), "ibroadcast({}) from root {}", bytes, root);

      std::vector<uint8_t> gathered(me == root ? bytes * n : 0, 0xee);
      c.gather(mine.data(), bytes, me == root ? gathered.data() : nullptr, root);
      if (me == root) {
        for (int r = 0; r < n; ++r) {
          auto want = rank_bytes(r, bytes, 1);
          check.expect(std::equal(want.begin(), want.end(), gathered.begin() + r * bytes),
                       "gather({}) at root {}: part of rank {}", bytes, root, r);
        }
      }
      // gatherv: odd ranks send a third, rank 0 sends nothing when bytes is small.
      auto size_of = [&](int r) { return r % 2 ? bytes / 3 : (r == 0 && bytes < 20 ? 0 : bytes); };
      auto part = rank_bytes(me, size_of(me), 4 + root);
      std::vector<uint8_t> v = {9};
      auto sizes = c.gatherv(part.data(), part.size(), v, root);
      if (me == root) {
        std::vector<uint8_t> want;
        for (int r = 0; r < n; ++r) {
          check.expect(sizes.size() == static_cast<size_t>(n) && sizes[r] == size_of(r), "gatherv sizes");
          auto p = rank_bytes(r, size_of(r), 4 + root);
          want.insert(want.end(), p.begin(), p.end());
        }
        check.expect(v == want, "gatherv({}) at root {}", bytes, root);
      } else {
        check.expect(sizes.empty() && v.size() == 1, "gatherv touched a non-root rank");
      }
    }
  }
}

void check_point_to_point(Communicator& c, Checker& check) {
  const int me = c.rank(), n = c.size();
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  for (size_t bytes : kSizes) {
    auto mine = rank_bytes(me, bytes, 5);
    std::vector<uint8_t> got(bytes);
    Request rr = c.irecv(got.data(), bytes, prev, 3);
    Request rs = c.isend(mine.data(), bytes, next, 3);
    c.wait(rs);
    c.wait(rr);
    check.expect(got == rank_bytes(prev, bytes, 5), "isend/irecv ring ({} bytes)", bytes);
    // Blocking: rank 0 talks to every other rank in turn, any-source receive included.
    if (me == 0) {
      for (int r = 1; r < n; ++r) c.send(mine.data(), bytes, r, 4);
      for (int r = 1; r < n; ++r) {
        std::vector<uint8_t> back(bytes);
        c.recv(back.data(), bytes, kAnySource, 5);
        check.expect(back == rank_bytes(0, bytes, 5), "echo from a rank ({} bytes)", bytes);
      }
    } else {
      std::vector<uint8_t> in(bytes);
      c.recv(in.data(), bytes, 0, 4);
      check.expect(in == rank_bytes(0, bytes, 5), "send/recv from rank 0 ({} bytes)", bytes);
      c.send(in.data(), bytes, 0, 5);
    }
  }
  // Order: messages of one tag between a pair arrive in send order.
  if (n >= 2) {
    if (me == 0) {
      std::vector<Request> sends;
      std::vector<int> values(20);
      for (int i = 0; i < 20; ++i) {
        values[i] = i;
        sends.push_back(c.isend(&values[i], sizeof(int), 1, 9));
      }
      c.wait_all(sends);
    } else if (me == 1) {
      for (int i = 0; i < 20; ++i) {
        int v = -1;
        c.recv(&v, sizeof v, 0, 9);
        check.expect(v == i, "message {} arrived as {}", i, v);
      }
    }
  }
  Request b = c.ibarrier();
  c.wait(b);
  c.barrier();
}

void check_split(Communicator& c, Checker& check) {
  auto sub = c.split(c.rank() % 2, -c.rank());
  check.expect(sub != nullptr, "split returned null for a color");
  if (sub) {
    std::vector<int> members(sub->size());
    int me = c.rank();
    sub->all_gather(&me, sizeof me, members.data());
    std::vector<int> want;
    for (int r = c.size() - 1; r >= 0; --r) {
      if (r % 2 == c.rank() % 2) want.push_back(r);
    }
    check.expect(members == want, "split members ordered by key");
    auto v = rank_values<float>(sub->rank(), 1000, 7);
    sub->all_reduce_sum(v.data(), v.size());
    check.expect(same_bits(v, expected_sum<float>(sub->size(), 1000, 7)), "all-reduce in a split communicator");
  }
  auto workers = c.split(c.rank() == 0 ? kNoColor : 0, c.rank());
  check.expect((c.rank() == 0) == (workers == nullptr), "kNoColor yields null, only for rank 0");
  if (workers) {
    check.expect(workers->size() == c.size() - 1 && workers->rank() == c.rank() - 1, "workers communicator ranks");
    double x = 1;
    Request r = workers->iall_reduce_sum(&x, 1);
    workers->wait(r);
    check.expect(x == c.size() - 1, "workers all-reduce gave {}", x);
  }
  c.barrier();
}

void check_both_all_reduce_strategies(Communicator& c, Checker& check, int* argc, char*** argv) {
  MpiOptions gather_only, chunked_only;
  gather_only.gather_reduce_max_bytes = SIZE_MAX;
  chunked_only.gather_reduce_max_bytes = 0;
  auto a = make_mpi_world(argc, argv, gather_only);
  auto b = make_mpi_world(argc, argv, chunked_only);
  for (size_t n : {size_t{1}, size_t{3}, size_t{17}, size_t{4099}, size_t{100000}}) {
    auto x = rank_values<float>(c.rank(), n, 300 + n), y = x;
    a->all_reduce_sum(x.data(), n);
    b->all_reduce_sum(y.data(), n);
    auto want = expected_sum<float>(c.size(), n, 300 + n);
    check.expect(same_bits(x, want), "gather strategy, {} floats", n);
    check.expect(same_bits(y, want), "chunked strategy, {} floats", n);
  }
}

void check_errors(Communicator& c, Checker& check, int* argc, char*** argv) {
  const int me = c.rank(), n = c.size();
  int x = 0;
  check.expect_error("root rank " + std::to_string(n) + " is outside the communicator", "bad root",
                     [&] { c.broadcast(&x, sizeof x, n); });
  check.expect_error("destination rank -1", "bad destination", [&] { c.send(&x, sizeof x, -1, 0); });
  check.expect_error("tag -3 is negative", "bad tag", [&] { c.isend(&x, sizeof x, 0, -3); });
  int* tag_ub = nullptr;
  int found = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found);
  if (found && *tag_ub < INT_MAX) {
    check.expect_error("exceeds MPI's largest tag", "tag too large", [&] { c.send(&x, sizeof x, 0, *tag_ub + 1); });
  }
  if (n >= 2) {
    if (me == 0) {
      uint64_t eight = 8;
      uint32_t four = 4;
      unsigned char sixteen[16] = {};
      c.send(&eight, 8, 1, 10);
      c.send(&four, 4, 1, 11);
      c.send(sixteen, 16, 1, 12);
    } else if (me == 1) {
      uint64_t buf[2] = {};
      check.expect_error("the message has 8 byte(s), the receive expects 4", "recv too small",
                         [&] { c.recv(buf, 4, 0, 10); });
      check.expect_error("the message has 4 byte(s), the receive expects 8", "irecv too large", [&] {
        Request r = c.irecv(buf, 8, 0, 11);
        c.wait(r);
      });
      check.expect_error("recv from rank 0 (tag 12): the message is longer than the 8 byte(s)", "irecv truncated",
                         [&] {
                           Request r = c.irecv(buf, 8, 0, 12);
                           c.wait(r);
                         });
    }
    // A timed-out wait names the operation and may be resumed.
    if (me == 0) {
      int got = 0;
      Request r = c.irecv(&got, sizeof got, 1, 20);
      check.expect_error("timed out after", "wait with timeout", [&] {
        c.wait(r, WaitPolicy::with_timeout(std::chrono::milliseconds(200)));
      });
      check.expect_error("irecv from rank 1 (tag 20)", "timeout message", [&] {
        c.wait(r, WaitPolicy::with_timeout(std::chrono::milliseconds(1)));
      });
      c.barrier();
      c.wait(r);
      check.expect(got == 77, "value after the resumed wait: {}", got);
    } else {
      c.barrier();
      if (me == 1) {
        int v = 77;
        c.send(&v, sizeof v, 0, 20);
      }
    }
  }
  // With verification, mismatched collectives fail on every rank instead of misbehaving.
  MpiOptions verified;
  verified.verify_collectives = true;
  auto v = make_mpi_world(argc, argv, verified);
  if (n >= 2) {
    uint8_t buf[8] = {};
    check.expect_error("broadcast: ranks disagree on the size (from 4 to 8", "verified size mismatch",
                       [&] { v->broadcast(buf, me == n - 1 ? 4 : 8, 0); });
    check.expect_error("ranks disagree on the root", "verified root mismatch",
                       [&] { v->broadcast(buf, 8, me == 1 ? 1 : 0); });
    float f[4] = {};
    check.expect_error("all_reduce_sum(float): ranks disagree on the size", "verified count mismatch",
                       [&] { v->all_reduce_sum(f, me == 0 ? 3 : 4); });
    check.expect_error("collective mismatch", "verified kind mismatch", [&] {
      if (me == 0) v->barrier();
      else v->broadcast(buf, 8, 0);
    });
  }
  uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  if (me != 0) std::memset(buf, 0, sizeof buf);
  v->broadcast(buf, 8, 0);  // still usable
  check.expect(buf[7] == 8, "verified broadcast after errors");
}

}  // namespace

int run_checks(int* argc, char*** argv, const Args& args) {
  auto world = make_mpi_world(argc, argv);
  Communicator& c = *world;
  Checker check(c.rank());
  if (args.expect_size > 0) {
    check.expect(c.size() == args.expect_size, "world size {} but {} expected", c.size(), args.expect_size);
  }
  // Which host each rank runs on (the namespace test expects two).
  char name[64] = {};
  gethostname(name, sizeof name - 1);
  std::vector<char> names(64 * c.size());
  c.all_gather(name, 64, names.data());
  std::set<std::string> hosts;
  for (int r = 0; r < c.size(); ++r) hosts.insert(std::string(&names[64 * r]));
  if (c.rank() == 0) {
    std::string list;
    for (auto& h : hosts) list += (list.empty() ? "" : ", ") + h;
    std::printf("mpi_comm_test check: host(s) %s\n", list.c_str());
  }
  if (args.expect_hosts > 0) {
    check.expect(static_cast<int>(hosts.size()) == args.expect_hosts, "ranks run on {} host(s), {} expected",
                 hosts.size(), args.expect_hosts);
  }
  check_all_reduce<float>(c, check, "float");
  check_all_reduce<double>(c, check, "double");
  check_both_all_reduce_strategies(c, check, argc, argv);
  check_data_movement(c, check);
  check_point_to_point(c, check);
  check_split(c, check);
  check_errors(c, check, argc, argv);

  double counts[2] = {static_cast<double>(check.checks()), static_cast<double>(check.failures())};
  c.all_reduce_sum(counts, 2);
  if (c.rank() == 0) {
    std::printf("mpi_comm_test check: %d rank(s), %.0f checks, %.0f failure(s)\n", c.size(), counts[0], counts[1]);
  }
  return counts[1] == 0 ? 0 : 1;
}

}  // namespace shardlm::comm::mpitest
