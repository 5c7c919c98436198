#!/bin/sh
# Soak: C clients (bench/soak_client.cc) with mixed prompt lengths, cancellations, dropped connections
# and refused requests for S seconds against `shardlm serve` as coordinator + 2 workers on the tiny
# golden model. Passes when the clients saw no unexpected error, every rank's resident memory stayed
# flat after the warm-up (the larger of 10% and 24 MB of growth between the second quarter of the run
# and its second half), and the cluster went back to idle with no KV block in use (metrics).
# Usage: soak_test.sh SHARDLM SOAK_CLIENT MODEL_DIR WORK_DIR SECONDS CLIENTS
# SHARDLM_SOAK_MESSAGE_TIMEOUT (default 30): seconds a running request may go without a message
# (longer for builds that run several times slower, e.g. under sanitizers).
set -eu
shardlm=$1
soak=$2
model=$3
work=$4
seconds=$5
clients=$6
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
. "$root/tests/integration/serve_start.sh"

rm -rf "$work"
mkdir -p "$work"
sampler=
trap '[ -z "$sampler" ] || kill "$sampler" 2>/dev/null; stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

start_cluster 3 "$model" "$work" --model-name tiny --host 127.0.0.1 --max-context 2048 --max-sequences 16 \
  --max-waiting 4096 --threads 1
ranks=$(pgrep -P "$CLUSTER_PID" | tr '\n' ' ')
# Resident memory of every rank every second: "elapsed pid kB".
t0=$(date +%s)
(
  while :; do
    now=$(( $(date +%s) - t0 ))
    for p in $ranks; do
      kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$p/status" 2>/dev/null) || true
      [ -z "$kb" ] || echo "$now $p $kb"
    done
    sleep 1
  done
) >"$work/rss.txt" &
sampler=$!

# Prompts of 1..150 words (up to ~800 tokens of the tiny tokenizer) + up to 48 tokens fit the context.
soak_status=0
"$soak" --server "127.0.0.1:$TCP_PORT" --clients "$clients" --seconds "$seconds" --max-prompt-words 150 \
  --report "$(( seconds / 6 > 5 ? seconds / 6 : 5 ))" --message-timeout "${SHARDLM_SOAK_MESSAGE_TIMEOUT:-30}" \
  >"$work/soak.txt" 2>&1 || soak_status=$?
cat "$work/soak.txt"
[ "$soak_status" -eq 0 ] || { echo "the soak client failed ($soak_status)"; echo "--- serve stderr (tail) ---"; tail -n 30 "$work/serve.err"; exit 1; }
kill "$sampler" 2>/dev/null || true
sampler=

# Back to idle: nothing running or waiting, no KV in use anywhere.
metric() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {print s + 0}'; }
i=0
while :; do
  running=$(metric shardlm_num_requests_running); waiting=$(metric shardlm_num_requests_waiting)
  usage=$(metric shardlm_kv_cache_usage_perc); used=$(metric shardlm_kv_blocks_used)
  [ "$running" = 0 ] && [ "$waiting" = 0 ] && [ "$usage" = 0 ] && [ "$used" = 0 ] && break
  i=$((i + 1))
  [ $i -lt 150 ] || { echo "not idle 30 s after the soak: running $running waiting $waiting kv usage $usage blocks used $used"; exit 1; }
  sleep 0.2
done
echo "idle after the soak: no request running or waiting, 0 KV blocks in use"

# Flat memory: per rank, the peak of the second half against the peak of the second quarter.
awk -v d="$seconds" '
  { t = $1; p = $2; kb = $3
    if (t >= d / 4 && t < d / 2 && kb > warm[p]) warm[p] = kb
    if (t >= d / 2 && t <= d && kb > late[p]) late[p] = kb }
  END {
    bad = 0; n = 0
    for (p in warm) {
      n++
      allowed = warm[p] * 0.10; if (allowed < 24576) allowed = 24576
      printf "rank pid %s: RSS %.1f MB after warm-up, %.1f MB at most in the second half (%+.1f MB)\n", p, warm[p] / 1024, late[p] / 1024, (late[p] - warm[p]) / 1024
      if (late[p] - warm[p] > allowed) bad = 1
    }
    if (n != 3) { print "resident memory samples of " n " ranks, expected 3"; bad = 1 }
    exit bad
  }' "$work/rss.txt" || { echo "resident memory grew during the soak"; exit 1; }
stop_cluster || { echo "serve did not stop cleanly on SIGTERM"; tail -n 30 "$work/serve.err"; exit 1; }
echo "soak ($clients clients, $seconds s): ok"
