#!/usr/bin/env bash
# Long libFuzzer runs of the fuzz targets, one after the other (docs/reliability.md, "Fuzzing"):
#   tests/fuzz/run_long.sh BUILD_DIR [TARGET...]
# BUILD_DIR is a clang build configured with -DSHARDLM_FUZZ=ON whose fuzz_* targets are built; the
# targets default to all of BUILD_DIR/tests/fuzz/targets.txt. Environment:
#   RUNS=1000000     executions per target (libFuzzer -runs)
#   MAX_TIME=3600    cap in seconds per target (libFuzzer -max_total_time)
#   TIMEOUT=10       one input running longer than this many seconds is a hang
#   KEEP_GOING=1     fork mode that records a failure and goes on (-fork=1 -ignore_crashes=1 ...)
#                    instead of stopping at the first one
#   FUZZ_ARGS=...    more libFuzzer options, e.g. FUZZ_ARGS=-len_control=0 (try long inputs at once)
# Each target starts from its seed corpus (tests/fuzz/corpus/<name>/, read only) and grows a working
# corpus in BUILD_DIR/tests/fuzz/long/corpus_<name>/; its log is BUILD_DIR/tests/fuzz/long/<name>.log
# and failing inputs are written there as crash-*, timeout-*, oom-* or leak-*. Prints one Markdown
# table row per target; exits non-zero when any target failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run_long.sh BUILD_DIR [TARGET...]}
shift
build=$(cd "$build" && pwd)
manifest=$build/tests/fuzz/targets.txt
[ -f "$manifest" ] || { echo "run_long.sh: $manifest is missing (configure with -DSHARDLM_FUZZ=ON and clang)" >&2; exit 2; }
runs=${RUNS:-1000000}
max_time=${MAX_TIME:-3600}
timeout=${TIMEOUT:-10}
out=$build/tests/fuzz/long
mkdir -p "$out"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  while read -r name _; do targets+=("$name"); done < "$manifest"
fi

echo "| target | executions | time (s) | exec/s | coverage (cov / ft) | corpus (inputs/size) | result |"
echo "|---|---|---|---|---|---|---|"
status=0
for name in "${targets[@]}"; do
  line=$(grep -E "^$name " "$manifest") || { echo "run_long.sh: unknown target $name" >&2; status=2; continue; }
  read -r _ max_len dict <<< "$line"
  bin=$build/bin/fuzz_$name
  [ -x "$bin" ] || { echo "run_long.sh: $bin is not built" >&2; status=2; continue; }
  corpus=$out/corpus_$name
  mkdir -p "$corpus"
  args=(-seed=1 -runs="$runs" -max_total_time="$max_time" -timeout="$timeout" -max_len="$max_len"
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/")
  [ -n "${dict:-}" ] && args+=(-dict="$here/$dict")
  [ "${KEEP_GOING:-0}" = 1 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of options split at spaces
  [ -n "${FUZZ_ARGS:-}" ] && args+=(${FUZZ_ARGS})
  log=$out/$name.log
  marker=$out/.start_$name
  touch "$marker"
  start=$(date +%s.%N)
  "$bin" "${args[@]}" "$corpus" "$here/corpus/$name" > "$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  execs=$(grep -oE 'stat::number_of_executed_units:[[:space:]]*[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$')
  [ -z "$execs" ] && execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  rate=$(grep -oE 'stat::average_exec_per_sec:[[:space:]]*[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 | sed -E 's/cov: ([0-9]+) ft: ([0-9]+)/\1 \/ \2/')
  # libFuzzer's own corpus (inputs kept, total size), as in its last status line.
  units=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | sed 's/corp: //')
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
  failures=$(find "$out" -maxdepth 1 -type f -newer "$marker" \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  rm -f "$marker"
  if [ $rc -eq 0 ] && [ "$failures" -eq 0 ] && ! grep -qE 'ERROR: (libFuzzer|AddressSanitizer|UndefinedBehaviorSanitizer)|runtime error:' "$log"; then
    result="no failure"
  else
    result="FAILED: $failures failing input(s), exit $rc; see $log"
    status=1
  fi
  echo "| $name | ${execs:-?} | $seconds | ${rate:-?} | ${cov:-?} | ${units:-?} | $result |"
done
exit $status
