#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying shardlm-slurm and for the Slurm test:
# munged, slurmctld and slurmd with their keys, sockets, state, logs and pid files under DIR,
# non-default ports, this host as the only node (all its CPUs). Needs root and the Debian packages
# slurm-wlm and munge (`install` adds them).
#
#   local-cluster.sh install       apt-get install slurm-wlm munge (if missing)
#   local-cluster.sh up DIR        start the cluster; then `export SLURM_CONF=DIR/slurm.conf`
#   local-cluster.sh down DIR      cancel its jobs and stop the daemons (by their pid files)
#   local-cluster.sh logs DIR      print the daemons' logs
set -uo pipefail

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

cmd_install() {
  if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "installing slurm-wlm and munge needs root"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -q >/dev/null || ! apt-get -o DPkg::Lock::Timeout=300 install -y -q slurm-wlm munge >/dev/null; then
    die "apt-get install slurm-wlm munge failed"
  fi
}

free_port() {  # a TCP port nothing listens on, from 20000..29999
  local p k
  for k in $(seq 1 50); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM + k) % 10000 ))
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

wait_for() {  # SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2 k
  shift 2
  for k in $(seq 1 $((limit * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not come up in ${limit}s (logs: local-cluster.sh logs DIR)"
}

cmd_up() {
  local dir=${1:-}
  [ -n "$dir" ] || die "up needs a folder"
  [ "$(id -u)" = 0 ] || die "the local cluster runs its daemons as root"
  for tool in munged slurmctld slurmd scontrol sinfo ss; do
    command -v $tool >/dev/null 2>&1 || die "$tool not found (local-cluster.sh install)"
  done
  [ -e "$dir/slurm.conf" ] && die "$dir already holds a cluster (down first)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 0755 "$dir"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
  chmod 0700 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" || die "munged did not start (see $dir/munge/munged.log)"
  wait_for 10 munged test -S "$dir/munge/munge.socket"

  local host cpus mem_mib ctld_port slurmd_port
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mib=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)
  cat > "$dir/slurm.conf" <<EOF
# Single-node cluster made by deploy/slurm/local-cluster.sh
ClusterName=shardlm-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MailProg=/bin/true
KillWait=10
MinJobAge=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES State=UP OverSubscribe=FORCE:4 MaxTime=INFINITE
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -c -f "$SLURM_CONF" || die "slurmctld did not start (see $dir/slurmctld.log)"
  wait_for 20 slurmctld scontrol ping
  slurmd -f "$SLURM_CONF" || die "slurmd did not start (see $dir/slurmd.log)"
  wait_for 30 "node $host" sh -c "sinfo -h -n '$host' -o %T | grep -Eq '^(idle|mixed|allocated)'"
  echo "local Slurm cluster up: node $host ($cpus CPUs); export SLURM_CONF=$SLURM_CONF"
}

stop_pidfile() {  # PIDFILE NAME: TERM, then KILL after 10 s, the daemon whose pid the file holds
  local file=$1 name=$2 pid k
  [ -r "$file" ] || return 0
  pid=$(cat "$file")
  case "$pid" in ''|*[!0-9]*) return 0 ;; esac
  # Only a process that still is this daemon (pids are reused).
  grep -q "$name" "/proc/$pid/comm" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for k in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
}

cmd_down() {
  local dir=${1:-}
  [ -n "$dir" ] || die "down needs a folder"
  [ -d "$dir" ] || return 0
  if [ -r "$dir/slurm.conf" ] && [ -r "$dir/slurmctld.pid" ]; then
    SLURM_CONF="$dir/slurm.conf" timeout 20 scancel --cluster=shardlm-local --full --user=root 2>/dev/null \
      || SLURM_CONF="$dir/slurm.conf" timeout 20 scancel --full --user=root 2>/dev/null || true
    # Give the jobs' processes KillWait to end before slurmd goes.
    for k in $(seq 1 60); do
      SLURM_CONF="$dir/slurm.conf" timeout 5 squeue -h 2>/dev/null | grep -q . || break
      sleep 0.5
    done
  fi
  stop_pidfile "$dir/slurmd.pid" slurmd
  stop_pidfile "$dir/slurmctld.pid" slurmctld
  stop_pidfile "$dir/munge/munged.pid" munged
  rm -f "$dir/slurm.conf"
  return 0
}

cmd_logs() {
  local dir=${1:-} f
  for f in "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/munge/munged.log"; do
    [ -r "$f" ] && { echo "==> $f"; tail -n 60 "$f"; }
  done
  return 0
}

sub=${1:-}
[ $# -gt 0 ] && shift
case "$sub" in
  install) cmd_install ;;
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  logs) cmd_logs "$@" ;;
  *) die "usage: local-cluster.sh install | up DIR | down DIR | logs DIR" ;;
esac
