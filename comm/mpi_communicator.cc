// The MPI implementation of Communicator (see comm/mpi_world.h). All-reduce is built from
// all-gather / all-to-all plus a local sum in rank order, so that its bits do not depend on the
// MPI library's reduction algorithm.
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#include <spdlog/spdlog.h>

#include "comm/mpi_runtime.h"
#include "comm/mpi_world.h"
#include "comm/rank_order_sum.h"
#include "common/error.h"

namespace shardlm::comm {
namespace {

int to_int(size_t n, const char* op) {
  if (n > static_cast<size_t>(INT_MAX)) {
    fail("{}: {} elements exceed MPI's limit of {} per call", op, n, INT_MAX);
  }
  return static_cast<int>(n);
}

// Collective kinds, for the optional cross-rank verification.
enum class Verified : int64_t {
  barrier = 1, broadcast, all_reduce_f32, all_reduce_f64, all_gather, gather, gatherv, split
};

const char* verified_name(int64_t code) {
  switch (static_cast<Verified>(code)) {
    case Verified::barrier: return "barrier";
    case Verified::broadcast: return "broadcast";
    case Verified::all_reduce_f32: return "all_reduce_sum(float)";
    case Verified::all_reduce_f64: return "all_reduce_sum(double)";
    case Verified::all_gather: return "all_gather";
    case Verified::gather: return "gather";
    case Verified::gatherv: return "gatherv";
    case Verified::split: return "split";
  }
  return "?";
}

// One pending MPI request and what to do once it has completed.
class MpiState : public RequestState {
 public:
  using Finish = std::function<void(const MPI_Status&)>;
  MpiState(std::string description, bool collective)
      : description_(std::move(description)), collective_(collective) {}
  ~MpiState() override {
    if (done_ || request_ == MPI_REQUEST_NULL || !mpi_is_active()) return;
    if (!collective_) {
      MPI_Cancel(&request_);
      MPI_Request_free(&request_);
      return;
    }
    // A collective cannot be cancelled: MPI may still write into the scratch buffer.
    spdlog::warn("an incomplete {} was dropped; its scratch buffer is leaked", description_);
    new std::vector<uint8_t>(std::move(scratch));  // intentionally never freed
  }

  MPI_Request* handle() { return &request_; }
  void on_finish(Finish f) { finish_ = std::move(f); }
  void on_truncation(std::string message) { truncation_ = std::move(message); }
  std::vector<uint8_t> scratch;

  bool test() override {
    if (done_) return true;
    int flag = 0;
    MPI_Status status;
    std::memset(&status, 0, sizeof status);
    int rc = MPI_Test(&request_, &flag, &status);
    if (rc != MPI_SUCCESS) {
      done_ = true;
      int error_class = 0;
      MPI_Error_class(rc, &error_class);
      if (error_class == MPI_ERR_TRUNCATE && !truncation_.empty()) throw Error(truncation_);
      check_mpi(rc, description_.c_str());
    }
    if (!flag) return false;
    done_ = true;
    if (finish_) finish_(status);
    return true;
  }
  std::string describe() const override { return description_; }

 private:
  std::string description_;
  bool collective_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
  Finish finish_;
  std::string truncation_;
};

std::string recv_size_error(int source, int tag, size_t got, size_t want) {
  return fmt::format("recv from rank {} (tag {}): the message has {} byte(s), the receive expects {}",
                     source, tag, got, want);
}

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(std::shared_ptr<MpiRuntime> runtime, MPI_Comm comm, const MpiOptions& options)
      : runtime_(std::move(runtime)), comm_(comm), options_(options) {
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_NULL && mpi_is_active()) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* data, size_t count) override {
    all_reduce<float>(data, count, Verified::all_reduce_f32);
  }
  void all_reduce_sum(double* data, size_t count) override {
    all_reduce<double>(data, count, Verified::all_reduce_f64);
  }

  void all_gather(const void* send, size_t bytes_per_rank, void* recv) override {
    check_buffer("all_gather", send, bytes_per_rank);
    check_buffer("all_gather", recv, bytes_per_rank);
    int n = to_int(bytes_per_rank, "all_gather");
    verify(Verified::all_gather, bytes_per_rank, -1);
    check_mpi(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_), "all_gather (MPI_Allgather)");
  }

  void broadcast(void* data, size_t bytes, int root) override {
    check_root("broadcast", root);
    check_buffer("broadcast", data, bytes);
    int n = to_int(bytes, "broadcast");
    verify(Verified::broadcast, bytes, root);
    check_mpi(MPI_Bcast(data, n, MPI_BYTE, root, comm_), "broadcast (MPI_Bcast)");
  }

  void gather(const void* send, size_t bytes_per_rank, void* recv, int root) override {
    check_root("gather", root);
    check_buffer("gather", send, bytes_per_rank);
    if (rank_ == root) check_buffer("gather", recv, bytes_per_rank);
    int n = to_int(bytes_per_rank, "gather");
    verify(Verified::gather, bytes_per_rank, root);
    check_mpi(MPI_Gather(send, n, MPI_BYTE, recv, n, MPI_BYTE, root, comm_), "gather (MPI_Gather)");
  }

  std::vector<size_t> gatherv(const void* send, size_t bytes, std::vector<uint8_t>& recv,
                              int root) override {
    check_root("gatherv", root);
    check_buffer("gatherv", send, bytes);
    verify(Verified::gatherv, 0, root);
    // Every rank learns every size, so that an oversized total fails on all ranks alike.
    uint64_t mine = bytes;
    std::vector<uint64_t> all(size_);
    check_mpi(MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_),
              "gatherv (MPI_Allgather of sizes)");
    std::vector<int> counts(size_), displs(size_);
    uint64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total + all[r] > static_cast<uint64_t>(INT_MAX)) {
        fail("gatherv: {} byte(s) in all exceed MPI's limit of {} per call", total + all[r], INT_MAX);
      }
      counts[r] = static_cast<int>(all[r]);
      displs[r] = static_cast<int>(total);
      total += all[r];
    }
    std::vector<size_t> sizes;
    if (rank_ == root) {
      recv.resize(total);
      sizes.assign(all.begin(), all.end());
    }
    check_mpi(MPI_Gatherv(send, static_cast<int>(bytes), MPI_BYTE, rank_ == root ? recv.data() : nullptr,
                          counts.data(), displs.data(), MPI_BYTE, root, comm_),
              "gatherv (MPI_Gatherv)");
    return sizes;
  }

  void barrier() override {
    verify(Verified::barrier, 0, -1);
    check_mpi(MPI_Barrier(comm_), "barrier (MPI_Barrier)");
  }

  void send(const void* data, size_t bytes, int dest, int tag) override {
    check_rank("send", "destination", dest);
    check_send_tag("send", tag);
    check_buffer("send", data, bytes);
    check_mpi(MPI_Send(data, to_int(bytes, "send"), MPI_BYTE, dest, tag, comm_),
              describe_peer_op("send", "to", dest, tag).c_str());
  }

  void recv(void* data, size_t bytes, int source, int tag) override {
    check_source("recv", source);
    check_recv_tag("recv", tag);
    check_buffer("recv", data, bytes);
    int n = to_int(bytes, "recv");
    std::string what = describe_peer_op("recv", "from", source, tag);
    MPI_Message message;
    MPI_Status status;
    check_mpi(MPI_Mprobe(mpi_source(source), mpi_tag(tag), comm_, &message, &status), what.c_str());
    int count = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), what.c_str());
    if (count != n) {
      std::vector<uint8_t> discard(static_cast<size_t>(count));
      check_mpi(MPI_Mrecv(discard.data(), count, MPI_BYTE, &message, &status), what.c_str());
      throw Error(recv_size_error(status.MPI_SOURCE, status.MPI_TAG, static_cast<size_t>(count), bytes));
    }
    check_mpi(MPI_Mrecv(data, n, MPI_BYTE, &message, &status), what.c_str());
  }

  Request ibroadcast(void* data, size_t bytes, int root) override {
    check_root("ibroadcast", root);
    check_buffer("ibroadcast", data, bytes);
    int n = to_int(bytes, "ibroadcast");
    auto state = std::make_unique<MpiState>(fmt::format("ibroadcast from rank {}", root), true);
    check_mpi(MPI_Ibcast(data, n, MPI_BYTE, root, comm_, state->handle()), "ibroadcast (MPI_Ibcast)");
    return Request(std::move(state));
  }

  Request iall_reduce_sum(float* data, size_t count) override { return iall_reduce<float>(data, count); }
  Request iall_reduce_sum(double* data, size_t count) override { return iall_reduce<double>(data, count); }

  Request isend(const void* data, size_t bytes, int dest, int tag) override {
    check_rank("isend", "destination", dest);
    check_send_tag("isend", tag);
    check_buffer("isend", data, bytes);
    int n = to_int(bytes, "isend");
    auto state = std::make_unique<MpiState>(describe_peer_op("isend", "to", dest, tag), false);
    check_mpi(MPI_Isend(data, n, MPI_BYTE, dest, tag, comm_, state->handle()), "isend (MPI_Isend)");
    return Request(std::move(state));
  }

  Request irecv(void* data, size_t bytes, int source, int tag) override {
    check_source("irecv", source);
    check_recv_tag("irecv", tag);
    check_buffer("irecv", data, bytes);
    int n = to_int(bytes, "irecv");
    auto state = std::make_unique<MpiState>(describe_peer_op("irecv", "from", source, tag), false);
    state->on_truncation(fmt::format("{}: the message is longer than the {} byte(s) the receive expects",
                                     describe_peer_op("recv", "from", source, tag), bytes));
    state->on_finish([bytes](const MPI_Status& status) {
      int count = 0;
      MPI_Status copy = status;
      check_mpi(MPI_Get_count(&copy, MPI_BYTE, &count), "irecv (MPI_Get_count)");
      if (static_cast<size_t>(count) != bytes) {
        throw Error(recv_size_error(status.MPI_SOURCE, status.MPI_TAG, static_cast<size_t>(count), bytes));
      }
    });
    check_mpi(MPI_Irecv(data, n, MPI_BYTE, mpi_source(source), mpi_tag(tag), comm_, state->handle()),
              "irecv (MPI_Irecv)");
    return Request(std::move(state));
  }

  Request ibarrier() override {
    auto state = std::make_unique<MpiState>("ibarrier", true);
    check_mpi(MPI_Ibarrier(comm_, state->handle()), "ibarrier (MPI_Ibarrier)");
    return Request(std::move(state));
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    if (color < 0 && color != kNoColor) fail("split: color {} is negative (use kNoColor)", color);
    verify(Verified::split, 0, -1);
    MPI_Comm new_comm = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(comm_, color == kNoColor ? MPI_UNDEFINED : color, key, &new_comm),
              "split (MPI_Comm_split)");
    if (new_comm == MPI_COMM_NULL) return nullptr;
    return std::make_unique<MpiCommunicator>(runtime_, new_comm, options_);
  }

  void abort(const std::string& reason, int exit_code) override {
    std::fprintf(stderr, "shardlm: rank %d of %d aborts the MPI job: %s\n", rank_, size_, reason.c_str());
    std::fflush(stderr);
    MPI_Abort(comm_, exit_code);
    std::abort();
  }

 private:
  static int mpi_source(int source) { return source == kAnySource ? MPI_ANY_SOURCE : source; }
  static int mpi_tag(int tag) { return tag == kAnyTag ? MPI_ANY_TAG : tag; }

  void check_send_tag(const char* op, int tag) const {
    check_tag(op, tag, false);
    if (tag > runtime_->tag_upper_bound()) {
      fail("{}: tag {} exceeds MPI's largest tag {}", op, tag, runtime_->tag_upper_bound());
    }
  }
  void check_recv_tag(const char* op, int tag) const {
    check_tag(op, tag, true);
    if (tag > runtime_->tag_upper_bound()) {
      fail("{}: tag {} exceeds MPI's largest tag {}", op, tag, runtime_->tag_upper_bound());
    }
  }

  // With verification on: every rank throws the same Error if the ranks disagree on the
  // operation, size or root of this collective.
  void verify(Verified op, size_t size, int root) {
    if (!options_.verify_collectives) return;
    const auto code = static_cast<int64_t>(op);
    const auto s = static_cast<int64_t>(size);
    int64_t v[6] = {code, -code, s, -s, root, -root};
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, v, 6, MPI_INT64_T, MPI_MAX, comm_),
              "collective verification (MPI_Allreduce)");
    if (v[0] != -v[1]) {
      fail("collective mismatch: ranks called different collectives at the same point ({} and {}; "
           "this rank called {})", verified_name(-v[1]), verified_name(v[0]), verified_name(code));
    }
    if (v[2] != -v[3]) {
      fail("{}: ranks disagree on the size (from {} to {}; this rank: {})", verified_name(code),
           -v[3], v[2], s);
    }
    if (v[4] != -v[5]) {
      fail("{}: ranks disagree on the root (from rank {} to rank {}; this rank: {})",
           verified_name(code), -v[5], v[4], root);
    }
  }

  template <typename T>
  void all_reduce(T* data, size_t count, Verified op) {
    check_buffer("all_reduce_sum", data, count);
    to_int(count, "all_reduce_sum");
    verify(op, count, -1);
    if (size_ == 1 || count == 0) return;
    const MPI_Datatype type = mpi_type<T>();
    const size_t n = static_cast<size_t>(size_);
    if (count * sizeof(T) * n <= options_.gather_reduce_max_bytes) {
      scratch_.resize(count * sizeof(T) * n);
      T* parts = reinterpret_cast<T*>(scratch_.data());
      check_mpi(MPI_Allgather(data, static_cast<int>(count), type, parts, static_cast<int>(count), type, comm_),
                "all_reduce_sum (MPI_Allgather)");
      sum_in_rank_order_strided(parts, count, size_, count, data);
      return;
    }
    // Chunk r (elements [count*r/n, count*(r+1)/n)) is summed by rank r, then shared. Each rank
    // receives the other ranks' copies of its chunk; its own copy is read in place.
    std::vector<int> counts(n), displs(n), send_counts(n), recv_counts(n), recv_displs(n);
    for (size_t r = 0; r < n; ++r) {
      size_t begin = count * r / n, end = count * (r + 1) / n;
      counts[r] = static_cast<int>(end - begin);
      displs[r] = static_cast<int>(begin);
    }
    const int mine = counts[rank_];
    for (size_t r = 0; r < n; ++r) {
      bool self = static_cast<int>(r) == rank_;
      send_counts[r] = self ? 0 : counts[r];
      recv_counts[r] = self ? 0 : mine;
      recv_displs[r] = static_cast<int>(r) * mine;
    }
    scratch_.resize(static_cast<size_t>(mine) * n * sizeof(T));
    T* received = reinterpret_cast<T*>(scratch_.data());
    check_mpi(MPI_Alltoallv(data, send_counts.data(), displs.data(), type, received, recv_counts.data(),
                            recv_displs.data(), type, comm_),
              "all_reduce_sum (MPI_Alltoallv)");
    T* my_chunk = data + displs[rank_];
    std::vector<const T*> parts(n);
    for (size_t r = 0; r < n; ++r) {
      parts[r] = static_cast<int>(r) == rank_ ? my_chunk : received + r * static_cast<size_t>(mine);
    }
    sum_in_rank_order(parts.data(), size_, static_cast<size_t>(mine), my_chunk);
    check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, type, data, counts.data(), displs.data(), type, comm_),
              "all_reduce_sum (MPI_Allgatherv)");
  }

  template <typename T>
  Request iall_reduce(T* data, size_t count) {
    check_buffer("iall_reduce_sum", data, count);
    int n = to_int(count, "iall_reduce_sum");
    auto state = std::make_unique<MpiState>(
        fmt::format("iall_reduce_sum of {} {}", count, sizeof(T) == 4 ? "float(s)" : "double(s)"), true);
    state->scratch.resize(count * sizeof(T) * static_cast<size_t>(size_));
    T* parts = reinterpret_cast<T*>(state->scratch.data());
    const int ranks = size_;
    state->on_finish([parts, ranks, data, count](const MPI_Status&) {
      sum_in_rank_order_strided(parts, count, ranks, count, data);
    });
    const MPI_Datatype type = mpi_type<T>();
    check_mpi(MPI_Iallgather(data, n, type, parts, n, type, comm_, state->handle()),
              "iall_reduce_sum (MPI_Iallgather)");
    return Request(std::move(state));
  }

  std::shared_ptr<MpiRuntime> runtime_;
  MPI_Comm comm_;
  MpiOptions options_;
  int rank_ = 0;
  int size_ = 1;
  std::vector<uint8_t> scratch_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_world(int* argc, char*** argv, const MpiOptions& options) {
  auto runtime = MpiRuntime::acquire(argc, argv);
  MpiOptions effective = options;
  if (const char* v = std::getenv("SHARDLM_COMM_VERIFY"); v && std::string(v) == "1") {
    effective.verify_collectives = true;
  }
  MPI_Comm comm = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup of MPI_COMM_WORLD");
  return std::make_unique<MpiCommunicator>(std::move(runtime), comm, effective);
}

}  // namespace shardlm::comm
