#!/bin/sh
# The request limits of `shardlm serve` as an MPI job (coordinator + 1 worker) on the golden tiny
# dense model. Each limit is hit and answered with its own status and message, and a normal request
# succeeds afterwards:
#  - --max-connections 2: a third HTTP connection gets 503 "too many connections", a third TCP one
#    ERROR_UNAVAILABLE "too many connections"; once one closes, new ones are served;
#  - --max-body-bytes: 413; --max-prompt-tokens: HTTP 400 context_length_exceeded, TCP context_length;
#  - --rate-limit 20 per API key: the 21st request gets 429 with Retry-After and rate_limit_exceeded,
#    the same key over TCP gets rate_limited (one budget), another key is served, and after
#    Retry-After seconds the key is served again;
#  - --max-waiting 1 with --max-sequences 1 (a second cluster): concurrent requests beyond the one
#    running and the one waiting get 429 queue_full.
# Usage: limits_test.sh SHARDLM ROOT DATA_MODEL_DIR WORK_DIR
set -eu
shardlm=$1; root=$2; model=$3; work=$4
for tool in mpirun curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
rm -rf "$work"; mkdir -p "$work"
. "$root/tests/integration/serve_start.sh"
holder=""
cleanup() {
  [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
  stop_cluster || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() {
  echo "FAIL: $*"
  for f in "$work"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
  exit 1
}

printf 'key-a\nkey-b\nkey-c\n' >"$work/keys"
start_cluster 2 "$model" "$work" --api-key-file "$work/keys" --max-context 512 --max-sequences 4 --model-name tiny \
  --max-connections 2 --max-body-bytes 4096 --max-prompt-tokens 40 --rate-limit 20
url=http://127.0.0.1:$HTTP_PORT
api() {  # KEY METHOD PATH [BODY] -> status in $work/status, body in $work/body, headers in $work/headers
  k=$1; m=$2; p=$3; shift 3
  curl -s -m 60 -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $k" \
    -H 'Content-Type: application/json' "$url$p" "$@" >"$work/status" || true
}
status() { cat "$work/status"; }
error_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"][sys.argv[2]])' "$work/body" "$1"; }
tclient() { timeout 60 "$shardlm" client --server "127.0.0.1:$TCP_PORT" "$@"; }
chat='{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}'

# ---- --max-connections 2 (HTTP and TCP) ----
# Hold two connections to each port: HTTP ones after a request each (kept alive), TCP ones silent
# (the handshake timeout would close them after 10 s; the checks take less).
python3 - "$HTTP_PORT" "$TCP_PORT" "$work/held" <<'PY' &
import socket, sys, time, os
http_port, tcp_port, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for _ in range(2):
    s = socket.create_connection(("127.0.0.1", http_port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200"), data
    held.append(s)
for _ in range(2):
    held.append(socket.create_connection(("127.0.0.1", tcp_port), timeout=10))
open(flag, "w").close()
while os.path.exists(flag):
    time.sleep(0.05)
PY
holder=$!
i=0
until [ -e "$work/held" ]; do
  kill -0 "$holder" 2>/dev/null || die "could not hold connections"
  i=$((i + 1)); [ $i -le 200 ] || die "connections not held within 20 s"; sleep 0.1
done
api key-a POST /v1/chat/completions -d "$chat"
[ "$(status)" = 503 ] || die "third HTTP connection: HTTP $(status) $(cat "$work/body")"
[ "$(error_field code)" = too_many_connections ] || die "503 code: $(cat "$work/body")"
error_field message | grep -q "too many connections" || die "503 message: $(cat "$work/body")"
if tclient --api-key key-a health >/dev/null 2>"$work/conn.err"; then die "a third TCP connection was served"; fi
grep -q "too many connections.*(unavailable)" "$work/conn.err" || die "third TCP connection: $(cat "$work/conn.err")"
rm -f "$work/held"; wait "$holder" || die "the connection holder failed"; holder=""
ok=""
for i in $(seq 1 50); do
  api key-a POST /v1/chat/completions -d "$chat"
  if [ "$(status)" = 200 ]; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || die "HTTP not served after the held connections closed: $(status) $(cat "$work/body")"
ok=""
for i in $(seq 1 50); do
  if tclient --api-key key-a health >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || die "TCP not served after the held connections closed"
echo "max-connections: ok"

# ---- --max-body-bytes 4096 ----
big=$(python3 -c 'print("x" * 5000)')
api key-b POST /v1/completions -d "{\"model\":\"tiny\",\"prompt\":\"$big\",\"max_tokens\":2}"
[ "$(status)" = 413 ] || die "large body: HTTP $(status)"
[ "$(error_field code)" = request_too_large ] || die "413: $(cat "$work/body")"
echo "max-body-bytes: ok"

# ---- --max-prompt-tokens 40 ----
long=$(python3 -c 'print(" ".join(["wave"] * 60))')
api key-b POST /v1/completions -d "{\"model\":\"tiny\",\"prompt\":\"$long\",\"max_tokens\":2}"
[ "$(status)" = 400 ] || die "long prompt: HTTP $(status) $(cat "$work/body")"
[ "$(error_field code)" = context_length_exceeded ] || die "long prompt: $(cat "$work/body")"
error_field message | grep -q "limit of 40 prompt tokens" || die "long prompt message: $(cat "$work/body")"
if tclient --api-key key-b generate --prompt "$long" --max-tokens 2 >/dev/null 2>"$work/prompt.err"; then
  die "a long prompt was taken over TCP"
fi
grep -q "limit of 40 prompt tokens (context_length)" "$work/prompt.err" || die "TCP long prompt: $(cat "$work/prompt.err")"
api key-b POST /v1/completions -d '{"model":"tiny","prompt":"hello","max_tokens":2}'
[ "$(status)" = 200 ] || die "short prompt after the long one: HTTP $(status)"
tclient --api-key key-b generate --prompt hello --max-tokens 2 -q >/dev/null 2>"$work/short.err" || die "TCP short prompt"
echo "max-prompt-tokens: ok"

# ---- --rate-limit 20 per API key (key-c has used none of its budget) ----
n=0
while :; do
  api key-c GET /v1/models
  [ "$(status)" = 200 ] || break
  n=$((n + 1)); [ $n -le 25 ] || die "no 429 after 25 requests"
done
[ "$(status)" = 429 ] || die "rate limit: HTTP $(status) $(cat "$work/body")"
[ "$n" -ge 19 ] || die "only $n requests before the rate limit (burst 20)"
[ "$(error_field code)" = rate_limit_exceeded ] || die "429 code: $(cat "$work/body")"
retry=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\)$/\1/p')
[ -n "$retry" ] && [ "$retry" -ge 1 ] && [ "$retry" -le 3 ] || die "Retry-After '$retry' (a token every 3 s)"
if tclient --api-key key-c models >/dev/null 2>"$work/rate.err"; then die "the limited key was served over TCP"; fi
grep -q "rate limit reached: .*per API key.*(rate_limited)" "$work/rate.err" || die "TCP rate limit: $(cat "$work/rate.err")"
api key-b GET /v1/models
[ "$(status)" = 200 ] || die "another key was limited: HTTP $(status)"
curl -sf -m 10 "$url/health" >/dev/null || die "/health was limited"
sleep "$retry"
api key-c POST /v1/chat/completions -d "$chat"
[ "$(status)" = 200 ] || die "after Retry-After: HTTP $(status) $(cat "$work/body")"
echo "rate-limit: ok"

stop_cluster || die "serve did not stop cleanly"
if grep -q "key-[abc]" "$work/serve.err" "$work/serve.out"; then die "an API key was written to the log"; fi

# ---- --max-waiting 1 with one sequence at a time: a second cluster ----
start_cluster 2 "$model" "$work" --max-context 512 --max-sequences 1 --max-waiting 1 --model-name tiny
url=http://127.0.0.1:$HTTP_PORT
# The workers are stopped (SIGSTOP) while the six requests arrive, so that however fast the machine
# generates, the first is still running and the second still waiting when the other four come: those
# four must get 429 at once; the workers continue afterwards and the two accepted ones finish.
workers=$(rank_pid 1) || die "no worker rank"
kill -STOP $workers
pids=""
for n in 1 2 3 4 5 6; do
  curl -s -m 300 -o "$work/q$n.json" -w '%{http_code}' -H 'Content-Type: application/json' "$url/v1/completions" \
    -d '{"model":"tiny","prompt":"The sea","max_tokens":200,"temperature":0,"ignore_eos":true}' >"$work/q$n.status" &
  pids="$pids $!"
  sleep 0.2  # in order: 1 runs, 2 waits, 3-6 find the queue full
done
refused() {  # how many of the six have their 429 (a status file holds the code without a newline)
  c=0
  for n in 1 2 3 4 5 6; do [ "$(cat "$work/q$n.status" 2>/dev/null)" != 429 ] || c=$((c + 1)); done
  echo "$c"
}
i=0
while [ "$(refused)" -lt 4 ]; do
  i=$((i + 1))
  [ $i -le 300 ] || { kill -CONT $workers; die "the requests beyond the queue were not refused within 60 s"; }
  sleep 0.2
done
kill -CONT $workers
for p in $pids; do wait "$p" || true; done  # (a plain `wait` would wait for the cluster too)
full=0; done_ok=0
for n in 1 2 3 4 5 6; do
  case "$(cat "$work/q$n.status")" in
    200) done_ok=$((done_ok + 1)) ;;
    429) full=$((full + 1))
         python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"]=="queue_full", e' "$work/q$n.json" \
           || die "429 without queue_full: $(cat "$work/q$n.json")" ;;
    *) die "queued request $n: HTTP $(cat "$work/q$n.status") $(cat "$work/q$n.json")" ;;
  esac
done
[ "$full" -eq 4 ] && [ "$done_ok" -eq 2 ] || die "expected 2 served and 4 refused (one running, one waiting), got $done_ok and $full"
curl -sf -m 60 -H 'Content-Type: application/json' "$url/v1/completions" \
  -d '{"model":"tiny","prompt":"hello","max_tokens":2}' >/dev/null || die "a request after the queue was full"
echo "max-waiting: ok ($done_ok served, $full refused)"
stop_cluster || die "the second serve did not stop cleanly"
echo "serve limits: ok"
