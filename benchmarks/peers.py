"""The peers of benchmarks/compare_peers.sh, timed on the same HDF5 input as bench_local_pass.

Run with Debian's interpreter (/usr/bin/python3: python3-faiss, python3-torch, python3-numpy,
python3-h5py). Thread counts come from the caller's environment (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS) and --threads. Queries are the first M rows of /Q, keys and values all
rows of /K and /V, scale 1/sqrt(d), no mask — as bench_local_pass reads them.

  faiss:  IndexFlatIP.search(Q, K) (top-K by inner product; time of search only)
  numpy:  per chunk of queries, S = scale·Q_c·Kᵀ, argpartition top-K, then sorted
  torch:  per chunk of queries, exact attention softmax(scale·Q_c·Kᵀ)·V (CPU, float32)

One line per K: tool=faiss d=.. m=.. n=.. K=.. threads=.. reps=.. median_s=.. min_s=..
(the median over reps timed runs after one untimed warm-up run).
"""
import argparse
import statistics
import sys
import time

import h5py
import numpy as np


def timed(fn, reps):
    fn()  # warm-up
    secs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        secs.append(time.perf_counter() - t0)
    return statistics.median(secs), min(secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--tool", choices=["faiss", "numpy", "torch"], required=True)
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--k", default="256")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=64, help="query rows per chunk (numpy, torch)")
    a = ap.parse_args()

    with h5py.File(a.input, "r") as f:
        K = np.ascontiguousarray(f["K"][...], dtype=np.float32)
        Q = np.ascontiguousarray(f["Q"][: a.m], dtype=np.float32)
        V = np.ascontiguousarray(f["V"][...], dtype=np.float32) if a.tool == "torch" else None
    n, d = K.shape
    scale = np.float32(1.0 / np.sqrt(d))
    ks = [int(x) for x in a.k.split(",")]

    if a.tool == "faiss":
        import faiss

        faiss.omp_set_num_threads(a.threads)
        index = faiss.IndexFlatIP(d)
        index.add(K)
        Qs = np.ascontiguousarray(Q * scale)
        runs = {k: (lambda k=k: index.search(Qs, k)) for k in ks}
    elif a.tool == "numpy":

        def numpy_topk(k):
            out_i = np.empty((a.m, k), dtype=np.int64)
            out_s = np.empty((a.m, k), dtype=np.float32)
            for c0 in range(0, a.m, a.chunk):
                s = (Q[c0 : c0 + a.chunk] @ K.T) * scale
                idx = np.argpartition(s, n - k, axis=1)[:, n - k :]
                val = np.take_along_axis(s, idx, axis=1)
                order = np.argsort(-val, axis=1, kind="stable")
                out_i[c0 : c0 + a.chunk] = np.take_along_axis(idx, order, axis=1)
                out_s[c0 : c0 + a.chunk] = np.take_along_axis(val, order, axis=1)
            return out_s, out_i

        runs = {k: (lambda k=k: numpy_topk(k)) for k in ks}
    else:
        import torch

        torch.set_num_threads(a.threads)
        Kt, Vt, Qt = torch.from_numpy(K), torch.from_numpy(V), torch.from_numpy(Q)

        def torch_attention():
            out = torch.empty((a.m, d), dtype=torch.float32)
            with torch.no_grad():
                for c0 in range(0, a.m, a.chunk):
                    s = torch.matmul(Qt[c0 : c0 + a.chunk], Kt.T) * float(scale)
                    p = torch.softmax(s, dim=1)
                    out[c0 : c0 + a.chunk] = torch.matmul(p, Vt)
            return out

        runs = {k: torch_attention for k in ks[:1]}  # exact attention does not depend on K

    for k, fn in runs.items():
        med, lo = timed(fn, a.reps)
        print(f"tool={a.tool} d={d} m={a.m} n={n} K={k} threads={a.threads} reps={a.reps} "
              f"median_s={med:.4f} min_s={lo:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
