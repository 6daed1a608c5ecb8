"""ncsparse from Python: exact and top-k sparse attention, its error statistics, studies.

A thin layer over the compiled engine (``_ncsparse``): the strategies are the engine's
registry (:func:`strategies`), the statistics its schema (:func:`schema`). See docs/python.md.

Under ``mpirun -np P python3 script.py`` every rank calls the same functions with the same
arguments; :func:`attend` then takes each rank's own shard of K and V
(``k[lo:hi]`` with ``(lo, hi) = shard_range(n)``) and gives every rank the same result.
"""

import atexit
import os
import sys
import warnings

# OpenMPI loads its components with dlopen and needs libmpi's symbols global (as mpi4py does).
_flags = sys.getdlopenflags()
sys.setdlopenflags(_flags | os.RTLD_GLOBAL)
try:
    from . import _ncsparse
finally:
    sys.setdlopenflags(_flags)

__version__ = _ncsparse.version
__all__ = ["attend", "AttendResult", "CopyWarning", "generate", "study", "read_results", "fit", "schema",
           "strategies", "shard_range"]

# MPI starts at import, as with mpi4py: a first call that started it after the process had
# allocated its arrays was measured 0.45 s slower than a later one (benchmarks/RESULTS.md,
# issue 20), beyond MPI_Init itself. The first job reports MPI's start-up as its `startup` phase.
_ncsparse.ensure_mpi()
# MPI_Finalize at exit when the module initialised MPI (mpi4py finalises what it initialised).
atexit.register(_ncsparse.finalize_mpi)


class CopyWarning(UserWarning):
    """K or V could not be read in place (not float32 rows of d contiguous values): converted."""


class AttendResult:
    """What :func:`attend` returns.

    outputs[spec]   sparse outputs of each strategy, (m, d) or (heads, m, d), float64
    exact           exact attention outputs (same shape), or None without the exact pass
    stats[spec][s]  per-row statistic s (the schema's, plus "clamped"), (m,) or (heads, m)
    aggregates      one dict per (head, strategy): every aggregate of every statistic and column
    lists           {"index", "score"}: the merged top-(K+1) lists (save_lists=True), else None
    row_ids, positions   evaluated rows of Q and their sequence positions
    copied          {"q", "k", "v"}: True where the tensor had to be converted
    times, sparsity, score_max, warnings, and n, d, heads, kv_heads, ranks, scale, list_length
    """

    def __init__(self, raw):
        headed = raw["headed"]
        squeeze = (lambda a: a) if headed else (lambda a: None if a is None else a[0])
        self.windows = list(raw["windows"])
        self.outputs = {w: squeeze(a) for w, a in raw["outputs"].items()}
        self.exact = squeeze(raw["exact"])
        self.stats = {w: {s: squeeze(a) for s, a in per.items()} for w, per in raw["stats"].items()}
        self.aggregates = list(raw["aggregates"])
        self.lists = None if raw["lists"] is None else {x: squeeze(a) for x, a in raw["lists"].items()}
        self.row_ids = raw["row_ids"]
        self.positions = raw["positions"]
        self.copied = dict(raw["copied"])
        self.lent = dict(raw["lent"])  # addresses the engine read K and V from, per query head (0: copied)
        self.times = list(raw["times"])
        self.sparsity = list(raw["sparsity"])
        self.score_max = list(raw["score_max"])
        self.warnings = list(raw["warnings"])
        for key in ("n", "d", "heads", "kv_heads", "headed", "queries", "ranks", "shard", "scale", "list_length",
                    "backend", "score_precision", "collectives"):
            setattr(self, key, raw[key])

    def to_pandas(self):
        """The aggregates as a DataFrame: one row per (head, strategy), the columns of `--format csv`."""
        import pandas as pd
        return pd.DataFrame(self.aggregates)

    def rows_to_pandas(self):
        """The per-row statistics as a long DataFrame: head, strategy, row, position, one column per statistic."""
        import numpy as np
        import pandas as pd
        frames = []
        for w in self.windows:
            per = self.stats[w]
            heads = self.heads if self.headed else 1
            for h in range(heads):
                cols = {"head": h, "strategy": w, "row": self.row_ids, "position": self.positions}
                for s, a in per.items():
                    cols[s] = np.asarray(a[h] if self.headed else a)
                frames.append(pd.DataFrame(cols))
        return pd.concat(frames, ignore_index=True)

    def __repr__(self):
        return (f"AttendResult(n={self.n}, d={self.d}, heads={self.heads}, queries={self.queries}, "
                f"ranks={self.ranks}, windows={self.windows})")


def attend(q, k, v, windows=("const:256", "cert:1e-3"), causal=False, exact=True, queries=None, scale=None,
           backend="cpu", threads=1, save_lists=False, comm=None, block=None, tile=2048, max_k=8192,
           sparsity_eps=(1e-2, 1e-3, 1e-4), score_precision="fp32"):
    """Sparse (and with exact=True exact) attention of q, k, v for every window strategy.

    q, k, v: numpy arrays or torch CPU tensors of shape (n, d) or (heads, n, d), float32, float16,
    bfloat16 or float64; q may have fewer rows than k (aligned to the last keys) and a multiple
    of k's heads (grouped-query attention: query head h uses key/value head h // (Hq // Hkv)).
    Float32 keys and values with contiguous rows are read in place; others are converted, with a
    CopyWarning. With several ranks (mpirun), k and v are this rank's shard (shard_range(n)).
    windows: strategy specs as on the command line (strategies() lists the forms).
    queries: evaluate an evenly strided sample of this many rows of q (None: every row).
    scale: the score scale (None: 1/sqrt(d)). Ctrl-C stops the call between query blocks.
    score_precision: "fp32", or "tf32"/"bf16" with backend="cuda" (the filter GEMM on tensor
    cores; lists are the same in every precision, the exact pass stays fp32).
    """
    if isinstance(windows, str):
        windows = windows.split()
    raw = _ncsparse.attend(q, k, v, list(windows), bool(causal), bool(exact), 0 if queries is None else int(queries),
                           0.0 if scale is None else float(scale), str(backend), int(threads), bool(save_lists),
                           comm, 0 if block is None else int(block), int(tile), int(max_k),
                           [float(e) for e in sparsity_eps], str(score_precision))
    result = AttendResult(raw)
    converted = [t for t in ("k", "v") if result.copied[t]]
    if converted:
        warnings.warn(f"ncsparse.attend: {' and '.join(converted)} converted to float32 rows "
                      "(give C-contiguous float32 to read them in place)", CopyWarning, stacklevel=2)
    for line in result.warnings:
        warnings.warn("ncsparse: " + line, RuntimeWarning, stacklevel=2)
    return result


def generate(n, d=64, heads=None, dtype="float32", model="paper", x_dist="gaussian", B=3.0, R=288.0, sigma=1.0,
             seed=1, rope_theta=0.0, sinks=0, sink_strength=0.0, tied=False, out=None, force=False, shard=False,
             threads=1, comm=None):
    """The generator's Q, K, V (the inputs `ncsparse run` makes), as `ncsparse generate` makes them.

    out given: writes the HDF5 file (collectively over the ranks) and returns None. Otherwise
    returns (q, k, v) numpy arrays of shape (n, d), or (heads, n, d) with heads (head h uses
    seed + h*0x9E3779B97F4A7C15), in dtype float32, float16 or float64; shard=True gives k and v
    only this rank's rows (shard_range(n)), for attend under mpirun.
    """
    if out is None and dtype == "bfloat16":
        raise TypeError("ncsparse.generate: numpy has no bfloat16: give out= to write a file, or convert "
                        "float32 arrays with torch (torch.from_numpy(x).bfloat16())")
    arrays = _ncsparse.generate(int(n), int(d), 0 if heads is None else int(heads), str(dtype), str(model),
                                str(x_dist), float(B), float(R), float(sigma), int(seed), float(rope_theta), int(sinks),
                                float(sink_strength), bool(tied), "" if out is None else os.fspath(out), bool(force),
                                bool(shard), int(threads), comm)
    if arrays is None:
        return None
    if dtype != "float32":
        # Rounded to nearest even from the generator's float32 values, as the file writer does.
        arrays = tuple(a.astype(dtype) for a in arrays)
    return arrays


def study(path, out, restart=False, force=False, backend="cpu", comm=None):
    """Runs a study file (docs/study.md) into the results file `out`, resumably; progress on stderr.

    Ctrl-C (or SIGTERM) commits the finished configurations and raises KeyboardInterrupt.
    """
    return _ncsparse.study(os.fspath(path), os.fspath(out), bool(restart), bool(force), str(backend), comm)


def read_results(path):
    """The summary of a study's results file as a pandas DataFrame (the columns of `ncsparse report --format csv`)."""
    import io
    import pandas as pd
    return pd.read_csv(io.StringIO(_ncsparse.read_results_csv(os.fspath(path))), float_precision="round_trip")


def fit(path, confidence=0.95, target_l1=0.0, min_n=0, format="frame"):
    """The sparsity exponent fit of a study's results (`ncsparse fit`).

    format="frame": a pandas DataFrame (the csv form); "table", "markdown" or "csv": the text.
    """
    if format == "frame":
        import io
        import pandas as pd
        text = _ncsparse.fit_text(os.fspath(path), float(confidence), float(target_l1), int(min_n), "csv")
        frame = pd.read_csv(io.StringIO(text), float_precision="round_trip")
        frame["recommended"] = frame["recommended"].fillna("")
        return frame
    return _ncsparse.fit_text(os.fspath(path), float(confidence), float(target_l1), int(min_n), str(format))


def schema():
    """The statistics schema: row statistics, strategy columns, phase times, aggregates (docs/statistics.md)."""
    return _ncsparse.schema()


def strategies():
    """The window strategies of the engine's registry: name, form and help of each."""
    return _ncsparse.strategies()


def shard_range(n, comm=None):
    """(lo, hi): the rows of n keys that this rank holds (contiguous, balanced)."""
    return _ncsparse.shard_range(int(n), comm)
