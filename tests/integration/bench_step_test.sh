#!/usr/bin/env bash
# The step benchmark runs end to end on a generated tiny MoE at q4, as one process and as a
# coordinator + 2 MPI workers, and prints a roofline that counts only the routed experts (the
# workers report their expert weight bytes through the init reply); and with --sequences 3, one
# token of each of three sequences per step, its read-bandwidth baseline over 64 MiB
# (--bandwidth-bytes; named in the roofline line, and a size below 1 MiB refused). Each run times
# its steps apart from one untimed step after each bandwidth measurement, and prints what memory
# left untouched for a step costs on its next touch.
# Usage: bench_step_test.sh BENCH_STEP
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=$1
args=(--synthetic-weights tiny-moe --weights q4 --prompt 8 --decode 4 --threads 1 --bandwidth-threads 1)
check() {
  local out=$1
  echo "$out"
  grep -q "decode 4 tokens" <<<"$out" || { echo "FAIL: no decode line"; exit 1; }
  grep -Eq "of the roofline \(MoE: 2 of 8 experts per layer\)" <<<"$out" || { echo "FAIL: no MoE roofline"; exit 1; }
  grep -Eq "over [0-9]+ slices, reading [0-9.]+ [MG]B\)" <<<"$out" || { echo "FAIL: the baseline's size is not named"; exit 1; }
  # One untimed step after each bandwidth measurement, and the price of memory left untouched for
  # a step (dense weights) and for the routed experts' longer idle time, with the roofline it gives.
  grep -Eq "tok/s; [1-9][0-9]* more untimed, one after each bandwidth measurement\)" <<<"$out" || { echo "FAIL: no untimed steps"; exit 1; }
  grep -Eq "^memory untouched for one step \([0-9.e+-]+ ms\) costs [0-9.]+ us more per 2 MiB .*; routed experts untouched for [0-9.e+-]+ ms on average: [0-9.]+ us, at least [1-9][0-9]* regions; over 1 cores [0-9.]+ ms per token -> roofline with it [0-9.]+ tok/s; measured = [0-9.]+% of it$" <<<"$out" \
    || { echo "FAIL: no idle-memory line"; exit 1; }
  # The bytes read per token are below the weights all workers hold (2 of 8 experts are read).
  local held active
  held=$(awk '$1 ~ /^[0-9]+$/ && $5 ~ /%$/ && $7 == "MB" { sum += $6 } END { if (sum > 0) print sum }' <<<"$out")
  active=$(sed -n 's/^weights read per token \([0-9.]*\) MB.*/\1/p' <<<"$out")
  [ -n "$held" ] && [ -n "$active" ] || { echo "FAIL: no byte figures"; exit 1; }
  awk -v a="$active" -v h="$held" 'BEGIN { exit !(a > 0 && a < h) }' || { echo "FAIL: active $active MB not below held $held MB"; exit 1; }
}
check "$(timeout -k 5 120 "$bench" "${args[@]}" 2>&1)"
# Three sequences side by side: one token of each per step, and the roofline counts at most
# 3 x 2 = 6 of the 8 experts per layer and step, so more bytes per step than one sequence reads.
out3=$(timeout -k 5 120 "$bench" "${args[@]}" --sequences 3 --bandwidth-bytes 64MiB 2>&1)
echo "$out3"
grep -Eq "decode 3 sequences x 4 tokens: .*; [1-9][0-9]* more steps untimed" <<<"$out3" || { echo "FAIL: no decode line for 3 sequences"; exit 1; }
grep -Eq "of the roofline \(MoE: at most 6 of 8 experts per layer and step\)" <<<"$out3" || { echo "FAIL: no MoE roofline for 3 sequences"; exit 1; }
grep -q "slices, reading 67.1 MB)" <<<"$out3" || { echo "FAIL: the baseline did not read the 64 MiB asked for"; exit 1; }
if bad=$(timeout -k 5 60 "$bench" "${args[@]}" --bandwidth-bytes 12 2>&1); then
  echo "$bad"; echo "FAIL: a 12-byte baseline was accepted"; exit 1
fi
grep -q -- "--bandwidth-bytes 12: the baseline needs at least 1 MiB" <<<"$bad" || { echo "$bad"; echo "FAIL: no clear refusal"; exit 1; }
one=$(timeout -k 5 120 "$bench" "${args[@]}" 2>&1 | sed -n 's/^weights read per token \([0-9.]*\) MB.*/\1/p')
three=$(sed -n 's/^weights read per step \([0-9.]*\) MB.*/\1/p' <<<"$out3")
[ -n "$one" ] && [ -n "$three" ] || { echo "FAIL: no byte figures for 1 and 3 sequences"; exit 1; }
awk -v a="$one" -v b="$three" 'BEGIN { exit !(b > a) }' || { echo "FAIL: 3 sequences read $three MB per step, not more than one's $one MB"; exit 1; }
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found"
  exit 77
fi
. "$root/scripts/mpi_env.sh"
check "$(timeout -k 5 120 mpirun -np 3 "$bench" "${args[@]}" 2>&1)"
echo "PASS"
