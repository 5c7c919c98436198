#!/usr/bin/env bash
# mpi_comm_test across two "hosts" (network namespaces h1, h2 on 10.77.0.0/24, see
# scripts/netns_hosts.sh): netns_test.sh PROGRAM [tcp|ucx]. Everything is torn down on exit, also
# on failure. Exits 77 (skip) where namespaces cannot be created or mpirun is missing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
prog=$1
transport=${2:-tcp}
hosts="$root/scripts/netns_hosts.sh"
if ! command -v mpirun >/dev/null 2>&1; then echo "SKIP: mpirun not found"; exit 77; fi
"$hosts" check || exit $?
# One such test at a time on this machine (the namespace names are fixed).
exec 9>/tmp/shardlm-netns.lock
flock -w 150 9 || { echo "netns_test: another namespace test holds /tmp/shardlm-netns.lock"; exit 1; }
export SHARDLM_NETNS_DIR
SHARDLM_NETNS_DIR=$(mktemp -d /tmp/shardlm-netns.XXXXXX)
trap '"$hosts" down; rm -rf "$SHARDLM_NETNS_DIR"' EXIT
trap 'exit 1' INT TERM
"$hosts" down-stale  # a namespace test killed earlier may have left its hosts behind
"$hosts" up 2 || exit 1
. "$root/scripts/mpi_env.sh"
args=$("$hosts" mpirun-args "$transport") || exit 1
echo "+ mpirun -np 2 $args $prog check --expect-size 2 --expect-hosts 2"
# shellcheck disable=SC2086
timeout -k 5 120 "$hosts" run mpirun -np 2 $args "$prog" check --expect-size 2 --expect-hosts 2
