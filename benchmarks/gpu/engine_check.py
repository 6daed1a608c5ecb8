#!/usr/bin/env python3
"""The whole engine on a GPU: `ncsparse run --backend cuda` against `--backend cpu`.

    engine_check.py NCSPARSE MPIRUN [--big] [--cpu-probe] [--precision]

For each case it runs the same job on both backends (JSON output) and checks that every
strategy's window sizes are identical (same top-k lists) and every error statistic agrees within
1e-3 relative or 1e-6 absolute: the statistics are differences against a float32 exact pass,
whose summation order differs between backends (and between thread counts of one backend: two
CPU runs with 1 and 2 threads differ by up to ~1e-5 relative in attn_l2 and ~1e-2 relative in an
out_l2 of 4e-6). The outputs themselves are checked to 1e-5 by the gpu tests. It prints the
collectives each run used, where K and V were generated, and the engine's phase times.

--big adds a compared case at n = 2^20, d = 128, 256 rows (CPU with all cores) and a GPU-only
timing case at n = 2^22, d = 128, 1024 rows with the windows of the GPU issue's target, timed
from outside the process as well (total against local pass).
--precision also runs the compared cases marked below with --score-precision tf32 and bf16 on
the GPU (the filter GEMM on tensor cores): window sizes must be identical to the CPU's and the
statistics agree as in fp32 (the exact pass stays fp32). With --big it also times the n = 2^22
case in each precision, with and without the exact pass, and prints the synchronised profile
(scores and filter phases) of each.
--cpu-probe measures the CPU local pass's thread scaling on this machine (n = 2^20, d = 128,
256 rows, const:64 const:2048): 1, 4 and all threads, all threads with OMP_WAIT_POLICY=passive,
and as many concurrent one-thread processes as cores (the machine's raw parallel capacity).
Exits 1 when a check fails.
"""
import json
import os
import subprocess
import sys
import time

STATS = ["kept_mass", "attn_l1", "attn_l2", "attn_linf", "out_l2", "out_rel"]


def run(mpirun, binary, ranks, args, backend, threads=1, env=None, precision="fp32"):
    cmd = [mpirun, "-q", "-np", str(ranks), "--oversubscribe", binary, "run", *args,
           "--backend", backend, "--threads", str(threads), "--format", "json"]
    if precision != "fp32":
        cmd += ["--score-precision", precision]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    r = json.loads(p.stdout)
    r["wall"] = wall
    return r


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
    return " ".join(f"{k} {v:.3f}" for k, v in t.items()) + f" | process {r['wall']:.3f}"


def cpu_probe(binary):
    """The CPU local pass's thread scaling: one rank without mpirun."""
    cores = os.cpu_count()
    args = [binary, "run", "--d", "128", "--format", "json"]
    small = ["--n", "1048576", "--queries", "256", "--window", "const:64", "const:2048"]

    def one(threads, extra_env=None, more=small):
        env = dict(os.environ, **(extra_env or {}))
        p = subprocess.run([*args, *more, "--threads", str(threads)], capture_output=True, text=True, timeout=300,
                           env=env)
        if p.returncode != 0:
            return f"failed: {p.stderr.strip()[:200]}"
        return json.loads(p.stdout)["seconds"]

    big = ["--n", "4194304", "--queries", "1024", "--window", "const:64", "const:2048", "power:1,0.5"]
    for threads, extra, more in [(1, None, small), (4, None, small), (cores, None, small),
                                 (cores, {"OMP_WAIT_POLICY": "passive"}, small),
                                 (cores, None, big), (cores, None, [*big, "--block", "256"])]:
        t0 = time.monotonic()
        sec = one(threads, extra, more)
        wall = time.monotonic() - t0
        label = f"{threads} threads" + (f" {extra}" if extra else "") + (f" {' '.join(more)}" if more is not small else "")
        if isinstance(sec, str):
            print(f"cpu probe {label}: {sec}")
            continue
        print(f"cpu probe {label}: local_pass {sec['local_pass']:.3f} inputs {sec['inputs']:.3f} "
              f"total {sec['total']:.3f} process {wall:.3f}")
    # Raw capacity: `cores` one-thread processes at once; each should take what one alone takes.
    t0 = time.monotonic()
    procs = [subprocess.Popen([*args, *small, "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(cores)]
    passes = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        try:
            passes.append(json.loads(out)["seconds"]["local_pass"])
        except (ValueError, KeyError):
            passes.append(float("nan"))
    passes.sort()
    print(f"cpu probe {cores} concurrent 1-thread processes: local_pass median {passes[len(passes) // 2]:.3f} "
          f"max {passes[-1]:.3f}, all done in {time.monotonic() - t0:.3f} s")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    binary, mpirun = sys.argv[1], sys.argv[2]
    big = "--big" in sys.argv[3:]
    precisions = ["fp32", "tf32", "bf16"] if "--precision" in sys.argv[3:] else ["fp32"]
    # Cases also run in tf32 and bf16 with --precision: one and several ranks, causal, ties.
    precision_cases = {"1 rank", "2 ranks on one GPU", "3 ranks, causal", "1 rank, gaussian model, tied"}
    windows = ["--window", "const:64", "power:1,0.5", "cert:1e-2", "sink:4,60"]
    target = ["--window", "const:64", "const:2048", "power:1,0.5", "sink:4,60", "cert:1e-3"]
    cases = [
        ("1 rank", 1, ["--n", "262144", "--d", "64", "--queries", "128", *windows]),
        ("1 rank causal, K > shard rows", 1, ["--n", "3000", "--d", "32", "--queries", "100", "--causal",
                                               "--window", "const:2000", "cert:1e-3"]),
        ("2 ranks on one GPU", 2, ["--n", "262147", "--d", "64", "--queries", "128", *windows]),
        ("3 ranks, causal", 3, ["--n", "100003", "--d", "128", "--queries", "96", "--causal", *windows]),
        ("1 rank, approximators", 1, ["--n", "131072", "--d", "32", "--queries", "64", "--window", "const:64",
                                      "taylor:2", "features:16,gaussian", "sink:2,30"]),
        ("2 ranks, RoPE + sinks, uniform X", 2, ["--n", "65539", "--d", "64", "--queries", "64", "--rope-theta",
                                                 "10000", "--sinks", "4", "--sink-strength", "6", "--x-dist",
                                                 "uniform", *windows]),
        ("1 rank, gaussian model, tied", 1, ["--n", "50000", "--d", "48", "--queries", "64", "--model", "gaussian",
                                             "--tied", *windows]),
    ]
    if big:
        cases.append(("large: n=2^20 d=128 256 rows", 1,
                      ["--n", "1048576", "--d", "128", "--queries", "256", *target]))
    failed = 0
    for label, ranks, args in cases:
        threads = os.cpu_count() if label.startswith("large") else 1
        try:
            cpu = run(mpirun, binary, ranks, args, "cpu", threads)
            # The device gather of the sparse outputs is off by default until this check passed.
            gpu = run(mpirun, binary, ranks, args, "cuda", env=dict(os.environ, NCSPARSE_CUDA_GATHER="1"))
        except SystemExit as e:  # one failed run fails its case; the others still run
            print(f"FAIL {label}: {e}")
            failed += 1
            continue
        problems = compare(cpu, gpu)
        status = "ok" if not problems else "FAIL"
        failed += bool(problems)
        print(f"{status:4} {label}: collectives cpu={cpu['config'].get('collectives')} "
              f"cuda={gpu['config'].get('collectives')}")
        for precision in precisions[1:] if label in precision_cases else []:
            try:
                low = run(mpirun, binary, ranks, args, "cuda", env=dict(os.environ, NCSPARSE_CUDA_GATHER="1"),
                          precision=precision)
            except SystemExit as e:
                print(f"FAIL {label} ({precision}): {e}")
                failed += 1
                continue
            lp = compare(cpu, low)
            failed += bool(lp)
            print(f"{'ok' if not lp else 'FAIL':4} {label} --score-precision {precision}: local_pass "
                  f"{low['seconds']['local_pass']:.3f} s (fp32 {gpu['seconds']['local_pass']:.3f} s)")
            for p in lp[:10]:
                print("     " + p)
        print(f"     cpu ({threads} threads/rank) times: {times(cpu)}")
        print(f"     cuda times: {times(gpu)}")
        if not gpu.get("inputs_on_device"):
            print("     note: the cuda run generated K and V on the host")
        for p in problems[:10]:
            print("     " + p)
    if big:
        args = ["--n", "4194304", "--d", "128", "--queries", "1024", *target]
        cores = os.cpu_count()
        gather_on = dict(os.environ, NCSPARSE_CUDA_GATHER="1")
        for rep, (threads, env) in enumerate([(1, None), (cores, None), (cores, gather_on), (cores, gather_on)]):
            try:
                gpu = run(mpirun, binary, 1, args, "cuda", threads, env)
            except SystemExit as e:
                print(f"FAIL timing run: {e}")
                failed += 1
                break
            sec = gpu["seconds"]
            print(f"timing n=2^22 d=128 1024 rows {' '.join(target[1:])} (cuda, {threads} host threads"
                  f"{', NCSPARSE_CUDA_GATHER=1' if env else ''}, run {rep + 1}): {times(gpu)}")
            print(f"     total / local pass = {sec['total'] / sec['local_pass']:.1f}, process / local pass = "
                  f"{gpu['wall'] / sec['local_pass']:.1f}, inputs on device: {bool(gpu.get('inputs_on_device'))}")
        # Where the time of the generation and the local pass goes (synchronised phases), in each
        # precision asked for, with the exact pass and without (where the filter alone scores).
        env = dict(os.environ, NCSPARSE_CUDA_PROFILE="1")
        no_exact = ["--n", "4194304", "--d", "128", "--queries", "1024", "--no-exact", "--window", "const:64",
                    "const:2048", "power:1,0.5", "sink:4,60"]
        for precision in precisions:
            for label, a in (("exact on", args), ("--no-exact", no_exact)):
                cmd = [binary, "run", *a, "--backend", "cuda", "--threads", str(cores), "--format", "json"]
                if precision != "fp32":
                    cmd += ["--score-precision", precision]
                t0 = time.monotonic()
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
                wall = time.monotonic() - t0
                if p.returncode != 0:
                    print(f"FAIL profile {precision} {label}: {p.stderr.strip()[:300]}")
                    failed += 1
                    continue
                sec = json.loads(p.stdout)["seconds"]
                lines = [l for l in p.stderr.splitlines() if l.startswith("cuda")]
                print(f"profile {precision} {label} (NCSPARSE_CUDA_PROFILE=1, synchronised): local_pass "
                      f"{sec['local_pass']:.3f} total {sec['total']:.3f} process {wall:.3f}\n     " +
                      "\n     ".join(lines[:6]))
    if "--cpu-probe" in sys.argv[3:]:
        cpu_probe(binary)
    print("engine check:", "all passed" if not failed else f"{failed} case(s) failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
