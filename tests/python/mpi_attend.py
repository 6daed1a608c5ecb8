"""ncsparse.attend on several ranks through mpi4py: each rank passes its own shard of K and V and
gets the same result as one rank on the whole input (the same lists and window sizes, outputs
and statistics within 1e-6 relative). Run as `mpiexec -n P python3 mpi_attend.py`; every rank
exits non-zero when any rank found a difference.
"""

import os
import sys

# mpi4py first, as a user would: the module must use the MPI it initialised. With
# NCSPARSE_IMPORT_FIRST=1 ncsparse initialises MPI and mpi4py finds it initialised.
if os.environ.get("NCSPARSE_IMPORT_FIRST") == "1":
    import ncsparse
    from mpi4py import MPI
else:
    from mpi4py import MPI
    import ncsparse
import numpy as np

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def close(a, b, what, tol=1e-6, unit=1.0):
    """Within tol of the largest |b| (outputs: the engine's invariance tests' measure) and of 1 + |b|
    entry-wise (statistics): the exact pass merges per-rank float states, ~1e-7 relative."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return check(False, what + " (NaN pattern)")
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    scale = max(np.abs(b).max(initial=0.0), unit)
    err = np.abs(a - b)
    check(bool(np.all(err <= tol * (scale + np.abs(b)))), f"{what} (largest difference {err.max(initial=0.0)} of {scale})")


units = {s["name"]: s["units"] for s in ncsparse.schema()["row_statistics"]}
windows = ["const:16", "log:2", "cert:1e-2", "mass:1e-2", "sink:4,16"]
for n, heads, causal in [(2000, None, False), (1537, 2, True), (2, None, False)]:
    q, k, v = ncsparse.generate(n, d=16, heads=heads, seed=11)
    if heads:
        k, v = k[:1].copy(), v[:1].copy()  # grouped-query: two query heads over one key/value head
    queries = min(n, 100)
    wins = windows if n > 100 else ["const:1"]
    # One rank on the whole input (COMM_SELF) on every rank ...
    ref = ncsparse.attend(q, k, v, windows=wins, causal=causal, queries=queries, save_lists=True, comm=MPI.COMM_SELF)
    # ... and the ranks together, each with its own shard (empty ones too when n < P).
    lo, hi = ncsparse.shard_range(n)
    ks, vs = (k[..., lo:hi, :].copy(), v[..., lo:hi, :].copy())
    got = ncsparse.attend(q, ks, vs, windows=wins, causal=causal, queries=queries, save_lists=True, comm=world)
    tag = f"n={n} heads={heads} causal={causal} rank {rank}/{size}"
    check(got.n == n and got.ranks == size, f"{tag}: n/ranks")
    check(np.array_equal(got.lists["index"], ref.lists["index"]), f"{tag}: lists differ")
    check(np.array_equal(got.lists["score"], ref.lists["score"]), f"{tag}: list scores differ")
    close(got.exact, ref.exact, f"{tag}: exact outputs")
    v_unit = float(np.abs(ref.exact).max())
    for w in wins:
        check(np.array_equal(got.stats[w]["k"], ref.stats[w]["k"]), f"{tag}: {w} window sizes differ")
        close(got.outputs[w], ref.outputs[w], f"{tag}: {w} outputs")
        for s, a in ref.stats[w].items():
            # Errors in units of V carry the exact outputs' rounding: measured against their size.
            unit = v_unit if units.get(s) == "units of V" else 1.0
            # 1e-5: a ratio such as out_rel divides that rounding by a row's own ‖o‖, which can be small.
            close(got.stats[w][s], a, f"{tag}: {w} {s}", tol=1e-5, unit=unit)
    check(not got.copied["k"] and (hi == lo or got.lent["k"][0] == ks.ctypes.data), f"{tag}: shard copied")

# A shard that is not this rank's balanced part is refused on every rank with one message.
if size > 1:
    q, k, v = ncsparse.generate(101, d=8)
    lo, hi = ncsparse.shard_range(100)
    hi += rank == size - 1  # the last rank takes one row too many: not the balanced split of 101
    try:
        ncsparse.attend(q[:100], k[lo:hi], v[lo:hi], windows=["const:4"])
        check(False, "whole K on every rank accepted")
    except ValueError as e:
        check("shard_range" in str(e) and str(e).startswith("rank "), f"shard message: {e}")

all_failures = world.allgather(failures)
if rank == 0:
    for f in sum(all_failures, []):
        print("FAIL", f, flush=True)
    print(f"mpi_attend: {size} ranks, {sum(map(len, all_failures))} failures", flush=True)
sys.exit(1 if any(all_failures) else 0)
