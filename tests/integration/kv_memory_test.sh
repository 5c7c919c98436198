#!/bin/sh
# `shardlm serve` sizes its KV cache to the memory it has and takes memory for it as it fills:
#  - coordinator + 2 workers of a tiny model asked for 4096 sequences at the model's full 262144
#    positions (terabytes of KV): the capacity is what 90% of the machine's available memory leaves
#    after the weights, said in the log, and the job serves a request;
#  - the KV pools are not committed up front: every rank stays far below its planned KV bytes;
#  - an explicit --kv-memory-per-worker names itself when even one block cannot fit.
# Usage: kv_memory_test.sh SHARDLM ROOT WORK_DIR
set -eu
shardlm=$1; root=$2; work=$3
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
rm -rf "$work"; mkdir -p "$work"
. "$root/tests/integration/serve_start.sh"
cleanup() { stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

"$shardlm" mkmodel --out "$work/tiny" --variant tiny-dense --seed 1 >/dev/null
start_cluster 3 "$work/tiny" "$work" --max-sequences 4096 --model-name tiny
grep "KV cache:" "$work/serve.err" | head -1
grep -q "KV cache: [0-9]* positions for all sequences (4096 x 262144 would need .* per worker, more than 90% of the .* of memory available on this machine less the weights (.* for each of 2 workers here))" "$work/serve.err" ||
  { echo "FAIL: no KV sizing line"; cat "$work/serve.err"; exit 1; }
kv=$(grep -o "worker 0: weights [^,]*, KV cache [^,]*" "$work/serve.err" | head -1)
echo "$kv"
out=$(curl -sS --max-time 60 "http://127.0.0.1:$HTTP_PORT/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model":"tiny","prompt":"Hello","max_tokens":8,"temperature":0}')
echo "$out" | grep -q '"completion_tokens":8' || { echo "FAIL: $out"; exit 1; }
for rank in 0 1 2; do
  pid=$(rank_pid $rank)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  echo "rank $rank: resident $((rss / 1024)) MiB"
  [ "$rss" -lt 1048576 ] || { echo "FAIL: rank $rank holds $rss KiB"; exit 1; }
done
stop_cluster

# A budget too small for one block of KV: refused, naming the option.
if "$shardlm" generate --model "$work/tiny" --prompt hi --kv-memory-per-worker 1KiB >"$work/small.out" 2>"$work/small.err"; then
  echo "FAIL: a 1 KiB KV budget was accepted"; exit 1
fi
grep -q "more than the budget of .* (--kv-memory-per-worker)" "$work/small.err" || { cat "$work/small.err"; exit 1; }
echo "KV sized to memory"
