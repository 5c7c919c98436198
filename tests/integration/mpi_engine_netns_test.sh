#!/usr/bin/env bash
# The engine across two "hosts" (network namespaces h1, h2, see scripts/netns_hosts.sh): coordinator
# + 2 workers placed on different hosts (--map-by node), logits of the golden prompts equal the single
# process (<= 5e-4 relative, same top-1) and greedy generation gives the same text.
# Usage: mpi_engine_netns_test.sh SHARDLM DATA_DIR WORK_DIR [tcp|ucx]. Exits 77 (skip) where
# namespaces cannot be created. Everything is torn down on exit, also on failure.
set -u
shardlm=$1; data=$2; work=$3; transport=${4:-tcp}
root=$(cd "$(dirname "$0")/../.." && pwd)
hosts="$root/scripts/netns_hosts.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
"$hosts" check || exit $?
exec 9>/tmp/shardlm-netns.lock
flock -w 300 9 || { echo "another namespace test holds /tmp/shardlm-netns.lock"; exit 1; }
export SHARDLM_NETNS_DIR
SHARDLM_NETNS_DIR=$(mktemp -d /tmp/shardlm-netns.XXXXXX)
rm -rf "$work"; mkdir -p "$work"
trap '"$hosts" down; rm -rf "$SHARDLM_NETNS_DIR" "$work"' EXIT
trap 'exit 1' INT TERM
"$hosts" down-stale
"$hosts" up 2 || exit 1
. "$root/scripts/mpi_env.sh"
args=$("$hosts" mpirun-args "$transport") || exit 1
set -e
for model in dense moe; do
  "$shardlm" logits --model "$data/$model" --tokens "@$data/$model/tokens_long.txt" --out "$work/single.npy" >/dev/null 2>&1
  # shellcheck disable=SC2086
  timeout -k 5 180 "$hosts" run mpirun -np 3 --map-by node $args "$shardlm" logits --model "$data/$model" \
    --tokens "@$data/$model/tokens_long.txt" --out "$work/mpi.npy" --chunk 9 >"$work/out" 2>"$work/err" \
    || { cat "$work/out" "$work/err"; exit 1; }
  printf '%s, 2 workers on 2 hosts (%s): ' "$model" "$transport"
  /usr/bin/python3 "$root/tests/support/compare_npy.py" "$work/mpi.npy" "$work/single.npy" 5e-4
done
"$shardlm" generate --model "$data/moe" --prompt "hello world" --max-tokens 16 --temperature 0 >"$work/a.txt" 2>/dev/null
# shellcheck disable=SC2086
timeout -k 5 180 "$hosts" run mpirun -np 3 --map-by node $args "$shardlm" generate --model "$data/moe" \
  --prompt "hello world" --max-tokens 16 --temperature 0 >"$work/b.txt" 2>"$work/err" || { cat "$work/err"; exit 1; }
cmp "$work/a.txt" "$work/b.txt"
echo "engine across 2 hosts ($transport): ok"
