// In-process communicator: ranks are threads; collectives rendezvous in shared slots, messages go
// through per-rank mailboxes. See comm/in_process.h.
#include "comm/in_process.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "comm/in_process_state.h"
#include "comm/rank_order_sum.h"
#include "common/error.h"

namespace shardlm::comm {
namespace {

using in_process::AbortState;
using in_process::Contribution;
using in_process::Group;
using in_process::OpKind;
using in_process::PostedRecv;
using in_process::Slot;

void copy_bytes(void* dst, const void* src, size_t n) {
  if (n != 0) std::memcpy(dst, src, n);
}

Contribution part(OpKind kind, int root = -1, size_t size = 0, std::vector<uint8_t> data = {}) {
  Contribution c;
  c.kind = kind;
  c.root = root;
  c.size = size;
  c.data = std::move(data);
  return c;
}

std::vector<uint8_t> copy_of(const void* p, size_t n) {
  std::vector<uint8_t> v(n);
  copy_bytes(v.data(), p, n);
  return v;
}

// A pending operation of one rank; tested under its group's mutex.
class LocalState : public RequestState {
 public:
  explicit LocalState(std::shared_ptr<Group> group) : group_(std::move(group)) {}
  bool test() override {
    std::lock_guard lock(group_->mu);
    return test_locked();
  }
  std::string describe() const override {
    std::lock_guard lock(group_->mu);
    return describe_locked();
  }
  virtual bool test_locked() = 0;
  virtual std::string describe_locked() const = 0;
  Group& group() const { return *group_; }

 protected:
  std::shared_ptr<Group> group_;
};

// Where a collective's results go on this rank.
struct CollectiveOutput {
  void* data = nullptr;                   // broadcast / all-reduce (in place) / all_gather / gather
  std::vector<uint8_t>* gathered = nullptr;  // gatherv at root
  std::vector<size_t>* sizes = nullptr;      // gatherv at root
  std::shared_ptr<Group>* new_group = nullptr;  // split
  int* new_rank = nullptr;                       // split
};

template <typename T>
void reduce_slot(Slot& slot, int n, size_t count) {
  std::vector<const T*> parts(n);
  for (int r = 0; r < n; ++r) parts[r] = reinterpret_cast<const T*>(slot.parts[r].data.data());
  slot.result.resize(count * sizeof(T));
  sum_in_rank_order(parts.data(), n, count, reinterpret_cast<T*>(slot.result.data()));
}

void build_split(Slot& slot, Group& parent) {
  const int n = parent.size;
  slot.split_group.assign(n, nullptr);
  slot.split_rank.assign(n, -1);
  std::vector<int> colors;
  for (int r = 0; r < n; ++r) {
    int c = slot.parts[r].color;
    if (c >= 0 && std::find(colors.begin(), colors.end(), c) == colors.end()) colors.push_back(c);
  }
  for (int c : colors) {
    std::vector<int> members;
    for (int r = 0; r < n; ++r) {
      if (slot.parts[r].color == c) members.push_back(r);
    }
    std::stable_sort(members.begin(), members.end(),
                     [&](int a, int b) { return slot.parts[a].key < slot.parts[b].key; });
    auto g = std::make_shared<Group>(static_cast<int>(members.size()), parent.abort_state);
    {
      std::lock_guard lock(parent.abort_state->mu);
      parent.abort_state->groups.push_back(g);
    }
    for (size_t i = 0; i < members.size(); ++i) {
      slot.split_group[members[i]] = g;
      slot.split_rank[members[i]] = static_cast<int>(i);
    }
  }
}

class CollectiveState : public LocalState {
 public:
  CollectiveState(std::shared_ptr<Group> group, int rank, uint64_t seq, Contribution part,
                  CollectiveOutput out)
      : LocalState(std::move(group)), rank_(rank), seq_(seq), kind_(part.kind), root_(part.root),
        size_(part.size), out_(out) {
    std::lock_guard lock(group_->mu);
    group_->throw_if_aborted();
    slot_ = group_->join(seq, rank, std::move(part));
  }

  bool test_locked() override {
    if (finished_) {
      if (!failed_.empty()) throw Error(failed_);
      return true;
    }
    group_->throw_if_aborted();
    if (slot_->arrived < group_->size) return false;
    in_process::check_slot(*slot_, seq_);
    finished_ = true;
    if (!slot_->error.empty()) {
      failed_ = slot_->error;
      group_->consume(seq_, *slot_);
      throw Error(failed_);
    }
    complete();
    group_->consume(seq_, *slot_);
    return true;
  }

  std::string describe_locked() const override {
    std::string s = in_process::op_name(kind_);
    if (in_process::has_root(kind_)) s += fmt::format(" with root rank {}", root_);
    if (!finished_ && slot_->arrived < group_->size) {
      std::string missing;
      for (int r = 0; r < group_->size; ++r) {
        if (!slot_->present[r]) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", r);
      }
      s += fmt::format(" (rank(s) {} have not called it yet)", missing);
    }
    return s;
  }

 private:
  void complete() {
    Slot& slot = *slot_;
    const int n = group_->size;
    switch (kind_) {
      case OpKind::barrier:
      case OpKind::ibarrier:
        break;
      case OpKind::broadcast:
      case OpKind::ibroadcast:
        if (rank_ != root_) copy_bytes(out_.data, slot.parts[root_].data.data(), size_);
        break;
      case OpKind::all_reduce_f32:
      case OpKind::iall_reduce_f32:
        if (!slot.reduced) reduce_slot<float>(slot, n, size_);
        slot.reduced = true;
        copy_bytes(out_.data, slot.result.data(), slot.result.size());
        break;
      case OpKind::all_reduce_f64:
      case OpKind::iall_reduce_f64:
        if (!slot.reduced) reduce_slot<double>(slot, n, size_);
        slot.reduced = true;
        copy_bytes(out_.data, slot.result.data(), slot.result.size());
        break;
      case OpKind::all_gather:
      case OpKind::gather:
        if (kind_ == OpKind::all_gather || rank_ == root_) {
          auto* dst = static_cast<uint8_t*>(out_.data);
          for (int r = 0; r < n; ++r) copy_bytes(dst + r * size_, slot.parts[r].data.data(), size_);
        }
        break;
      case OpKind::gatherv:
        if (rank_ == root_) {
          size_t total = 0;
          out_.sizes->assign(n, 0);
          for (int r = 0; r < n; ++r) total += (*out_.sizes)[r] = slot.parts[r].size;
          out_.gathered->resize(total);
          size_t offset = 0;
          for (int r = 0; r < n; ++r) {
            copy_bytes(out_.gathered->data() + offset, slot.parts[r].data.data(), slot.parts[r].size);
            offset += slot.parts[r].size;
          }
        }
        break;
      case OpKind::split:
        if (!slot.reduced) build_split(slot, *group_);
        slot.reduced = true;
        *out_.new_group = slot.split_group[rank_];
        *out_.new_rank = slot.split_rank[rank_];
        break;
    }
  }

  int rank_;
  uint64_t seq_;
  OpKind kind_;
  int root_;
  size_t size_;
  CollectiveOutput out_;
  std::shared_ptr<Slot> slot_;
  bool finished_ = false;
  std::string failed_;
};

class RecvState : public LocalState {
 public:
  RecvState(std::shared_ptr<Group> group, std::shared_ptr<PostedRecv> recv)
      : LocalState(std::move(group)), recv_(std::move(recv)) {}
  bool test_locked() override {
    if (recv_->matched) {
      if (!recv_->error.empty()) throw Error(recv_->error);
      return true;
    }
    group_->throw_if_aborted();
    return false;
  }
  std::string describe_locked() const override {
    return describe_peer_op("recv", "from", recv_->source, recv_->tag);
  }

 private:
  std::shared_ptr<PostedRecv> recv_;
};

// Hands a message to a posted receive; the size must match exactly.
void deliver(PostedRecv& pr, int source, int tag, const void* data, size_t bytes) {
  pr.matched = true;
  if (bytes != pr.bytes) {
    pr.error = fmt::format("recv from rank {} (tag {}): the message has {} byte(s), the receive "
                           "expects {}", source, tag, bytes, pr.bytes);
    return;
  }
  copy_bytes(pr.data, data, bytes);
}

class InProcessCommunicator : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<Group> group, int rank)
      : group_(std::move(group)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return group_->size; }

  void all_reduce_sum(float* data, size_t count) override {
    check_buffer("all_reduce_sum", data, count);
    run(start_all_reduce(OpKind::all_reduce_f32, data, count));
  }
  void all_reduce_sum(double* data, size_t count) override {
    check_buffer("all_reduce_sum", data, count);
    run(start_all_reduce(OpKind::all_reduce_f64, data, count));
  }
  void all_gather(const void* send, size_t bytes_per_rank, void* recv) override {
    check_buffer("all_gather", send, bytes_per_rank);
    check_buffer("all_gather", recv, bytes_per_rank);
    run(start(part(OpKind::all_gather, -1, bytes_per_rank, copy_of(send, bytes_per_rank)),
              CollectiveOutput{.data = recv}));
  }
  void broadcast(void* data, size_t bytes, int root) override {
    run(start_broadcast(OpKind::broadcast, data, bytes, root));
  }
  void gather(const void* send, size_t bytes_per_rank, void* recv, int root) override {
    check_root("gather", root);
    check_buffer("gather", send, bytes_per_rank);
    if (rank_ == root) check_buffer("gather", recv, bytes_per_rank);
    run(start(part(OpKind::gather, root, bytes_per_rank, copy_of(send, bytes_per_rank)),
              CollectiveOutput{.data = recv}));
  }
  std::vector<size_t> gatherv(const void* send, size_t bytes, std::vector<uint8_t>& recv,
                              int root) override {
    check_root("gatherv", root);
    check_buffer("gatherv", send, bytes);
    std::vector<size_t> sizes;
    run(start(part(OpKind::gatherv, root, bytes, copy_of(send, bytes)),
              CollectiveOutput{.gathered = &recv, .sizes = &sizes}));
    return sizes;
  }
  void barrier() override { run(start(part(OpKind::barrier), {})); }

  void send(const void* data, size_t bytes, int dest, int tag) override {
    check_rank("send", "destination", dest);
    check_tag("send", tag, false);
    check_buffer("send", data, bytes);
    std::lock_guard lock(group_->mu);
    group_->throw_if_aborted();
    auto& posted = group_->posted[dest];
    for (auto it = posted.begin(); it != posted.end(); ++it) {
      if (in_process::matches((*it)->source, (*it)->tag, rank_, tag)) {
        deliver(**it, rank_, tag, data, bytes);
        posted.erase(it);
        group_->cv.notify_all();
        return;
      }
    }
    group_->unexpected[dest].push_back({rank_, tag, copy_of(data, bytes)});
    group_->cv.notify_all();
  }
  void recv(void* data, size_t bytes, int source, int tag) override {
    run(start_recv(data, bytes, source, tag));
  }

  Request ibroadcast(void* data, size_t bytes, int root) override {
    return Request(start_broadcast(OpKind::ibroadcast, data, bytes, root));
  }
  Request iall_reduce_sum(float* data, size_t count) override {
    check_buffer("iall_reduce_sum", data, count);
    return Request(start_all_reduce(OpKind::iall_reduce_f32, data, count));
  }
  Request iall_reduce_sum(double* data, size_t count) override {
    check_buffer("iall_reduce_sum", data, count);
    return Request(start_all_reduce(OpKind::iall_reduce_f64, data, count));
  }
  Request isend(const void* data, size_t bytes, int dest, int tag) override {
    send(data, bytes, dest, tag);  // buffered: complete at once
    return Request();
  }
  Request irecv(void* data, size_t bytes, int source, int tag) override {
    return Request(start_recv(data, bytes, source, tag));
  }
  Request ibarrier() override { return Request(start(part(OpKind::ibarrier), {})); }

  void wait(Request& request, const WaitPolicy& policy) override {
    auto* state = dynamic_cast<LocalState*>(request.state());
    if (state == nullptr) {
      Communicator::wait(request, policy);
      return;
    }
    bool timed_out = false;
    std::string what;
    try {
      timed_out = wait_locked(*state, policy.timeout, &what);
    } catch (...) {
      request = Request();
      throw;
    }
    if (timed_out) {
      fail("timed out after {:.3g} s waiting for {} (rank {} of {})",
           std::chrono::duration<double>(*policy.timeout).count(), what, rank_, size());
    }
    request.test();  // releases the completed state
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    if (color < 0 && color != kNoColor) fail("split: color {} is negative (use kNoColor)", color);
    std::shared_ptr<Group> new_group;
    int new_rank = -1;
    Contribution split_part = part(OpKind::split);
    split_part.color = color;
    split_part.key = key;
    run(start(std::move(split_part), CollectiveOutput{.new_group = &new_group, .new_rank = &new_rank}));
    if (!new_group) return nullptr;
    return std::make_unique<InProcessCommunicator>(std::move(new_group), new_rank);
  }

  void abort(const std::string& reason, int /*exit_code*/) override {
    in_process::abort_world(group_->abort_state,
                            fmt::format("the job was aborted by rank {} of {}: {}", rank_,
                                        size(), reason));
  }

 private:
  std::unique_ptr<LocalState> start(Contribution part, CollectiveOutput out) {
    return std::make_unique<CollectiveState>(group_, rank_, next_seq_++, std::move(part), out);
  }

  std::unique_ptr<LocalState> start_all_reduce(OpKind kind, void* data, size_t count) {
    size_t elem = (kind == OpKind::all_reduce_f32 || kind == OpKind::iall_reduce_f32) ? 4 : 8;
    return start(part(kind, -1, count, copy_of(data, count * elem)),
                 CollectiveOutput{.data = data});
  }

  std::unique_ptr<LocalState> start_broadcast(OpKind kind, void* data, size_t bytes, int root) {
    const char* op = in_process::op_name(kind);
    check_root(op, root);
    check_buffer(op, data, bytes);
    std::vector<uint8_t> payload = rank_ == root ? copy_of(data, bytes) : std::vector<uint8_t>();
    return start(part(kind, root, bytes, std::move(payload)), CollectiveOutput{.data = data});
  }

  std::unique_ptr<LocalState> start_recv(void* data, size_t bytes, int source, int tag) {
    check_source("recv", source);
    check_tag("recv", tag, true);
    check_buffer("recv", data, bytes);
    auto pr = std::make_shared<PostedRecv>();
    pr->source = source;
    pr->tag = tag;
    pr->data = data;
    pr->bytes = bytes;
    std::lock_guard lock(group_->mu);
    group_->throw_if_aborted();
    auto& inbox = group_->unexpected[rank_];
    auto it = std::find_if(inbox.begin(), inbox.end(), [&](const in_process::Message& m) {
      return in_process::matches(source, tag, m.source, m.tag);
    });
    if (it != inbox.end()) {
      deliver(*pr, it->source, it->tag, it->data.data(), it->data.size());
      inbox.erase(it);
    } else {
      group_->posted[rank_].push_back(pr);
    }
    return std::make_unique<RecvState>(group_, std::move(pr));
  }

  // Blocks on the group's condition variable; true when `timeout` passed first.
  static bool wait_locked(LocalState& state, std::optional<std::chrono::nanoseconds> timeout,
                          std::string* what) {
    Group& group = state.group();  // the request may come from another communicator
    std::unique_lock lock(group.mu);
    if (!timeout) {
      while (!state.test_locked()) group.cv.wait(lock);
      return false;
    }
    auto deadline = std::chrono::steady_clock::now() + *timeout;
    while (!state.test_locked()) {
      if (group.cv.wait_until(lock, deadline) == std::cv_status::timeout &&
          !state.test_locked()) {
        *what = state.describe_locked();
        return true;
      }
    }
    return false;
  }

  void run(std::unique_ptr<LocalState> state) { wait_locked(*state, std::nullopt, nullptr); }

  std::shared_ptr<Group> group_;
  int rank_;
  uint64_t next_seq_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_in_process_world(int n) {
  if (n < 1) fail("in-process world: size {} must be at least 1", n);
  auto abort_state = std::make_shared<AbortState>();
  auto group = std::make_shared<Group>(n, abort_state);
  abort_state->groups.push_back(group);
  std::vector<std::unique_ptr<Communicator>> world;
  for (int r = 0; r < n; ++r) world.push_back(std::make_unique<InProcessCommunicator>(group, r));
  return world;
}

void run_in_process(int n, const std::function<void(Communicator&)>& fn) {
  auto world = make_in_process_world(n);
  std::mutex mu;
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(*world[r]);
      } catch (const std::exception& e) {
        {
          std::lock_guard lock(mu);
          if (!first_error) first_error = std::current_exception();
        }
        world[r]->abort(e.what());
      } catch (...) {
        {
          std::lock_guard lock(mu);
          if (!first_error) first_error = std::current_exception();
        }
        world[r]->abort("unknown exception");
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace shardlm::comm
