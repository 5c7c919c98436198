#!/bin/sh
# `shardlm client` against `shardlm serve` running as an MPI job (coordinator + 2 workers) on the
# golden tiny dense model: health, models, greedy generate (deterministic, the requested length, the
# same text for concurrent clients), chat with thinking, API keys (flag, environment, wrong, missing),
# request errors, Ctrl-C cancelling a request, a malformed frame that closes only its own connection,
# and the shutdown.
# Usage: tcp_client_test.sh SHARDLM DATA_DIR WORK_DIR
set -eu
shardlm=$1
data=$2
work=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
. "$root/scripts/mpi_env.sh"
rm -rf "$work"
mkdir -p "$work"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    sleep 2
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() {
  echo "FAIL: $*"
  for f in "$work"/*.out "$work"/*.err; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
  done
  exit 1
}

key=key-$$-tcp
printf '# test keys\n%s\nsecond-key\n' "$key" >"$work/keys"
mpirun -np 3 "$shardlm" serve --model "$data/dense" --port 0 --http-port 0 --metrics-port -1 \
  --api-key-file "$work/keys" --max-context 512 --max-sequences 4 --model-name tiny-dense \
  >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!

# Wait for the ready line: "... | protocol HOST:PORT | ...".
i=0
until grep -q "ready" "$work/serve.out" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || die "the server exited before it was ready"
  i=$((i + 1))
  [ $i -le 600 ] || die "the server was not ready within 120 s"
  sleep 0.2
done
port=$(sed -n 's/.*| protocol [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$work/serve.out" | head -n 1)
[ -n "$port" ] || die "no protocol port in: $(cat "$work/serve.out")"
server=127.0.0.1:$port
client() { timeout 60 "$shardlm" client --server "$server" --api-key "$key" "$@"; }

# The client pointed at the HTTP port is told so (not that TLS might be needed).
http_port=$(sed -n 's#.*OpenAI API https\?://[^:]*:\([0-9]*\)/v1.*#\1#p' "$work/serve.out" | head -n 1)
if timeout 30 "$shardlm" client --server "127.0.0.1:$http_port" health >/dev/null 2>"$work/http_port.err"; then
  die "the client took the HTTP port for the protocol"
fi
grep -q "answered in HTTP, not in the shardlm protocol" "$work/http_port.err" || die "HTTP port: $(cat "$work/http_port.err")"
grep -q "is TLS needed" "$work/http_port.err" && die "HTTP port: a TLS hint"

# Health and models.
client health >"$work/health.out" 2>"$work/health.err" || die "health failed"
grep -q "^status: serving$" "$work/health.out" || die "health: not serving"
grep -q "^model: tiny-dense$" "$work/health.out" || die "health: wrong model"
grep -q "protocol 1\.[0-9]" "$work/health.out" || die "health: no protocol version"
client models >"$work/models.out" 2>"$work/models.err" || die "models failed"
[ "$(cat "$work/models.out")" = "$(printf 'tiny-dense\tmax_context=512')" ] || die "models: $(cat "$work/models.out")"

# Greedy generate: deterministic, exactly --max-tokens tokens with --ignore-eos.
gen() {
  client generate --prompt "hello world" --max-tokens 12 --temperature 0 --ignore-eos "$@"
}
gen >"$work/a.out" 2>"$work/a.err" || die "generate failed"
gen >"$work/b.out" 2>"$work/b.err" || die "second generate failed"
cmp -s "$work/a.out" "$work/b.out" || die "greedy generate is not deterministic"
grep -q "| 12 completion tokens | finish: length |" "$work/a.err" || die "generate: wrong summary"
grep -q "TTFT [0-9.]* s" "$work/a.err" || die "generate: no timings"
[ -s "$work/a.out" ] || die "generate: no output"

# Four clients at once get the same text as one alone (continuous batching does not change it).
for n in 1 2 3 4; do
  gen -q >"$work/c$n.out" 2>"$work/c$n.err" &
  eval "pid$n=\$!"
done
for n in 1 2 3 4; do
  eval "wait \$pid$n" || die "concurrent client $n failed"
  cmp -s "$work/a.out" "$work/c$n.out" || die "concurrent client $n got another text"
  [ ! -s "$work/c$n.err" ] || die "--quiet printed a summary"
done

# Ctrl-C cancels the running request: the client reports finish "cancelled" and exits 130. The
# workers are stopped (SIGSTOP) first so that the request is certainly still running when the
# interrupt arrives, however fast the machine generates; they continue once the client has been
# interrupted, and the coordinator then ends the request as cancelled.
. "$root/tests/integration/serve_start.sh"
workers="$(rank_pid 1 "$server_pid") $(rank_pid 2 "$server_pid")" || die "no worker ranks found under mpirun (pid $server_pid)"
kill -STOP $workers
"$shardlm" client --server "$server" --api-key "$key" generate --prompt "a long one" --max-tokens 400 \
  --ignore-eos --temperature 0 >"$work/int.out" 2>"$work/int.err" &
int_pid=$!
sleep 1
kill -0 "$int_pid" 2>/dev/null || { kill -CONT $workers; die "the client ended before it was interrupted"; }
kill -INT "$int_pid"
sleep 0.5
kill -CONT $workers
rc=0
wait "$int_pid" || rc=$?
[ "$rc" -eq 130 ] || die "interrupted client exited with $rc, expected 130"
grep -q "completion tokens | finish: cancelled |" "$work/int.err" || die "interrupt: $(cat "$work/int.err")"

# Sampling with a seed is deterministic too.
client generate --prompt "once upon" --max-tokens 16 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 7 \
  >"$work/s1.out" 2>/dev/null || die "sampled generate failed"
client generate --prompt "once upon" --max-tokens 16 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 7 \
  >"$work/s2.out" 2>/dev/null || die "second sampled generate failed"
cmp -s "$work/s1.out" "$work/s2.out" || die "seeded sampling is not deterministic"

# Guided decoding (protocol 1.5): the output is one of the choices; a schema that cannot be held to is refused.
client generate --prompt "weather?" --max-tokens 16 --temperature 1 --seed 3 --guided-choice sunny --guided-choice rainy \
  >"$work/choice.out" 2>"$work/choice.err" || die "guided generate failed: $(cat "$work/choice.err")"
case "$(tr -d '\n' <"$work/choice.out")" in sunny|rainy) ;; *) die "guided choice gave '$(cat "$work/choice.out")'" ;; esac
if client generate --prompt "x" --max-tokens 4 --json-schema '{"type": "string", "pattern": "a"}' >/dev/null 2>"$work/schema.err"; then
  die "a schema with a pattern was accepted"
fi
grep -q "'pattern'" "$work/schema.err" || die "the refused schema's error does not name 'pattern': $(cat "$work/schema.err")"

# Choices (protocol 1.6): choice i is the request with the seed + i, printed choice by choice.
sampled() {
  client generate --prompt "once upon" --max-tokens 16 --temperature 0.8 --top-k 20 --top-p 0.9 "$@"
}
sampled --seed 7 --n 3 >"$work/n3.out" 2>"$work/n3.err" || die "generate with --n 3 failed: $(cat "$work/n3.err")"
sampled --seed 8 >"$work/s8.out" 2>/dev/null || die "sampled generate with seed 8 failed"
for i in 0 1 2; do
  grep -q "^\[choice $i | finish: [a-z_]*\]$" "$work/n3.out" || die "--n 3: no choice $i in $(cat "$work/n3.out")"
done
choice() {  # the text of choice $1 in $2
  awk -v want="$1" '/^\[choice [0-9]+ \| finish: [a-z_]+\]$/ { on = ($2 == want); next } on' "$2"
}
choice 0 "$work/n3.out" >"$work/n3.c0"
choice 1 "$work/n3.out" >"$work/n3.c1"
cmp -s "$work/n3.c0" "$work/s1.out" || die "choice 0 is not the request with seed 7: '$(cat "$work/n3.c0")' vs '$(cat "$work/s1.out")'"
cmp -s "$work/n3.c1" "$work/s8.out" || die "choice 1 is not the request with seed 8: '$(cat "$work/n3.c1")' vs '$(cat "$work/s8.out")'"
grep -q "prompt tokens | [0-9]* completion tokens | finish: " "$work/n3.err" || die "--n 3: usage $(cat "$work/n3.err")"

# Prompt log-probabilities and echo (protocol 1.6).
gen --prompt-logprobs 2 >"$work/plp.out" 2>"$work/plp.err" || die "generate with --prompt-logprobs failed: $(cat "$work/plp.err")"
cmp -s "$work/plp.out" "$work/a.out" || die "--prompt-logprobs changed the output"
prompt_tokens=$(sed -n 's/^\[\([0-9]*\) prompt tokens.*/\1/p' "$work/plp.err")
[ "$(grep -c '^[0-9]* "' "$work/plp.err")" -eq "$prompt_tokens" ] || die "--prompt-logprobs: not one line per prompt token: $(cat "$work/plp.err")"
[ "$(LC_ALL=C grep -c '^[0-9]* ".*" -*[0-9.]* rank [0-9]* | ".*"=-*[0-9.]* | ".*"=-*[0-9.]*$' "$work/plp.err")" -eq $((prompt_tokens - 1)) ] \
  || die "--prompt-logprobs: not a log-probability, rank and two best tokens per token after the first: $(cat "$work/plp.err")"
gen --echo >"$work/echo.out" 2>/dev/null || die "generate with --echo failed"
{ printf 'hello world'; cat "$work/a.out"; } >"$work/echo.expected"
cmp -s "$work/echo.out" "$work/echo.expected" || die "--echo: '$(cat "$work/echo.out")', not the prompt and then '$(cat "$work/a.out")'"

# Chat with a system message and thinking; the key from the environment.
SHARDLM_API_KEY=second-key timeout 60 "$shardlm" client --server "$server" chat --message "Hi there" \
  --system "Be brief." --enable-thinking --max-tokens 12 --temperature 0 >"$work/chat.out" 2>"$work/chat.err" \
  || die "chat failed"
grep -q "prompt tokens | [0-9]* completion tokens | finish: " "$work/chat.err" || die "chat: no summary"

# API keys: wrong and missing keys are refused.
if timeout 60 "$shardlm" client --server "$server" --api-key wrong health >/dev/null 2>"$work/wrong.err"; then
  die "a wrong API key was accepted"
fi
grep -q "shardlm: error: .*API key is not valid (unauthorized)" "$work/wrong.err" || die "wrong key: $(cat "$work/wrong.err")"
if env -u SHARDLM_API_KEY timeout 60 "$shardlm" client --server "$server" health >/dev/null 2>"$work/nokey.err"; then
  die "a missing API key was accepted"
fi
grep -q "requires an API key (unauthorized)" "$work/nokey.err" || die "missing key: $(cat "$work/nokey.err")"

# Request errors name the field and keep the server serving.
if client generate --prompt x --temperature -1 >/dev/null 2>"$work/temp.err"; then die "temperature -1 accepted"; fi
grep -q "temperature .*(invalid_request)" "$work/temp.err" || die "bad temperature: $(cat "$work/temp.err")"
long=$(python3 -c 'print(" hello" * 700)')
if client generate --prompt "$long" --max-tokens 4 >/dev/null 2>"$work/long.err"; then die "overlong prompt accepted"; fi
grep -q "(context_length)" "$work/long.err" || die "long prompt: $(cat "$work/long.err")"

# A malformed frame closes only its own connection: the server answers with an error frame and
# closes it, while a generate on another connection keeps going.
gen -q >"$work/during.out" 2>"$work/during.err" &
during=$!
python3 - "$port" "$key" >"$work/raw.out" 2>"$work/raw.err" <<'PY' || die "raw connection check failed"
import socket, struct, sys
port, key = int(sys.argv[1]), sys.argv[2].encode()
def field(num, wire, payload):
    return bytes([num << 3 | wire]) + payload
def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out
def ldelim(num, data):
    return field(num, 2, varint(len(data)) + data)
hello = field(1, 0, varint(1)) + field(2, 0, varint(0)) + ldelim(3, key)
msg = ldelim(2, hello)  # ClientMessage.hello
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(struct.pack(">I", len(msg)) + msg)
def frame():
    head = b""
    while len(head) < 4:
        c = s.recv(4 - len(head))
        if not c:
            return None
        head += c
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            raise SystemExit("short frame")
        body += c
    return body
welcome = frame()
assert welcome is not None and welcome[0] == (2 << 3 | 2), welcome  # ServerMessage.welcome
s.sendall(struct.pack(">I", 6) + b"\xff" * 6)  # garbage
err = frame()
assert err is not None and b"not a valid ClientMessage" in err, err
assert frame() is None, "the connection stayed open"
print("closed with an error frame")
PY
wait $during || die "the generate running during the malformed frame failed"
cmp -s "$work/a.out" "$work/during.out" || die "the generate during the malformed frame got another text"
client health >/dev/null 2>&1 || die "the server stopped serving after a malformed frame"

# Shutdown: SIGTERM to the job (mpirun forwards it to every rank); rank 0 stops its servers and says
# so, and the job ends.
kill -TERM "$server_pid"
i=0
while kill -0 "$server_pid" 2>/dev/null; do
  i=$((i + 1))
  [ $i -le 300 ] || die "the server did not stop within 60 s of SIGTERM"
  sleep 0.2
done
wait "$server_pid" || true
server_pid=""
grep -q "\] stopped$" "$work/serve.err" || die "no 'stopped' line from the server"
if timeout 10 "$shardlm" client --server "$server" --api-key "$key" health >/dev/null 2>&1; then
  die "the server still answers after it stopped"
fi
echo "tcp client: ok"
