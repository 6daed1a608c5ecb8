#!/usr/bin/env python3
"""The whole engine on a GPU: `ncsparse run --backend cuda` against `--backend cpu`.

    engine_check.py NCSPARSE MPIRUN [--big]

For each case it runs the same job on both backends (JSON output) and checks that every
strategy's window sizes are identical (same top-k lists) and every error statistic agrees within
1e-3 relative or 1e-6 absolute: the statistics are differences against a float32 exact pass,
whose summation order differs between backends (and between thread counts of one backend: two
CPU runs with 1 and 2 threads differ by up to ~1e-5 relative in attn_l2 and ~1e-2 relative in an
out_l2 of 4e-6). The outputs themselves are checked to 1e-5 by the gpu tests. It prints the collectives each run used and the engine's phase
times. --big adds a timing case at n = 2^22, d = 128, 1024 query rows (CPU with all cores).
Exits 1 when a check fails.
"""
import json
import os
import subprocess
import sys

STATS = ["kept_mass", "attn_l1", "attn_l2", "attn_linf", "out_l2", "out_rel"]


def run(mpirun, binary, ranks, args, backend, threads=1):
    cmd = [mpirun, "-q", "-np", str(ranks), "--oversubscribe", binary, "run", *args,
           "--backend", backend, "--threads", str(threads), "--format", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    return json.loads(p.stdout)


def close(a, b):
    if a is None or b is None:
        return a == b
    return abs(a - b) <= 1e-6 + 1e-3 * max(abs(a), abs(b))


def compare(cpu, gpu):
    problems = []
    for sc, sg in zip(cpu["strategies"], gpu["strategies"]):
        name = sc["strategy"]
        for key in ["mean", "min", "max"]:
            if sc["k"][key] != sg["k"][key]:
                problems.append(f"{name}: k {key} {sc['k'][key]} vs {sg['k'][key]}")
        for stat in STATS:
            if stat not in sc:
                continue
            for key in ["mean", "max"]:
                if not close(sc[stat][key], sg[stat][key]):
                    problems.append(f"{name}: {stat} {key} {sc[stat][key]} vs {sg[stat][key]}")
    return problems


def times(r):
    t = r.get("seconds", {})
    return " ".join(f"{k} {v:.3f}" for k, v in t.items())


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    binary, mpirun = sys.argv[1], sys.argv[2]
    big = "--big" in sys.argv[3:]
    windows = ["--window", "const:64", "power:1,0.5", "cert:1e-2", "sink:4,60"]
    cases = [
        ("1 rank", 1, ["--n", "262144", "--d", "64", "--queries", "128", *windows]),
        ("1 rank causal, K > shard rows", 1, ["--n", "3000", "--d", "32", "--queries", "100", "--causal",
                                               "--window", "const:2000", "cert:1e-3"]),
        ("2 ranks on one GPU", 2, ["--n", "262147", "--d", "64", "--queries", "128", *windows]),
        ("3 ranks, causal", 3, ["--n", "100003", "--d", "128", "--queries", "96", "--causal", *windows]),
    ]
    if big:
        cases.append(("timing: n=2^22 d=128 1024 rows", 1,
                      ["--n", "4194304", "--d", "128", "--queries", "1024", "--window", "const:64", "const:2048",
                       "power:1,0.5"]))
    failed = 0
    for label, ranks, args in cases:
        threads = os.cpu_count() if label.startswith("timing") else 1
        cpu = run(mpirun, binary, ranks, args, "cpu", threads)
        gpu = run(mpirun, binary, ranks, args, "cuda")
        problems = compare(cpu, gpu)
        status = "ok" if not problems else "FAIL"
        failed += bool(problems)
        print(f"{status:4} {label}: collectives cpu={cpu['config'].get('collectives')} "
              f"cuda={gpu['config'].get('collectives')}")
        print(f"     cpu ({threads} threads/rank) times: {times(cpu)}")
        print(f"     cuda times: {times(gpu)}")
        for p in problems[:10]:
            print("     " + p)
    print("engine check:", "all passed" if not failed else f"{failed} case(s) failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
