#!/usr/bin/python3
"""Plots a study's results (ncsparse study --out FILE): error vs n per strategy, log-log, one PNG
per metric, averaged over seeds with error bars (standard deviation over seeds).

Usage: launch/plot_study.py results.h5 --out DIR [--stat mean|p99|max]
Needs Debian's python3-h5py and python3-matplotlib (launch/setup.sh installs them).
"""
import argparse
import collections
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIELDS = ["count", "mean", "min", "p50", "p90", "p99", "max"]
METRICS = {
    "out_rel": "relative output error ‖ô − o‖₂ / ‖o‖₂",
    "out_l2": "output error ‖ô − o‖₂",
    "attn_l1": "attention-row error ℓ1 = 2(1 − M)",
    "attn_linf": "attention-row error ℓ∞",
    "kept_mass": "kept mass M",
    "cert_out": "certificate bound on ‖ô − o‖₂",
    "k": "window k",
}


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--out", required=True, help="directory for the PNGs (created)")
    ap.add_argument("--stat", default="mean", choices=FIELDS[1:], help="aggregate over query rows")
    args = ap.parse_args()
    try:
        f = h5py.File(args.results, "r")
    except OSError as e:
        sys.exit(f"plot_study: {args.results}: cannot open ({e})")
    if text(f.attrs.get("format", "")) != "ncsparse-study-1":
        sys.exit(f"plot_study: {args.results}: not an ncsparse study results file")
    field = FIELDS.index(args.stat)
    # (model, d, strategy) -> n -> [value per seed]
    data = {m: collections.defaultdict(lambda: collections.defaultdict(list)) for m in METRICS}
    for g in f["configs"].values():
        n, d = int(g.attrs["n"]), int(g.attrs["d"])
        model = text(g.attrs["model"])
        strategies = text(g.attrs["strategies"]).split("\n")
        for m in METRICS:
            values = g["stat_" + m][()]
            for s, name in enumerate(strategies):
                data[m][(model, d, name)][n].append(values[s, field])
    os.makedirs(args.out, exist_ok=True)
    several = len({(k[0], k[1]) for k in data["k"]}) > 1
    written = []
    for m, label in METRICS.items():
        fig, ax = plt.subplots(figsize=(7, 5))
        for (model, d, name), by_n in sorted(data[m].items()):
            ns = np.array(sorted(by_n))
            vals = [np.array(by_n[n], dtype=float) for n in ns]
            mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in vals])
            std = np.array([np.nanstd(v) if np.isfinite(v).any() else np.nan for v in vals])
            if not np.isfinite(mean).any() or not (mean[np.isfinite(mean)] > 0).any():
                continue
            seeds = max(len(v) for v in vals)
            lab = name + (f"  [{model}, d={d}]" if several else "")
            ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=lab)
        if not ax.lines:
            plt.close(fig)
            continue
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n (sequence length, keys)")
        ax.set_ylabel(f"{label} ({args.stat} over query rows)")
        ax.set_title(f"{text(f.attrs.get('study_name', ''))}: {m} vs n, mean ± sd over {seeds} seed(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(args.out, f"{m}_{args.stat}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    print("\n".join(written))


if __name__ == "__main__":
    main()
