#!/bin/sh
# `shardlm serve` as an MPI job (coordinator + 2 workers) on a generated tiny model: answers over
# HTTP, greedy output equals `shardlm generate`, API keys are enforced, an idle cluster uses < 2% CPU
# per rank, and SIGTERM stops every rank cleanly (exit 0).
set -eu
shardlm=$1; root=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
. "$root/tests/integration/serve_start.sh"
trap 'stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
"$shardlm" mkmodel --out "$work/tiny" --variant tiny-dense --seed 1 >/dev/null
printf 'key-one\n# comment\nkey-two\n' >"$work/keys"

start_cluster 3 "$work/tiny" "$work" --api-key-file "$work/keys" --max-context 2048 --max-sequences 4

curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null
# No key / a wrong key: 401. The right key: 200.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/v1/models")
[ "$code" = 401 ] || { echo "no key: HTTP $code"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "http://127.0.0.1:$HTTP_PORT/v1/models")
[ "$code" = 401 ] || { echo "wrong key: HTTP $code"; exit 1; }
curl -sf -H 'Authorization: Bearer key-two' "http://127.0.0.1:$HTTP_PORT/v1/models" | grep -q '"tiny"'

curl -sf -H 'Authorization: Bearer key-one' "http://127.0.0.1:$HTTP_PORT/v1/completions" \
  -d '{"model":"tiny","prompt":"Hello there","max_tokens":12,"temperature":0}' >"$work/completion.json"
python3 - "$work/completion.json" "$work/served.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write(r["choices"][0]["text"])
assert r["usage"]["completion_tokens"] >= 1, r
PY
# The same request through `shardlm generate` in one process gives the same text.
"$shardlm" generate --model "$work/tiny" --prompt "Hello there" --max-tokens 12 --temperature 0 2>/dev/null >"$work/local.txt"
python3 - "$work/served.txt" "$work/local.txt" <<'PY'
import sys
served = open(sys.argv[1]).read()
local = open(sys.argv[2]).read().rstrip("\n")
assert served == local, (served, local)
print("served == local:", repr(served[:60]))
PY

# Idle: no requests; every rank stays under 2% of one core over 10 s.
sleep 3
pids=""
for p in $(pgrep -f "serve --model $work/tiny" || true); do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = shardlm ] && pids="$pids $p"
done
[ -n "$pids" ] || { echo "no serve ranks found"; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
before=""; for p in $pids; do before="$before $(ticks "$p")"; done
sleep 10
set -- $before
for p in $pids; do
  now=$(ticks "$p")
  pct=$(python3 -c "print(round(100.0 * ($now - $1) / $hz / 10.0, 2))")
  echo "idle rank pid $p: $pct% CPU"
  python3 -c "import sys; sys.exit(0 if $pct < 2.0 else 1)" || { echo "rank $p uses $pct% CPU while idle"; exit 1; }
  shift
done

stop_cluster
grep -q "stopped" "$work/serve.err" || { cat "$work/serve.err"; exit 1; }
echo "serve: ok"
