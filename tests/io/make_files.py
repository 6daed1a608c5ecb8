#!/usr/bin/python3
"""Makes the small HDF5 input files of tests/io/files_cli.sh in DIR (h5py, Debian's python3).

Usage: make_files.py DIR GOOD.h5   (GOOD.h5: a 2-D float32 file from `ncsparse generate`, n = 40)
"""
import os
import sys

import h5py
import numpy as np

out, good = sys.argv[1], sys.argv[2]
with h5py.File(good, "r") as f:
    Q, K, V = (np.asarray(f[x]) for x in "QKV")
n, d = K.shape


def make(name, **sets):
    with h5py.File(os.path.join(out, name), "w") as f:
        for key, value in sets.items():
            f[key] = value


make("missing_v.h5", Q=Q, K=K)
make("rank1.h5", Q=Q, K=K[:, 0].copy(), V=V)
make("rank4.h5", Q=Q, K=K.reshape(1, 1, n, d), V=V)
make("q_other_d.h5", Q=Q[:, :-1].copy(), K=K, V=V)
make("v_other_n.h5", Q=Q, K=K, V=V[:-3].copy())
make("q_longer.h5", Q=np.concatenate([Q, Q]), K=K, V=V)
make("int32.h5", Q=Q, K=(K * 10).astype(np.int32), V=V)
make("uint16_no_attr.h5", Q=Q, K=K.view(np.uint32).astype(np.uint16), V=V)
k_nan = K.copy()
k_nan[30, 2] = np.nan  # n = 40 on 3 ranks: rows [27, 40) belong to rank 2
make("nan_k_row30.h5", Q=Q, K=k_nan, V=V)
v_inf = V.copy()
v_inf[5, 0] = np.inf  # rank 0's shard
make("inf_v_row5.h5", Q=Q, K=K, V=v_inf)
q_nan = Q.copy()
q_nan[7, 1] = np.nan
make("nan_q_row7.h5", Q=q_nan, K=K, V=V)
make("f64_huge.h5", Q=Q.astype(np.float64), K=K.astype(np.float64) * 1e300, V=V.astype(np.float64))

# Storage that must be refused: external links, external raw storage, virtual datasets, and
# filters other than deflate/shuffle/fletcher32 (lzf is h5py's own).
make("target.h5", K=K)
with h5py.File(os.path.join(out, "external_link.h5"), "w") as f:
    f["Q"], f["V"] = Q, V
    f["K"] = h5py.ExternalLink("target.h5", "/K")
with open(os.path.join(out, "raw_k.bin"), "wb") as raw:
    raw.write(K.astype("<f4").tobytes())
with h5py.File(os.path.join(out, "external_storage.h5"), "w") as f:
    f["Q"], f["V"] = Q, V
    f.create_dataset("K", shape=K.shape, dtype="<f4", external=[("raw_k.bin", 0, K.nbytes)])
with h5py.File(os.path.join(out, "virtual.h5"), "w") as f:
    f["Q"], f["V"] = Q, V
    layout = h5py.VirtualLayout(shape=K.shape, dtype="f4")
    layout[:] = h5py.VirtualSource("target.h5", "K", shape=K.shape)
    f.create_virtual_dataset("K", layout)
with h5py.File(os.path.join(out, "lzf.h5"), "w") as f:
    f["Q"], f["V"] = Q, V
    f.create_dataset("K", data=K, compression="lzf", chunks=(8, d))
# Accepted: deflate + shuffle + fletcher32, big-endian float32, a soft link, other names.
with h5py.File(os.path.join(out, "deflate.h5"), "w") as f:
    f["Q"], f["V"] = Q, V.astype(">f4")
    f.create_dataset("data/K", data=K, compression="gzip", shuffle=True, fletcher32=True, chunks=(8, d))
    f["K"] = h5py.SoftLink("/data/K")
# Grouped-query attention: 4 query heads over 2 key/value heads, and the 2-D file that query
# head 3 (kv head 1) must match.
rng = np.random.default_rng(7)
Q4 = rng.standard_normal((4, n, d)).astype(np.float32)
K2 = rng.standard_normal((2, n, d)).astype(np.float32)
V2 = rng.standard_normal((2, n, d)).astype(np.float32)
make("gqa.h5", Q=Q4, K=K2, V=V2)
make("gqa_head3.h5", Q=Q4[3], K=K2[1], V=V2[1])

# good.h5's datasets behind a 512-byte user block: raw data offsets are then relative to it.
with h5py.File(os.path.join(out, "userblock.h5"), "w", userblock_size=512) as f:
    f["Q"], f["K"], f["V"] = Q, K, V

# Layouts and element types a user's h5py script writes: chunked float32 (chunks of 7 rows, the
# last one partial), and bfloat16 as uint16 with the tag as h5py writes a str attribute
# (variable length, UTF-8), beside the same values widened to float32.
with h5py.File(os.path.join(out, "chunked.h5"), "w") as f:
    for key, x in (("Q", Q), ("K", K), ("V", V)):
        f.create_dataset(key, data=x, chunks=(7, d))


def bf16_bits(x):  # round to nearest, ties to even
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


with h5py.File(os.path.join(out, "bf16_h5py.h5"), "w") as f, \
        h5py.File(os.path.join(out, "bf16_as_f32.h5"), "w") as g:
    for key, x in (("Q", Q), ("K", K), ("V", V)):
        bits = bf16_bits(x)
        f[key] = bits
        f[key].attrs["ncsparse_dtype"] = "bfloat16"
        g[key] = (bits.astype(np.uint32) << 16).view(np.float32)

with open(os.path.join(out, "random.h5"), "wb") as f:
    f.write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
with open(good, "rb") as f:
    data = f.read()
with open(os.path.join(out, "truncated.h5"), "wb") as f:
    f.write(data[: len(data) // 2])
