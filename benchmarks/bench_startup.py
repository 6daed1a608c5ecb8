#!/usr/bin/python3
"""The default job from outside the process, with ncsparse's MPI start-up settings and with the
library's (issue 16, "Start-up and shut-down"; src/comm/mpi_startup.hpp).

    benchmarks/bench_startup.py [--runs N] [--launches none,1,2] [--binary build/ncsparse]
                                [--baseline OTHER_BINARY] [-- RUN_ARGS...]

For each launch (no launcher, `mpirun -np 1`, `mpirun -np 2`) and each mode ("ncsparse":
the settings ncsparse chooses, "library": NCSPARSE_MPI_DEFAULTS=library), runs
`[mpirun -q -np P] BINARY run --format json [RUN_ARGS]` under /usr/bin/time, the modes
alternating within each round (ABBA over rounds), after one untimed warm-up of each. With
--baseline, a third mode "baseline" runs that binary (an older build) with its own defaults. Prints
per launch and mode the medians of: the wall time seen from outside, the job's own phases
(`seconds` of its JSON, slowest rank), and the share of the process that is not the local pass
(outside − local pass) / outside; then `ncsparse --version` the same way (MPI start-up and
shut-down alone). Records lscpu's model and SIMD flags. Exit 1 when a run fails.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def lscpu():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in out.splitlines() if l.startswith("Flags")), [])
    simd = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    return f"{model}, {os.cpu_count()} CPUs, {' '.join(simd)}"


def timed(cmd, env):
    with tempfile.NamedTemporaryFile(mode="r") as t:
        p = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %M"] + cmd, env=env, capture_output=True,
                           text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            sys.exit(f"bench_startup: {' '.join(cmd)} exited {p.returncode}")
        wall, rss = t.read().split()[-2:]
    return float(wall), int(rss), p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="build/ncsparse")
    ap.add_argument("--baseline", help="an older ncsparse binary, run as a third mode")
    ap.add_argument("--launches", default="none,1,2",
                    help="comma-separated: none (no launcher) and rank counts for mpirun (default none,1,2)")
    ap.add_argument("run_args", nargs="*")
    a = ap.parse_args()
    base = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    base.pop("NCSPARSE_MPI_DEFAULTS", None)
    modes = {"ncsparse": (a.binary, base), "library": (a.binary, dict(base, NCSPARSE_MPI_DEFAULTS="library"))}
    if a.baseline:
        modes["baseline"] = (a.baseline, base)
    launches = {}
    for l in a.launches.split(","):
        launches["none" if l == "none" else f"mpirun -np {l}"] = [] if l == "none" else ["mpirun", "-q", "-np", l]
    print(f"machine: {lscpu()}; runs: {a.runs} per case, modes alternating")
    for lname, launch in launches.items():
        results = {m: [] for m in modes}
        def cmd(m):
            return launch + [modes[m][0], "run", "--format", "json"] + a.run_args
        for m in modes:
            timed(cmd(m), modes[m][1])  # warm-up
        for r in range(a.runs):
            order = list(modes) if r % 2 == 0 else list(reversed(modes))
            for m in order:
                wall, rss, out = timed(cmd(m), modes[m][1])
                results[m].append((wall, json.loads(out)))
        for m, rows in results.items():
            wall = statistics.median(w for w, _ in rows)
            sec = {k: statistics.median(j["seconds"][k] for _, j in rows) for k in rows[0][1]["seconds"]}
            share = statistics.median((w - j["seconds"]["local_pass"]) / w for w, j in rows)
            phases = " ".join(f"{k} {v:.3f}" for k, v in sec.items() if v > 0)
            print(f"{lname:13s} {m:8s} outside {wall:.3f} s | not local pass {100 * share:.0f}% | {phases} | "
                  f"mpi_startup: {rows[0][1]['config'].get('mpi_startup', '-')}")
    for lname, launch in launches.items():
        for m, (binary, env) in modes.items():
            walls = [timed(launch + [binary, "--version"], env)[0] for _ in range(a.runs)]
            print(f"--version {lname:13s} {m:8s} outside median {statistics.median(walls):.3f} s, min {min(walls):.3f}")


if __name__ == "__main__":
    main()
