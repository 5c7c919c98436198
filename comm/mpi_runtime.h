// Keeps MPI initialised while communicators use it (MPI_Init_thread on acquire, MPI_Finalize when
// the last holder lets go) and turns MPI return codes into shardlm::Error. Internal to comm/.
#pragma once

#include <memory>

#include <mpi.h>

namespace shardlm::comm {

class MpiRuntime {
 public:
  // The live runtime, initialising MPI if nobody has; throws Error when MPI was finalised.
  static std::shared_ptr<MpiRuntime> acquire(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int thread_level() const { return thread_level_; }
  int tag_upper_bound() const { return tag_ub_; }

 private:
  MpiRuntime() = default;
  bool owns_mpi_ = false;  // false when someone else initialised MPI (they finalise it)
  int thread_level_ = 0;
  int tag_ub_ = 32767;
};

// True between MPI_Init and MPI_Finalize.
bool mpi_is_active();

// Throws Error("<what> failed: <MPI error text>") unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* what);

}  // namespace shardlm::comm
