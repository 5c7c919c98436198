// The MPI communicator: make_mpi_world() initialises MPI (once per process) and returns the
// world communicator. Works under mpirun / srun and, as a world of size 1, without a launcher.
//
// Threads: MPI is initialised with MPI_THREAD_SERIALIZED. Any thread may call into a
// communicator, but never two threads at once (across all communicators of the process): the
// engine funnels its MPI traffic through one thread at a time, and SERIALIZED avoids the locking
// cost of MPI_THREAD_MULTIPLE while, unlike FUNNELED, not tying MPI to the main thread.
//
// Lifetime: every communicator (the world and those split from it) keeps MPI alive; MPI_Finalize
// runs when the last one is destroyed. If that happens while an exception unwinds the stack in a
// job of several ranks, MPI_Abort is called instead, so the other ranks cannot hang waiting for
// this one. MPI cannot be initialised again after it was finalised.
//
// Blocking collectives are the MPI ones and busy-poll; waiting for work should use a
// non-blocking call and Communicator::wait, which sleeps while idle. Blocking and non-blocking
// collectives never match each other (MPI rule): if workers wait with ibroadcast, the root must
// call ibroadcast too.
#pragma once

#include <cstddef>
#include <memory>

#include "comm/communicator.h"

namespace shardlm::comm {

struct MpiOptions {
  // Before each blocking collective, one extra small all-reduce checks that every rank passes the
  // same operation, size and root; on a mismatch every rank throws Error (instead of undefined
  // behaviour). Also switched on by the environment variable SHARDLM_COMM_VERIFY=1.
  bool verify_collectives = false;
  // all_reduce_sum strategy (both give the same bits): while ranks x bytes-per-rank is at most
  // this, one all-gather then a local sum in rank order; above it, an all-to-all of chunks, a sum
  // of its own chunk in rank order by each rank, then an all-gather of the chunks.
  size_t gather_reduce_max_bytes = 64 * 1024;
};

// Initialises MPI on first use (MPI_Init_thread with MPI_THREAD_SERIALIZED; argc/argv may be
// null) and returns a communicator over all ranks (a duplicate of MPI_COMM_WORLD). Later calls
// return further duplicates while MPI is alive.
std::unique_ptr<Communicator> make_mpi_world(int* argc, char*** argv, const MpiOptions& options = {});

}  // namespace shardlm::comm
