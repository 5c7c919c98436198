#!/usr/bin/env bash
# Builds the project with sanitizers and runs the unit and integration tests under them
# (docs/reliability.md, "Sanitizers"):
#   scripts/sanitize.sh KIND [ctest arguments...]
# KIND: address = AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer, thread =
# ThreadSanitizer. Configures BUILD_DIR (default <repo>/build-san-KIND) with -DSHARDLM_SANITIZE=KIND,
# builds it, then runs `ctest -L unit` and the integration tests (labels integration and mpi; the
# cluster tests start the sanitized `shardlm` under mpirun). Extra arguments are given to both ctest
# runs. Environment:
#   CC, CXX           compilers (default gcc / g++; clang works too)
#   BUILD_DIR         the build folder
#   JOBS=2            parallel compile jobs
#   SANITIZE_BUILD=1  0 skips configure and build (reuse BUILD_DIR as it is)
#   SANITIZE_UNIT=1   0 skips the unit tests (only the integration tests run)
#   SANITIZE_EXCLUDE  ctest -E regular expression of integration tests to leave out (default: the
#                     Slurm and long-context tests, for thread also the UCX ones; the slow label is
#                     always left out)
#   SANITIZE_UNIT_EXCLUDE  ctest -E regular expression of unit tests to leave out (default: none for
#                     address; for thread the tests that only run OpenMP compute kernels, see below)
# Every sanitizer report is written to BUILD_DIR/sanitize/logs/ (also those of a process whose failure
# a test expects, e.g. `! shardlm ...`); the script prints them and exits non-zero when there is one
# or when a test failed.
set -uo pipefail
kind=${1:?usage: scripts/sanitize.sh address|thread [ctest arguments...]}
shift
case "$kind" in
  address|thread) ;;
  *) echo "sanitize.sh: KIND must be address or thread, not '$kind'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-san-$kind}
export CC=${CC:-gcc} CXX=${CXX:-g++}

if [ "${SANITIZE_BUILD:-1}" = 1 ]; then
  # -O1 -g: usable stack traces at a bearable speed. The sanitizer flags come from SHARDLM_SANITIZE
  # (CMakeLists.txt): -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer,
  # or -fsanitize=thread -fno-omit-frame-pointer.
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
    -DSHARDLM_SANITIZE="$kind" || exit 2
  ninja -C "$build" -j"${JOBS:-2}" || exit 2
fi

san=$build/sanitize
logs=$san/logs
rm -rf "$logs"
mkdir -p "$logs"

# Suppressions: only for third-party code that is not built with the sanitizer.
cat > "$san/lsan.supp" <<'EOF'
# Open MPI and the libraries under it (PMIx, hwloc, libevent, UCX) keep allocations made in
# MPI_Init for the life of the process and do not free all of them in MPI_Finalize; they are not
# built with LeakSanitizer and are no leak of shardlm (every leak with one of these libraries on its
# allocation stack is suppressed, shardlm's own allocations are not).
leak:libopen-pal.so
leak:libopen-rte.so
leak:libmpi.so
leak:libpmix.so
leak:libhwloc.so
leak:libevent
leak:libucs.so
leak:libucp.so
leak:libuct.so
EOF
cat > "$san/tsan.supp" <<'EOF'
# libgomp (GCC's OpenMP runtime, also used by oneDNN) is not built with ThreadSanitizer: its
# barriers and thread pool synchronise with atomics and futexes that TSan does not see, so every
# access made inside an OpenMP parallel region looks racy against the thread that set up the data.
# Races whose stacks run through libgomp are therefore suppressed; OpenMP code is checked by the
# address run only. Threads the project starts itself (std::thread, Boost.Asio) are checked.
race:libgomp.so
# Open MPI's progress and event threads (libevent, PMIx, the ob1/vader/tcp components) are likewise
# uninstrumented.
race:libopen-pal.so
race:libopen-rte.so
race:libmpi.so
race:libpmix.so
race:libevent
race:mca_
# Open MPI's initialisation (libevent, the PMIx client component) hands its locks between its own
# uninstrumented threads in ways TSan reads as "double lock of a mutex" inside MPI_Init, whatever
# the application does (and, from the same hand-overs, lock-order inversions): mutex and deadlock
# reports with these libraries on the stack are theirs.
mutex:libevent
mutex:mca_
mutex:libpmix.so
mutex:libopen-pal.so
mutex:libopen-rte.so
mutex:libmpi.so
deadlock:libevent
deadlock:mca_
deadlock:libpmix.so
deadlock:libopen-pal.so
deadlock:libopen-rte.so
deadlock:libmpi.so
EOF

common="log_path=$logs/$kind:log_exe_name=1:halt_on_error=1"
export UBSAN_OPTIONS="$common:print_stacktrace=1"
# fast_unwind_on_malloc=0: allocation stacks unwound through libraries built without frame pointers
# (Open MPI), so that the leak suppressions above can match them.
export ASAN_OPTIONS="$common:detect_leaks=1:fast_unwind_on_malloc=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$san/lsan.supp:print_suppressions=0"
# Open MPI keeps its components loaded, so that addresses in them can still be symbolised at exit.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export TSAN_OPTIONS="$common:second_deadlock_stack=1:suppressions=$san/tsan.supp"
# UCX replaces malloc/mmap through its own hooks, which fight the sanitizers' interceptors.
export UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none

# Sanitized code runs 2-10 times slower: the tests' own TIMEOUT properties are multiplied by
# SANITIZE_TIMEOUT_SCALE (default 3) in the generated CTestTestfile.cmake files (marked, so that a
# second run does not scale them again; a new cmake run writes them afresh).
scale=${SANITIZE_TIMEOUT_SCALE:-3}
find "$build" -name CTestTestfile.cmake -print0 | while IFS= read -r -d '' f; do
  grep -q '^# sanitize.sh: timeouts scaled' "$f" && continue
  perl -pi -e 's/\bTIMEOUT "(\d+)"/"TIMEOUT \"" . ($1 * '"$scale"') . "\""/ge' "$f"
  echo "# sanitize.sh: timeouts scaled by $scale" >> "$f"
done

# The soak's 64 clients wait longer for a sanitized server's messages (30 s otherwise).
export SHARDLM_SOAK_MESSAGE_TIMEOUT=${SHARDLM_SOAK_MESSAGE_TIMEOUT:-180}

default_exclude='^(slurm_|long_context_)'
exclude=${SANITIZE_EXCLUDE:-$default_exclude}
unit_exclude=${SANITIZE_UNIT_EXCLUDE:-}
if [ "$kind" = thread ]; then
  # ThreadSanitizer cannot see libgomp's synchronisation (GCC's OpenMP runtime is not instrumented),
  # so every OpenMP parallel region would look racy (and the reports, even suppressed, cost so much
  # that a test never ends). Under TSan, OpenMP therefore runs one thread whatever a test or command
  # asks for (OMP_THREAD_LIMIT=1), and the unit tests of the compute kernels and the whole-model
  # numerics — OpenMP only, no threads of the project's own — are left out (they run under
  # ASan/UBSan, and their bit-exactness across thread counts is tested in every build). What TSan
  # checks: the servers (Asio), the scheduler, batch jobs, metrics, the engine's communication and
  # the worker runtime.
  export OMP_THREAD_LIMIT=1
  # UCX crashes (SIGSEGV in its initialisation) in a TSan-instrumented process; the UCX variants of
  # the MPI tests run under ASan, and their shared-memory/TCP twins run here.
  [ -n "${SANITIZE_EXCLUDE:-}" ] || exclude="$default_exclude|_ucx\$"
  if [ -z "${SANITIZE_UNIT_EXCLUDE:-}" ]; then
    unit_exclude='^(Attention|CpuFeatures|Elementwise|LinearOneDnn|LinearOwn|MoeRoute|QuantizedLinear|Rope|CheckpointSpeed)\.|LoadsQuickly|GoldenHidden|GoldenLogits|QuantizedAccuracy'
  fi
fi
status=0
cd "$build" || exit 2
echo "== unit tests under $kind"
if [ "${SANITIZE_UNIT:-1}" = 0 ]; then
  echo "(skipped: SANITIZE_UNIT=0)"
elif [ -n "$unit_exclude" ]; then
  echo "(excluded: $unit_exclude)"
  ctest -L unit -E "$unit_exclude" --output-on-failure --timeout 900 "$@" || status=1
else
  ctest -L unit --output-on-failure --timeout 900 "$@" || status=1
fi
echo "== integration tests under $kind (excluded: $exclude)"
ctest -L 'integration|mpi' -LE 'slurm|slow' -E "$exclude" --output-on-failure --timeout 1800 "$@" || status=1

reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "== sanitizer reports ($(echo "$reports" | wc -l)) in $logs"
  for r in $reports; do
    echo "--- $r"
    head -n 60 "$r"
  done
  status=1
else
  echo "== no sanitizer report"
fi
exit $status
