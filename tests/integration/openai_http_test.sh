#!/bin/sh
# The OpenAI-compatible HTTP API of `shardlm serve`, run as one MPI job (coordinator + 2 workers) on
# the tiny golden model, driven by the official `openai` npm client (tests/support/openai): streamed
# and non-streamed chat and completions, errors; then SIGTERM must stop the job cleanly. Skips (77)
# without mpirun, node or the client's node_modules (npm ci in tests/support/openai).
# Usage: openai_http_test.sh SHARDLM MODEL_DIR WORK_DIR
set -eu
shardlm=$1
model=$2
work=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
client_dir="$root/tests/support/openai"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
command -v node >/dev/null 2>&1 || { echo "SKIP: node not found"; exit 77; }
[ -f "$client_dir/node_modules/openai/package.json" ] || { echo "SKIP: $client_dir/node_modules is missing (run npm ci there)"; exit 77; }
. "$root/tests/integration/serve_start.sh"

rm -rf "$work"
mkdir -p "$work"
trap 'stop_cluster || true; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

key=sk-shardlm-test-key
printf '# test key\n%s\n' "$key" >"$work/keys"
start_cluster 3 "$model" "$work" --model-name tiny --host 127.0.0.1 --max-context 512 --max-sequences 4 --threads 1 \
  --api-key-file "$work/keys" --shutdown-grace 5

status=0
timeout 240 node "$client_dir/openai_client_test.mjs" --base-url "http://127.0.0.1:$HTTP_PORT/v1" --api-key "$key" \
  --model tiny || status=$?
if [ $status -ne 0 ]; then
  echo "--- serve stderr (tail) ---"; tail -n 40 "$work/serve.err"
  exit $status
fi
# The golden model's generation_config.json gives the requests that leave them out their sampling defaults.
grep -q "sampling defaults (generation_config.json; a request's own values win): temperature 1, top_k 64, top_p 0.95" \
  "$work/serve.err" || { echo "serve did not report the model's sampling defaults"; tail -n 40 "$work/serve.err"; exit 1; }
stop_cluster || { echo "serve did not stop cleanly on SIGTERM"; tail -n 40 "$work/serve.err"; exit 1; }
echo "openai http: ok"
