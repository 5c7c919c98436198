#!/bin/sh
# `shardlm generate` on generated tiny models of every kind: greedy output is deterministic, stops at
# --max-tokens, sampling is deterministic for a seed, bad options are refused, and --matmul amx runs
# where the CPU has AMX and is refused clearly where it has not.
set -eu
shardlm=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
for variant in tiny-dense tiny-moe tiny-edge; do
  "$shardlm" mkmodel --out "$work/$variant" --variant "$variant" --seed 3 >/dev/null
  "$shardlm" generate --model "$work/$variant" --prompt "Hello there" --max-tokens 12 --temperature 0 >"$work/a.txt" 2>"$work/a.err"
  "$shardlm" generate --model "$work/$variant" --prompt "Hello there" --max-tokens 12 --temperature 0 >"$work/b.txt" 2>/dev/null
  cmp "$work/a.txt" "$work/b.txt"
  grep -q "12 generated\|finish: stop" "$work/a.err" || { cat "$work/a.err"; exit 1; }
  "$shardlm" generate --model "$work/$variant" --chat --prompt "Hi" --max-tokens 8 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 5 >"$work/c.txt" 2>/dev/null
  "$shardlm" generate --model "$work/$variant" --chat --prompt "Hi" --max-tokens 8 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 5 >"$work/d.txt" 2>/dev/null
  cmp "$work/c.txt" "$work/d.txt"
  echo "$variant: $(head -c 80 "$work/a.txt" | tr '\n' ' ')"
done
if "$shardlm" generate --model "$work/tiny-dense" --prompt x --temperature -1 2>"$work/e.err"; then
  echo "negative temperature was accepted"; exit 1
fi
grep -q "temperature" "$work/e.err"
if "$shardlm" generate --model "$work/missing" --prompt x 2>"$work/f.err"; then
  echo "missing model was accepted"; exit 1
fi
cat "$work/f.err"
# --matmul amx: bf16 weights on the AMX tiles where the CPU has them (deterministic like the own
# kernel), refused with a reason naming AMX-BF16 elsewhere.
amx_run() {
  "$shardlm" generate --model "$work/tiny-moe" --weights bf16 --matmul amx --prompt "Hello there" --max-tokens 12 --temperature 0 "$@"
}
if grep -q amx_bf16 /proc/cpuinfo && grep -q amx_tile /proc/cpuinfo; then
  amx_run >"$work/g.txt" 2>"$work/g.err" || { cat "$work/g.err"; exit 1; }
  amx_run >"$work/h.txt" 2>/dev/null
  cmp "$work/g.txt" "$work/h.txt"
  grep -q "amx matmul" "$work/g.err" && grep -q "12 generated\|finish: stop" "$work/g.err" || { cat "$work/g.err"; exit 1; }
  echo "amx: $(head -c 80 "$work/g.txt" | tr '\n' ' ')"
else
  if amx_run >/dev/null 2>"$work/g.err"; then
    echo "--matmul amx was accepted on a CPU without AMX"; exit 1
  fi
  grep -q "AMX-BF16" "$work/g.err" || { cat "$work/g.err"; exit 1; }
  echo "amx: refused on this CPU as expected"
fi
# --logit-bias forces a token (the text is it over and over); bad entries and limits are named.
"$shardlm" generate --model "$work/tiny-moe" --prompt "Hello there" --max-tokens 4 --temperature 0 --logit-bias 100=100 \
  >"$work/i.txt" 2>/dev/null
piece=$("$shardlm" generate --model "$work/tiny-moe" --prompt "Hello there" --max-tokens 1 --temperature 0 --logit-bias 100=100 2>/dev/null)
[ "$(cat "$work/i.txt")" = "$piece$piece$piece$piece" ] || { echo "logit bias: '$(cat "$work/i.txt")' is not 4 x '$piece'"; exit 1; }
for bad in "--logit-bias 12" "--logit-bias 12=500" "--logit-bias x=1" "--min-tokens 9 --max-tokens 4"; do
  # shellcheck disable=SC2086
  if "$shardlm" generate --model "$work/tiny-moe" --prompt x $bad 2>"$work/j.err"; then echo "accepted: $bad"; exit 1; fi
  grep -q "logit-bias\|min_tokens" "$work/j.err" || { cat "$work/j.err"; exit 1; }
done
echo "generate: ok"
