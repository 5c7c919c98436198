# `shardlm mkmodel` and `shardlm inspect` end to end: tiny models of every kind (single file and
# sharded), the refusals, a config that does not match its tensors, and real-width 31b / 26b-a4b
# models with one layer (about 3.9 / 3.1 GB, written to a temporary folder and removed afterwards).
# The shell scripts are written into the build tree at configure time.

set(SHARDLM_MKMODEL_TINY_SCRIPT ${CMAKE_BINARY_DIR}/tests/mkmodel_tiny_test.sh)
file(WRITE ${SHARDLM_MKMODEL_TINY_SCRIPT} [=[#!/bin/sh
# usage: mkmodel_tiny_test.sh SHARDLM WORKDIR
set -eu
shardlm=$1
work=$2
py=/usr/bin/python3
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

for variant in tiny-dense tiny-moe tiny-edge; do
  "$shardlm" mkmodel --out "$work/$variant" --variant "$variant" --seed 2 >"$work/mk.txt"
  grep -q "^wrote $variant to " "$work/mk.txt" || { cat "$work/mk.txt"; exit 1; }
  "$shardlm" inspect --model "$work/$variant" >"$work/inspect.txt"
  grep -q "^variant: *$variant\$" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
  grep -q "^tensors: *ok: all" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
  grep -q "^tokenizer: *[0-9]* tokens (the model's vocabulary: [0-9]*)\$" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
  "$shardlm" inspect --model "$work/$variant" --json >"$work/inspect.json"
  $py - "$work/inspect.json" "$variant" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["variant"] == sys.argv[2], d["variant"]
assert d["checkpoint"]["valid"] is True, d["checkpoint"]
assert d["checkpoint"]["bytes"] == 2 * d["parameters"], (d["checkpoint"]["bytes"], d["parameters"])
assert d["checkpoint"]["bytes_by_dtype"] == {"BF16": d["checkpoint"]["bytes"]}
assert d["vocab"]["eos_token_ids"] == [1, 106, 50]
EOF
done
"$shardlm" inspect --model "$work/tiny-moe" | grep -q "^experts: *8 experts, top-2, width 128"
"$shardlm" inspect --model "$work/tiny-edge" | grep -q "^KV sharing: *last 2 layers (5..6) reuse KV"
"$shardlm" inspect --model "$work/tiny-dense" | grep -q "^layers: *6 layers: 4 sliding_attention (window 8), 2 full_attention"

# Same seed, same bytes; sharded output; fewer layers; f32.
"$shardlm" mkmodel --out "$work/again" --variant tiny --seed 2 >/dev/null
cmp "$work/again/model.safetensors" "$work/tiny-dense/model.safetensors"
"$shardlm" mkmodel --out "$work/sharded" --variant tiny-dense --seed 2 --shard-mb 2 --dtype f32 --layers 3 >"$work/mk.txt"
grep -q "in [0-9]* files" "$work/mk.txt" || { cat "$work/mk.txt"; exit 1; }
test -f "$work/sharded/model.safetensors.index.json"
"$shardlm" inspect --model "$work/sharded" >"$work/inspect.txt"
grep -q "^variant: *tiny-dense (3 of 6 layers)" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
grep -q "^checkpoint: *[0-9]* files, .*F32" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
grep -q "^tensors: *ok" "$work/inspect.txt"

# Refusals: non-empty folder without --force, unknown variant, bad dtype.
if "$shardlm" mkmodel --out "$work/tiny-dense" --variant tiny-dense 2>"$work/err.txt"; then
  echo "overwrote a non-empty folder"; exit 1
fi
grep -q "not empty" "$work/err.txt"
"$shardlm" mkmodel --out "$work/tiny-dense" --variant tiny-dense --seed 9 --force >/dev/null
if cmp -s "$work/again/model.safetensors" "$work/tiny-dense/model.safetensors"; then
  echo "--force did not rewrite the weights"; exit 1
fi
if "$shardlm" mkmodel --out "$work/none" --variant 70b 2>"$work/err.txt"; then echo "accepted variant 70b"; exit 1; fi
grep -q "unknown model variant '70b'" "$work/err.txt"
test ! -e "$work/none"
if "$shardlm" mkmodel --out "$work/none" --variant tiny --dtype int4 2>/dev/null; then echo "accepted int4"; exit 1; fi

# A config that does not match the tensors: inspect reports it and exits 1.
$py - "$work/tiny-moe/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["text_config"]["moe_intermediate_size"] = 64
json.dump(d, open(p, "w"))
EOF
if "$shardlm" inspect --model "$work/tiny-moe" >"$work/inspect.txt"; then echo "mismatch not reported"; exit 1; fi
grep -q "^tensors: *MISMATCH: .*experts.gate_up_proj has shape \[8, 256, 256\] but the config expects \[8, 128, 256\]" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
echo "mkmodel tiny: ok"
]=])

set(SHARDLM_MKMODEL_WIDE_SCRIPT ${CMAKE_BINARY_DIR}/tests/mkmodel_wide_test.sh)
file(WRITE ${SHARDLM_MKMODEL_WIDE_SCRIPT} [=[#!/bin/sh
# usage: mkmodel_wide_test.sh SHARDLM WORKDIR VARIANT EXPECTED_PARAMETERS EXPECTED_DESCRIPTION
# One real-width layer: the parameter count is computed by hand from gemma4.md 3.1 / 5.1.
set -eu
shardlm=$1
work=$2
variant=$3
params=$4
description=$5
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
"$shardlm" mkmodel --out "$work/m" --variant "$variant" --layers 1
end=$(date +%s)
echo "mkmodel $variant --layers 1: $((end - start)) s, $(du -sh "$work/m" | cut -f1)"
"$shardlm" inspect --model "$work/m" | tee "$work/inspect.txt"
grep -q "^variant: *$description\$" "$work/inspect.txt"
grep -q "^tensors: *ok" "$work/inspect.txt"
"$shardlm" inspect --model "$work/m" --json >"$work/inspect.json"
/usr/bin/python3 - "$work/inspect.json" "$params" "$work/m/model.safetensors" <<'EOF'
import json, os, struct, sys
d = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
assert d["parameters"] == want, (d["parameters"], want)
assert d["checkpoint"]["bytes"] == 2 * want, d["checkpoint"]
with open(sys.argv[3], "rb") as f:
    header = struct.unpack("<Q", f.read(8))[0]
assert os.path.getsize(sys.argv[3]) == 8 + header + 2 * want
assert d["vocab"]["size"] == 262144
EOF
echo "mkmodel $variant: ok"
]=])

add_test(NAME cli_mkmodel_tiny
  COMMAND sh ${SHARDLM_MKMODEL_TINY_SCRIPT} $<TARGET_FILE:shardlm> ${CMAKE_BINARY_DIR}/tests/mkmodel_tiny)
set_tests_properties(cli_mkmodel_tiny PROPERTIES LABELS integration TIMEOUT 120)

# 31b, one full-attention layer: embed 262144*5376 + q/o 2*16384*5376 + k 2048*5376 + q/k norms 2*512
# + 4 norms 4*5376 + layer_scalar 1 + MLP 3*5376*21504 + final norm 5376.
add_test(NAME cli_mkmodel_31b_one_layer
  COMMAND sh ${SHARDLM_MKMODEL_WIDE_SCRIPT} $<TARGET_FILE:shardlm> ${CMAKE_BINARY_DIR}/tests/mkmodel_31b 31b
          1943301377 "31b (1 of 60 layers)")
set_tests_properties(cli_mkmodel_31b_one_layer PROPERTIES LABELS integration TIMEOUT 300 RUN_SERIAL TRUE)

# 26b-a4b, one full-attention layer: embed 262144*2816 + attention 49021952 + dense MLP 3*2816*2112
# + experts 128*3*2816*704 + router 128*2816+2816+128 + 7 norms + layer_scalar + final norm 2816.
add_test(NAME cli_mkmodel_26b_a4b_one_layer
  COMMAND sh ${SHARDLM_MKMODEL_WIDE_SCRIPT} $<TARGET_FILE:shardlm> ${CMAKE_BINARY_DIR}/tests/mkmodel_26b 26b-a4b
          1566713729 "26b-a4b (1 of 30 layers)")
set_tests_properties(cli_mkmodel_26b_a4b_one_layer PROPERTIES LABELS integration TIMEOUT 300 RUN_SERIAL TRUE)
