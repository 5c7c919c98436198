#!/usr/bin/python3
"""Compares a logits .npy against a reference: max|d|/max|ref| <= tol and identical top-1 rows."""
import sys

import numpy as np


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: compare_logits.py GOT.npy REF.npy TOL", file=sys.stderr)
        return 2
    got, ref, tol = np.load(sys.argv[1]), np.load(sys.argv[2]), float(sys.argv[3])
    if got.shape != ref.shape:
        print(f"shape {got.shape} != reference {ref.shape}")
        return 1
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())
    top1 = int((got.argmax(-1) != ref.argmax(-1)).sum())
    print(f"rel {rel:.3g} (tol {tol}), top-1 mismatches {top1} of {ref.shape[0]}")
    return 0 if rel <= tol and top1 == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
