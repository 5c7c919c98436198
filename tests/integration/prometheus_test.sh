#!/bin/sh
# A real Prometheus server scrapes `shardlm serve` (coordinator + 2 workers, a generated tiny MoE
# model) on loopback; after a few requests, Prometheus' query API shows non-zero TTFT observations,
# token counters, per-worker communication time and expert load.
set -eu
shardlm=$1; root=$2; work=$3
command -v prometheus >/dev/null 2>&1 || { echo "SKIP: prometheus (Debian package) not installed"; exit 77; }
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
rm -rf "$work"; mkdir -p "$work"
. "$root/tests/integration/serve_start.sh"
PROM_PID=
cleanup() {
  [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
  stop_cluster || true
  rm -rf "$work"
}
trap cleanup EXIT
"$shardlm" mkmodel --out "$work/tiny-moe" --variant tiny-moe --seed 2 >/dev/null
start_cluster 3 "$work/tiny-moe" "$work" --max-context 1024 --max-sequences 4

prom_port=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cat >"$work/prom.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shardlm
    static_configs:
      - targets: ['127.0.0.1:$METRICS_PORT']
YML
prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prom.log" 2>&1 &
PROM_PID=$!

for i in 1 2 3 4 5; do
  curl -sf "http://127.0.0.1:$HTTP_PORT/v1/completions" \
    -d "{\"model\":\"tiny-moe\",\"prompt\":\"request number $i\",\"max_tokens\":16,\"temperature\":0}" >/dev/null
done
curl -sf "http://127.0.0.1:$HTTP_PORT/v1/chat/completions" \
  -d '{"model":"tiny-moe","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}' >/dev/null

# query EXPR: prints the first value of an instant query (empty when there is no sample).
query() {
  curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
    /usr/bin/python3 -c "import json, sys; r = json.load(sys.stdin)['data']['result']; print(r[0]['value'][1] if r else '')"
}
# expect EXPR: waits (scrapes every second) until the query is non-zero.
expect() {
  i=0
  while :; do
    v=$(query "$1" 2>/dev/null || true)
    if [ -n "$v" ] && /usr/bin/python3 -c "import sys; sys.exit(0 if float('$v') > 0 else 1)"; then
      echo "$1 = $v"; return 0
    fi
    i=$((i + 1))
    [ $i -lt 60 ] || { echo "$1 stayed at '$v'"; cat "$work/prom.log" | tail -5; exit 1; }
    sleep 1
  done
}
expect 'sum(shardlm_time_to_first_token_seconds_count{model_name="tiny-moe"})'
expect 'sum(shardlm_generation_tokens_total{model_name="tiny-moe"})'
expect 'sum(shardlm_prompt_tokens_total{model_name="tiny-moe"})'
expect 'shardlm_worker_step_communication_seconds_total{model_name="tiny-moe",worker="0"}'
expect 'shardlm_worker_step_communication_seconds_total{model_name="tiny-moe",worker="1"}'
expect 'count(shardlm_moe_expert_tokens_total{model_name="tiny-moe"} > 0)'
expect 'sum(shardlm_request_success_total{model_name="tiny-moe",finished_reason="length"})'
expect 'min(shardlm_worker_up{model_name="tiny-moe"})'
# Both workers hold experts: load is reported by each.
expect 'count(count by (worker) (shardlm_moe_expert_tokens_total{model_name="tiny-moe"}))'
n=$(query 'count(count by (worker) (shardlm_moe_expert_tokens_total{model_name="tiny-moe"}))')
[ "$n" = 2 ] || { echo "expert load from $n workers, expected 2"; exit 1; }
echo "prometheus: ok"
