// Shared state of in-process communicators (see comm/in_process.h): one Group per communicator,
// holding the collective rendezvous slots and the point-to-point mailboxes of its ranks, all
// guarded by the group's mutex. Internal to comm/.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace shardlm::comm::in_process {

struct Group;

// Shared by a world and every communicator split from it: once set, all operations throw.
struct AbortState {
  std::mutex mu;
  bool aborted = false;
  std::string message;
  std::vector<std::weak_ptr<Group>> groups;  // to wake their waiters
};

enum class OpKind : uint8_t {
  barrier, ibarrier, broadcast, ibroadcast, all_reduce_f32, iall_reduce_f32, all_reduce_f64,
  iall_reduce_f64, all_gather, gather, gatherv, split
};
const char* op_name(OpKind kind);
bool has_root(OpKind kind);
bool sizes_must_match(OpKind kind);

// One rank's part in a collective call.
struct Contribution {
  OpKind kind = OpKind::barrier;
  int root = -1;
  size_t size = 0;  // bytes, or elements for all-reduce
  std::vector<uint8_t> data;
  int color = 0, key = 0;  // split
};

// The rendezvous of the k-th collective call on a group.
struct Slot {
  std::vector<Contribution> parts;  // by rank
  std::vector<bool> present;
  int arrived = 0;
  int consumed = 0;
  bool checked = false;
  std::string error;               // mismatch found when all arrived; the same for every rank
  bool reduced = false;            // all-reduce result computed (once, by the first to complete)
  std::vector<uint8_t> result;
  std::vector<std::shared_ptr<Group>> split_group;  // split: the new group of each rank
  std::vector<int> split_rank;
};

struct Message {
  int source;
  int tag;
  std::vector<uint8_t> data;
};

// A receive waiting for its message; filled by the sender's thread under the group mutex.
struct PostedRecv {
  int source;
  int tag;
  void* data;
  size_t bytes;
  bool matched = false;
  std::string error;
};

struct Group {
  Group(int size, std::shared_ptr<AbortState> abort);

  const int size;
  const std::shared_ptr<AbortState> abort_state;
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::shared_ptr<Slot>> slots;   // by collective call number
  std::vector<std::deque<Message>> unexpected;       // by destination rank, arrival order
  std::vector<std::deque<std::shared_ptr<PostedRecv>>> posted;  // by receiving rank, post order

  // Throws Error when the world was aborted. Caller holds mu (abort_state has its own mutex).
  void throw_if_aborted();
  // Adds rank's contribution to call `seq`, creating the slot; wakes waiters. Caller holds mu.
  std::shared_ptr<Slot> join(uint64_t seq, int rank, Contribution part);
  // Called by each rank once it has taken its result; drops the slot after the last. Holds mu.
  void consume(uint64_t seq, Slot& slot);
};

// Fills slot.error if the ranks' contributions disagree (kind, root, size). Caller holds mu.
void check_slot(Slot& slot, uint64_t seq);

// Marks the world aborted and wakes every group.
void abort_world(const std::shared_ptr<AbortState>& state, const std::string& message);

// Does `source`/`tag` of a message satisfy a receive's selectors?
inline bool matches(int want_source, int want_tag, int source, int tag) {
  return (want_source == -1 || want_source == source) && (want_tag == -1 || want_tag == tag);
}

}  // namespace shardlm::comm::in_process
