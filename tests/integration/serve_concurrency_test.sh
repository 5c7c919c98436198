#!/bin/sh
# `shardlm serve` under load, as an MPI job (coordinator + 2 workers) on a generated tiny model
# (tiny-moe unless VARIANT says otherwise): 32 concurrent greedy requests of mixed kinds (HTTP
# completions and chat, streamed and not, with log-probabilities, and TCP generate and chat through
# `shardlm client`), with different prompts and lengths, all complete with max_tokens tokens
# (completions exactly; chat up to the end of its turn), run in shared steps (continuous batching),
# and each answer equals that of the same request sent alone afterwards, log-probabilities bit for
# bit (batch-invariant greedy output). While they run, a malformed JSON body (400), a prompt longer
# than the context (400) and an unknown model (404) are refused and a normal request still succeeds.
# Skips (77) without mpirun or curl.
# Usage: serve_concurrency_test.sh SHARDLM ROOT WORK_DIR [VARIANT]
set -eu
shardlm=$1; root=$2; work=$3; variant=${4:-tiny-moe}
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not found"; exit 77; }
py=/usr/bin/python3
rm -rf "$work"; mkdir -p "$work/load" "$work/alone"
. "$root/tests/integration/serve_start.sh"
trap 'stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

die() {
  echo "FAIL: $*"
  [ -f "$work/serve.err" ] && { echo "--- serve.err (tail)"; tail -n 30 "$work/serve.err"; }
  exit 1
}

"$shardlm" mkmodel --out "$work/tiny" --variant "$variant" --seed 1 >/dev/null
start_cluster 3 "$work/tiny" "$work" --model-name tiny --max-context 2048 --max-sequences 8 --threads 1 \
  --shutdown-grace 5
http=http://127.0.0.1:$HTTP_PORT/v1
server=127.0.0.1:$TCP_PORT

# Turns one request's raw answer into its text (content, reasoning, tool calls and, over HTTP, the
# log-probabilities of the chosen and the best alternative tokens, which show any change in the
# logits' bits) and checks its length.  norm.py KIND RAW_OUT RAW_ERR MAX_TOKENS
cat >"$work/norm.py" <<'PY'
import json, re, sys
kind, out, err, max_tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
raw = open(out, encoding="utf-8").read()
def fail(msg):
    sys.exit(f"{kind}: {msg}: {raw[:300]!r}")
def emit(text, tokens):
    # Completions generate exactly max_tokens (ignore_eos); a chat answer may end earlier, at the end
    # of its turn.
    if tokens > max_tokens or (kind.startswith(("comp", "tcp_gen")) and tokens != max_tokens):
        fail(f"{tokens} completion tokens for max_tokens {max_tokens}")
    sys.stdout.write(f"{tokens} tokens: {text}")
    sys.exit(0)
if kind.startswith("tcp"):
    summary = open(err, encoding="utf-8").read()
    m = re.search(r"\| (\d+) completion tokens \| finish: ", summary)
    if not m:
        fail(f"no usage summary in {summary!r}")
    emit(raw, int(m.group(1)))
content, reasoning, calls, logprobs = "", "", [], []
def add_logprobs(lp):
    if not lp:
        return
    if kind.startswith("comp"):
        logprobs.extend(zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]))
    else:
        logprobs.extend((c["token"], c["logprob"], [(t["token"], t["logprob"]) for t in c["top_logprobs"]])
                        for c in lp["content"])
if kind.endswith("stream"):
    chunks = []
    for line in raw.splitlines():
        if line.startswith("data: "):
            if line == "data: [DONE]":
                break
            chunks.append(json.loads(line[6:]))
    else:
        fail("no [DONE]")
    usage = [c["usage"] for c in chunks if c.get("usage")]
    if not usage:
        fail("no usage chunk")
    for c in chunks:
        for choice in c.get("choices", []):
            if kind.startswith("comp"):
                content += choice.get("text", "")
            else:
                d = choice.get("delta", {})
                content += d.get("content") or ""
                reasoning += d.get("reasoning_content") or ""
                calls += d.get("tool_calls") or []
            add_logprobs(choice.get("logprobs"))
    tokens = usage[-1]["completion_tokens"]
else:
    r = json.loads(raw)
    choice = r["choices"][0]
    if kind.startswith("comp"):
        content = choice["text"]
    else:
        m = choice["message"]
        content, reasoning, calls = m.get("content") or "", m.get("reasoning_content") or "", m.get("tool_calls") or []
    add_logprobs(choice.get("logprobs"))
    tokens = r["usage"]["completion_tokens"]
if len(logprobs) != tokens:
    fail(f"{len(logprobs)} log-probabilities for {tokens} tokens")
calls = [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
emit(json.dumps({"content": content, "reasoning": reasoning, "tool_calls": calls, "logprobs": logprobs}), tokens)
PY

kinds="comp comp_stream chat chat_stream tcp_gen tcp_chat"
# Request I: its kind, prompt and max_tokens.
kind_of() { i=$1; set -- $kinds; shift $((i % 6)); echo "$1"; }
words="river stone light garden window paper cloud silver market winter engine orange"
prompt_of() {
  i=$1; p="Request $i:"
  k=0
  for w in $words; do
    [ $k -lt $((i % 9 + 1)) ] || break
    p="$p $w"; k=$((k + 1))
  done
  echo "$p"
}
# 8..64 tokens; four completions 600, so that the load outlasts the error checks.
max_tokens_of() {
  case $1 in 6|13|28|31) echo 600 ;; *) echo $((8 + (13 * $1) % 57)) ;; esac
}

# Sends request I; the raw answer goes to DIR/I.out (and DIR/I.err), the normalised text to DIR/I.txt.
# With GO_FILE, the request leaves once that file exists.
send() {
  i=$1; dir=$2
  kind=$(kind_of "$i"); prompt=$(prompt_of "$i"); n=$(max_tokens_of "$i")
  stream=false; [ "${kind#*_}" = stream ] && stream=true
  case $kind in
    comp*) path=completions; input="\"prompt\":\"$prompt\",\"logprobs\":2" ;;
    chat*) path=chat/completions
           input="\"messages\":[{\"role\":\"user\",\"content\":\"$prompt\"}],\"logprobs\":true,\"top_logprobs\":2" ;;
    tcp_gen) sub=generate; arg=--prompt ;;
    tcp_chat) sub=chat; arg=--message ;;
  esac
  body="{\"model\":\"tiny\",${input:-},\"max_tokens\":$n,\"temperature\":0,\"ignore_eos\":true,\"stream\":$stream"
  [ $stream = true ] && body="$body,\"stream_options\":{\"include_usage\":true}"
  while [ -n "${GO_FILE:-}" ] && [ ! -e "$GO_FILE" ]; do sleep 0.02; done
  case $kind in
    comp|comp_stream|chat|chat_stream)
      code=$(timeout 100 curl -sS -N -o "$dir/$i.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$body}" "$http/$path" 2>"$dir/$i.err") || { echo "request $i ($kind): curl failed: $(cat "$dir/$i.err")"; return 1; }
      [ "$code" = 200 ] || { echo "request $i ($kind): HTTP $code: $(cat "$dir/$i.out")"; return 1; }
      ;;
    tcp_gen|tcp_chat)
      timeout 100 "$shardlm" client --server "$server" $sub $arg "$prompt" --max-tokens "$n" --temperature 0 \
        --ignore-eos >"$dir/$i.out" 2>"$dir/$i.err" || { echo "request $i ($kind) failed: $(cat "$dir/$i.err")"; return 1; }
      ;;
  esac
  "$py" "$work/norm.py" "$kind" "$dir/$i.out" "$dir/$i.err" "$n" >"$dir/$i.txt"
}

# health FIELD: a number `shardlm client health` reports (running, waiting, steps).
health() { timeout 30 "$shardlm" client --server "$server" health | sed -n "s/^$1: //p"; }
idle() {
  t=0
  until [ "$(health running)" = 0 ] && [ "$(health waiting)" = 0 ]; do
    t=$((t + 1)); [ $t -le 100 ] || die "the server did not become idle"
    sleep 0.1
  done
}
# While the load runs: request errors are answered and the server keeps serving. One process (already
# started when the load is let go) waits until several requests are streaming (their output has begun,
# DIR/I.out, and not ended, DIR/I.txt), sends the errors, then checks that the load had not ended yet.
# errors.py BASE_URL WORK; prints the number of requests streaming when it began.
cat >"$work/errors.py" <<'PY'
import json, os, sys, time, urllib.error, urllib.request
base, work = sys.argv[1], sys.argv[2]
load = os.path.join(work, "load")
def size(name):
    try:
        return os.path.getsize(os.path.join(load, name))
    except OSError:
        return 0
def state():
    streaming = sum(1 for i in range(32) if size(f"{i}.out") > 0 and not os.path.exists(os.path.join(load, f"{i}.txt")))
    ended = sum(1 for i in range(32) if os.path.exists(os.path.join(load, f"{i}.txt")))
    return streaming, ended
deadline = time.time() + 120
while state()[0] < 2:
    if time.time() > deadline or state()[1] == 32:
        sys.exit("never saw two requests streaming at once")
    time.sleep(0.005)
print(state()[0])
def post(path, body):
    req = urllib.request.Request(base + path, data=body.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
def expect(what, got, code):
    if got[0] != code:
        sys.exit(f"{what}: HTTP {got[0]}, expected {code}: {got[1][:300]}")
    return json.loads(got[1])
expect("malformed JSON", post("/completions", '{"model":"tiny","prompt":"half a body'), 400)
long_prompt = " ".join(["hello"] * 2500)
e = expect("prompt beyond the context",
           post("/completions", json.dumps({"model": "tiny", "prompt": long_prompt, "max_tokens": 4})), 400)
if "context" not in e["error"]["message"]:
    sys.exit(f"prompt beyond the context: {e}")
expect("unknown model", post("/chat/completions", json.dumps(
    {"model": "nope", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})), 404)
ended = state()[1]
r = expect("a normal request after the errors", post("/completions", json.dumps(
    {"model": "tiny", "prompt": "still serving", "max_tokens": 3, "temperature": 0, "ignore_eos": True})), 200)
if r["usage"]["completion_tokens"] != 3:
    sys.exit(f"a normal request after the errors: {r}")
if ended >= 32:
    print("note: the load had ended before the last error check", file=sys.stderr)
PY

# 32 requests at once and the error checks: each waits for the go file.
"$py" "$work/errors.py" "$http" "$work" >"$work/errors.log" 2>&1 &
errors_pid=$!
pids=""
i=0
while [ $i -lt 32 ]; do
  GO_FILE=$work/go send $i "$work/load" >"$work/load/$i.log" 2>&1 &
  pids="$pids $!"
  i=$((i + 1))
done
sleep 1
idle
steps0=$(health steps)
start=$(date +%s)
# The workers are stopped (SIGSTOP) until all 32 requests are in the scheduler, so that they run
# together however fast the machine generates (otherwise the first ones can end before the last
# ones arrive).
workers="$(rank_pid 1) $(rank_pid 2)"
kill -STOP $workers
touch "$work/go"
t=0
until [ $(( $(health running) + $(health waiting) )) -ge 32 ]; do
  t=$((t + 1)); [ $t -le 300 ] || { kill -CONT $workers; die "the 32 requests did not all arrive within 30 s"; }
  sleep 0.1
done
kill -CONT $workers

wait $errors_pid || die "$(cat "$work/errors.log")"
i=0
for pid in $pids; do
  wait "$pid" || { cat "$work/load/$i.log"; die "concurrent request $i"; }
  i=$((i + 1))
done
idle
steps=$(( $(health steps) - steps0 ))
# They shared steps: one at a time, a request of N tokens takes N steps (a prefill, whose prompt fits
# one chunk, and N - 1 decodes).
tokens=$(( $(awk 'FNR == 1 { s += $1 } END { print s }' "$work"/load/*.txt) + 3 ))
echo "32 concurrent requests done in $(( $(date +%s) - start )) s (errors sent while $(head -n 1 "$work/errors.log") \
were streaming): $tokens tokens in $steps steps"
[ $((2 * steps)) -le "$tokens" ] || die "the requests were not batched: $tokens tokens in $steps steps"

# Each request alone gives the same text.
i=0
while [ $i -lt 32 ]; do
  send $i "$work/alone" || die "request $i alone"
  cmp -s "$work/load/$i.txt" "$work/alone/$i.txt" || die "request $i ($(kind_of $i)): under load \
$(head -c 200 "$work/load/$i.txt") != alone $(head -c 200 "$work/alone/$i.txt")"
  i=$((i + 1))
done
# Different requests got different answers.
distinct=$(for f in "$work"/alone/*.txt; do cksum <"$f"; done | sort -u | wc -l)
[ "$distinct" -ge 24 ] || die "only $distinct different answers to 32 different requests"

stop_cluster || die "serve did not stop cleanly"
echo "serve concurrency: ok ($(( $(date +%s) - start )) s)"
