#!/bin/sh
# Every rank of an MPI job must load the same model: a worker given another model (here the MoE where
# the coordinator has the dense one) stops the job at start with a message naming the rank (workers
# that differ among themselves with int8 weights: naming the difference), while a copy of the same
# model whose config.json differs only in its layout is accepted.
# Skips (77) without mpirun.
# Usage: mixed_models_test.sh SHARDLM DATA_DIR WORK_DIR
set -eu
shardlm=$1
data=$2
work=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
. "$root/scripts/mpi_env.sh"
rm -rf "$work"
mkdir -p "$work"
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT

run() {  # COORDINATOR_MODEL WORKER_MODEL -> exit status; output in $work/out
  status=0
  timeout -k 5 120 mpirun -np 1 "$shardlm" generate --model "$1" --prompt "Hello world" --max-tokens 4 --temperature 0 : \
    -np 2 "$shardlm" generate --model "$2" --prompt "Hello world" --max-tokens 4 --temperature 0 >"$work/out" 2>&1 || status=$?
  return $status
}

if run "$data/dense" "$data/moe"; then cat "$work/out"; echo "FAIL: workers with another model were accepted"; exit 1; fi
grep -q "worker 1 (rank 1) loaded a different model than the coordinator" "$work/out" || {
  cat "$work/out"; echo "FAIL: no message naming the worker"; exit 1; }
echo "a worker with another model: refused"

# With int8 weights the workers' load is collective (the row scales of the matrices they split by
# columns): workers that differ among themselves stop there, naming the difference, instead of
# calling the collectives differently (an MPI crash or a hang).
"$shardlm" mkmodel --variant tiny-dense --layers 3 --out "$work/short" >/dev/null
status=0
timeout -k 5 120 mpirun -np 2 "$shardlm" generate --model "$data/dense" --prompt "Hello" --max-tokens 4 --weights int8 : \
  -np 1 "$shardlm" generate --model "$work/short" --prompt "Hello" --max-tokens 4 --weights int8 >"$work/out" 2>&1 || status=$?
if [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  cat "$work/out"; echo "FAIL: workers with different models, int8: exit $status"; exit 1
fi
grep -q "the workers loaded different models (hidden_size 256 .. 256, 3 .. 6 layers" "$work/out" || {
  cat "$work/out"; echo "FAIL: no message naming the difference"; exit 1; }
echo "workers with different models, int8: refused at load"

# The same model, its config.json written with other whitespace and key order.
mkdir "$work/copy"
for f in "$data/dense"/*; do ln -s "$f" "$work/copy/$(basename "$f")"; done
rm "$work/copy/config.json"
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), indent=4, sort_keys=True)' \
  "$data/dense/config.json" "$work/copy/config.json"
run "$data/dense" "$work/copy" || { cat "$work/out"; echo "FAIL: the same model in another layout was refused"; exit 1; }
grep -q "finish: length" "$work/out" || { cat "$work/out"; echo "FAIL: no generation"; exit 1; }
echo "the same model with config.json laid out differently: accepted"
