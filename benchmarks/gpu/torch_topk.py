#!/usr/bin/env python3
"""The peer of the CUDA local pass: cuBLAS GEMM + torch.topk on the same data.

    torch_topk.py DIR [--reps R]

DIR holds what `bench_cuda --dump DIR` wrote: keys_n<N>.f32 (n x d), queries_n<N>_m<M>.f32
(m x d) and topk_n<N>_m<M>_K<K>.i64 (ncsparse's top-K indices per row). For each shape this
times S = scale * Q @ K^T in FP32 (TF32 off, as ncsparse's scores) followed by
torch.topk(S, K), with CUDA events (median of R runs after one warm-up), and reports how many
of ncsparse's top-K indices torch finds too (its scores are GEMM-rounded, so ties near the
K-th score may differ; ncsparse's are exact-order canonical scores).

Run with the interpreter that has PyTorch (on the GPU machine: python3).
"""
import argparse
import glob
import os
import re
import statistics
import sys

import numpy as np
import torch


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--d", type=int, default=128)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_topk.py: no CUDA device is visible to PyTorch")
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    d = args.d
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    print(f"{'n':>9} {'m':>5} {'K':>6} | {'gemm+topk ms':>12} {'gemm ms':>8} | {'recall of ncsparse top-K':>24}")
    for kfile in sorted(glob.glob(os.path.join(args.dir, "keys_n*.f32")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0])):
        n = int(re.findall(r"keys_n(\d+)", kfile)[0])
        keys = torch.from_numpy(np.fromfile(kfile, dtype=np.float32).reshape(n, d)).to(dev)
        for qfile in sorted(glob.glob(os.path.join(args.dir, f"queries_n{n}_m*.f32"))):
            m = int(re.findall(r"_m(\d+)", qfile)[0])
            q = torch.from_numpy(np.fromfile(qfile, dtype=np.float32).reshape(m, d)).to(dev)
            scale = 1.0 / d ** 0.5
            t_gemm = timed(lambda: torch.matmul(q, keys.T).mul_(scale), args.reps)
            for tfile in sorted(glob.glob(os.path.join(args.dir, f"topk_n{n}_m{m}_K*.i64")),
                                key=lambda p: int(re.findall(r"_K(\d+)", p)[0])):
                K = int(re.findall(r"_K(\d+)", tfile)[0])
                t = timed(lambda: torch.topk(torch.matmul(q, keys.T).mul_(scale), K, dim=1), args.reps)
                ours = torch.from_numpy(np.fromfile(tfile, dtype=np.int64).reshape(m, K)).to(dev)
                theirs = torch.topk(torch.matmul(q, keys.T).mul_(scale), K, dim=1).indices
                hits = 0
                for r in range(m):
                    hits += torch.isin(ours[r], theirs[r]).sum().item()
                print(f"{n:>9} {m:>5} {K:>6} | {t * 1e3:>12.3f} {t_gemm * 1e3:>8.3f} | {hits / (m * K):>24.6f}", flush=True)
        del keys
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
