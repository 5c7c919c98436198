#!/bin/sh
# How `shardlm serve` (coordinator + 2 workers, the tiny golden model) stops on SIGTERM.
#   drain:       with a streaming and a non-streaming request running past --shutdown-grace 2, the
#                coordinator gets SIGTERM: a new completion is refused at once (503 "shutting down"),
#                the two running requests end with an "unavailable" error when the grace is over
#                (the stream's last event an error, the plain request a 503, not a cut connection),
#                and every rank exits 0.
#   worker-hang: a worker stops (SIGSTOP) and the coordinator gets SIGTERM half a second later: the
#                drain notices the lost worker within --worker-timeout 5 and the job ends with exit
#                status 75 (it hung for ever in MPI_Finalize).
# Skips (77) without mpirun.
# Usage: serve_shutdown_test.sh SHARDLM MODEL_DIR WORK_DIR MODE
set -eu
shardlm=$1
model=$2
work=$3
mode=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not found"; exit 77; }
. "$root/tests/integration/serve_start.sh"

rm -rf "$work"
mkdir -p "$work"
trap 'stop_cluster || true; kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

start_cluster 3 "$model" "$work" --model-name tiny --host 127.0.0.1 --max-context 65536 --max-sequences 4 --threads 1 \
  --shutdown-grace 2 --worker-timeout 5
url="http://127.0.0.1:$HTTP_PORT/v1/completions"
long='{"model":"tiny","prompt":"A long story","max_tokens":60000,"temperature":0,"ignore_eos":true'

curl -sN --max-time 120 "$url" -H 'Content-Type: application/json' -d "$long,\"stream\":true}" >"$work/stream.txt" 2>&1 &
curl -s --max-time 120 -o "$work/plain.json" -w '%{http_code}' "$url" -H 'Content-Type: application/json' -d "$long}" \
  >"$work/plain.code" 2>&1 &
plain_pid=$!
i=0
until grep -q '^data: ' "$work/stream.txt" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 1500 ] || { echo "no streamed tokens within 30 s"; exit 1; }
  sleep 0.02
done

coordinator=$(coordinator_pid) || { echo "no coordinator"; exit 1; }
mpirun_pid=$CLUSTER_PID
if [ "$mode" = worker-hang ]; then
  worker=$(rank_pid 2) || { echo "no rank 2"; exit 1; }
  kill -STOP "$worker"
  sleep 0.5
fi
CLUSTER_PID=
kill -TERM "$coordinator"
stopped_at=$(date +%s)

if [ "$mode" = drain ]; then
  sleep 0.3
  code=$(curl -s --max-time 10 -o "$work/late.json" -w '%{http_code}' "$url" -H 'Content-Type: application/json' \
    -d '{"model":"tiny","prompt":"Hello","max_tokens":2}' || true)
  [ "$code" = 503 ] && grep -q "shutting down" "$work/late.json" || {
    echo "a completion sent during the drain got $code:"; cat "$work/late.json"; exit 1; }
fi

i=0
while kill -0 "$mpirun_pid" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 300 ]; then
    echo "the MPI job still runs 60 s after SIGTERM"; tail -n 30 "$work/serve.err"
    kill -CONT "${worker:-$$}" 2>/dev/null || true
    kill -KILL $(ps -o pid= -s "$mpirun_pid") 2>/dev/null; exit 1
  fi
  sleep 0.2
done
status=0
wait "$mpirun_pid" || status=$?
echo "the MPI job ended $(( $(date +%s) - stopped_at )) s after SIGTERM with status $status"
wait "$plain_pid" 2>/dev/null || true
tail -n 8 "$work/serve.err"

case "$mode" in
  drain)
    [ "$status" -eq 0 ] || { echo "expected exit status 0, got $status"; exit 1; }
    tail -n 3 "$work/stream.txt" | grep -q '"code":"unavailable"' || {
      echo "the stream did not end with an 'unavailable' error:"; tail -c 600 "$work/stream.txt"; exit 1; }
    grep -q "shutting down" "$work/stream.txt" || { echo "the stream's error does not say why"; exit 1; }
    [ "$(cat "$work/plain.code")" = 503 ] && grep -q '"code":"unavailable"' "$work/plain.json" || {
      echo "the running non-streaming request got $(cat "$work/plain.code"):"; head -c 600 "$work/plain.json"; exit 1; }
    ;;
  worker-hang)
    [ "$status" -eq 75 ] || { echo "expected exit status 75 (a rank lost), got $status"; exit 1; }
    grep -q "did not answer within 5 s" "$work/serve.err" || { echo "no worker-lost message"; exit 1; }
    ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo "serve shutdown ($mode): ok"
