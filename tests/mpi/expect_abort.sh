#!/usr/bin/env bash
# expect_abort.sh PROGRAM: `PROGRAM throw` under mpirun -np 2 must fail promptly with the runtime
# guard's message and the exception's own (one rank's exception ends the whole job). Exit 77
# without mpirun.
set -u
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
SHARDLM_MPI_TIMEOUT=60 "$here/run_mpi.sh" 2 "$1" throw > "$log" 2>&1
rc=$?
cat "$log"
[ $rc = 77 ] && exit 77
elapsed=$(( $(date +%s) - start ))
if [ $rc = 0 ] || [ $rc = 124 ] || [ $rc = 137 ]; then echo "FAIL: exit code $rc (expected an aborted job)"; exit 1; fi
grep -q "rank 1 of 2 is leaving with an exception; aborting the MPI job" "$log" || { echo "FAIL: no abort message"; exit 1; }
grep -q "rank 1 fails on purpose" "$log" || { echo "FAIL: the exception's message was not printed"; exit 1; }
echo "job aborted after ${elapsed} s with exit code $rc"
