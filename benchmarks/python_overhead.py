#!/usr/bin/env python3
"""The Python call's overhead over the C++ job it runs (issue 20's target: at most 5%).

ncsparse.attend's wall time against the engine's own job time inside it (run_job's total, the
same job `ncsparse attend` runs, less MPI's start-up, which `import ncsparse` pays and the first
job reports as its startup phase), on float32 C-contiguous K and V (read in place).

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/python_overhead.py [--n 1048576] [--d 64] [--queries 256]
"""
import argparse
import time

import ncsparse

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=1 << 20)
ap.add_argument("--d", type=int, default=64)
ap.add_argument("--queries", type=int, default=256)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--windows", nargs="+", default=["const:256", "log:8", "power:1,0.5", "power:4,0.4", "cert:1e-3"])
a = ap.parse_args()
q, k, v = ncsparse.generate(a.n, d=a.d)
for i in range(a.repeats):
    t0 = time.perf_counter()
    r = ncsparse.attend(q, k, v, windows=a.windows, queries=a.queries)
    wall = time.perf_counter() - t0
    # MPI's start-up (paid at import) is the first job's startup phase: not part of this call.
    job = sum(t["total"] - t["startup"] for t in r.times)
    startup = sum(t["startup"] for t in r.times)
    print(f"run {i}: call {wall:.3f} s, job {job:.3f} s (+ MPI start-up at import {startup:.3f} s), "
          f"overhead {wall - job:.3f} s ({100 * (wall - job) / job:.1f}%)")
