#!/usr/bin/env bash
# Several "hosts" on one machine for multi-host MPI tests: network namespaces h1..hN, each with a
# veth0 (10.77.0.K/24) plugged into a bridge that lives in its own namespace (hbr), so nothing is
# added to the root namespace and only 10.77.0.0/24 addresses inside these namespaces are used.
# Needs root, iproute2 and util-linux (unshare).
#
#   netns_hosts.sh check            exit 0 if namespaces/veth/bridges work here, else 77 + reason
#   netns_hosts.sh up N             create h1..hN, /etc/netns/hK/hosts, the rsh agent and the
#                                   hostfile (in $SHARDLM_NETNS_DIR, default /tmp/shardlm-netns)
#   netns_hosts.sh down             remove everything `up` created (safe to repeat)
#   netns_hosts.sh down-stale       remove namespaces left by an earlier, killed `up` (those whose
#                                   /etc/netns/<ns>/hosts carries this script's marker)
#   netns_hosts.sh run CMD...       run CMD in h1 with hostname h1 (start mpirun this way)
#   netns_hosts.sh mpirun-args [tcp|ucx]   print mpirun options for these hosts
#
# SHARDLM_NETNS_PREFIX (default h) changes the namespace names.
set -u
prefix=${SHARDLM_NETNS_PREFIX:-h}
dir=${SHARDLM_NETNS_DIR:-/tmp/shardlm-netns}
bridge_ns=${prefix}br
subnet=10.77.0
marker="# made by shardlm scripts/netns_hosts.sh"

die() { echo "netns_hosts.sh: $*" >&2; exit 1; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

cmd_check() {
  if [ "$(id -u)" != 0 ]; then echo "SKIP: network namespaces need root"; exit 77; fi
  for tool in ip unshare; do
    command -v $tool >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
  done
  local probe=${prefix}probe$$ err
  if ! err=$(ip netns add "$probe" 2>&1); then echo "SKIP: cannot create a network namespace: $err"; exit 77; fi
  local ok=1
  ip -n "$probe" link add p0 type veth peer name p1 >/dev/null 2>&1 || { ok=0; err="no veth support"; }
  ip -n "$probe" link add b0 type bridge >/dev/null 2>&1 || { ok=0; err="no bridge support"; }
  ip netns exec "$probe" unshare --uts true >/dev/null 2>&1 || { ok=0; err="unshare --uts fails"; }
  ip netns del "$probe"
  if [ $ok = 0 ]; then echo "SKIP: $err"; exit 77; fi
}

cmd_up() {
  local n=${1:-}
  case "$n" in ''|*[!0-9]*) die "up needs a host count (1..250)";; esac
  [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "host count $n outside 1..250"
  [ -e "$dir/count" ] && die "hosts are already up (state in $dir); run 'down' first"
  for k in $(seq 1 "$n") br; do
    ns_exists "$prefix$k" && die "namespace $prefix$k already exists (left over? 'down' removes ours)"
  done
  mkdir -p "$dir"
  echo "$n" > "$dir/count"  # written first so that 'down' cleans up a half-made setup
  ip netns add "$bridge_ns" || die "cannot create namespace $bridge_ns"
  ip -n "$bridge_ns" link set lo up
  ip -n "$bridge_ns" link add br0 type bridge || die "cannot create the bridge"
  ip -n "$bridge_ns" link set br0 up
  local hosts_file="$dir/hosts"
  { echo "$marker"; echo "127.0.0.1 localhost"; for k in $(seq 1 "$n"); do echo "$subnet.$k $prefix$k"; done; } > "$hosts_file"
  : > "$dir/hostfile"
  for k in $(seq 1 "$n"); do
    local ns=$prefix$k
    ip netns add "$ns" || die "cannot create namespace $ns"
    ip -n "$ns" link set lo up
    ip link add veth0 netns "$ns" type veth peer name "v$k" netns "$bridge_ns" || die "cannot create the veth pair of $ns"
    ip -n "$bridge_ns" link set "v$k" master br0
    ip -n "$bridge_ns" link set "v$k" up
    ip -n "$ns" addr add "$subnet.$k/24" dev veth0
    ip -n "$ns" link set veth0 up
    mkdir -p "/etc/netns/$ns"
    cp "$hosts_file" "/etc/netns/$ns/hosts"
    echo "$ns slots=1" >> "$dir/hostfile"
  done
  cat > "$dir/rsh_agent.sh" <<AGENT
#!/bin/sh
# rsh agent for mpirun: [options] HOST COMMAND... runs COMMAND in namespace HOST as host HOST.
while [ \$# -gt 0 ]; do case "\$1" in -*) shift;; *) break;; esac; done
host=\$1
shift
case "\$host" in
  $prefix[0-9]*) ;;
  *) echo "rsh_agent: unknown host \$host" >&2; exit 1;;
esac
exec ip netns exec "\$host" unshare --uts sh -c "hostname \$host; \$*"
AGENT
  chmod +x "$dir/rsh_agent.sh"
  # The hosts can reach each other (h1 -> hN), nothing else is contacted.
  if command -v ping >/dev/null 2>&1; then
    ip netns exec "${prefix}1" ping -c 1 -W 2 "$subnet.$n" >/dev/null 2>&1 || die "$prefix$n does not answer from ${prefix}1"
  fi
  echo "netns_hosts: $n host(s) up: $(seq -s ' ' -f "$prefix%g" 1 "$n") on $subnet.0/24 (state in $dir)"
}

cmd_down() {
  local n=0
  [ -r "$dir/count" ] && n=$(cat "$dir/count")
  for k in $(seq 1 "$n"); do
    ns_exists "$prefix$k" && ip netns del "$prefix$k"
    rm -rf "/etc/netns/$prefix$k"
  done
  if [ "$n" -gt 0 ] && ns_exists "$bridge_ns"; then ip netns del "$bridge_ns"; fi
  rm -f "$dir/count" "$dir/hosts" "$dir/hostfile" "$dir/rsh_agent.sh"
  rmdir "$dir" 2>/dev/null || true
  return 0
}

cmd_down_stale() {
  local found=0 f ns
  for f in /etc/netns/"$prefix"[0-9]*/hosts; do
    [ -r "$f" ] && grep -qxF "$marker" "$f" || continue
    ns=$(basename "$(dirname "$f")")
    ns_exists "$ns" && ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
    found=1
  done
  if [ $found = 1 ] && ns_exists "$bridge_ns"; then ip netns del "$bridge_ns"; fi
  return 0
}

cmd_run() {
  [ -r "$dir/count" ] || die "no hosts are up (run 'up N' first)"
  [ $# -gt 0 ] || die "run needs a command"
  export SHARDLM_NETNS_HOSTFILE="$dir/hostfile" SHARDLM_NETNS_AGENT="$dir/rsh_agent.sh"
  exec ip netns exec "${prefix}1" unshare --uts sh -c "hostname ${prefix}1; exec \"\$@\"" sh "$@"
}

cmd_mpirun_args() {
  [ -r "$dir/count" ] || die "no hosts are up (run 'up N' first)"
  local common="--hostfile $dir/hostfile --mca plm_rsh_agent $dir/rsh_agent.sh --mca plm_rsh_no_tree_spawn 1"
  common="$common --mca oob_tcp_if_include veth0 --mca mpi_yield_when_idle 1"
  case "${1:-tcp}" in
    tcp) echo "$common --mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include veth0" ;;
    ucx) echo "$common --mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any -x UCX_TLS=tcp,self -x UCX_NET_DEVICES=veth0" ;;
    *) die "mpirun-args: transport '$1' is not tcp or ucx" ;;
  esac
}

sub=${1:-}
[ $# -gt 0 ] && shift
case "$sub" in
  check) cmd_check ;;
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  down-stale) cmd_down_stale ;;
  run) cmd_run "$@" ;;
  mpirun-args) cmd_mpirun_args "$@" ;;
  *) die "usage: netns_hosts.sh check | up N | down | down-stale | run CMD... | mpirun-args [tcp|ucx]" ;;
esac
