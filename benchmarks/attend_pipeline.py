#!/usr/bin/python3
"""A user's own top-k attention pipeline: the peer of `ncsparse attend` in benchmarks/bench_attend.sh.

Reads /Q, /K and /V of an HDF5 file with h5py, finds each query's top-K keys by inner product with
FAISS (IndexFlatIP.search), takes the softmax over those K scores (scale 1/sqrt(d)), gathers the
K rows of V, and writes the outputs to --out as /O_sparse (float32, queries x d) with h5py: the
work `ncsparse attend --window const:K` does for one head. Run with Debian's interpreter
(python3-h5py, python3-faiss, python3-numpy). Threads: --threads (FAISS's OpenMP, BLAS).

--check FILE compares the outputs with /O/const:K of an ncsparse attend output: it prints
the largest absolute difference and the share of rows whose index sets differ (ties can differ).
"""
import argparse
import sys

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", help="an ncsparse attend output to compare with")
    a = ap.parse_args()

    import faiss

    faiss.omp_set_num_threads(a.threads)
    with h5py.File(a.input, "r") as f:
        Q = f["Q"][...]
        K = f["K"][...]
        V = f["V"][...]
    m, d = Q.shape
    index = faiss.IndexFlatIP(d)
    index.add(K)
    scores, ids = index.search(Q, a.k)
    scale = 1.0 / np.sqrt(d)
    z = (scores - scores[:, :1]) * scale  # FAISS sorts descending: column 0 is the row maximum
    w = np.exp(z)
    w /= w.sum(axis=1, keepdims=True)
    out = np.einsum("mk,mkd->md", w, V[ids]).astype(np.float32)
    with h5py.File(a.out, "w") as f:
        f["O_sparse"] = out

    if a.check:
        # Rows where the two outputs differ: recompute them in double precision (scores of all
        # keys, the true top-K, softmax, gather) and say which of the two is right.
        with h5py.File(a.check, "r") as f:
            ref = f["O"]["const:%d" % a.k][...].astype(np.float64)
        diff = np.abs(ref - out).max(axis=1)
        rows = np.nonzero(diff > 1e-5 * np.abs(ref).max())[0]
        print("check: %d of %d rows differ by more than 1e-5 relative (max %.3g)" % (len(rows), m, diff.max()))
        K64, V64 = K.astype(np.float64), V.astype(np.float64)
        worst = {"ncsparse": 0.0, "pipeline": 0.0}
        for r in rows:
            s = K64 @ Q[r].astype(np.float64) * scale
            top = np.argpartition(-s, a.k)[: a.k]
            w64 = np.exp(s[top] - s[top].max())
            o64 = (w64 / w64.sum()) @ V64[top]
            for name, o in (("ncsparse", ref[r]), ("pipeline", out[r].astype(np.float64))):
                worst[name] = max(worst[name], float(np.abs(o - o64).max()))
        if len(rows):
            print("check: on those rows, max |O - O_double| of ncsparse %.3g, of the pipeline %.3g"
                  " (the pipeline's float32 scores pick other keys at the K-th place)"
                  % (worst["ncsparse"], worst["pipeline"]))
        return 0 if worst["ncsparse"] < 1e-5 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
