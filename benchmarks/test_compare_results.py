#!/usr/bin/python3
"""Self-test of benchmarks/compare_results.py on small synthetic trees (no ncsparse binary needed).

    /usr/bin/python3 benchmarks/test_compare_results.py

Checks that identical trees pass, that timing names are ignored, and that each kind of
difference is caught: a float beyond 1e-6, a changed integer / top-k index, a missing dataset,
attribute, JSON key, CSV column or file (failures), an added one (failure only with --strict),
a changed dtype, a changed printed number; and that 1-ulp float differences pass as "within tol".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "compare_results.py")


def make_tree(root, seconds=1.0):
    case = os.path.join(root, "c")
    os.makedirs(case)
    rng = np.random.default_rng(1)
    with h5py.File(os.path.join(case, "out.h5"), "w") as f:
        f.attrs["n"] = 4096
        f.attrs["ncsparse_version"] = "0.1.0"
        f["O/const:16"] = rng.standard_normal((8, 4)).astype(np.float32)
        f["O/const:16"].attrs["window"] = "const:16"
        f["lists/index"] = np.arange(24, dtype=np.int64).reshape(8, 3)
        f["stats/const:16/attn_l1"] = rng.random(8)
        f["stats/const:16/k"] = np.full(8, 16, dtype=np.int64)
        f["summary/k_max"] = np.array([16.0, 32.0])
        f["times"] = np.array([seconds, 2 * seconds])
    with open(os.path.join(case, "run.json"), "w") as fh:
        json.dump({"ncsparse_version": "0.1.0", "v_max_norm": 1.25,
                   "strategies": [{"strategy": "const:16", "rows": 8, "k": {"min": 16, "mean": 16},
                                   "kept_mass": {"mean": 0.875, "max": None}}],
                   "seconds": {"total": seconds}}, fh)
    with open(os.path.join(case, "run.csv"), "w") as fh:
        fh.write("strategy,rows,kept_mass_mean\n\"const:16\",8,0.875\n")
    with open(os.path.join(case, "run.txt"), "w") as fh:
        fh.write(f"const:16 | 16.0 | 0.8750\nwall time (s, max over ranks): total {seconds:.3f}\n")


def compare(a, b, *flags):
    p = subprocess.run([sys.executable, TOOL, *flags, a, b], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def main():
    failures = []
    tmp = tempfile.mkdtemp()
    try:
        a = os.path.join(tmp, "a")
        make_tree(a)
        cases = []

        def variant(name, mutate, want_rc, want_text, flags=()):
            b = os.path.join(tmp, name)
            make_tree(b, seconds=7.0)      # different timings everywhere: must not matter
            mutate(os.path.join(b, "c"))
            cases.append((name, b, want_rc, want_text, flags))

        def h5(path, fn):
            with h5py.File(path, "r+") as f:
                fn(f)

        def js(path, fn):
            with open(path) as fh:
                d = json.load(fh)
            fn(d)
            with open(path, "w") as fh:
                json.dump(d, fh)

        def set_item(ds, idx, fn):
            x = ds[()]
            x[idx] = fn(x[idx])
            ds[...] = x

        variant("same", lambda c: None, 0, "OK:")
        variant("ulp", lambda c: h5(c + "/out.h5", lambda f: set_item(
            f["O/const:16"], (1, 1), lambda v: np.nextafter(v, np.float32(np.inf)))), 0, "within tol")
        variant("float", lambda c: h5(c + "/out.h5", lambda f: set_item(
            f["stats/const:16/attn_l1"], 3, lambda v: v * (1 + 1e-5))), 1, "beyond 1e-06")
        variant("index", lambda c: h5(c + "/out.h5", lambda f: set_item(
            f["lists/index"], (2, 0), lambda v: v + 1)), 1, "/lists/index: 1 of 24 differ")
        variant("kfloat", lambda c: h5(c + "/out.h5", lambda f: set_item(
            f["summary/k_max"], 1, lambda v: v + 1e-12)), 1, "(integer field)")
        variant("missing_ds", lambda c: h5(c + "/out.h5", lambda f: f.__delitem__(
            "stats/const:16/attn_l1")), 1, "attn_l1: missing after")
        variant("missing_attr", lambda c: h5(c + "/out.h5", lambda f: f["O/const:16"].attrs.__delitem__(
            "window")), 1, "@window: missing after")
        variant("dtype", lambda c: h5(c + "/out.h5", lambda f: (
            f.__delitem__("stats/const:16/k"),
            f.create_dataset("stats/const:16/k", data=np.full(8, 16.0)))), 1, "int64(8,) -> float64(8,)")
        variant("added", lambda c: h5(c + "/out.h5", lambda f: f.create_dataset(
            "stats/const:16/new_stat", data=np.zeros(8))), 0, "added after")
        variant("added_strict", lambda c: h5(c + "/out.h5", lambda f: f.create_dataset(
            "stats/const:16/new_stat", data=np.zeros(8))), 1, "--strict: failure", ("--strict",))
        variant("json_key", lambda c: js(c + "/run.json", lambda d: d["strategies"][0].pop(
            "kept_mass")), 1, "kept_mass: missing after")
        variant("json_int", lambda c: js(c + "/run.json", lambda d: d["strategies"][0]["k"].__setitem__(
            "min", 15)), 1, "k.min: 16 -> 15")
        variant("json_null", lambda c: js(c + "/run.json", lambda d: d["strategies"][0]["kept_mass"].__setitem__(
            "max", 0.5)), 1, "None -> 0.5")
        variant("csv_col", lambda c: open(c + "/run.csv", "w").write(
            "strategy,rows\n\"const:16\",8\n"), 1, "kept_mass_mean: missing after")
        variant("text", lambda c: open(c + "/run.txt", "w").write(
            "const:16 | 16.0 | 0.8751\nwall time (s, max over ranks): total 9.000\n"), 1, "'0.8750' -> '0.8751'")
        variant("text_digit", lambda c: open(c + "/run.txt", "w").write(
            "const:16 | 16.0 | 0.8751\nwall time (s, max over ranks): total 9.000\n"), 0, "within tol",
            ("--text-last-digit",))
        variant("file", lambda c: os.remove(c + "/run.csv"), 1, "run.csv: missing after")

        for name, b, want_rc, want_text, flags in cases:
            rc, out = compare(a, b, *flags)
            ok = rc == want_rc and want_text in out
            print(f"{'ok  ' if ok else 'FAIL'} {name}: rc {rc} (want {want_rc}), "
                  f"{'found' if want_text in out else 'MISSING'} {want_text!r}")
            if not ok:
                failures.append(name)
                print(out)
    finally:
        shutil.rmtree(tmp)
    print(f"{len(failures)} failures" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
