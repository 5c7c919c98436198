// Shared state of the in-process communicators: rendezvous slots, mismatch checks, abort.
#include "comm/in_process_state.h"

#include "common/error.h"

namespace shardlm::comm::in_process {

const char* op_name(OpKind kind) {
  switch (kind) {
    case OpKind::barrier: return "barrier";
    case OpKind::ibarrier: return "ibarrier";
    case OpKind::broadcast: return "broadcast";
    case OpKind::ibroadcast: return "ibroadcast";
    case OpKind::all_reduce_f32: return "all_reduce_sum(float)";
    case OpKind::iall_reduce_f32: return "iall_reduce_sum(float)";
    case OpKind::all_reduce_f64: return "all_reduce_sum(double)";
    case OpKind::iall_reduce_f64: return "iall_reduce_sum(double)";
    case OpKind::all_gather: return "all_gather";
    case OpKind::gather: return "gather";
    case OpKind::gatherv: return "gatherv";
    case OpKind::split: return "split";
  }
  return "?";
}

bool has_root(OpKind kind) {
  return kind == OpKind::broadcast || kind == OpKind::ibroadcast || kind == OpKind::gather ||
         kind == OpKind::gatherv;
}

bool sizes_must_match(OpKind kind) {
  return kind != OpKind::gatherv && kind != OpKind::split && kind != OpKind::barrier &&
         kind != OpKind::ibarrier;
}

static const char* size_unit(OpKind kind) {
  switch (kind) {
    case OpKind::all_reduce_f32:
    case OpKind::iall_reduce_f32: return "float(s)";
    case OpKind::all_reduce_f64:
    case OpKind::iall_reduce_f64: return "double(s)";
    default: return "byte(s)";
  }
}

Group::Group(int n, std::shared_ptr<AbortState> abort)
    : size(n), abort_state(std::move(abort)), unexpected(n), posted(n) {}

void Group::throw_if_aborted() {
  std::lock_guard lock(abort_state->mu);
  if (abort_state->aborted) throw Error(abort_state->message);
}

std::shared_ptr<Slot> Group::join(uint64_t seq, int rank, Contribution part) {
  auto& slot = slots[seq];
  if (!slot) {
    slot = std::make_shared<Slot>();
    slot->parts.resize(size);
    slot->present.assign(size, false);
  }
  slot->parts[rank] = std::move(part);
  slot->present[rank] = true;
  ++slot->arrived;
  if (slot->arrived == size) cv.notify_all();
  return slot;
}

void Group::consume(uint64_t seq, Slot& slot) {
  if (++slot.consumed == size) slots.erase(seq);
}

void check_slot(Slot& slot, uint64_t seq) {
  if (slot.checked) return;
  slot.checked = true;
  const auto& first = slot.parts[0];
  for (size_t r = 1; r < slot.parts.size(); ++r) {
    const auto& p = slot.parts[r];
    if (p.kind != first.kind) {
      slot.error = fmt::format(
          "collective mismatch at call #{}: rank 0 called {}, rank {} called {} (every rank must "
          "call the same collectives in the same order; blocking and non-blocking do not match)",
          seq, op_name(first.kind), r, op_name(p.kind));
      return;
    }
    if (has_root(first.kind) && p.root != first.root) {
      slot.error = fmt::format("{}: ranks disagree on the root (rank 0: {}, rank {}: {})",
                               op_name(first.kind), first.root, r, p.root);
      return;
    }
    if (sizes_must_match(first.kind) && p.size != first.size) {
      slot.error = fmt::format("{}: ranks disagree on the size (rank 0: {} {}, rank {}: {} {})",
                               op_name(first.kind), first.size, size_unit(first.kind), r, p.size,
                               size_unit(first.kind));
      return;
    }
  }
}

void abort_world(const std::shared_ptr<AbortState>& state, const std::string& message) {
  std::vector<std::shared_ptr<Group>> groups;
  {
    std::lock_guard lock(state->mu);
    if (state->aborted) return;
    state->aborted = true;
    state->message = message;
    for (auto& weak : state->groups) {
      if (auto g = weak.lock()) groups.push_back(std::move(g));
    }
  }
  for (auto& g : groups) {
    std::lock_guard lock(g->mu);
    g->cv.notify_all();
  }
}

}  // namespace shardlm::comm::in_process
