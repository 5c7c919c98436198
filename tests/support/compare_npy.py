#!/usr/bin/python3
"""Compares two logits .npy files: max|a-b| / max|b| <= tol and the same top-1 at every row."""
import sys

import numpy as np

a, b, tol = np.load(sys.argv[1]), np.load(sys.argv[2]), float(sys.argv[3])
if a.shape != b.shape:
    print(f"shape {a.shape} != {b.shape}")
    sys.exit(1)
rel = float(np.abs(a - b).max() / np.abs(b).max())
top1 = int((a.argmax(-1) != b.argmax(-1)).sum())
print(f"rel {rel:.3g} (tol {tol}), top-1 mismatches {top1}")
sys.exit(0 if rel <= tol and top1 == 0 else 1)
