#!/usr/bin/env bash
# The chart's launcher script (helm/shardlm/files/launch.sh) on three "hosts" (network namespaces
# h1..h3, scripts/netns_hosts.sh) standing in for the launcher pod and two worker pods: an
# operator-style hostfile lists h2 and h3, `ssh` reaches them through the namespaces' rsh agent,
# and launch.sh must wait for them, put rank 0 on its own host and ranks 1..2 on the workers, and
# run shardlm there: `shardlm generate` must print the same text as a single process. Also: a
# worker count that differs from the hostfile and an unreachable worker must stop it with a reason,
# and a SIGTERM to launch.sh serving must stop the job within seconds (exit 0).
# Usage: launcher_netns_test.sh SHARDLM DATA_DIR WORK_DIR. Exits 77 where namespaces are unavailable.
set -euo pipefail
shardlm=$1
data=$2
work=$3
root=$(cd "$(dirname "$0")/../../.." && pwd)
hosts="$root/scripts/netns_hosts.sh"
launch="$root/helm/shardlm/files/launch.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
"$hosts" check || exit $?

exec 9>/tmp/shardlm-netns.lock
flock -w 150 9 || { echo "another namespace test holds /tmp/shardlm-netns.lock"; exit 1; }
rm -rf "$work"
mkdir -p "$work/bin"
export SHARDLM_NETNS_DIR="$work/netns"
trap '"$hosts" down; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
"$hosts" down-stale
"$hosts" up 3 >/dev/null

# ssh for launch.sh's reachability check: drop ssh options, run through the namespaces' agent.
cat > "$work/bin/ssh" <<'EOF'
#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -o|-p|-l|-i) shift 2;; -*) shift;; *) break;; esac; done
exec "$SHARDLM_NETNS_AGENT" "$@"
EOF
# Each rank notes where it runs, then is shardlm.
cat > "$work/bin/rank" <<EOF
#!/bin/sh
echo "\$OMPI_COMM_WORLD_RANK \$(hostname)" >> "$work/ranks.txt"
exec "$shardlm" "\$@"
EOF
chmod +x "$work/bin/ssh" "$work/bin/rank"
printf 'h2 slots=1\nh3 slots=1\n' > "$work/operator-hostfile"

prompt=(generate --model "$data/moe" --prompt "hello world" --max-tokens 12 --temperature 0)
"$shardlm" "${prompt[@]}" > "$work/single.txt" 2>/dev/null

run_launcher() {  # WORKERS HOSTFILE WAIT_SECONDS -> launch.sh's exit status; output in $work/out, err
  timeout -k 5 120 "$hosts" run env PATH="$work/bin:$PATH" TMPDIR="$work" \
    OMPI_MCA_orte_default_hostfile="$2" SHARDLM_WORKERS="$1" SHARDLM_WORKER_WAIT_SECONDS="$3" \
    SHARDLM_BIN="$work/bin/rank" SHARDLM_MPI_ENV_SCRIPT="$root/scripts/mpi_env.sh" \
    SHARDLM_MPI_TRANSPORT=tcp SHARDLM_MPI_INTERFACE=veth0 \
    bash "$launch" --mca plm_rsh_agent "$SHARDLM_NETNS_DIR/rsh_agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    -- "${prompt[@]}" > "$work/out" 2> "$work/err"
}

run_launcher 2 "$work/operator-hostfile" 60 || { cat "$work/out" "$work/err"; echo "FAIL: launch.sh exited $?"; exit 1; }
grep -v '^launch.sh: ' "$work/out" > "$work/mpi.txt"
cmp "$work/single.txt" "$work/mpi.txt" || { echo "FAIL: text under launch.sh differs from the single process"; cat "$work/err"; exit 1; }
sort "$work/ranks.txt" > "$work/ranks.sorted"
printf '0 h1\n1 h2\n2 h3\n' | cmp - "$work/ranks.sorted" || { echo "FAIL: rank placement:"; cat "$work/ranks.sorted"; exit 1; }
echo "launch.sh: rank 0 on the launcher host, ranks 1-2 on the workers, same text as one process"

# A pod's SIGTERM: launch.sh passes it to the coordinator, which drains and stops every rank (exit 0)
# within seconds (mpirun itself would pass it on only after odls_base_sigkill_timeout, 150 s).
serve_args=(serve --model "$data/dense" --port 0 --http-port 0 --metrics-port -1 --threads 1 --max-context 4096 --shutdown-grace 2)
"$hosts" run env PATH="$work/bin:$PATH" TMPDIR="$work" \
  OMPI_MCA_orte_default_hostfile="$work/operator-hostfile" SHARDLM_WORKERS=2 SHARDLM_WORKER_WAIT_SECONDS=60 \
  SHARDLM_BIN="$work/bin/rank" SHARDLM_MPI_ENV_SCRIPT="$root/scripts/mpi_env.sh" \
  SHARDLM_MPI_TRANSPORT=tcp SHARDLM_MPI_INTERFACE=veth0 \
  bash "$launch" --mca plm_rsh_agent "$SHARDLM_NETNS_DIR/rsh_agent.sh" --mca plm_rsh_no_tree_spawn 1 \
  -- "${serve_args[@]}" > "$work/serve.out" 2> "$work/serve.err" &
runner=$!
i=0
until grep -q "ready |" "$work/serve.out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 "$runner" 2>/dev/null; then
    cat "$work/serve.out" "$work/serve.err"; echo "FAIL: serve under launch.sh did not become ready"; exit 1
  fi
  sleep 0.2
done
# $runner is launch.sh itself (netns_hosts.sh run, ip netns exec, unshare, sh and env all exec).
grep -q "launch.sh" "/proc/$runner/cmdline" || { echo "FAIL: pid $runner is not launch.sh: $(tr '\0' ' ' < "/proc/$runner/cmdline")"; exit 1; }
kill -TERM "$runner"
i=0
while kill -0 "$runner" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then
    tail -n 20 "$work/serve.err"; echo "FAIL: serve under launch.sh still runs 20 s after SIGTERM"
    pkill -KILL -f "$work/bin/rank" || true; exit 1
  fi
  sleep 0.2
done
status=0
wait "$runner" || status=$?
[ "$status" -eq 0 ] || { tail -n 20 "$work/serve.err"; echo "FAIL: launch.sh exited $status after SIGTERM"; exit 1; }
grep -q "SIGTERM to the coordinator" "$work/serve.out" || { cat "$work/serve.out"; echo "FAIL: SIGTERM not passed to rank 0"; exit 1; }
grep -q "stopped" "$work/serve.err" || { tail -n 20 "$work/serve.err"; echo "FAIL: the coordinator did not stop cleanly"; exit 1; }
echo "launch.sh: SIGTERM drains and stops the serving job in $((i / 5)) s (exit 0)"

if run_launcher 3 "$work/operator-hostfile" 5; then echo "FAIL: launch.sh ran with 3 workers expected and 2 listed"; exit 1; fi
grep -q "lists 2 worker(s), the release expects 3" "$work/err" || { cat "$work/err"; echo "FAIL: no reason for the worker count mismatch"; exit 1; }
printf 'h2 slots=1\nh9 slots=1\n' > "$work/missing-hostfile"
if run_launcher 2 "$work/missing-hostfile" 3; then echo "FAIL: launch.sh ran with an unreachable worker"; exit 1; fi
grep -q "worker h9 does not accept ssh after 3s" "$work/err" || { cat "$work/err"; echo "FAIL: no reason for the unreachable worker"; exit 1; }
echo "launch.sh: refuses a wrong worker count and an unreachable worker"
