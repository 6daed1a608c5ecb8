#!/usr/bin/python3
"""The trivial baseline of the sparsification study (docs/experiments.md): Y = 0 (uniform attention).

Regenerates the inputs of data/studies/sparsify.toml with `ncsparse generate` (same generator,
seeds and sigma: the tied gaussian model), computes in float64 the exact D(X)^-1 exp(XX^T) and
reports, per r, the error of the uniform matrix (1/n everywhere, i.e. Y = 0, e = 0) in the two
norms the study reports: largest entry (attn_linf max) and largest row l1 (matrix inf-norm), both
divided by r, plus ||XX^T|| as largest entry and as largest row l1.
Usage: docs/experiments/sparsify_baseline.py [--bin build/ncsparse] [--n 128] [--d 2048] [--seeds 1 2 3]
"""
import argparse
import math
import os
import subprocess
import tempfile

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="build/ncsparse")
ap.add_argument("--n", type=int, default=128)
ap.add_argument("--d", type=int, default=2048)
ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
ap.add_argument("--r", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.3, 1.0])
a = ap.parse_args()
print("| r | sigma | ‖XXᵀ‖ largest entry | ‖XXᵀ‖ largest row ℓ1 | Y = 0: largest entry error / r | Y = 0: largest row ℓ1 error / r |")
print("|---|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    for r in a.r:
        sigma = float(f"{math.sqrt(0.9 * r / a.d):.6g}")  # as written in the study file
        ent, rl1, linf, l1 = [], [], [], []
        for seed in a.seeds:
            path = os.path.join(tmp, f"x{seed}.h5")
            subprocess.run([a.bin, "generate", "--n", str(a.n), "--d", str(a.d), "--model", "gaussian", "--sigma",
                            f"{sigma:.6g}", "--tied", "--seed", str(seed), "--out", path, "--force"], check=True,
                           stdout=subprocess.DEVNULL)
            with h5py.File(path, "r") as f:
                x = f["K"][()].astype(np.float64)
                assert np.array_equal(f["Q"][()], f["K"][()])
            g = x @ x.T
            p = np.exp(g - g.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            diff = np.abs(p - 1.0 / a.n)
            ent.append(np.abs(g).max())
            rl1.append(np.abs(g).sum(axis=1).max())
            linf.append(diff.max())
            l1.append(diff.sum(axis=1).max())
        print(f"| {r:g} | {sigma:.6g} | {max(ent):.4g} | {max(rl1):.4g} | {max(linf) / r:.3g} | {max(l1) / r:.3g} |")
