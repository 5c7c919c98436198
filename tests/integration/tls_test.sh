#!/bin/sh
# `shardlm serve --tls-cert --tls-key` as an MPI job (coordinator + 1 worker) on the golden tiny dense
# model, with a self-signed certificate made here by the openssl command:
#  - startup refuses an unreadable certificate, a key of another certificate and --tls-cert alone,
#    naming the file;
#  - HTTPS: curl --cacert gets /health, a chat completion and a streamed one; curl without the CA,
#    with another CA, and plain http:// to the TLS port fail (bounded), and the server serves on;
#  - TCP protocol inside TLS: `shardlm client --tls --tls-ca` generates and chats; a plaintext client,
#    a client trusting another CA and one trusting the system's CAs are refused; --tls-insecure
#    connects; the API key is never written to the log.
# Usage: tls_test.sh SHARDLM ROOT DATA_MODEL_DIR WORK_DIR
set -eu
shardlm=$1; root=$2; model=$3; work=$4
for tool in mpirun openssl curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
rm -rf "$work"; mkdir -p "$work"
. "$root/tests/integration/serve_start.sh"
trap 'stop_cluster || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

die() {
  echo "FAIL: $*"
  for f in "$work"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
  exit 1
}

# Certificates: the server's (for localhost and 127.0.0.1) and an unrelated one.
mkcert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/$1.key" -out "$work/$1.crt" -subj "/CN=$1" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>"$work/openssl.err" || die "openssl req failed"
}
mkcert server
mkcert other
key=tls-key-$$
printf '%s\n' "$key" >"$work/keys"

# Startup errors, in one process (no MPI job needed to check the options).
serve1() { timeout 60 "$shardlm" serve --model "$model" --max-context 512 --max-sequences 1 --port 0 --http-port 0 --metrics-port -1 "$@"; }
if serve1 --tls-cert "$work/missing.crt" --tls-key "$work/server.key" >/dev/null 2>"$work/start1.err"; then
  die "serve started with a missing certificate"
fi
grep -q "TLS certificate file $work/missing.crt: cannot be read" "$work/start1.err" || die "missing cert: $(cat "$work/start1.err")"
if serve1 --tls-cert "$work/server.crt" --tls-key "$work/other.key" >/dev/null 2>"$work/start2.err"; then
  die "serve started with the key of another certificate"
fi
grep -q "TLS key file $work/other.key does not match the certificate in $work/server.crt" "$work/start2.err" \
  || die "mismatched key: $(cat "$work/start2.err")"
if serve1 --tls-cert "$work/server.crt" >/dev/null 2>"$work/start3.err"; then die "serve started with --tls-cert alone"; fi
grep -q "tls-key" "$work/start3.err" || die "--tls-cert alone: $(cat "$work/start3.err")"
. "$root/scripts/mpi_env.sh"
# In an MPI job the coordinator reads its files before any rank loads the model: a missing key file
# ends the job at once, not after every worker has read its weights.
if timeout 60 mpirun -np 3 "$shardlm" serve --model "$model" --max-context 512 --port 0 --http-port 0 --metrics-port -1 \
     --api-key-file "$work/missing.keys" >"$work/start4.out" 2>&1; then
  die "an MPI job started with a missing --api-key-file"
fi
grep -q -- "--api-key-file $work/missing.keys: cannot be read" "$work/start4.out" || die "missing key file: $(cat "$work/start4.out")"
if grep -q "weights" "$work/start4.out"; then die "the workers loaded the model before the key file was read: $(cat "$work/start4.out")"; fi

start_cluster 2 "$model" "$work" --tls-cert "$work/server.crt" --tls-key "$work/server.key" \
  --api-key-file "$work/keys" --max-context 512 --max-sequences 4 --model-name tiny
HTTP_PORT=$(sed -n 's#.*OpenAI API https://[^:]*:\([0-9]*\)/v1.*#\1#p' "$work/serve.out")
[ -n "$HTTP_PORT" ] || die "no https:// address in: $(cat "$work/serve.out")"
grep -q "protocol 127.0.0.1:$TCP_PORT (TLS)" "$work/serve.out" || die "ready line: $(cat "$work/serve.out")"
url=https://127.0.0.1:$HTTP_PORT
auth="Authorization: Bearer $key"

# HTTPS with the right CA.
curl -sf -m 30 --cacert "$work/server.crt" "$url/health" | grep -q '"ok"' || die "GET /health over HTTPS"
curl -sf -m 30 --cacert "$work/server.crt" https://localhost:$HTTP_PORT/health >/dev/null || die "HTTPS by host name"
curl -sf -m 60 --cacert "$work/server.crt" -H "$auth" -H 'Content-Type: application/json' "$url/v1/chat/completions" \
  -d '{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0}' \
  >"$work/chat.json" || die "chat completion over HTTPS"
python3 - "$work/chat.json" <<'PY' || die "chat completion: $(cat "$work/chat.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["object"] == "chat.completion", r
assert r["usage"]["completion_tokens"] >= 1, r
assert isinstance(r["choices"][0]["message"]["content"], str), r
PY
curl -sfN -m 60 --cacert "$work/server.crt" -H "$auth" -H 'Content-Type: application/json' "$url/v1/chat/completions" \
  -d '{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0,"stream":true}' \
  >"$work/stream.txt" || die "streamed chat completion over HTTPS"
grep -q '^data: {.*"chat.completion.chunk"' "$work/stream.txt" || die "stream: $(head -c 500 "$work/stream.txt")"
tail -n 2 "$work/stream.txt" | grep -q '^data: \[DONE\]' || die "stream did not end with [DONE]"

# Without the CA, with another CA, and in plaintext: refused, each within the time limit.
rc=0; curl -s -m 20 "$url/health" >/dev/null 2>&1 || rc=$?
[ "$rc" = 60 ] || die "curl without the CA: exit $rc, expected 60 (certificate not trusted)"
rc=0; curl -s -m 20 --cacert "$work/other.crt" "$url/health" >/dev/null 2>&1 || rc=$?
[ "$rc" = 60 ] || die "curl with another CA: exit $rc, expected 60"
rc=0; curl -s -m 20 "http://127.0.0.1:$HTTP_PORT/health" >"$work/plain.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 28 ] || die "plain http:// to the HTTPS port: exit $rc (0: answered, 28: hung)"
grep -q '"ok"' "$work/plain.out" && die "plain http:// got an answer"
curl -sf -m 30 --cacert "$work/server.crt" "$url/health" >/dev/null || die "HTTPS after the refused clients"

# The TCP protocol inside TLS.
tclient() { timeout 60 "$shardlm" client --server "127.0.0.1:$TCP_PORT" --api-key "$key" "$@"; }
tclient --tls --tls-ca "$work/server.crt" health >"$work/health.out" 2>"$work/health.err" || die "client --tls health"
grep -q "^status: serving$" "$work/health.out" || die "health: $(cat "$work/health.out")"
tclient --tls --tls-ca "$work/server.crt" generate --prompt "hello world" --max-tokens 8 --temperature 0 --ignore-eos \
  >"$work/gen.out" 2>"$work/gen.err" || die "client --tls generate"
grep -q "| 8 completion tokens | finish: length |" "$work/gen.err" || die "generate: $(cat "$work/gen.err")"
[ -s "$work/gen.out" ] || die "generate over TLS: no text"
tclient --tls --tls-ca "$work/server.crt" chat --message "Hi" --max-tokens 6 --temperature 0 -q >"$work/tchat.out" 2>"$work/tchat.err" \
  || die "client --tls chat"
# The same greedy text over plain TCP? Not here (the port speaks TLS only); over HTTPS the completion
# of the same prompt must match it.
curl -sf -m 60 --cacert "$work/server.crt" -H "$auth" -H 'Content-Type: application/json' "$url/v1/completions" \
  -d '{"model":"tiny","prompt":"hello world","max_tokens":8,"temperature":0,"ignore_eos":true}' >"$work/cmpl.json" \
  || die "completion over HTTPS"
python3 - "$work/cmpl.json" "$work/gen.out" <<'PY' || die "HTTPS and TLS protocol texts differ"
import json, sys
http = json.load(open(sys.argv[1]))["choices"][0]["text"]
tcp = open(sys.argv[2]).read().rstrip("\n")
assert http == tcp, (http, tcp)
PY

# Refused: a plaintext client (bounded, with a hint), another CA, the system's CAs; --tls-insecure works.
start=$(date +%s)
if tclient health >/dev/null 2>"$work/plainc.err"; then die "a plaintext client got through"; fi
[ $(( $(date +%s) - start )) -le 15 ] || die "the plaintext client took more than 15 s to fail"
grep -q "is TLS needed?" "$work/plainc.err" || die "plaintext client: $(cat "$work/plainc.err")"
if tclient --tls --tls-ca "$work/other.crt" health >/dev/null 2>"$work/otherca.err"; then die "another CA was trusted"; fi
grep -q "TLS handshake with 127.0.0.1:$TCP_PORT failed: .*not trusted" "$work/otherca.err" || die "other CA: $(cat "$work/otherca.err")"
if tclient --tls health >/dev/null 2>"$work/sysca.err"; then die "the system's CAs trusted a self-signed certificate"; fi
grep -q "not trusted" "$work/sysca.err" || die "system CAs: $(cat "$work/sysca.err")"
tclient --tls --tls-insecure health >/dev/null 2>"$work/insecure.err" || die "--tls-insecure: $(cat "$work/insecure.err")"
if timeout 60 "$shardlm" client --server "127.0.0.1:$TCP_PORT" --api-key wrong --tls --tls-ca "$work/server.crt" health \
  >/dev/null 2>"$work/wrongkey.err"; then
  die "a wrong key was accepted over TLS"
fi
grep -q "API key is not valid (unauthorized)" "$work/wrongkey.err" || die "wrong key: $(cat "$work/wrongkey.err")"
# Still serving after all of it.
tclient --tls --tls-ca "$work/server.crt" health >/dev/null 2>&1 || die "client --tls after the refused clients"

stop_cluster || die "serve did not stop cleanly"
if grep -q "$key" "$work/serve.err" "$work/serve.out"; then die "the API key was written to the log"; fi
echo "serve TLS: ok"
