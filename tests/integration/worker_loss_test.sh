#!/bin/sh
# Losing a rank of a serving cluster loses no accepted batch line. `shardlm serve` runs as one MPI job
# (coordinator + 2 workers) on the tiny golden model with a --state-dir and --worker-timeout 5; a
# batch job is submitted and, while it runs (with an interactive request streaming at the same time),
# one rank is lost. The job ends by itself within a bounded time, the cluster is started again on the
# same state dir, and the batch completes with every line exactly once and no failed line.
#   worker-hang:      a worker stops (SIGSTOP: a frozen or unreachable host). The coordinator notices
#                     within --worker-timeout, fails the streaming request as unavailable and ends the
#                     job with exit status 75.
#   coordinator-hang: the coordinator stops; the workers notice its silence within --worker-timeout
#                     and end the job with exit status 75.
#   worker-kill:      a worker is killed (SIGKILL); mpirun ends the job, giving the ranks 15 s
#                     (--mca odls_base_sigkill_timeout 15) in which the coordinator fails the stream as
#                     unavailable.
#   coordinator-kill: the coordinator is killed; mpirun (defaults) ends the job at once.
# Skips (77) without mpirun.
# Usage: worker_loss_test.sh SHARDLM MODEL_DIR WORK_DIR MODE
set -eu
shardlm=$1
model=$2
work=$3
mode=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
. "$root/tests/integration/serve_start.sh"

rm -rf "$work"
mkdir -p "$work"
trap 'stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

state="$work/state"
lines=400
case "$mode" in
  worker-kill) MPIRUN_ARGS="--mca odls_base_sigkill_timeout 15" ;;
  worker-hang|coordinator-hang|coordinator-kill) MPIRUN_ARGS= ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
start() {
  for f in serve.out serve.err; do [ ! -f "$work/$f" ] || mv "$work/$f" "$work/$f.before"; done
  start_cluster 3 "$model" "$work" --model-name tiny --host 127.0.0.1 --max-context 65536 --max-sequences 4 \
    --batch-sequences 2 --threads 1 --state-dir "$state" --shutdown-grace 5 --worker-timeout 5
}
client() { "$shardlm" client --server "127.0.0.1:$TCP_PORT" "$@"; }
completed() {
  client jobs status "$1" | sed -n 's/^lines: [0-9]* total, \([0-9]*\) completed.*/\1/p'
}

i=0
while [ $i -lt $lines ]; do
  printf '{"custom_id":"line-%d","method":"POST","url":"/v1/completions","body":{"model":"tiny","prompt":"Count %d","max_tokens":24,"temperature":0}}\n' \
    "$i" "$i" >>"$work/input.jsonl"
  i=$((i + 1))
done

t0=$(date +%s)
start
job=$(client jobs submit "$work/input.jsonl" --endpoint /v1/completions)
i=0
while [ "$(completed "$job")" -lt 8 ]; do
  i=$((i + 1)); [ $i -lt 1200 ] || { echo "the job made no progress"; exit 1; }
  sleep 0.05
done
before=$(completed "$job")
[ "$before" -lt "$lines" ] || { echo "the job finished before a rank could be killed"; exit 1; }
# An interactive request streaming while the rank dies: long enough (up to 60000 tokens) that it is
# still streaming when the rank is lost, on any machine; the rank is lost once its first tokens arrived.
curl -sN --max-time 120 "http://127.0.0.1:$HTTP_PORT/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model":"tiny","prompt":"A long story","max_tokens":60000,"stream":true,"temperature":0,"ignore_eos":true}' >"$work/stream.txt" 2>&1 &
curl_pid=$!
i=0
until grep -q '^data: ' "$work/stream.txt" 2>/dev/null; do
  kill -0 "$curl_pid" 2>/dev/null || { echo "the stream ended before a rank was lost:"; tail -c 600 "$work/stream.txt"; exit 1; }
  i=$((i + 1)); [ $i -lt 1500 ] || { echo "no streamed tokens within 30 s"; exit 1; }
  sleep 0.02
done
case "$mode" in
  coordinator-*) victim=0 ;;
  *) victim=2 ;;
esac
case "$mode" in
  *-hang) signal=STOP ;;
  *) signal=KILL ;;
esac
pid=$(rank_pid "$victim") || { echo "no rank $victim"; exit 1; }
echo "job $job: $before/$lines done; SIG$signal to rank $victim (pid $pid)"
kill -"$signal" "$pid"
killed_at=$(date +%s)
mpirun_pid=$CLUSTER_PID
CLUSTER_PID=
status=0
# The job must end by itself: within --worker-timeout (5 s) plus the heartbeat and MPI's teardown.
i=0
while kill -0 "$mpirun_pid" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 450 ]; then
    echo "the MPI job still runs 90 s after rank $victim was lost"; tail -n 30 "$work/serve.err"
    kill -KILL $(ps -o pid= -s "$mpirun_pid") 2>/dev/null; exit 1
  fi
  sleep 0.2
done
wait "$mpirun_pid" || status=$?
ended=$(( $(date +%s) - killed_at ))
echo "the MPI job ended $ended s after the kill with status $status"
wait "$curl_pid" 2>/dev/null || true
tail -n 12 "$work/serve.err"
[ "$status" -ne 0 ] || { echo "mpirun exited 0 after a rank was lost"; exit 1; }
case "$mode" in
  worker-hang|coordinator-hang)
    [ "$status" -eq 75 ] || { echo "expected exit status 75 (a rank lost), got $status"; exit 1; } ;;
esac
case "$mode" in
  worker-*)
    grep -q "did not answer within 5 s" "$work/serve.err" || { echo "no worker-lost message"; exit 1; }
    # The streaming client was told why its request ended.
    grep -q '"code":"unavailable"' "$work/stream.txt" || {
      echo "the stream did not end with an 'unavailable' error:"; tail -c 600 "$work/stream.txt"; exit 1; }
    ;;
  coordinator-hang)
    grep -q "heard nothing from the coordinator" "$work/serve.err" || { echo "no coordinator-lost message"; exit 1; } ;;
esac

start
client jobs status "$job" --wait >"$work/final.txt"
cat "$work/final.txt"
grep -q "^state: completed$" "$work/final.txt" || exit 1
grep -q "^lines: $lines total, $lines completed, 0 failed" "$work/final.txt" || exit 1
client jobs results "$job" --out "$work/output.jsonl"
n=$(wc -l <"$work/output.jsonl")
u=$(sed -n 's/.*"custom_id":"\(line-[0-9]*\)".*/\1/p' "$work/output.jsonl" | sort -u | wc -l)
[ "$n" -eq "$lines" ] && [ "$u" -eq "$lines" ] || { echo "$n result lines, $u distinct custom_ids, expected $lines"; exit 1; }
stop_cluster || { echo "serve did not stop cleanly on SIGTERM"; tail -n 30 "$work/serve.err"; exit 1; }
echo "worker loss ($mode): ok in $(( $(date +%s) - t0 )) s; the job ended $ended s after the kill"
