#!/usr/bin/env bash
# Launcher of the shardlm MPIJob (runs in the launcher pod, which is rank 0 — the coordinator).
#   launch.sh [MPIRUN_ARGS...] -- SHARDLM_ARGS...
# Waits until every worker listed in the MPI Operator's hostfile accepts ssh, writes a hostfile
# with this pod first (rank 0) and the workers after it (ranks 1..N, one slot each), then runs
# `mpirun -np N+1 MPIRUN_ARGS... shardlm SHARDLM_ARGS...` and exits with its status. If any rank
# exits, mpirun ends the whole job and the launcher Job restarts it (the state dir keeps batch jobs
# across restarts). SIGTERM / SIGINT are passed to the coordinator (rank 0), which stops the job.
# Environment: SHARDLM_WORKERS (worker count the release expects), SHARDLM_WORKER_WAIT_SECONDS,
# SHARDLM_FORWARD_ENV (names of variables to pass to every rank, space-separated),
# SHARDLM_MPI_INTERFACE, SHARDLM_MPI_TRANSPORT / SHARDLM_UCX_TLS / SHARDLM_UCX_NET_DEVICES (read by
# mpi_env.sh), OMPI_MCA_orte_default_hostfile (set by the MPI Operator); SHARDLM_BIN and
# SHARDLM_MPI_ENV_SCRIPT locate shardlm and scripts/mpi_env.sh (defaults: the image's paths).
set -euo pipefail

die() { echo "launch.sh: $*" >&2; exit 1; }

mpirun_args=()
found_separator=0
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; found_separator=1; break; fi
  mpirun_args+=("$1")
  shift
done
[ $found_separator = 1 ] || die "usage: launch.sh [MPIRUN_ARGS...] -- SHARDLM_ARGS..."
[ $# -gt 0 ] || die "no shardlm arguments after --"

workers=${SHARDLM_WORKERS:-}
case "$workers" in ''|*[!0-9]*) die "SHARDLM_WORKERS must be the worker count, got '$workers'";; esac
wait_s=${SHARDLM_WORKER_WAIT_SECONDS:-600}
operator_hostfile=${OMPI_MCA_orte_default_hostfile:-/etc/mpi/hostfile}
[ -r "$operator_hostfile" ] || die "no hostfile at $operator_hostfile (is this pod an MPIJob launcher?)"

hosts=$(awk 'NF > 0 && $1 !~ /^#/ { print $1 }' "$operator_hostfile")
count=$(printf '%s\n' "$hosts" | grep -c . || true)
[ "$count" = "$workers" ] || die "$operator_hostfile lists $count worker(s), the release expects $workers"

deadline=$(( $(date +%s) + wait_s ))
for host in $hosts; do
  until ssh -o BatchMode=yes -o ConnectTimeout=5 "$host" true 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || die "worker $host does not accept ssh after ${wait_s}s"
    sleep 2
  done
  echo "launch.sh: worker $host is up"
done

hostfile=${TMPDIR:-/tmp}/shardlm-hostfile
{
  echo "$(hostname) slots=1"
  for host in $hosts; do echo "$host slots=1"; done
} > "$hostfile"
# Replaces the operator's hostfile (a --hostfile next to a default hostfile would only filter it).
export OMPI_MCA_orte_default_hostfile="$hostfile"

# shellcheck source=/dev/null
. "${SHARDLM_MPI_ENV_SCRIPT:-/usr/local/share/shardlm/mpi_env.sh}"
forward=()
if [ -n "${SHARDLM_MPI_INTERFACE:-}" ]; then
  export OMPI_MCA_btl_tcp_if_include="$SHARDLM_MPI_INTERFACE" OMPI_MCA_oob_tcp_if_include="$SHARDLM_MPI_INTERFACE"
fi
for var in UCX_TLS UCX_NET_DEVICES UCX_WARN_UNUSED_ENV_VARS ${SHARDLM_FORWARD_ENV:-}; do
  if [ -n "${!var+set}" ]; then forward+=(-x "$var"); fi
done

echo "launch.sh: mpirun -np $((workers + 1)) (rank 0 coordinator on $(hostname), $workers worker(s))"
# When a rank dies mpirun ends the job with SIGTERM and, odls_base_sigkill_timeout seconds later,
# SIGKILL: the coordinator needs that long to notice (serve --worker-timeout) and to answer the clients
# of running requests "unavailable".
mpirun -np $((workers + 1)) --map-by slot --bind-to none --mca odls_base_sigkill_timeout "${SHARDLM_SIGKILL_TIMEOUT:-150}" \
  "${forward[@]}" "${mpirun_args[@]}" \
  "${SHARDLM_BIN:-/usr/local/bin/shardlm}" "$@" &
mpirun_pid=$!

# The pod's SIGTERM goes to rank 0 (the coordinator, a child of mpirun on this pod): it drains within
# --shutdown-grace and stops the workers. (mpirun passes a SIGTERM on to the ranks only after
# odls_base_sigkill_timeout, long after the pod's grace period.)
# shellcheck disable=SC2317  # run by the trap below
stop_coordinator() {
  local d key value ppid
  for d in /proc/[0-9]*; do
    # (read by the shell itself: a process forked per entry made the scan take seconds on a busy host)
    ppid=""
    while read -r key value; do
      if [ "$key" = "PPid:" ]; then ppid=$value; break; fi
    done 2>/dev/null < "$d/status"
    [ "$ppid" = "$mpirun_pid" ] || continue
    if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=0'; then
      echo "launch.sh: SIGTERM to the coordinator (pid ${d#/proc/})"
      kill -TERM "${d#/proc/}" 2>/dev/null && return 0
    fi
  done
  kill -TERM "$mpirun_pid" 2>/dev/null || true
}
trap stop_coordinator TERM INT
while :; do
  wait "$mpirun_pid" || true  # returns early when a signal is trapped
  kill -0 "$mpirun_pid" 2>/dev/null || break
done
status=0
wait "$mpirun_pid" || status=$?  # mpirun's exit status (the shell keeps it)
exit "$status"
