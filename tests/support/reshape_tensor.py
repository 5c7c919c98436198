#!/usr/bin/env python3
"""Rewrites one tensor of a safetensors file with a new shape (its data cut or zero-padded to fit),
so that tests can hand the loader a checkpoint whose tensor disagrees with its config.
Usage: reshape_tensor.py FILE TENSOR DIM[,DIM...]   (an empty list "" makes a rank-0 tensor)"""
import json
import struct
import sys

path, name, dims = sys.argv[1], sys.argv[2], sys.argv[3]
shape = [int(d) for d in dims.split(",") if d != ""]
with open(path, "rb") as f:
    blob = f.read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
data = blob[8 + n:]
meta = header.pop("__metadata__", None)
sizes = {"F32": 4, "BF16": 2, "F16": 2}
tensors = {}
for key, t in header.items():
    begin, end = t["data_offsets"]
    tensors[key] = (t["dtype"], t["shape"], data[begin:end])
if name not in tensors:
    sys.exit(f"{name} is not in {path}")
dtype, _, old = tensors[name]
count = 1
for d in shape:
    count *= d
want = count * sizes[dtype]
tensors[name] = (dtype, shape, old[:want] + bytes(max(0, want - len(old))))
out_header, chunks, offset = {}, [], 0
if meta is not None:
    out_header["__metadata__"] = meta
for key, (dt, shp, raw) in tensors.items():
    out_header[key] = {"dtype": dt, "shape": shp, "data_offsets": [offset, offset + len(raw)]}
    chunks.append(raw)
    offset += len(raw)
text = json.dumps(out_header).encode()
text += b" " * (-len(text) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
