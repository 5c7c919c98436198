#!/usr/bin/env bash
# Sets everything up, builds, and runs shardlm end to end on a model: MODEL=/path/to/checkpoint to use
# your own Gemma 4 checkpoint folder, otherwise a tiny random-weight Gemma 4 is generated first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
shardlm="$root/build/bin/shardlm"
model=${MODEL:-}
if [ -z "$model" ]; then
  model="$root/.cache/models/tiny-dense"
  if [ ! -f "$model/config.json" ]; then
    "$shardlm" mkmodel --out "$model" --variant tiny-dense --seed 1
  fi
fi
"$shardlm" inspect --model "$model"
prompt=${PROMPT:-"Write a haiku about distributed inference."}
echo "--- generate (chat, greedy, 32 tokens) ---"
"$shardlm" generate --model "$model" --chat --prompt "$prompt" --max-tokens 32 --temperature 0
