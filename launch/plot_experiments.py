#!/usr/bin/python3
"""Figures and tables of the paper-reproduction studies (data/studies/*.toml).

Usage: launch/plot_experiments.py KIND results.h5 --out DIR [--report-dir R]
KIND is collapse, windows, trained (the n^C paper), taylor, taylor_range (the Taylor sketch),
sparsify, sparsify_scale (feature sparsification) or approx (the three side by side). Writes
DIR/*.png and prints a Markdown section (tables with image links relative to R, default DIR's
parent) on stdout. ./launch/reproduce.sh calls it.
Statistics: per configuration the mean over its sampled query rows; per point the mean over
seeds with a 95% Student-t confidence interval over seeds (none with one seed).
Needs Debian's python3-h5py, python3-matplotlib, python3-numpy (launch/setup.sh installs them).
"""
import argparse
import collections
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIELDS = ["count", "mean", "min", "p50", "p90", "p99", "max"]
# Two-sided 95% Student-t quantiles by degrees of freedom (standard tables).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def mean_ci(values):
    v = np.array([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return np.nan, np.nan
    if len(v) == 1:
        return v[0], 0.0
    t = T975.get(len(v) - 1, 1.96)
    return v.mean(), t * v.std(ddof=1) / np.sqrt(len(v))


def fmt(x, digits=3):
    if x is None or not np.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def pm(mean, ci, digits=3):
    if not np.isfinite(mean):
        return "–"
    return fmt(mean, digits) + (f" ± {fmt(ci, 2)}" if np.isfinite(ci) and ci > 0 else "")


def pow2(n):
    e = int(round(np.log2(n)))
    return f"2^{e}" if 2**e == n else str(n)


class Results:
    """Configurations of one results file: per config its parameters and statistics."""

    def __init__(self, path):
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            sys.exit(f"plot_experiments: {path}: cannot open ({e})")
        if text(f.attrs.get("format", "")) != "ncsparse-study-1":
            sys.exit(f"plot_experiments: {path}: not an ncsparse study results file")
        self.path = path
        self.name = text(f.attrs.get("study_name", ""))
        self.total = int(f.attrs.get("configurations", 0))
        self.configs = []
        for g in f["configs"].values():
            c = {
                "n": int(g.attrs["n"]),
                "d": int(g.attrs["d"]),
                "seed": int(g.attrs["seed"]),
                "model": text(g.attrs["model"]),
                "queries": int(g.attrs["queries"]),
                "strategies": text(g.attrs["strategies"]).split("\n"),
                "stat": {k[5:]: g[k][()] for k in g.keys() if k.startswith("stat_")},
                "clamped": g["clamped_rows"][()],
                "sparsity": g["sparsity"][()],
                "violations": g["cert_violations"][()] if "cert_violations" in g else None,
                "time": float(g["times"][()][-1]),
                "max_k": int(g.attrs["max_k"]),
            }
            self.configs.append(c)
        self.alignment = {}
        if "alignment" in f:
            a = f["alignment"]
            self.alignment = {
                "reference": text(a.attrs["reference"]),
                "reference_total": int(a.attrs["reference_total"]),
                "rows": list(zip([text(x) for x in a["strategy"][()]], [int(x) for x in a["total"][()]])),
            }
        f.close()
        self.models = sorted({c["model"] for c in self.configs}, key=self.model_order)
        self.ds = sorted({c["d"] for c in self.configs})
        self.ns = sorted({c["n"] for c in self.configs})
        self.seeds = sorted({c["seed"] for c in self.configs})
        self.queries = sorted({c["queries"] for c in self.configs})

    @staticmethod
    def model_order(label):
        return (label.count("sinks"), label)

    def strategies(self):
        out = []
        for c in self.configs:
            for s in c["strategies"]:
                if s not in out:
                    out.append(s)
        return out

    def stat(self, model, d, strategy, metric, field="mean"):
        """n -> list over seeds of the aggregate `field` of `metric` for `strategy`."""
        out = collections.defaultdict(list)
        fi = FIELDS.index(field)
        for c in self.configs:
            if c["model"] != model or c["d"] != d or strategy not in c["strategies"]:
                continue
            s = c["strategies"].index(strategy)
            out[c["n"]].append(float(c["stat"][metric][s, fi]))
        return out

    def sparsity(self, model, d, eps):
        out = collections.defaultdict(list)
        for c in self.configs:
            if c["model"] != model or c["d"] != d:
                continue
            for row in c["sparsity"]:
                if abs(row[0] - eps) <= 1e-12 * eps:
                    out[c["n"]].append(float(row[2]) if row[8] == 0 else np.nan)
        return out

    def clamped(self, model, d, strategy):
        out = collections.defaultdict(int)
        for c in self.configs:
            if c["model"] == model and c["d"] == d and strategy in c["strategies"]:
                out[c["n"]] += int(c["clamped"][c["strategies"].index(strategy)])
        return out

    def violations(self, model, d, strategy):
        tot = np.zeros(2)
        rows = 0
        for c in self.configs:
            if c["model"] == model and c["d"] == d and strategy in c["strategies"] and c["violations"] is not None:
                tot += c["violations"][c["strategies"].index(strategy)]
                rows += c["queries"]
        return tot, rows


def series(by_n):
    ns = np.array(sorted(by_n))
    stats = [mean_ci(by_n[n]) for n in ns]
    return ns, np.array([s[0] for s in stats]), np.array([s[1] for s in stats])


def plot_lines(ax, curves, ylabel, ylog=True, symlog=False):
    """curves: list of (label, by_n)."""
    for label, by_n in curves:
        ns, m, ci = series(by_n)
        ok = np.isfinite(m)
        if ylog and not symlog:
            ok &= m > 0
        if not ok.any():
            continue
        # Intervals are clipped at the axis: counts cannot go below 0, log axes below 0 either.
        lower = np.minimum(ci[ok], m[ok] if symlog else 0.9 * m[ok]) if (ylog or symlog) else ci[ok]
        eb = ax.errorbar(ns[ok], m[ok], yerr=[lower, ci[ok]], marker="o", ms=4, capsize=2, elinewidth=0.8,
                         label=label)
        for part in list(eb[1]) + list(eb[2]):  # faint interval bars: with few seeds they are wide
            part.set_alpha(0.35)
    ax.set_xscale("log", base=2)
    if symlog:
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)
    elif ylog:
        ax.set_yscale("log")
    ax.set_xlabel("n (sequence length, keys)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


REPORT_DIR = "."


def img(out, path, alt):
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(REPORT_DIR))
    return f"![{alt}]({rel})\n"


def trend(by_n):
    """Slope of ln(mean) vs ln n over the lengths with a positive mean (the local exponent)."""
    ns, m, _ = series(by_n)
    ok = np.isfinite(m) & (m > 0)
    if ok.sum() < 2:
        return np.nan
    return float(np.polyfit(np.log(ns[ok]), np.log(m[ok]), 1)[0])


def monotone(by_n, decreasing=True):
    ns, m, _ = series(by_n)
    m = m[np.isfinite(m)]
    if len(m) < 2:
        return "–"
    d = np.diff(m)
    if decreasing:
        return "yes" if (d <= 0).all() else f"no ({int((d > 0).sum())} rise(s))"
    return "yes" if (d >= 0).all() else f"no ({int((d < 0).sum())} fall(s))"


# ---------------------------------------------------------------------------------------------
def collapse(r, out, md):
    eps_levels = sorted({float(row[0]) for c in r.configs for row in c["sparsity"]}, reverse=True)
    ncol = len(r.ds)
    for eps in eps_levels:
        fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 4.2), squeeze=False)
        for ax, d in zip(axes[0], r.ds):
            plot_lines(ax, [(m, r.sparsity(m, d, eps)) for m in r.models],
                       f"entries with p > {eps:g} per row", symlog=True)
            ax.set_title(f"d = {d}")
            ax.legend(fontsize=7)
        fig.suptitle(f"{r.name}: ε-sparsity, entries above ε = {eps:g} (mean over rows; 95% CI over seeds; "
                     "y log above 1, linear below)")
        md.append(img(out, save(fig, out, f"collapse_count_eps{eps:g}.png"), f"count above {eps:g}"))
    fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 4.2), squeeze=False)
    for ax, d in zip(axes[0], r.ds):
        plot_lines(ax, [(m, r.stat(m, d, "const:1", "kept_mass")) for m in r.models], "largest entry p_max of a row")
        ax.set_title(f"d = {d}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{r.name}: collapse indicator p_max (kept mass of const:1)")
    md.append(img(out, save(fig, out, "collapse_pmax.png"), "p_max vs n"))
    supports = [s for s in r.strategies() if s.startswith("mass:") or s.startswith("cert:")]
    fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 4.2), squeeze=False)
    for ax, d in zip(axes[0], r.ds):
        curves = []
        for m in r.models:
            for s in supports:
                if s.startswith("mass:"):
                    curves.append((f"{s} {m}", r.stat(m, d, s, "k")))
        plot_lines(ax, curves, "effective support k (mass:δ window, mean over rows)")
        ax.axhline(r.configs[0]["max_k"], color="grey", ls="--", lw=0.8, label="max_k (rows clamped here)")
        ax.set_title(f"d = {d}")
        ax.legend(fontsize=6)
    fig.suptitle(f"{r.name}: smallest k with kept mass ≥ 1 − δ")
    md.append(img(out, save(fig, out, "collapse_support.png"), "support vs n"))

    n0, n1 = r.ns[0], r.ns[-1]
    md.append(f"\nEntries above ε per row at the smallest and largest n ({pow2(n0)}, {pow2(n1)}), and the "
              f"largest entry p_max; mean over rows and seeds ± 95% CI over seeds; `falls` = every step in n "
              f"lowers the count.\n\n")
    head = "| regime | d |"
    for eps in eps_levels:
        head += f" >{eps:g} at {pow2(n0)} | at {pow2(n1)} | falls |"
    head += f" p_max at {pow2(n0)} | p_max at {pow2(n1)} |\n"
    md.append(head)
    md.append("|---|---|" + "---|---|---|" * len(eps_levels) + "---|---|\n")
    for m in r.models:
        for d in r.ds:
            row = f"| {m} | {d} |"
            for eps in eps_levels:
                by = r.sparsity(m, d, eps)
                row += f" {pm(*mean_ci(by.get(n0, [])))} | {pm(*mean_ci(by.get(n1, [])))} | {monotone(by)} |"
            pmax = r.stat(m, d, "const:1", "kept_mass")
            row += f" {pm(*mean_ci(pmax.get(n0, [])))} | {pm(*mean_ci(pmax.get(n1, [])))} |\n"
            md.append(row)
    md.append("\n")


# ---------------------------------------------------------------------------------------------
def strategy_label(s):
    return s


def error_figures(r, out, md, metrics, prefix, strategies, d):
    for m in r.models:
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.4), squeeze=False)
        for ax, (metric, label) in zip(axes[0], metrics):
            plot_lines(ax, [(s, r.stat(m, d, s, metric)) for s in strategies], label + " (mean over rows)")
            ax.legend(fontsize=7)
        fig.suptitle(f"{r.name}: {m}, d = {d}\nerror vs n at equal compute (95% CI over seeds)", fontsize=10)
        tag = m.replace("(", "_").replace(")", "").replace(",", "_").replace("=", "").replace(".", "p")
        md.append(img(out, save(fig, out, f"{prefix}_errors_{tag}.png"), f"errors {m}"))
        fig, ax = plt.subplots(figsize=(6.5, 4.6))
        plot_lines(ax, [(s, r.stat(m, d, s, "k")) for s in r.strategies()], "window k (mean over rows)")
        ax.axhline(r.configs[0]["max_k"], color="grey", ls="--", lw=0.8, label="max_k (adaptive windows clamped)")
        ax.set_title(f"{r.name}: window k vs n, {m}", fontsize=9)
        ax.legend(fontsize=7)
        md.append(img(out, save(fig, out, f"{prefix}_k_{tag}.png"), f"k {m}"))


def table1(r, md, strategies, d):
    md.append("\nAverages over the lengths (each length: mean over rows, then over seeds) — the form of the "
              "paper's Table 1; `trend` is the slope of ln(mean out_rel) against ln n (negative: the error "
              f"falls as n grows); `falls` = out_rel drops at every step in n. Σk = total window over the "
              f"lengths (the budget).\n\n")
    for m in r.models:
        md.append(f"**{m}, d = {d}**\n\n| strategy | Σk | out_rel | attn ℓ1 | attn ℓ∞ | out_rel at {pow2(r.ns[0])} "
                  f"| at {pow2(r.ns[-1])} | trend | falls |\n|---|---|---|---|---|---|---|---|---|\n")
        for s in strategies:
            k = r.stat(m, d, s, "k")
            rel, l1, linf = (r.stat(m, d, s, x) for x in ("out_rel", "attn_l1", "attn_linf"))
            avg = lambda by: np.nanmean([np.nanmean(v) for v in by.values()]) if by else np.nan  # noqa: E731
            ktot = sum(np.nanmean(v) for v in k.values()) if k else np.nan
            md.append(f"| {s} | {fmt(ktot, 5)} | {fmt(avg(rel))} | {fmt(avg(l1))} | {fmt(avg(linf))} | "
                      f"{pm(*mean_ci(rel.get(r.ns[0], [])))} | {pm(*mean_ci(rel.get(r.ns[-1], [])))} | "
                      f"{fmt(trend(rel))} | {monotone(rel)} |\n")
        md.append("\n")


def cert_table(r, md, d):
    certs = [s for s in r.strategies() if s.startswith("cert:")]
    if not certs:
        return
    md.append("\nThe certified window `cert:δ`: its k, the realised dropped mass 1 − M (worst row) against "
              "its bound δ, rows where a bound failed (dropped mass above the certified bound, or "
              "‖ô − o‖₂ above the certified output bound), and its compute against the oracle: `mass:δ` is the "
              "smallest k reaching kept mass 1 − δ per row; a fixed window must take the largest of those over "
              "the rows (mass max) to give every row the same guarantee, which a power window α·n^C must "
              "cover at every n.\n\n")
    for m in r.models:
        md.append(f"**{m}, d = {d}**\n\n| window | n | k mean | k max | worst 1 − M | bound | violations "
                  f"(mass, out) / rows | oracle mass k mean | fixed window for every row (mass k max) | "
                  f"cert k / fixed |\n|---|---|---|---|---|---|---|---|---|---|\n")
        for s in certs:
            delta = float(s.split(":")[1])
            oracle = f"mass:{s.split(':')[1]}"
            viol, rows = r.violations(m, d, s)
            for n in r.ns:
                kmean = mean_ci(r.stat(m, d, s, "k").get(n, []))[0]
                kmax = np.nanmax(r.stat(m, d, s, "k", "max").get(n, [np.nan]))
                worst = 1 - np.nanmin(r.stat(m, d, s, "kept_mass", "min").get(n, [np.nan]))
                om = mean_ci(r.stat(m, d, oracle, "k").get(n, []))[0] if oracle in r.strategies() else np.nan
                ox = np.nanmax(r.stat(m, d, oracle, "k", "max").get(n, [np.nan])) if oracle in r.strategies() else np.nan
                clamped = r.clamped(m, d, s).get(n, 0)
                cl = f" ({clamped} clamped)" if clamped else ""
                vtext = f"{int(viol[0])}, {int(viol[1])} / {rows}" if n == r.ns[0] else "″"
                md.append(f"| {s} | {pow2(n)} | {fmt(kmean, 4)}{cl} | {fmt(kmax, 5)} | {fmt(worst)} | {delta:g} | "
                          f"{vtext} | {fmt(om, 4)} | {fmt(ox, 5)} | {fmt(kmean / ox if ox else np.nan)} |\n")
        md.append("\n")


def windows(r, out, md):
    d = r.ds[0]
    fixed = [s for s in r.strategies() if not s.startswith(("mass:", "cert:", "eps:"))]
    shown = fixed + [s for s in r.strategies() if s.startswith("cert:")]
    metrics = [("out_rel", "relative output error ‖ô − o‖/‖o‖"), ("attn_l1", "attention-row error ℓ1"),
               ("attn_linf", "attention-row error ℓ∞")]
    if r.alignment:
        md.append(f"\nBudget alignment: reference `{r.alignment['reference']}`, total "
                  f"{r.alignment['reference_total']} over the lengths; aligned: "
                  + ", ".join(f"`{s}` (total {t})" for s, t in r.alignment["rows"]) + ".\n\n")
    error_figures(r, out, md, metrics, "windows", shown, d)
    table1(r, md, shown, d)
    cert_table(r, md, d)


def trained(r, out, md):
    d = r.ds[0]
    fixed = [s for s in r.strategies() if not s.startswith(("mass:", "eps:"))]
    metrics = [("out_rel", "relative output error ‖ô − o‖/‖o‖"), ("attn_l1", "attention-row error ℓ1")]
    if r.alignment:
        md.append(f"\nEqual compute: reference `{r.alignment['reference']}` (total {r.alignment['reference_total']}); "
                  + ", ".join(f"`{s}` (total {t})" for s, t in r.alignment["rows"])
                  + "; `sink:4,1020` keeps 1024 keys at every length, as the reference.\n\n")
    error_figures(r, out, md, metrics, "trained", fixed, d)
    table1(r, md, fixed, d)
    cert_table(r, md, d)
    eps_levels = sorted({float(row[0]) for c in r.configs for row in c["sparsity"]}, reverse=True)
    md.append("\nEntries above ε per row (mean over rows and seeds ± 95% CI):\n\n| model | ε | "
              + " | ".join(pow2(n) for n in r.ns) + " |\n|---|---|" + "---|" * len(r.ns) + "\n")
    for m in r.models:
        for eps in eps_levels:
            by = r.sparsity(m, d, eps)
            md.append(f"| {m} | {eps:g} | " + " | ".join(pm(*mean_ci(by.get(n, []))) for n in r.ns) + " |\n")
    md.append("\n")


# ---------------------------------------------------------------------------------------------
# Issue 8: the Taylor sketch (PAPERS.md §3) and feature sparsification (§4), from /summary.
class Summary:
    """The /summary table of a results file: one row per configuration x strategy."""

    def __init__(self, path):
        f = h5py.File(path, "r")
        s = f["summary"]
        cols = {k: s[k][()] for k in s.keys()}
        f.close()
        self.rows = []
        for i in range(len(cols["strategy"])):
            row = {}
            for k, v in cols.items():
                x = v[i]
                row[k] = text(x) if isinstance(x, (bytes, np.bytes_)) else (float(x) if np.ndim(x) == 0 else x)
            self.rows.append(row)
        self.models = sorted({r["model"] for r in self.rows}, key=model_param)
        self.ds = sorted({int(r["d"]) for r in self.rows})
        self.ns = sorted({int(r["n"]) for r in self.rows})
        self.strategies = []
        for r in self.rows:
            if r["strategy"] not in self.strategies:
                self.strategies.append(r["strategy"])

    def select(self, **kw):
        return [r for r in self.rows if all(r[k] == v for k, v in kw.items())]

    def mean(self, col, **kw):
        """Mean over seeds of `col` for the rows matching kw (nan when none)."""
        v = [r[col] for r in self.select(**kw)]
        v = [x for x in v if np.isfinite(x)]
        return float(np.mean(v)) if v else np.nan

    def worst(self, col, **kw):
        v = [r[col] for r in self.select(**kw) if np.isfinite(r[col])]
        return float(np.max(v)) if v else np.nan

    def total(self, col, **kw):
        return float(np.nansum([r[col] for r in self.select(**kw)]))

    def count(self, **kw):
        return len(self.select(**kw))


def model_param(label):
    """Sort key and value of the varied model parameter: R of paper(...), sigma of gaussian(...)."""
    m = re.search(r"R=([0-9.eE+-]+)", label) or re.search(r"sigma=([0-9.eE+-]+)", label)
    return float(m.group(1)) if m else 0.0


def r_label(label):
    m = re.search(r"R=([0-9.eE+-]+)", label)
    return f"R = {m.group(1)}" if m else label


def topk_equal(q, d):
    """const:k of a one-pass top-k holding as many bytes as taylor:q: k = 2t(d+1)/(d+2), t = C(d+q, q)."""
    from math import comb
    return int(round(2 * comb(d + q, q) * (d + 1) / (d + 2)))


def mem_bytes(strategy, row):
    """Bytes a method holds to answer one query besides the query (docs/experiments.md, our definition)."""
    d, n = row["d"], row["n"]
    if strategy.startswith("taylor:"):
        return row["state_bytes"]
    if strategy.startswith("features:"):
        return n * (row["features"] + d) * 4
    return row["k_mean"] * (d + 2) * 4


def fmt_bytes(b):
    if not np.isfinite(b):
        return "–"
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= f:
            return f"{b / f:.3g} {unit}"
    return f"{b:.0f} B"


def taylor_pairs(s, d):
    pairs = []
    for q in (2, 4, 6, 8):
        t, c = f"taylor:{q}", f"const:{topk_equal(q, d)}"
        if t in s.strategies:
            pairs.append((q, t, c if c in s.strategies else None))
    return pairs


COLORS = {2: "tab:blue", 4: "tab:orange", 6: "tab:green", 8: "tab:red"}


def taylor(r, out, md):
    s = Summary(r.path)
    d = s.ds[0]
    pairs = taylor_pairs(s, d)
    metrics = [("out_rel_mean", "relative output error ‖ô − o‖/‖o‖ (mean over rows)"),
               ("attn_l1_mean", "attention-row error ℓ1 (mean over rows)")]
    for col, label in metrics:
        fig, axes = plt.subplots(1, len(s.models), figsize=(4.6 * len(s.models), 4.2), squeeze=False)
        for ax, m in zip(axes[0], s.models):
            for q, t, c in pairs:
                for strat, ls, lab in ((t, "-", t), (c, "--", f"{c} (equal memory)")):
                    if strat is None:
                        continue
                    pts = [(n, s.mean(col, model=m, d=d, n=n, strategy=strat)) for n in s.ns
                           if s.count(model=m, d=d, n=n, strategy=strat)]
                    pts = [(n, y) for n, y in pts if np.isfinite(y) and y > 0]  # log axis: exact (0) left out
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker="o", ms=3, color=COLORS[q],
                            label=lab)
            smax = [s.mean("score_max_max", model=m, d=d, n=n, strategy=pairs[0][1]) for n in s.ns]
            ax.set_title(f"{r_label(m)}: largest score {fmt(np.nanmin(smax))} – {fmt(np.nanmax(smax))}", fontsize=9)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("n (keys)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel(label)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{s_name(r)}: Taylor sketch taylor:q (solid) vs top-k at equal memory (dashed), d = {d}", fontsize=10)
        md.append(img(out, save(fig, out, f"taylor_{col}.png"), col))

    # Memory against n.
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ns = np.array(s.ns, dtype=float)
    ax.plot(ns, 2 * ns * d * 4, "k-", label="top-k engine path: K and V held (2·n·d·4 B, all ranks)")
    for q, t, c in pairs:
        b = s.mean("state_bytes", model=s.models[0], d=d, n=s.ns[0], strategy=t)
        ax.plot(ns, np.full_like(ns, b), "-", color=COLORS[q], label=f"{t}: sketch t(d+1)·8 B (per rank, any n)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("n (keys)")
    ax.set_ylabel("bytes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{s_name(r)}: memory vs n, d = {d}", fontsize=10)
    md.append(img(out, save(fig, out, "taylor_memory.png"), "memory vs n"))

    md.append(f"\nMemory (d = {d}): the sketch holds t·(d+1)·8 bytes whatever n is; top-k at equal memory keeps "
              f"k = 2t(d+1)/(d+2) entries of (d+2)·4 bytes; the engine's top-k path holds K and V, 2·n·d·4 bytes over "
              f"all ranks ({fmt_bytes(2 * s.ns[0] * d * 4)} at {pow2(s.ns[0])}, {fmt_bytes(2 * s.ns[-1] * d * 4)} at "
              f"{pow2(s.ns[-1])}).\n\n| q | t | sketch bytes | top-k at equal memory |\n|---|---|---|---|\n")
    for q, t, c in pairs:
        row = s.select(model=s.models[0], d=d, n=s.ns[0], strategy=t)[0]
        md.append(f"| {q} | {int(row['features'])} | {int(row['state_bytes'])} | {c or '–'} |\n")
    md.append("\n")

    md.append("Errors per length (mean over rows, then seeds). `score max` = largest s·q·k over the sampled rows; "
              "`unconv.` = rows where the degree-q terms carry > 10% of the denominator, `lost` = rows with a lost "
              "denominator (NaN), both summed over seeds, out of the rows given; `trend` = slope of ln out_rel vs "
              "ln n.\n\n")
    for m in s.models:
        md.append(f"**{m}, d = {d}**\n\n| strategy | memory | "
                  + " | ".join(f"out_rel {pow2(n)}" for n in s.ns)
                  + f" | attn ℓ1 {pow2(s.ns[0])} | attn ℓ1 {pow2(s.ns[-1])} | trend | unconv. / lost / rows |\n|---|---|"
                  + "---|" * len(s.ns) + "---|---|---|---|\n")
        md.append("| score max | | " + " | ".join(fmt(s.mean("score_max_max", model=m, d=d, n=n, strategy=pairs[0][1]))
                                           for n in s.ns) + " | | | | |\n")
        for q, t, c in pairs:
            for strat in (t, c):
                if strat is None:
                    continue
                rows1 = s.select(model=m, d=d, n=s.ns[-1], strategy=strat)  # largest n: k not capped at n
                mem = mem_bytes(strat, rows1[0]) if rows1 else np.nan
                rel = {n: s.mean("out_rel_mean", model=m, d=d, n=n, strategy=strat) for n in s.ns}
                by = {n: [v] for n, v in rel.items() if np.isfinite(v)}
                un = int(s.total("unconverged_rows", model=m, d=d, strategy=strat))
                lost = int(s.total("lost_rows", model=m, d=d, strategy=strat))
                nrows = int(s.total("queries", model=m, d=d, strategy=strat))
                md.append(f"| {strat} | {fmt_bytes(mem)} | " + " | ".join(fmt(rel[n]) for n in s.ns)
                          + f" | {fmt(s.mean('attn_l1_mean', model=m, d=d, n=s.ns[0], strategy=strat))}"
                          + f" | {fmt(s.mean('attn_l1_mean', model=m, d=d, n=s.ns[-1], strategy=strat))}"
                          + f" | {fmt(trend(by))} | "
                          + (f"{un} / {lost} / {nrows}" if strat.startswith("taylor") else "–") + " |\n")
        md.append("\n")


def taylor_range(r, out, md):
    s = Summary(r.path)
    d = s.ds[0]
    n = s.ns[0]
    pairs = taylor_pairs(s, d)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, (col, label) in zip(axes, [("out_rel_mean", "relative output error (mean over rows)"),
                                       ("attn_l1_mean", "attention-row error ℓ1 (mean over rows)")]):
        for q, t, c in pairs:
            for strat, ls in ((t, "-"), (c, "--")):
                if strat is None:
                    continue
                xs = [s.mean("score_max_max", model=m, strategy=strat) for m in s.models]
                ys = [s.mean(col, model=m, strategy=strat) for m in s.models]
                ax.plot(xs, ys, ls, marker="o", ms=3, color=COLORS[q], label=strat)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("largest score s·q·k over the sampled rows (measured)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{s_name(r)}: error vs score range at n = {pow2(n)}, d = {d} (solid taylor:q, dashed top-k at "
                 "equal memory)", fontsize=10)
    md.append(img(out, save(fig, out, "taylor_range.png"), "error vs score range"))
    for col, label in (("out_rel_mean", "out_rel"), ("attn_l1_mean", "attn ℓ1")):
        md.append(f"\n{label} (mean over rows, then seeds) at n = {pow2(n)}, d = {d}; `unconv.`/`lost` summed over "
                  f"seeds (of {int(s.total('queries', model=s.models[0], strategy=pairs[0][1]))} rows); `score max` = "
                  "largest s·q·k over the sampled rows (mean over seeds).\n\n"
                  "| R | score max | " + " | ".join(f"{t} {label} | unconv./lost" for q, t, c in pairs)
                  + " | " + " | ".join(f"{c} {label}" for q, t, c in pairs if c) + " |\n|---|---|"
                  + "---|---|" * len(pairs) + "---|" * sum(1 for p in pairs if p[2]) + "\n")
        for m in s.models:
            row = f"| {model_param(m):g} | {fmt(s.mean('score_max_max', model=m, strategy=pairs[0][1]))} |"
            for q, t, c in pairs:
                row += (f" {fmt(s.mean(col, model=m, strategy=t))} | "
                        f"{int(s.total('unconverged_rows', model=m, strategy=t))}/"
                        f"{int(s.total('lost_rows', model=m, strategy=t))} |")
            for q, t, c in pairs:
                if c:
                    row += f" {fmt(s.mean(col, model=m, strategy=c))} |"
            md.append(row + "\n")
        md.append("\n")


def feature_kinds(s):
    kinds = []
    for st in s.strategies:
        if st.startswith("features:"):
            k = st.split(",")[1]
            if k not in kinds:
                kinds.append(k)
    return kinds


def feature_es(s):
    return sorted({int(st.split(":")[1].split(",")[0]) for st in s.strategies if st.startswith("features:")})


KIND_COLORS = {"gaussian": "tab:blue", "sparse": "tab:orange", "gram": "tab:green"}


def sparsify(r, out, md):
    s = Summary(r.path)
    d, n = s.ds[0], s.ns[0]
    kinds, es = feature_kinds(s), feature_es(s)
    rs = {m: model_param(m) ** 2 * d / 0.9 for m in s.models}   # sigma = sqrt(0.9 r / d)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, (col, label) in zip(axes, [("attn_linf_max", "‖D(Y)⁻¹exp(YYᵀ) − D(X)⁻¹exp(XXᵀ)‖ (largest entry) / r"),
                                       ("attn_l1_max", "largest row ℓ1 error (matrix ∞-norm) / r")]):
        for m in s.models:
            for k in kinds:
                ys = [s.worst(col, model=m, strategy=f"features:{e},{k}") / rs[m] for e in es]
                ax.plot(es, ys, "-", marker="o", ms=3, color=KIND_COLORS.get(k),
                        lw=0.6 + 1.2 * list(s.models).index(m) / max(1, len(s.models) - 1),
                        label=f"{k}, r = {rs[m]:.3g}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("e (reduced feature dimension; gram capped at the rank)")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{s_name(r)}: n = {n}, d = {d}, Q = K, scale 1 (worst over rows and seeds; thicker = larger r)",
                 fontsize=10)
    md.append(img(out, save(fig, out, "sparsify_error.png"), "sparsification error / r"))
    md.append(f"\nn = {n}, d = {d}, tied (Q = K = X), scale 1, all rows as queries; "
              f"{len({int(x['seed']) for x in s.rows})} seed(s). Per r: the measured ‖XXᵀ‖∞ (largest score, worst "
              "seed) and, per kind and e, the paper's error ‖D(Y)⁻¹exp(YYᵀ) − D(X)⁻¹exp(XXᵀ)‖ as the largest entry "
              "(attn ℓ∞ max, worst seed) divided by r; in brackets the largest row ℓ1 (the matrix ∞-norm) / r. "
              "The O(r) guarantee means these ratios stay bounded by a constant.\n\n| r | ‖XXᵀ‖∞ | kind | "
              + " | ".join(f"e = {e}" for e in es) + " |\n|---|---|---|" + "---|" * len(es) + "\n")
    for m in s.models:
        for k in kinds:
            cells = []
            for e in es:
                st = f"features:{e},{k}"
                rows = s.select(model=m, strategy=st)
                eff = int(max(x["features"] for x in rows)) if rows else 0
                cap = f" (e={eff})" if eff and eff != e else ""
                cells.append(f"{fmt(s.worst('attn_linf_max', model=m, strategy=st) / rs[m])} "
                             f"({fmt(s.worst('attn_l1_max', model=m, strategy=st) / rs[m])}){cap}")
            md.append(f"| {rs[m]:.3g} | {fmt(s.worst('score_max_max', model=m, strategy=s.strategies[0]))} | {k} | "
                      + " | ".join(cells) + " |\n")
    md.append("\n")


def sparsify_scale(r, out, md):
    s = Summary(r.path)
    kinds = feature_kinds(s)
    others = [st for st in s.strategies if not st.startswith("features:")]
    fig, axes = plt.subplots(len(s.models), len(s.ds), figsize=(5.2 * len(s.ds), 4.0 * len(s.models)), squeeze=False)
    for i, m in enumerate(s.models):
        for j, d in enumerate(s.ds):
            ax = axes[i][j]
            n = s.ns[-1]
            es = sorted({int(st.split(":")[1].split(",")[0]) for st in s.strategies
                         if st.startswith("features:") and int(st.split(":")[1].split(",")[0]) <= d})
            for k in kinds:
                ys = [s.mean("out_rel_mean", model=m, d=d, n=n, strategy=f"features:{e},{k}") for e in es]
                ax.plot(es, ys, "-", marker="o", ms=3, color=KIND_COLORS.get(k), label=f"features:e,{k}")
            for st, ls in zip(others, (":", "-.", "--")):
                ax.axhline(s.mean("out_rel_mean", model=m, d=d, n=n, strategy=st), color="k", ls=ls, lw=1,
                           label=f"{st} (k = {fmt(s.mean('k_mean', model=m, d=d, n=n, strategy=st))})")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("e")
            ax.set_ylabel("relative output error (mean over rows)")
            ax.set_title(f"{r_label(m)}, d = {d}, n = {pow2(n)}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6)
    fig.suptitle(f"{s_name(r)}: feature sparsification at transformer scale vs top-k", fontsize=10)
    md.append(img(out, save(fig, out, "sparsify_scale.png"), "sparsification at transformer scale"))
    md.append("\nMean over rows (one seed): relative output error, attention-row ℓ1, and the paper's ∞-norm error "
              "(attn ℓ∞ max over rows); `score max` = largest s·q·k over the rows.\n\n")
    for m in s.models:
        for d in s.ds:
            md.append(f"**{m}, d = {d}**\n\n| strategy | "
                      + " | ".join(f"out_rel {pow2(n)} | ℓ1 {pow2(n)} | ℓ∞ max {pow2(n)}" for n in s.ns)
                      + " |\n|---|" + "---|---|---|" * len(s.ns) + "\n")
            md.append("| score max | " + " | ".join(
                f"{fmt(s.mean('score_max_max', model=m, d=d, n=n, strategy=s.strategies[0]))} | | " for n in s.ns) + "|\n")
            for st in s.strategies:
                if not s.count(model=m, d=d, strategy=st):
                    continue
                eff = s.mean("features", model=m, d=d, n=s.ns[0], strategy=st)
                name = st + (f" (e={int(eff)})" if st.startswith("features:") and eff != int(st.split(":")[1].split(",")[0]) else "")
                md.append(f"| {name} | " + " | ".join(
                    f"{fmt(s.mean('out_rel_mean', model=m, d=d, n=n, strategy=st))} | "
                    f"{fmt(s.mean('attn_l1_mean', model=m, d=d, n=n, strategy=st))} | "
                    f"{fmt(s.worst('attn_linf_max', model=m, d=d, n=n, strategy=st))}" for n in s.ns) + " |\n")
            md.append("\n")


def approx(r, out, md):
    s = Summary(r.path)
    fam = {"taylor": ("tab:green", "o"), "features": ("tab:purple", "s"), "topk": ("tab:blue", "^")}
    for d in s.ds:
        n = s.ns[-1]
        fig, axes = plt.subplots(1, len(s.models), figsize=(4.8 * len(s.models), 4.4), squeeze=False)
        for ax, m in zip(axes[0], s.models):
            for st in s.strategies:
                rows = s.select(model=m, d=d, n=n, strategy=st)
                if not rows:
                    continue
                f = st.split(":")[0] if st.startswith(("taylor", "features")) else "topk"
                x, y = mem_bytes(st, rows[0]), max(rows[0]["attn_l1_mean"], 1e-9)
                ax.scatter([x], [y], color=fam[f][0], marker=fam[f][1], s=22)
                ax.annotate(st, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("memory (bytes; our definition, see the table)")
            ax.set_ylabel("attention-row error ℓ1 (mean over rows; floor 1e-9)")
            ax.set_title(f"{r_label(m)}, n = {pow2(n)}, largest score "
                         f"{fmt(s.mean('score_max_max', model=m, d=d, n=n, strategy=s.strategies[0]))}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"{s_name(r)}: error vs memory, d = {d} (green taylor, blue top-k, purple features)", fontsize=10)
        md.append(img(out, save(fig, out, f"approx_d{d}.png"), "error vs memory"))
    md.append("\nSide by side on the same inputs. `memory` is our equal-memory measure: the bytes a method holds to "
              "answer a query besides the query — taylor:q its sketch t(d+1)·8; a top-k window a one-pass list of its "
              "k entries, k·(d+2)·4 (mean k for power/cert); features:e the projected keys and the values it attends "
              "over, n·(e+d)·4. Rows in the same group of three (taylor:q, const:k) hold equal memory. Errors: mean "
              "over rows (one seed); `notes`: unconverged / lost rows of the sketch, rows clamped at max_k.\n\n")
    for m in s.models:
        for d in s.ds:
            for n in s.ns:
                md.append(f"**{m}, d = {d}, n = {pow2(n)}** (largest score "
                          f"{fmt(s.mean('score_max_max', model=m, d=d, n=n, strategy=s.strategies[0]))})\n\n"
                          "| method | k / t / e | memory | out_rel | attn ℓ1 | attn ℓ∞ max | notes |\n"
                          "|---|---|---|---|---|---|---|\n")
                for st in s.strategies:
                    rows = s.select(model=m, d=d, n=n, strategy=st)
                    if not rows:
                        continue
                    x = rows[0]
                    if st.startswith("taylor:"):
                        size = f"t = {int(x['features'])}"
                        notes = f"{int(x['unconverged_rows'])} unconv., {int(x['lost_rows'])} lost"
                    elif st.startswith("features:"):
                        size = f"e = {int(x['features'])}"
                        notes = ""
                    else:
                        size = f"k = {fmt(x['k_mean'], 4)}"
                        notes = f"{int(x['clamped_rows'])} clamped" if x["clamped_rows"] else ""
                    md.append(f"| {st} | {size} | {fmt_bytes(mem_bytes(st, x))} | {fmt(x['out_rel_mean'])} | "
                              f"{fmt(x['attn_l1_mean'])} | {fmt(x['attn_linf_max'])} | {notes} |\n")
                md.append("\n")


def s_name(r):
    return r.name


KINDS = {"collapse": collapse, "windows": windows, "trained": trained, "taylor": taylor,
         "taylor_range": taylor_range, "sparsify": sparsify, "sparsify_scale": sparsify_scale, "approx": approx}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=list(KINDS))
    ap.add_argument("results")
    ap.add_argument("--out", required=True, help="directory for the PNGs (created)")
    ap.add_argument("--report-dir", help="image links are relative to this directory (default: the parent of --out)")
    args = ap.parse_args()
    global REPORT_DIR
    REPORT_DIR = args.report_dir or os.path.dirname(os.path.abspath(args.out))
    r = Results(args.results)
    if not r.configs:
        sys.exit(f"plot_experiments: {args.results}: no configuration recorded yet")
    os.makedirs(args.out, exist_ok=True)
    md = []
    seconds = sum(c["time"] for c in r.configs)
    md.append(f"{len(r.configs)} of {r.total} configurations recorded; n = {', '.join(pow2(n) for n in r.ns)}; "
              f"d = {', '.join(map(str, r.ds))}; seeds {', '.join(map(str, r.seeds))}; "
              f"{', '.join(map(str, r.queries))} sampled query rows per configuration; engine time "
              f"{seconds:.0f} s.\n\n")
    KINDS[args.kind](r, args.out, md)
    sys.stdout.write("".join(md))


if __name__ == "__main__":
    main()
