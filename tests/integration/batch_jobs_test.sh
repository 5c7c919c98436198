#!/bin/sh
# Batch jobs survive a crash of the whole cluster. `shardlm serve` runs as one MPI job (coordinator + 2
# workers) on the tiny golden model with a --state-dir; a 400-line batch is submitted, the whole MPI job
# is killed with SIGKILL (mpirun and every rank, by session) while the batch runs, and the
# cluster is started again on the same state dir: the batch must resume where the state says and
# complete with exactly 400 results, unique custom_ids, each equal to the same request sent directly.
#   openai: through the official OpenAI client (tests/support/batch/batch_test.mjs): files, batches,
#           output and error files, unreadable uploads, malformed lines, latency while a batch runs,
#           cancel.
#   native: through the TCP protocol and `shardlm client jobs` (submit, status --wait, list, results,
#           cancel), plus the state dir's lock against a second coordinator.
# Skips (77) without mpirun, node or tests/support/openai/node_modules (npm ci there).
# Usage: batch_jobs_test.sh SHARDLM MODEL_DIR WORK_DIR openai|native
set -eu
shardlm=$1
model=$2
work=$3
mode=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
script="$root/tests/support/batch/batch_test.mjs"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
command -v node >/dev/null 2>&1 || { echo "SKIP: node not found"; exit 77; }
[ -f "$root/tests/support/openai/node_modules/openai/package.json" ] || {
  echo "SKIP: tests/support/openai/node_modules is missing (run npm ci there)"; exit 77; }
. "$root/tests/integration/serve_start.sh"

rm -rf "$work"
mkdir -p "$work"
trap 'stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

key=sk-batch-test-key
printf '%s\n' "$key" >"$work/keys"
state="$work/state"
start() {
  # A restart must not read the killed cluster's ready line: keep its logs aside.
  for f in serve.out serve.err; do [ ! -f "$work/$f" ] || mv "$work/$f" "$work/$f.before"; done
  start_cluster 3 "$model" "$work" --model-name tiny --host 127.0.0.1 --max-context 512 --max-sequences 4 \
    --batch-sequences 2 --threads 1 --api-key-file "$work/keys" --state-dir "$state" --shutdown-grace 5
}
node_step() {
  timeout 240 node "$script" "$@" --base-url "http://127.0.0.1:$HTTP_PORT/v1" --api-key "$key" --model tiny || {
    echo "--- serve stderr (tail) ---"; tail -n 30 "$work/serve.err"; exit 1; }
}
client() {
  "$shardlm" client --server "127.0.0.1:$TCP_PORT" --api-key "$key" "$@"
}
# SIGKILL to mpirun and every rank at once. Open MPI puts each rank in a process group of its own, but
# all of them stay in the session start_cluster's setsid made (its id is mpirun's pid).
kill_cluster() {
  sid=$CLUSTER_PID
  CLUSTER_PID=
  kill -KILL $(ps -o pid= -s "$sid")
  wait "$sid" 2>/dev/null || true
  i=0
  while [ -n "$(ps -o pid=,stat= -s "$sid" | grep -v ' Z')" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "processes of the killed cluster remain"; exit 1; }
    sleep 0.1
  done
  echo "killed the whole MPI job (SIGKILL to mpirun and every rank)"
}
# Lines with a result row in the database (read with Python's sqlite3; the server may be running).
result_rows() {
  /usr/bin/python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('SELECT COUNT(*), COUNT(DISTINCT line_no) FROM results WHERE job_id=?', (sys.argv[2],)).fetchone())" \
    "$state/jobs.sqlite3" "$1"
}

# Enough lines that the batch is still running when the cluster is killed, on any machine.
lines=400
t0=$(date +%s)
if [ "$mode" = openai ]; then
  start
  node_step make-input "$work/input.jsonl" "$lines" /v1/chat/completions
  node_step openai-submit "$work/input.jsonl" "$work/batch.json"
  kill_cluster
  start
  grep "batch jobs:" "$work/serve.err" || true
  node_step openai-finish "$work/input.jsonl" "$work/batch.json"
  batch=$(sed -n 's/.*"batch":"\([^"]*\)".*/\1/p' "$work/batch.json")
  rows=$(result_rows "$batch")
  [ "$rows" = "($lines, $lines)" ] || { echo "result rows of $batch: $rows, expected ($lines, $lines)"; exit 1; }
else
  start
  node_step make-input "$work/input.jsonl" "$lines" /v1/completions
  # Batch jobs need the state dir's lock: a second coordinator on the same folder is refused.
  if "$shardlm" serve --model "$model" --port 0 --http-port 0 --metrics-port -1 --threads 1 --max-context 512 \
      --state-dir "$state" >"$work/second.out" 2>"$work/second.err"; then
    echo "a second serve started on the same state dir"; exit 1
  fi
  grep -q "is in use by another shardlm serve" "$work/second.err" || { cat "$work/second.err"; exit 1; }
  job=$(client jobs submit "$work/input.jsonl" --endpoint /v1/completions --metadata test=native)
  case "$job" in batch_*) ;; *) echo "submit printed '$job'"; exit 1 ;; esac
  i=0
  while :; do
    done_before=$(client jobs status "$job" | sed -n 's/^lines: [0-9]* total, \([0-9]*\) completed.*/\1/p')
    done_before=${done_before:-0}
    [ "$done_before" -lt 20 ] || break
    i=$((i + 1)); [ $i -lt 1200 ] || { echo "the job made no progress"; exit 1; }
    sleep 0.05
  done
  [ "$done_before" -lt "$lines" ] || { echo "the job finished before the cluster could be killed"; exit 1; }
  echo "job $job: $done_before/$lines done before the kill"
  kill_cluster
  start
  grep "batch jobs:" "$work/serve.err" || true
  client jobs status "$job" >"$work/status.txt"
  cat "$work/status.txt"
  done_after=$(sed -n 's/^lines: [0-9]* total, \([0-9]*\) completed.*/\1/p' "$work/status.txt")
  [ "$done_after" -ge "$done_before" ] || { echo "completed went back from $done_before to $done_after"; exit 1; }
  grep -q "^metadata: test=native$" "$work/status.txt"
  client jobs status "$job" --wait >"$work/final.txt"
  grep -q "^state: completed$" "$work/final.txt" || { cat "$work/final.txt"; exit 1; }
  grep -q "^lines: $lines total, $lines completed, 0 failed" "$work/final.txt" || { cat "$work/final.txt"; exit 1; }
  client jobs list | grep -q "^$job  *completed  *$lines  *$lines  *0 "
  client jobs results "$job" --out "$work/output.jsonl"
  client jobs results "$job" --errors >"$work/errors.jsonl"
  [ ! -s "$work/errors.jsonl" ] || { echo "unexpected error lines:"; cat "$work/errors.jsonl"; exit 1; }
  node_step compare "$work/input.jsonl" "$work/output.jsonl"
  rows=$(result_rows "$job")
  [ "$rows" = "($lines, $lines)" ] || { echo "result rows of $job: $rows, expected ($lines, $lines)"; exit 1; }
  # Cancel: a second job is stopped; its finished lines stay readable.
  job2=$(client jobs submit "$work/input.jsonl")
  client jobs cancel "$job2" | grep -Eq ": (cancelling|cancelled|completed) "
  client jobs status "$job2" --wait >"$work/cancel.txt" || true
  grep -Eq "^state: (cancelled|completed)$" "$work/cancel.txt" || { cat "$work/cancel.txt"; exit 1; }
  n=$(client jobs results "$job2" | wc -l)
  c=$(sed -n 's/^lines: [0-9]* total, \([0-9]*\) completed.*/\1/p' "$work/cancel.txt")
  [ "$n" -eq "$c" ] || { echo "cancelled job: $n result lines but $c completed"; exit 1; }
  if client jobs status batch_doesnotexist 2>"$work/nf.err"; then echo "an unknown job was found"; exit 1; fi
  grep -q "not_found" "$work/nf.err"
  # Listing pages by --after (newest first: job2, then job); results of an unknown job leave --out alone.
  client jobs list --limit 1 >"$work/page1.txt"
  grep -q "^$job2 " "$work/page1.txt" && grep -q "^(more: --after $job2 shows the next ones)$" "$work/page1.txt" ||
    { cat "$work/page1.txt"; exit 1; }
  client jobs list --limit 1 --after "$job2" | grep -q "^$job " || { echo "--after did not page"; exit 1; }
  echo kept >"$work/kept.out"
  if client jobs results batch_doesnotexist --out "$work/kept.out" 2>/dev/null; then echo "results of an unknown job"; exit 1; fi
  [ "$(cat "$work/kept.out")" = kept ] || { echo "--out was truncated for an unknown job"; exit 1; }
fi
stop_cluster || { echo "serve did not stop cleanly on SIGTERM"; tail -n 30 "$work/serve.err"; exit 1; }
echo "batch jobs ($mode): ok in $(( $(date +%s) - t0 )) s"
