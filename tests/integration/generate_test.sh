#!/bin/sh
# `shardlm generate` on generated tiny models of every kind: greedy output is deterministic, stops at
# --max-tokens, sampling is deterministic for a seed, and bad options are refused.
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
echo "generate: ok"
