#!/usr/bin/env bash
# shardlm under Slurm, on a single-node cluster started here (deploy/slurm/local-cluster.sh; it
# installs slurm-wlm and munge when missing). Everything is torn down on exit, also on failure.
#   slurm_test.sh serve SHARDLM DATA_DIR WORK_DIR
#     deploy/slurm/shardlm-slurm submits `shardlm serve` (coordinator + 2 workers, srun --mpi=pmix)
#     on a generated tiny model; the address file turns ready; GET /ready and POST
#     /v1/chat/completions answer; Prometheus (if installed) scrapes it through the job's file_sd
#     target; `scontrol requeue` brings the same job back (same state dir, one restart counted) and
#     serving again; scancel stops it and leaves no process and no target behind.
#   slurm_test.sh smoke SHARDLM DATA_DIR WORK_DIR
#     the cluster runs an sbatch job whose `srun --mpi=pmix` coordinator + 2 workers generate the
#     same text as one process; shardlm.sbatch refuses a missing model and a worker layout the
#     allocation cannot hold, marking the address file failed; shardlm-slurm sizes allocations.
# Exits 77 (skip) without root or where Slurm cannot be installed.
set -uo pipefail
mode=$1
shardlm=$2
data=$3
work=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
slurm=$root/deploy/slurm
cluster=$slurm/local-cluster.sh

[ "$(id -u)" = 0 ] || { echo "SKIP: the single-node Slurm cluster needs root"; exit 77; }
"$cluster" install || { echo "SKIP: cannot install slurm-wlm and munge"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not found"; exit 77; }

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
export SLURM_CONF=$work/cluster/slurm.conf
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  "$cluster" down "$work/cluster"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*"
  for f in "$work"/run/*.out; do [ -r "$f" ] && { echo "==> $f"; tail -n 40 "$f"; }; done
  "$cluster" logs "$work/cluster" | tail -n 60
  exit 1
}
wait_until() {  # SECONDS DESCRIPTION COMMAND...: poll every second
  local limit=$1 what=$2 k
  shift 2
  for ((k = 0; k < limit; k++)); do
    "$@" && return 0
    sleep 1
  done
  fail "$what (after ${limit}s)"
}
job_gone() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }
address_state() { sed -n 's/^SHARDLM_STATE=//p' "$1" 2>/dev/null; }
state_is() { [ "$(address_state "$1")" = "$2" ]; }
taken_ports=" "
free_port() {  # VAR: a port below the kernel's ephemeral range (outgoing connections never hold it),
  local -n out=$1  # in no socket's use and not handed out before by this script
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  while :; do
    p=$(( 20000 + RANDOM % (low - 20000) ))
    [[ "$taken_ports" == *" $p "* ]] && continue
    ss -Htan "sport = :$p" | grep -q . || { taken_ports+="$p "; out=$p; return; }
  done
}
# Polls until the address file says ready; a job that failed (the sbatch script says so there) ends
# the wait at once.
ready_or_failed() {
  case "$(address_state "$1")" in
    ready) return 0 ;;
    failed) fail "job $job failed before it was ready" ;;
  esac
  return 1
}

"$cluster" up "$work/cluster" || { "$cluster" logs "$work/cluster"; fail "the local Slurm cluster did not start"; }
mkdir -p "$work/run"
cd "$work/run" || exit 1
. "$root/scripts/mpi_env.sh"

if [ "$mode" = smoke ]; then
  # MPI through Slurm's PMIx: coordinator + 2 workers in one srun step inside an sbatch job.
  prompt="generate --model $data/moe --prompt hello --max-tokens 12 --temperature 0"
  # shellcheck disable=SC2086 # prompt is a word list
  "$shardlm" $prompt > "$work/single.txt" 2>/dev/null || fail "single-process generate"
  job=$(sbatch --parsable --ntasks=3 --overcommit --output="$work/run/smoke-%j.out" --error="$work/run/smoke-%j.err" \
        --wrap "srun --mpi=pmix --overcommit --ntasks=3 $shardlm $prompt") || fail "sbatch"
  wait_until 180 "the srun --mpi=pmix job $job finishes" job_gone "$job"
  cmp "$work/single.txt" "$work/run/smoke-$job.out" || fail "text from srun --mpi=pmix differs from the single process"
  grep -q "coordinator + 2 MPI workers" "$work/run/smoke-$job.err" || fail "the job did not run as coordinator + 2 MPI workers"
  echo "srun --mpi=pmix: coordinator + 2 workers, same text as one process"

  # shardlm.sbatch refuses what it cannot run, with the reason, and marks the address failed.
  job=$(sbatch --parsable --ntasks=3 --overcommit --output="$work/run/nomodel.out" \
        --export="ALL,SHARDLM_MODEL=$work/no-such-model,SHARDLM_BIN=$shardlm,SHARDLM_ADDRESS_FILE=$work/nomodel.address" \
        "$slurm/shardlm.sbatch") || fail "sbatch"
  wait_until 60 "job $job ends" job_gone "$job"
  grep -q "SHARDLM_MODEL $work/no-such-model is not a folder" "$work/run/nomodel.out" || fail "no reason for the missing model"
  state_is "$work/nomodel.address" failed || fail "address file of the refused job is not 'failed'"
  job=$(sbatch --parsable --ntasks=4 --overcommit --output="$work/run/layout.out" \
        --export="ALL,SHARDLM_MODEL=$data/moe,SHARDLM_BIN=$shardlm,SHARDLM_WORKERS=3,SHARDLM_WORKERS_PER_NODE=1,SHARDLM_ADDRESS_FILE=$work/layout.address,SHARDLM_STATE_DIR=$work/state" \
        "$slurm/shardlm.sbatch") || fail "sbatch"
  wait_until 60 "job $job ends" job_gone "$job"
  grep -q "3 workers at 1 per node need 3 nodes, the job has 1" "$work/run/layout.out" || fail "no reason for the impossible layout"
  state_is "$work/layout.address" failed || fail "address file of the impossible layout is not 'failed'"
  echo "shardlm.sbatch: refuses a missing model and a layout the allocation cannot hold"

  dry=$("$slurm/shardlm-slurm" --model "$data/moe" --workers 4 --workers-per-node 2 --threads 16 --mem-per-worker 28G --dry-run)
  for want in "--nodes=2" "--ntasks=5" "--cpus-per-task=16" "--mem=61440M" "SHARDLM_WORKERS=4" "shardlm.sbatch"; do
    [[ "$dry" == *"$want"* ]] || fail "shardlm-slurm --dry-run lacks $want: $dry"
  done
  # Sizes as the other tools write them (27GiB) are read; a size it cannot read stops it (exit 2),
  # never a job submitted without its memory.
  dry=$("$slurm/shardlm-slurm" --model "$data/moe" --workers 2 --mem-per-worker 27GiB --coordinator-mem 1.5G --dry-run)
  [[ "$dry" == *"--mem=29184M"* ]] || fail "shardlm-slurm --mem-per-worker 27GiB: $dry"
  for bad in lots 27Gx -5G; do
    status=0
    "$slurm/shardlm-slurm" --model "$data/moe" --workers 2 --mem-per-worker "$bad" --dry-run >"$work/bad.out" 2>&1 || status=$?
    [ "$status" = 2 ] && grep -q "is not a size like 28G" "$work/bad.out" || { cat "$work/bad.out"; fail "--mem-per-worker $bad: exit $status"; }
  done
  echo "slurm smoke: ok"
  exit 0
fi

[ "$mode" = serve ] || fail "mode must be serve or smoke, not '$mode'"
"$shardlm" mkmodel --out "$work/model" --variant tiny-dense --seed 11 >/dev/null || fail "mkmodel"
free_port port; free_port http_port; free_port metrics_port
job=$("$slurm/shardlm-slurm" --parsable --model "$work/model" --workers 2 --workers-per-node 2 --threads 1 \
      --overcommit --port "$port" --http-port "$http_port" --metrics-port "$metrics_port" \
      --state-dir "$work/state" --address-file "$work/address" --prometheus-sd-dir "$work/targets" \
      --shardlm "$shardlm" --job-name shardlm-test) \
  || fail "shardlm-slurm did not submit"
echo "submitted job $job"
wait_until 300 "the address file of job $job says ready" ready_or_failed "$work/address"

ask() {  # checks GET /ready and one chat completion against the address in the address file
  local http
  http=$(sed -n 's/^SHARDLM_HTTP=//p' "$work/address")
  curl -fsS --max-time 10 "$http/ready" >/dev/null || fail "GET $http/ready"
  curl -fsS --max-time 120 -H 'Content-Type: application/json' "$http/v1/chat/completions" \
    -d '{"model": "model", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}' \
    > "$work/reply.json" || fail "POST $http/v1/chat/completions"
  /usr/bin/python3 - "$work/reply.json" <<'EOF' || fail "chat completion reply: $(cat "$work/reply.json")"
import json, sys
reply = json.load(open(sys.argv[1]))
choice = reply["choices"][0]
assert isinstance(choice["message"]["content"], str), "no message content"
assert choice["finish_reason"] in ("stop", "length"), choice["finish_reason"]
assert 1 <= reply["usage"]["completion_tokens"] <= 8, reply["usage"]
print(f"chat completion: {reply['usage']['completion_tokens']} token(s), finish {choice['finish_reason']}")
EOF
}
ask
grep -q "^SHARDLM_TCP=.*:$port$" "$work/address" || fail "address file lacks the TCP port"
[ "$(scontrol show job "$job" | sed -n 's/.*NumTasks=\([0-9]*\).*/\1/p')" = 3 ] || fail "job $job does not run 3 tasks"
grep -q "\"$(hostname -s):$metrics_port\"" "$work/targets/shardlm-$job.json" || fail "no Prometheus target for job $job"

# Prometheus (when installed) scrapes the job through deploy/prometheus/prometheus.yml's file_sd.
if command -v prometheus >/dev/null 2>&1; then
  mkdir -p "$work/prom"
  sed -e "s|/var/lib/prometheus/shardlm-targets/\*.json|$work/targets/*.json|" -e 's|scrape_interval: 15s|scrape_interval: 1s|' \
    -e 's|refresh_interval: 30s|refresh_interval: 1s|' "$root/deploy/prometheus/prometheus.yml" > "$work/prom/prometheus.yml"
  cp "$root/deploy/prometheus/alerts.yml" "$work/prom/"
  free_port prom_port
  prometheus --config.file="$work/prom/prometheus.yml" --storage.tsdb.path="$work/prom/data" \
    --web.listen-address="127.0.0.1:$prom_port" > "$work/prom/log" 2>&1 &
  prom_pid=$!
  query() { curl -fsS "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" 2>/dev/null; }
  scraped() { query "up{job=\"shardlm-slurm\",slurm_job_id=\"$job\"} == 1" | grep -q '"value"'; }
  wait_until 60 "Prometheus scrapes job $job" scraped
  workers_up() { query 'count(shardlm_worker_up == 1)' | grep -q '"value":\[[0-9.]*,"2"\]'; }
  wait_until 30 "Prometheus sees 2 workers up" workers_up
  kill "$prom_pid"; wait "$prom_pid" 2>/dev/null; prom_pid=""
  echo "prometheus: scrapes job $job through file_sd, 2 workers up"
fi

# Requeue: the same job (id, state dir) comes back and serves again.
scontrol requeue "$job" || fail "scontrol requeue"
wait_until 60 "job $job is requeued" state_is "$work/address" requeued
wait_until 60 "job $job is pending again" sh -c "squeue -h -j $job -o %T | grep -q PENDING"
scontrol update JobId="$job" StartTime=now || fail "scontrol update StartTime"  # skip Slurm's requeue delay
wait_until 300 "job $job is ready after the requeue" ready_or_failed "$work/address"
grep -q '^SHARDLM_RESTARTS=1$' "$work/address" || fail "the address file does not count the restart"
[ -d "$work/state" ] || fail "the state dir is gone after the requeue"
ask
echo "requeue: same job $job serving again"

scancel "$job"
wait_until 120 "job $job ends after scancel" job_gone "$job"
wait_until 30 "the address file says stopped" state_is "$work/address" stopped
if pgrep -f -- "--model $work/model" >/dev/null; then fail "shardlm processes left after scancel"; fi
[ ! -e "$work/targets/shardlm-$job.json" ] || fail "the Prometheus target of the cancelled job is still there"
echo "slurm serve: ok"
