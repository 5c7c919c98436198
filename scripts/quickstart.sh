#!/usr/bin/env bash
# Sets everything up, builds, and starts a shardlm cluster on this machine: one MPI job with the
# coordinator (rank 0: TCP protocol, OpenAI HTTP API, Prometheus metrics) and 2 workers holding the
# model's shards. Sends one chat request through `shardlm client`, prints the answer and where
# everything is, and keeps serving until Ctrl-C (KEEP_SERVING=0: stop after the answer).
#   MODEL=/path/to/checkpoint   your own Gemma 4 checkpoint (default: a generated tiny Gemma 4)
#   WORKERS=N                   workers (default 2)
#   PORT / HTTP_PORT / METRICS_PORT   (defaults 7070 / 8000 / 9090)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
shardlm="$root/build/bin/shardlm"
model=${MODEL:-}
if [ -z "$model" ]; then
  model="$root/.cache/models/tiny-dense"
  if [ ! -f "$model/config.json" ]; then
    "$shardlm" mkmodel --out "$model" --variant tiny-dense --seed 1
  fi
fi
workers=${WORKERS:-2}
port=${PORT:-7070}; http_port=${HTTP_PORT:-8000}; metrics_port=${METRICS_PORT:-9090}
"$shardlm" plan --model "$model" --workers "$workers"

log=$(mktemp -d /tmp/shardlm-quickstart.XXXXXX)
. "$root/scripts/mpi_env.sh"
mpirun -np $((workers + 1)) "$shardlm" serve --model "$model" --port "$port" --http-port "$http_port" \
  --metrics-port "$metrics_port" >"$log/serve.out" 2>"$log/serve.err" &
cluster=$!
stop() {
  # SIGTERM to the coordinator (rank 0): it finishes running requests and releases the workers.
  for p in $(pgrep -P "$cluster" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=0"; then kill -TERM "$p"; fi
  done
  wait "$cluster" 2>/dev/null || true
}
trap 'stop' EXIT
trap 'exit 0' INT TERM
echo "--- starting the coordinator + $workers workers (log: $log/serve.err) ---"
until grep -q "ready |" "$log/serve.out" 2>/dev/null; do
  if ! kill -0 "$cluster" 2>/dev/null; then cat "$log/serve.err"; echo "shardlm serve failed to start"; exit 1; fi
  sleep 0.5
done
grep -v "^\[" "$log/serve.err" | head -20 || true
prompt=${PROMPT:-"Write a haiku about distributed inference."}
echo "--- chat through the TCP client protocol: $prompt ---"
"$shardlm" client --server "127.0.0.1:$port" chat --message "$prompt" --max-tokens 48 --temperature 0
echo
echo "--- the cluster ---"
grep "ready |" "$log/serve.out"
cat <<TXT
  OpenAI API:  curl http://127.0.0.1:$http_port/v1/chat/completions -d '{"model":"$(basename "$model")","messages":[{"role":"user","content":"Hi"}]}'
  protocol:    $shardlm client --server 127.0.0.1:$port chat --message Hi
  metrics:     curl http://127.0.0.1:$metrics_port/metrics
TXT
if [ "${KEEP_SERVING:-1}" = 1 ]; then
  echo "Serving; Ctrl-C to stop."
  wait "$cluster"
fi
