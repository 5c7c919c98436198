// mpi_comm_test throw: an exception that leaves a rank while the world communicator is alive must
// end the whole job (the MPI runtime guard calls MPI_Abort) instead of leaving the others waiting.
#include "comm/mpi_world.h"
#include "common/error.h"
#include "tests/mpi/mpi_test_util.h"

namespace shardlm::comm::mpitest {

int run_throw(int* argc, char*** argv, const Args&) {
  auto world = make_mpi_world(argc, argv);
  if (world->size() > 1 && world->rank() == 1) throw Error("rank 1 fails on purpose");
  world->barrier();  // rank 1 never arrives
  return world->size() > 1 ? 3 : 0;  // not reached in a job of several ranks
}

}  // namespace shardlm::comm::mpitest
