#!/usr/bin/env python3
"""Overwrites every value of one tensor of a safetensors file in place with NaN or infinity (F32, BF16
or F16), so that tests can hand the engine weights that make its logits non-finite.
Usage: fill_tensor.py FILE TENSOR nan|inf"""
import json
import struct
import sys

path, name, what = sys.argv[1], sys.argv[2], sys.argv[3]
patterns = {
    ("F32", "nan"): struct.pack("<I", 0x7FC00000), ("F32", "inf"): struct.pack("<I", 0x7F800000),
    ("BF16", "nan"): struct.pack("<H", 0x7FC0), ("BF16", "inf"): struct.pack("<H", 0x7F80),
    ("F16", "nan"): struct.pack("<H", 0x7E00), ("F16", "inf"): struct.pack("<H", 0x7C00),
}
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    if name not in header:
        sys.exit(f"{name} is not in {path}")
    t = header[name]
    begin, end = t["data_offsets"]
    value = patterns[(t["dtype"], what)]
    f.seek(8 + n + begin)
    f.write(value * ((end - begin) // len(value)))
