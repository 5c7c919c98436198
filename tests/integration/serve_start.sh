# Sourced by serve tests: start_cluster RANKS MODEL WORK [serve options...] starts
# `shardlm serve` as one MPI job (rank 0 coordinator, the rest workers) with free ports, waits for its
# ready line and sets CLUSTER_PID, HTTP_PORT, TCP_PORT, METRICS_PORT. stop_cluster sends SIGTERM and
# waits for a clean exit (returns non-zero otherwise); it also runs from the caller's EXIT trap.
# MPIRUN_ARGS (optional) go to mpirun before -np, e.g. "--mca orte_enable_recovery 1".
# Needs: $shardlm, $root (repository root).
start_cluster() {
  ranks=$1; model=$2; cwork=$3; shift 3
  . "$root/scripts/mpi_env.sh"
  rm -f "$cwork/serve.out"
  # shellcheck disable=SC2086
  setsid mpirun ${MPIRUN_ARGS:-} -np "$ranks" "$shardlm" serve --model "$model" --port 0 --http-port 0 --metrics-port 0 "$@" \
    >"$cwork/serve.out" 2>"$cwork/serve.err" &
  CLUSTER_PID=$!
  i=0
  until grep -q "ready |" "$cwork/serve.out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$CLUSTER_PID" 2>/dev/null; then
      echo "serve did not become ready"; cat "$cwork/serve.out" "$cwork/serve.err"; return 1
    fi
    sleep 0.2
  done
  line=$(grep "ready |" "$cwork/serve.out")
  HTTP_PORT=$(echo "$line" | sed -n 's#.*OpenAI API https\?://[^:]*:\([0-9]*\)/v1.*#\1#p')
  TCP_PORT=$(echo "$line" | sed -n 's#.*protocol [^ ]*:\([0-9]*\) .*#\1#p')
  METRICS_PORT=$(echo "$line" | sed -n 's#.*metrics http://[^:]*:\([0-9]*\)/metrics.*#\1#p')
  echo "cluster up: http $HTTP_PORT, protocol $TCP_PORT, metrics $METRICS_PORT"
}

# The pid of rank N of the cluster started last, or of the MPI job whose mpirun has pid M:
# rank_pid N [M].
rank_pid() {
  for p in $(pgrep -P "${2:-$CLUSTER_PID}" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$p"; return 0; fi
  done
  return 1
}

# The pid of rank 0 (the coordinator) of the cluster started last.
coordinator_pid() { rank_pid 0; }

# SIGTERM to the coordinator: it stops the workers and every rank exits 0, so mpirun exits 0.
# (SIGTERM to mpirun itself also stops every rank the same way, but mpirun then exits 1.)
stop_cluster() {
  [ -n "${CLUSTER_PID:-}" ] || return 0
  coordinator=$(coordinator_pid) || coordinator=$CLUSTER_PID
  pid=$CLUSTER_PID; CLUSTER_PID=
  kill -TERM "$coordinator" 2>/dev/null || return 0
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ]; then
      echo "serve did not stop within 60 s of SIGTERM"
      kill -KILL $(ps -o pid= -s "$pid") 2>/dev/null
      return 1
    fi
    sleep 0.2
  done
  wait "$pid"
}
