#!/bin/sh
# Bad checkpoints and bad command-line values are refused before any weight is read or any thread
# started, each with a message naming what is wrong (not a crash, a bad_alloc or garbage output):
#  - a tensor whose shape disagrees with config.json (a short norm, a rank-0 layer scalar, experts
#    narrower than moe_intermediate_size): generate and logits name the tensor and both shapes;
#  - a config size far beyond the checkpoint (intermediate_size 2^28): the shape check, no allocation;
#  - --threads above the limit, plan --workers 0: the bound in the message;
#  - logits over more tokens than the context (max_position_embeddings / --max-context);
#  - --model naming a file or nothing, a FIFO for config.json, an eos id past the vocabulary;
#  - serve --state-dir where no folder can be created;
#  - a tokenizer without the Gemma 4 chat tokens (chat refused, completions run), none at all (serve
#    stops before loading weights);
#  - Git LFS pointers for the weights, config or tokenizer, a GGUF file, a stale model.safetensors
#    beside an index that does not list it;
#  - NaN or infinite weights (the generation fails naming non-finite logits);
#  - sampling defaults out of range in generation_config.json, a --generation-config not there.
# Usage: bad_input_test.sh SHARDLM SUPPORT_DIR WORK_DIR
set -eu
shardlm=$1; support=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
"$shardlm" mkmodel --out "$work/dense" --variant tiny-dense --seed 1 >/dev/null
"$shardlm" mkmodel --out "$work/moe" --variant tiny-moe --seed 1 >/dev/null
prefix=model.language_model.  # the Hugging Face layout of Gemma 4 text weights

# expect_failure NAME PATTERN COMMAND...: the command fails, without a signal, and says PATTERN.
expect_failure() {
  name=$1; pattern=$2; shift 2
  set +e
  "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  set -e
  if [ "$rc" -eq 0 ] || [ "$rc" -gt 128 ]; then
    echo "FAIL $name: exit $rc"; cat "$work/$name.err"; exit 1
  fi
  if ! grep -q -- "$pattern" "$work/$name.err"; then
    echo "FAIL $name: no '$pattern' in:"; cat "$work/$name.err"; exit 1
  fi
  if grep -q "internal error" "$work/$name.err"; then
    echo "FAIL $name: an internal error"; cat "$work/$name.err"; exit 1
  fi
  echo "ok $name: $(grep -- "$pattern" "$work/$name.err" | head -1)"
}

# corrupt NAME MODEL TENSOR SHAPE: a copy of MODEL with one tensor reshaped.
corrupt() {
  rm -rf "$work/$1"; cp -r "$work/$2" "$work/$1"
  for f in "$work/$1"/*.safetensors; do
    python3 "$support/reshape_tensor.py" "$f" "$3" "$4" 2>/dev/null && return 0
  done
  echo "no tensor $3 in $work/$2"; exit 1
}

# with_config NAME MODEL FIELD PYTHON-EXPR: a copy of MODEL whose text config FIELD is EXPR of v (its value).
with_config() {
  rm -rf "$work/$1"; cp -r "$work/$2" "$work/$1"
  python3 - "$work/$1/config.json" "$3" "$4" <<'PY'
import json, sys
path, field, expr = sys.argv[1:]
c = json.load(open(path))
t = c.get("text_config", c)
t[field] = eval(expr, {"v": t[field]})
json.dump(c, open(path, "w"))
PY
}

corrupt short_norm dense "${prefix}norm.weight" 64
expect_failure short_norm_logits "${prefix}norm.weight has shape \[64\] but the config expects" \
  "$shardlm" logits --model "$work/short_norm" --tokens 2,3 --out "$work/o.npy"
expect_failure short_norm_generate "${prefix}norm.weight has shape \[64\]" \
  "$shardlm" generate --model "$work/short_norm" --prompt hi --max-tokens 2
corrupt scalar_rank0 dense "${prefix}layers.0.layer_scalar" ""
expect_failure scalar_rank0 "layers.0.layer_scalar has shape \[\] but the config expects \[1\]" \
  "$shardlm" generate --model "$work/scalar_rank0" --prompt hi --max-tokens 2
with_config moe_narrow moe moe_intermediate_size "v // 2"
expect_failure moe_narrow "experts.gate_up_proj has shape" \
  "$shardlm" generate --model "$work/moe_narrow" --prompt hi --max-tokens 2
with_config huge dense intermediate_size "2 ** 28"
expect_failure huge_intermediate "gate_proj.weight has shape" \
  "$shardlm" logits --model "$work/huge" --tokens 2 --out "$work/o.npy"

expect_failure threads "must be <= 4096 (got 100000)" \
  "$shardlm" logits --model "$work/dense" --tokens 2 --out "$work/o.npy" --threads 100000
expect_failure workers "must be >= 1 (got 0)" "$shardlm" plan --model "$work/dense" --workers 0
with_config short_context dense max_position_embeddings 2
expect_failure logits_context "3 tokens exceed the context of 2 positions" \
  "$shardlm" logits --model "$work/short_context" --tokens 2,3,4 --out "$work/o.npy"
# The model folder's own files: a file for the folder, a FIFO for config.json (it must not block), an
# end-of-sequence id past the vocabulary in generation_config.json.
expect_failure model_is_file "is not a folder: give the checkpoint folder" \
  "$shardlm" generate --model "$work/dense/model.safetensors" --prompt hi
expect_failure model_missing "$work/none: no such folder" "$shardlm" generate --model "$work/none" --prompt hi
rm -rf "$work/fifo"; cp -r "$work/dense" "$work/fifo"; rm "$work/fifo/config.json"; mkfifo "$work/fifo/config.json"
expect_failure config_fifo "config.json: not a regular file" timeout 20 "$shardlm" generate --model "$work/fifo" --prompt hi
rm -rf "$work/gen_eos"; cp -r "$work/dense" "$work/gen_eos"
echo '{"eos_token_id": [1, 77777]}' >"$work/gen_eos/generation_config.json"
expect_failure generation_eos "generation_config.json: config: eos_token_id 77777 is outside the vocabulary" \
  "$shardlm" generate --model "$work/gen_eos" --prompt hi --max-tokens 2
expect_failure tokens_empty_item "an empty item (two commas, or a comma first)" \
  "$shardlm" logits --model "$work/dense" --tokens 2,,3 --out "$work/empty_item.npy"
# A state folder that cannot be created (under a regular file): named, before the model loads.
expect_failure state_dir "state-dir $work/dense/config.json/state: cannot be created" timeout 20 \
  "$shardlm" serve --model "$work/dense" --port 0 --http-port 0 --metrics-port -1 --state-dir "$work/dense/config.json/state"
# Weights that make the logits NaN or infinite: the generation ends with an error naming it, not with
# tokens sampled from garbage.
for v in nan inf; do
  rm -rf "$work/weights_$v"; cp -r "$work/dense" "$work/weights_$v"
  python3 "$support/fill_tensor.py" "$work/weights_$v/model.safetensors" "${prefix}layers.1.mlp.down_proj.weight" $v
  expect_failure "weights_$v" "the model's logits are not finite (NaN or infinity) at position" \
    "$shardlm" generate --model "$work/weights_$v" --prompt hi --max-tokens 4 --temperature 0
done
# A tokenizer of another model family (Gemma 3's turn tokens): chat requests are refused naming the
# missing tokens, completions still run, inspect reports it; a missing tokenizer.json stops serve
# before any weight is read.
rm -rf "$work/gemma3_tok"; cp -r "$work/dense" "$work/gemma3_tok"
python3 - "$work/gemma3_tok/tokenizer.json" <<'PY'
import json, sys
ren = {"<|turn>": "<start_of_turn>", "<turn|>": "<end_of_turn>"}
t = json.load(open(sys.argv[1]))
for a in t["added_tokens"]:
    a["content"] = ren.get(a["content"], a["content"])
vocab = t["model"]["vocab"]
for old, new in ren.items():
    if old in vocab:
        vocab[new] = vocab.pop(old)
json.dump(t, open(sys.argv[1], "w"))
PY
expect_failure gemma3_tok_chat "this model's tokenizer lacks <|turn> <turn|>" \
  "$shardlm" generate --model "$work/gemma3_tok" --chat --prompt hi --max-tokens 2
"$shardlm" generate --model "$work/gemma3_tok" --prompt hi --max-tokens 2 >/dev/null 2>&1 || { echo "FAIL: a completion was refused"; exit 1; }
expect_failure gemma3_tok_inspect "lacks the Gemma 4 chat tokens <|turn> <turn|>" sh -c '"$0" inspect --model "$1" >&2' "$shardlm" "$work/gemma3_tok"
rm -rf "$work/no_tok"; cp -r "$work/dense" "$work/no_tok"; rm "$work/no_tok/tokenizer.json"
expect_failure no_tokenizer_serve "tokenizer.json" timeout 20 \
  "$shardlm" serve --model "$work/no_tok" --port 0 --http-port 0 --metrics-port -1
if grep -q "single process" "$work/no_tokenizer_serve.err"; then echo "FAIL: serve loaded the weights before the tokenizer"; exit 1; fi
# What a download can leave instead of the files: Git LFS pointers (a clone without git-lfs), a GGUF
# file, a stale model.safetensors beside the shards' index.
lfs_pointer() {
  printf 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 62500000000\n' >"$1"
}
rm -rf "$work/lfs"; cp -r "$work/dense" "$work/lfs"; lfs_pointer "$work/lfs/model.safetensors"
expect_failure lfs_weights "model.safetensors is a Git LFS pointer, not the file itself" \
  "$shardlm" generate --model "$work/lfs" --prompt hi --max-tokens 2
rm -rf "$work/lfs_config"; cp -r "$work/dense" "$work/lfs_config"; lfs_pointer "$work/lfs_config/config.json"
expect_failure lfs_config "config.json is a Git LFS pointer" "$shardlm" inspect --model "$work/lfs_config"
rm -rf "$work/lfs_tok"; cp -r "$work/dense" "$work/lfs_tok"; lfs_pointer "$work/lfs_tok/tokenizer.json"
expect_failure lfs_tokenizer "tokenizer.json is a Git LFS pointer" \
  "$shardlm" generate --model "$work/lfs_tok" --prompt hi --max-tokens 2
printf 'GGUF\003\000\000\000' >"$work/model.gguf"
expect_failure gguf_file "model.gguf is a GGUF file (llama.cpp's format)" \
  "$shardlm" generate --model "$work/model.gguf" --prompt hi --max-tokens 2
rm -rf "$work/gguf_dir"; mkdir -p "$work/gguf_dir"; cp "$work/model.gguf" "$work/gguf_dir/gemma-4-31b-it-Q4_K_M.gguf"
expect_failure gguf_folder "holds GGUF files (gemma-4-31b-it-Q4_K_M.gguf)" timeout 20 \
  "$shardlm" serve --model "$work/gguf_dir" --port 0 --http-port 0 --metrics-port -1
rm -f "$work/model_fifo"; mkfifo "$work/model_fifo"  # must not block the start
expect_failure model_fifo "model_fifo is not a folder" timeout 20 "$shardlm" generate --model "$work/model_fifo" --prompt hi
"$shardlm" mkmodel --out "$work/sharded" --variant tiny-dense --seed 1 --shard-mb 1 >/dev/null
cp "$work/dense/model.safetensors" "$work/sharded/model.safetensors"
expect_failure stale_single "holds both model.safetensors and model.safetensors.index.json" \
  "$shardlm" generate --model "$work/sharded" --prompt hi --max-tokens 2
# Sampling defaults out of range in generation_config.json, or a --generation-config that is not there.
rm -rf "$work/gen_top_p"; cp -r "$work/dense" "$work/gen_top_p"
echo '{"eos_token_id": [1], "top_p": 2}' >"$work/gen_top_p/generation_config.json"
expect_failure generation_top_p "gen_top_p/generation_config.json: top_p must be in (0, 1] (got 2)" timeout 20 \
  "$shardlm" serve --model "$work/gen_top_p" --port 0 --http-port 0 --metrics-port -1
expect_failure generation_config_missing "--generation-config $work/nowhere.json: $work/nowhere.json does not exist" \
  "$shardlm" generate --model "$work/dense" --prompt hi --generation-config "$work/nowhere.json"
echo "bad input refused"
