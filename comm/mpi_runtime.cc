// MPI initialisation / finalisation guard and MPI error conversion.
#include "comm/mpi_runtime.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>

#include <spdlog/spdlog.h>

#include "common/error.h"

namespace shardlm::comm {
namespace {
std::mutex g_mu;
std::weak_ptr<MpiRuntime> g_runtime;
}  // namespace

bool mpi_is_active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  fail("{} failed: {} (MPI error {})", what, std::string(text, static_cast<size_t>(len)), rc);
}

std::shared_ptr<MpiRuntime> MpiRuntime::acquire(int* argc, char*** argv) {
  std::lock_guard lock(g_mu);
  if (auto live = g_runtime.lock()) return live;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) fail("MPI was already finalised in this process; it cannot be initialised again");
  std::shared_ptr<MpiRuntime> rt(new MpiRuntime());
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) {
    MPI_Query_thread(&rt->thread_level_);
  } else {
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &rt->thread_level_),
              "MPI_Init_thread");
    rt->owns_mpi_ = true;
  }
  if (rt->thread_level_ < MPI_THREAD_SERIALIZED) {
    spdlog::warn("MPI provides thread level {} (below MPI_THREAD_SERIALIZED): call MPI only from "
                 "the main thread", rt->thread_level_);
  }
  int* tag_ub = nullptr;
  int found = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found);
  if (found && tag_ub) rt->tag_ub_ = *tag_ub;
  g_runtime = rt;
  return rt;
}

MpiRuntime::~MpiRuntime() {
  if (!owns_mpi_ || !mpi_is_active()) return;
  int size = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (size > 1 && std::uncaught_exceptions() > 0) {
    // Finalize would wait for ranks that may be waiting for this one: the whole job ends instead,
    // when this process exits, so that whoever catches the exception (main) can print it first.
    std::fprintf(stderr, "shardlm: rank %d of %d is leaving with an exception; aborting the MPI "
                 "job\n", rank, size);
    std::fflush(stderr);
    std::atexit([] {
      std::fflush(nullptr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    });
    return;
  }
  MPI_Finalize();
}

}  // namespace shardlm::comm
