// The communication layer of the distributed engine: a Communicator connects the ranks of one
// job (coordinator and workers) with collectives, point-to-point messages and non-blocking
// variants. Two implementations share these semantics: MPI (comm/mpi_world.h) for real jobs and
// threads in one process (comm/in_process.h) for unit tests.
//
// Rules every caller relies on:
//  - Collectives are matched by call order on each communicator: every rank must call the same
//    sequence of collectives (same kind, same sizes, same root). Mismatches throw shardlm::Error
//    (always in-process; under MPI when size verification is on, see MpiOptions).
//  - all_reduce_sum is deterministic: every rank gets the same bits, equal to the sum taken in rank
//    order ((x0 + x1) + x2) + ... element by element, on every run and in both implementations.
//  - Point-to-point messages between a pair of ranks with one tag arrive in send order; recv
//    requires the exact byte count that was sent.
//  - A Communicator object is used by one thread at a time.
//  - Buffers passed to a non-blocking call stay untouched and alive until its Request completes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardlm::comm {

inline constexpr int kAnySource = -1;  // recv / irecv: match a message from any rank
inline constexpr int kAnyTag = -1;     // recv / irecv: match any tag
inline constexpr int kNoColor = -1;    // split: this rank joins no new communicator (gets nullptr)

// How wait() waits: polls without pause for `spin`, then sleeps between polls with a delay that
// doubles from `first_sleep` up to `max_sleep`, so a rank that waits for work seconds away uses
// almost no CPU (about 1% measured). With a `timeout`, wait() throws
// Error("timed out after N s waiting for <operation> ...") once it has passed; the request stays
// pending and may be waited on again.
//
// MPI moves data only while some MPI call runs, so sleeping also stalls a transfer that is under
// way: a large iall_reduce_sum waited on with the default policy can take several times longer.
// Wait for data that is about to arrive with spinning() (or use the blocking call); keep the
// default for waiting on work that may take a while (the next step's broadcast).
struct WaitPolicy {
  std::chrono::nanoseconds spin = std::chrono::microseconds(200);
  std::chrono::nanoseconds first_sleep = std::chrono::microseconds(10);
  std::chrono::nanoseconds max_sleep = std::chrono::milliseconds(1);
  std::optional<std::chrono::nanoseconds> timeout;

  static WaitPolicy with_timeout(std::chrono::nanoseconds t) {
    WaitPolicy p;
    p.timeout = t;
    return p;
  }
  // For waiting on work that may not come for a long time (a worker between steps): the sleep keeps
  // doubling up to 20 ms, so an idle rank wakes ~50 times a second; a wait that ends within a few
  // milliseconds (steps in a busy stream) never reaches the long sleeps.
  static WaitPolicy idle() {
    WaitPolicy p;
    p.max_sleep = std::chrono::milliseconds(20);
    return p;
  }
  // Polls without ever sleeping (the timeout still applies).
  static WaitPolicy spinning() {
    WaitPolicy p;
    p.spin = std::chrono::hours(24 * 365);
    return p;
  }
};

// The state behind a Request; implemented by each Communicator.
class RequestState {
 public:
  virtual ~RequestState() = default;
  // Makes progress; true once the operation has completed (then its results are in place).
  // Throws Error when the operation failed (e.g. a size mismatch).
  virtual bool test() = 0;
  // What is being waited for, for error messages: "broadcast from rank 0".
  virtual std::string describe() const = 0;
};

// Handle of a non-blocking operation. Move-only. Complete it with Communicator::test/wait before
// the buffers it uses go away; a default-constructed or completed Request tests as done.
class Request {
 public:
  Request() = default;
  explicit Request(std::unique_ptr<RequestState> state) : state_(std::move(state)) {}
  Request(Request&&) noexcept = default;
  Request& operator=(Request&&) noexcept = default;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  bool done() const { return state_ == nullptr; }
  // Progress the operation; true when complete (the state is released then). When the operation
  // failed, the state is released and the Error is rethrown.
  bool test();
  std::string describe() const;
  // For implementations: the state behind the handle (null once complete).
  RequestState* state() const { return state_.get(); }

 private:
  std::unique_ptr<RequestState> state_;
};

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // --- blocking collectives -------------------------------------------------------------------
  // In place: every rank ends with the element-wise sum over ranks (deterministic, see above).
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  virtual void all_reduce_sum(double* data, size_t count) = 0;
  // recv holds size() * bytes_per_rank bytes: rank r's contribution at r * bytes_per_rank.
  virtual void all_gather(const void* send, size_t bytes_per_rank, void* recv) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Like all_gather, but only `root` receives (recv is ignored elsewhere and may be null).
  virtual void gather(const void* send, size_t bytes_per_rank, void* recv, int root) = 0;
  // Variable sizes: every rank sends `bytes` (may differ by rank). At root, recv is resized to the
  // total and holds the contributions in rank order, and the result holds each rank's byte count;
  // elsewhere recv is untouched and the result is empty.
  virtual std::vector<size_t> gatherv(const void* send, size_t bytes, std::vector<uint8_t>& recv,
                                      int root) = 0;
  virtual void barrier() = 0;

  // --- point to point ---------------------------------------------------------------------------
  // tag >= 0; recv accepts kAnySource / kAnyTag and requires exactly `bytes` bytes.
  virtual void send(const void* data, size_t bytes, int dest, int tag) = 0;
  virtual void recv(void* data, size_t bytes, int source, int tag) = 0;

  // --- non-blocking -----------------------------------------------------------------------------
  virtual Request ibroadcast(void* data, size_t bytes, int root) = 0;
  virtual Request iall_reduce_sum(float* data, size_t count) = 0;
  virtual Request iall_reduce_sum(double* data, size_t count) = 0;
  virtual Request isend(const void* data, size_t bytes, int dest, int tag) = 0;
  virtual Request irecv(void* data, size_t bytes, int source, int tag) = 0;
  virtual Request ibarrier() = 0;

  // True once the request has completed (never blocks).
  virtual bool test(Request& request);
  // Blocks until the request completes, spinning then sleeping per `policy`; throws Error on
  // timeout or when the operation failed.
  virtual void wait(Request& request, const WaitPolicy& policy = {});
  void wait_all(std::span<Request> requests, const WaitPolicy& policy = {});

  // Collective: ranks with the same color form a new communicator, ordered by (key, old rank).
  // color kNoColor: the rank joins none and gets nullptr. Example: the workers-only communicator
  // is split(rank() == 0 ? kNoColor : 0, rank()).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // Ends the job after a fatal error on this rank: under MPI all processes are terminated
  // (MPI_Abort); in-process, every pending and later operation of every rank throws Error naming
  // this rank and `reason`.
  virtual void abort(const std::string& reason, int exit_code = 1) = 0;

 protected:
  // Argument checks shared by the implementations; throw Error naming the operation and value.
  void check_rank(const char* op, const char* role, int r) const;
  void check_root(const char* op, int root) const { check_rank(op, "root", root); }
  void check_source(const char* op, int source) const;
  static void check_tag(const char* op, int tag, bool allow_any);
  static void check_buffer(const char* op, const void* p, size_t bytes);
};

// Description of a wait position, for messages: "broadcast from rank 0", "recv from rank 2 (tag 7)".
std::string describe_peer_op(const char* op, const char* preposition, int peer, int tag = -2);

}  // namespace shardlm::comm
