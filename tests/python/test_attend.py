"""ncsparse.attend against the command line on the same inputs, its bad inputs, and its no-copy reads.

Run by CTest (label python) with PYTHONPATH at the build tree's python/ and NCSPARSE_CLI naming
the ncsparse executable; both run on one rank here (tests/python/mpi_attend.py does several).
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

import ncsparse

CLI = os.environ.get("NCSPARSE_CLI", "")
WINDOWS = ["const:16", "log:2", "power:1,0.5", "cert:1e-2", "mass:1e-2", "eps:1e-3", "sink:4,16"]


def run_cli(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)


def cli_error(*args):
    """The command line's one-line message (without 'ncsparse: error: ') and its exit code."""
    p = run_cli(*args)
    assert p.returncode != 0, p.stdout
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("ncsparse: error: "), p.stderr
    return line[len("ncsparse: error: "):], p.returncode


def write_h5(path, q, k, v, bf16=()):
    with h5py.File(path, "w") as f:
        for name, x in (("Q", q), ("K", k), ("V", v)):
            f.create_dataset(name, data=x)


@pytest.fixture(scope="module")
def inputs():
    # Two query heads over one key/value head (grouped-query), fewer query rows than keys.
    q, k, v = ncsparse.generate(3000, d=16, heads=2, seed=7)
    return q[:, -1000:].copy(), k[:1].copy(), v[:1].copy()


def test_module_equals_command_line(tmp_path, inputs):
    q, k, v = inputs
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    write_h5(src, q, k, v)
    p = run_cli("attend", "--input", src, "--out", out, "--exact", "--save-lists", "--queries", 300, "--format",
                "csv", "--window", *WINDOWS)
    assert p.returncode == 0, p.stderr
    r = ncsparse.attend(q, k, v, windows=WINDOWS, queries=300, save_lists=True)
    assert not any(r.copied.values())
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(r.row_ids, f["/row_ids"][...])
        np.testing.assert_array_equal(r.positions, f["/positions"][...])
        np.testing.assert_array_equal(r.lists["index"], f["/lists/index"][...])  # identical lists
        np.testing.assert_array_equal(r.lists["score"], f["/lists/score"][...])
        np.testing.assert_array_equal(r.exact.astype(np.float32), f["/O_exact"][...])
        for w in WINDOWS:
            np.testing.assert_array_equal(r.outputs[w].astype(np.float32), f["/O/" + w][...])
            for name, ds in f["/stats/" + w].items():
                np.testing.assert_array_equal(r.stats[w][name], ds[...].astype(np.float64), err_msg=f"{w} {name}")
    # The aggregates: attend prints one CSV table per head; each must equal that head's rows of to_pandas().
    blocks = [b for b in p.stdout.split("strategy,rows") if b.strip()]
    assert len(blocks) == 2
    frame = r.to_pandas()
    for h, block in enumerate(blocks):
        cli = pd.read_csv(io.StringIO("strategy,rows" + block), float_precision="round_trip")
        mine = frame[frame["head"] == h].drop(columns="head").reset_index(drop=True)
        assert list(cli.columns) == list(mine.columns)
        pd.testing.assert_frame_equal(mine, cli, check_dtype=False, check_exact=True)


def test_per_row_table_and_schema(inputs):
    q, k, v = inputs
    r = ncsparse.attend(q[0], k[0], v[0], windows=["const:8"], queries=50)
    rows = r.rows_to_pandas()
    assert len(rows) == 50
    names = [s["name"] for s in ncsparse.schema()["row_statistics"]]
    assert set(names) <= set(rows.columns)
    assert [s["name"] for s in ncsparse.strategies()][:3] == ["const", "log", "power"]
    assert r.outputs["const:8"].shape == (50, 16)


# ---------------------------------------------------------------------------------------------
# Bad inputs: the module raises before any work, with the command line's message on the same input.

def normalise_cli(msg, path):
    for name in "QKV":
        msg = msg.replace(f"dataset '/{name}'", name.lower())
    return msg.replace(str(path), "ncsparse.attend")


BAD_SHAPES = {
    "four_dims": lambda q, k, v: (q.reshape(1, 1, *q.shape), k, v),
    "mixed_dims": lambda q, k, v: (q[None], k, v),
    "different_d": lambda q, k, v: (q, k[:, :8].copy(), v),
    "kv_shapes": lambda q, k, v: (q, k, v[:-1].copy()),
    "q_longer": lambda q, k, v: (np.concatenate([q, q]), k[:500].copy(), v[:500].copy()),
    "heads": lambda q, k, v: (np.stack([q, q, q]), np.stack([k, k]), np.stack([v, v])),
}


@pytest.mark.parametrize("case", sorted(BAD_SHAPES))
def test_bad_shapes_as_command_line(tmp_path, inputs, case):
    q, k, v = BAD_SHAPES[case](inputs[0][0], inputs[1][0], inputs[2][0])
    src = tmp_path / "bad.h5"
    write_h5(src, q, k, v)
    msg, code = cli_error("attend", "--input", src, "--out", tmp_path / "o.h5", "--window", "const:8")
    assert code == 65
    with pytest.raises(ValueError) as e:
        ncsparse.attend(q, k, v, windows=["const:8"])
    assert str(e.value) == normalise_cli(msg, src)


@pytest.mark.parametrize("tensor,row,col,value", [("K", 5, 3, np.nan), ("V", 17, 0, np.inf), ("Q", 999, 2, -np.inf)])
def test_bad_values_as_command_line(tmp_path, inputs, tensor, row, col, value):
    arrays = {"Q": inputs[0][0].copy(), "K": inputs[1][0].copy(), "V": inputs[2][0].copy()}
    arrays[tensor][row, col] = value
    src = tmp_path / "bad.h5"
    write_h5(src, arrays["Q"], arrays["K"], arrays["V"])
    msg, code = cli_error("attend", "--input", src, "--out", tmp_path / "o.h5", "--window", "const:8")
    assert code == 65
    with pytest.raises(ValueError) as e:
        ncsparse.attend(arrays["Q"], arrays["K"], arrays["V"], windows=["const:8"])
    assert str(e.value) == normalise_cli(msg, src)


def test_float64_beyond_float_range(tmp_path, inputs):
    k = inputs[1][0].astype(np.float64)
    k[3, 1] = 1e39
    src = tmp_path / "bad.h5"
    write_h5(src, inputs[0][0], k, inputs[2][0])
    msg, _ = cli_error("attend", "--input", src, "--out", tmp_path / "o.h5", "--window", "const:8")
    with pytest.raises(ValueError) as e:
        ncsparse.attend(inputs[0][0], k, inputs[2][0], windows=["const:8"])
    assert str(e.value) == normalise_cli(msg, src)


USAGE = [
    (dict(windows=["bogus:1"]), ["--window", "bogus:1"]),
    (dict(windows=["const:0"]), ["--window", "const:0"]),
    (dict(windows=["const:8", "const:8"]), ["--window", "const:8", "const:8"]),
    (dict(windows=["mass:1e-2"], exact=False), ["--window", "mass:1e-2"]),
    (dict(windows=["const:8"], queries=5000), ["--window", "const:8", "--queries", "5000"]),
    (dict(windows=["const:8"], queries=-1), ["--window", "const:8", "--queries", "-1"]),
    (dict(windows=["const:8"], threads=0), ["--window", "const:8", "--threads", "0"]),
    (dict(windows=["const:8"], backend="tpu"), ["--window", "const:8", "--backend", "tpu"]),
    (dict(windows=["const:8"], score_precision="fp16"), ["--window", "const:8", "--score-precision", "fp16"]),
    (dict(windows=["const:8"], score_precision="bf16"), ["--window", "const:8", "--score-precision", "bf16"]),
    (dict(windows=["const:8"], scale=float("nan")), ["--window", "const:8", "--scale", "nan"]),
]


@pytest.mark.parametrize("kwargs,flags", USAGE, ids=[" ".join(f) for _, f in USAGE])
def test_usage_errors_as_command_line(tmp_path, inputs, kwargs, flags):
    q, k, v = inputs[0][0], inputs[1][0], inputs[2][0]
    src = tmp_path / "in.h5"
    write_h5(src, q, k, v)
    exact = [] if kwargs.get("exact") is False else ["--exact"]
    msg, code = cli_error("attend", "--input", src, "--out", tmp_path / "o.h5", *exact, *flags)
    assert code == 64
    with pytest.raises(ValueError) as e:
        ncsparse.attend(q, k, v, **kwargs)
    assert str(e.value) == msg


@pytest.mark.parametrize("bad", [
    lambda q: q.astype(np.int32),
    lambda q: q.astype(np.complex64),
    lambda q: q.tolist(),
    lambda q: "q",
])
def test_type_errors(inputs, bad):
    q, k, v = inputs[0][0], inputs[1][0], inputs[2][0]
    with pytest.raises(TypeError, match="ncsparse.attend: q "):
        ncsparse.attend(bad(q), k, v, windows=["const:8"])


def test_torch_type_errors(inputs):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.from_numpy(x[0]) for x in inputs)
    with pytest.raises(TypeError, match="k has dtype int64"):
        ncsparse.attend(q, k.long(), v, windows=["const:8"])


# ---------------------------------------------------------------------------------------------
# No copy where none is expected: the engine reads K and V where they lie.

def test_numpy_float32_read_in_place(inputs):
    q, k, v = inputs  # (2, 1000, 16) queries over (1, 3000, 16) keys
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncsparse.CopyWarning)
        r = ncsparse.attend(q, k, v, windows=["const:8"], queries=20)
    assert r.copied == {"q": False, "k": False, "v": False}
    assert r.lent["k"] == [k.ctypes.data, k.ctypes.data]  # both query heads read key head 0 in place
    assert r.lent["v"] == [v.ctypes.data, v.ctypes.data]


def test_head_slices_read_in_place(inputs):
    q, k, v = inputs
    kk, vv = np.stack([k[0], k[0][::-1]]), np.stack([v[0], v[0][::-1]])  # two kv heads
    r = ncsparse.attend(q, kk, vv, windows=["const:8"], queries=20)
    assert r.lent["k"] == [kk[0].ctypes.data, kk[1].ctypes.data]
    # A view of the rows of a larger array (non-contiguous heads, contiguous rows) is read in place too.
    wide = np.zeros((2, 3000, 16), np.float32)
    wide[1] = k[0]
    r2 = ncsparse.attend(q[0], wide[1], v[0], windows=["const:8"], queries=20)
    assert r2.lent["k"] == [wide[1].ctypes.data]


def test_torch_float32_read_in_place(inputs):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.from_numpy(x) for x in inputs)
    r = ncsparse.attend(q, k, v, windows=["const:8"], queries=20)
    assert not any(r.copied.values())
    assert r.lent["k"][0] == k.data_ptr() and r.lent["v"][0] == v.data_ptr()
    ref = ncsparse.attend(*(x.numpy() for x in (q, k, v)), windows=["const:8"], queries=20, save_lists=True)
    np.testing.assert_array_equal(r.outputs["const:8"], ref.outputs["const:8"])


def test_converted_inputs_warn_and_agree(inputs):
    torch = pytest.importorskip("torch")
    q, k, v = inputs[0][0], inputs[1][0], inputs[2][0]
    for convert, to_float in [
        (lambda x: x.astype(np.float16), lambda x: x.astype(np.float16).astype(np.float32)),
        (lambda x: torch.from_numpy(x).bfloat16(), lambda x: torch.from_numpy(x).bfloat16().float().numpy()),
        (lambda x: np.asfortranarray(x), lambda x: x),
        (lambda x: x.astype(np.float64), lambda x: x),
    ]:
        with pytest.warns(ncsparse.CopyWarning):
            r = ncsparse.attend(q, convert(k), convert(v), windows=["const:8", "cert:1e-2"], queries=40,
                                save_lists=True)
        assert r.copied["k"] and r.copied["v"] and r.lent["k"] == [0]
        ref = ncsparse.attend(q, to_float(k), to_float(v), windows=["const:8", "cert:1e-2"], queries=40,
                              save_lists=True)
        np.testing.assert_array_equal(r.lists["index"], ref.lists["index"])
        np.testing.assert_array_equal(r.outputs["cert:1e-2"], ref.outputs["cert:1e-2"])


# ---------------------------------------------------------------------------------------------
# MPI's start-up, paid by the process's first job, is that job's `startup` phase (as in the
# command line's table), once: later calls report none, and every call's phases sum to its total.

def test_first_call_reports_mpi_startup():
    script = textwrap.dedent("""
        import json, ncsparse
        q, k, v = ncsparse.generate(2048, d=16)
        print(json.dumps([ncsparse.attend(q, k, v, windows=["const:8"]).times[0] for _ in range(2)]))
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    first, second = json.loads(p.stdout.splitlines()[-1])
    assert first["startup"] > 0 and second["startup"] == 0
    for t in (first, second):
        assert sum(v for name, v in t.items() if name != "total") == pytest.approx(t["total"], rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Ctrl-C stops a long call between query blocks.

def test_keyboard_interrupt():
    script = textwrap.dedent("""
        import sys, time, ncsparse
        q, k, v = ncsparse.generate(16384, d=32)
        print("ready", flush=True)
        t = time.time()
        try:
            ncsparse.attend(q, k, v, windows=["const:8"], block=32)
        except KeyboardInterrupt:
            print("interrupted after %.2f s" % (time.time() - t), flush=True)
            sys.exit(3)
        print("finished after %.2f s" % (time.time() - t), flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    import time
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, (out, err)
    assert "interrupted" in out


# ---------------------------------------------------------------------------------------------
# The rest of the command line.

def test_generate_matches_command_line(tmp_path):
    out = tmp_path / "g.h5"
    p = run_cli("generate", "--n", 500, "--d", 8, "--heads", 2, "--seed", 3, "--out", out)
    assert p.returncode == 0, p.stderr
    ncsparse.generate(500, d=8, heads=2, seed=3, out=tmp_path / "g2.h5")
    q, k, v = ncsparse.generate(500, d=8, heads=2, seed=3)
    with h5py.File(out, "r") as f, h5py.File(tmp_path / "g2.h5", "r") as g:
        for name, x in (("Q", q), ("K", k), ("V", v)):
            np.testing.assert_array_equal(f[name][...], x)
            np.testing.assert_array_equal(g[name][...], x)
    with pytest.raises(ValueError, match="--n: must be >= 1"):
        ncsparse.generate(0)
    with pytest.raises(OSError):
        ncsparse.generate(500, d=8, out=out)  # exists, no force


def test_study_read_results_fit(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(textwrap.dedent("""
        [study]
        name = "py"
        n = [1024, 2048, 4096]
        d = [16]
        seeds = [1, 2]
        queries = 64

        [[model]]
        model = "paper"

        [windows]
        strategies = ["const:16", "mass:1e-2", "cert:1e-2"]
    """))
    out = tmp_path / "r.h5"
    assert ncsparse.study(study, out) == 0
    frame = ncsparse.read_results(out)
    cli = run_cli("report", out, "--format", "csv")
    assert cli.returncode == 0, cli.stderr
    pd.testing.assert_frame_equal(frame, pd.read_csv(io.StringIO(cli.stdout), float_precision="round_trip"))
    assert len(frame) == 3 * 2 * 3
    fit = ncsparse.fit(out)
    assert isinstance(fit, pd.DataFrame) and len(fit) > 0
    # `fit --format csv` is RFC 4180: every row has the header's fields, the recommended
    # power:A,C window (with its comma) in one of them.
    fit_csv = run_cli("fit", out, "--format", "csv")
    assert fit_csv.returncode == 0, fit_csv.stderr
    rows = list(csv.reader(io.StringIO(fit_csv.stdout)))
    assert all(len(r) == len(rows[0]) for r in rows), rows
    recommended = [w for w in fit["recommended"] if w]
    assert recommended and all(w.startswith("power:") and "," in w for w in recommended), recommended
    assert list(fit.columns) == rows[0] and len(fit) == len(rows) - 1
    assert ncsparse.fit(out, format="table") == run_cli("fit", out).stdout
    with pytest.raises(FileNotFoundError):
        ncsparse.read_results(tmp_path / "missing.h5")
