#!/usr/bin/env bash
# Runs an MPI test program: run_mpi.sh NP PROGRAM [ARGS...]
# NP > 0: under `mpirun -np NP` with the environment of scripts/mpi_env.sh (transport from
# SHARDLM_MPI_TRANSPORT); NP = 0: PROGRAM alone (a singleton world of one rank).
# Exits 77 (ctest SKIP_RETURN_CODE) when mpirun or the requested transport is missing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
np=$1
shift
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin, see scripts/setup.sh)"
  exit 77
fi
. "$root/scripts/mpi_env.sh" || exit 1
if [ "${SHARDLM_MPI_TRANSPORT:-default}" = ucx ] && ! ompi_info --parsable 2>/dev/null | grep -q '^mca:pml:ucx:'; then
  echo "SKIP: this Open MPI has no UCX pml (ompi_info lists none)"
  exit 77
fi
limit=${SHARDLM_MPI_TIMEOUT:-100}
if [ "$np" = 0 ]; then
  exec timeout -k 5 "$limit" "$@"
fi
echo "+ mpirun -np $np $* (transport ${SHARDLM_MPI_TRANSPORT:-default})"
exec timeout -k 5 "$limit" mpirun -np "$np" "$@"
