// The in-process communicator: the ranks of a "job" are threads of one process sharing state
// (mutex + condition variable), with the same semantics as the MPI communicator, including
// non-blocking operations, split, deterministic all-reduce and abort. Distributed logic is unit
// tested with it under plain ctest. It is also stricter than needed where MPI would misbehave:
// every collective mismatch (kind, blocking vs non-blocking, size, root) throws Error on all ranks.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"

namespace shardlm::comm {

// n communicators, element r being rank r; hand each to its own thread. Collectives complete on a
// rank once every rank has called them; sends are buffered (complete at once).
std::vector<std::unique_ptr<Communicator>> make_in_process_world(int n);

// Runs fn(rank's communicator) on n threads and joins them. If a rank throws, the world is
// aborted (so ranks blocked on it throw instead of hanging) and, after all threads ended, the
// first exception caught is rethrown (the other ranks' errors are usually its consequences).
void run_in_process(int n, const std::function<void(Communicator&)>& fn);

}  // namespace shardlm::comm
