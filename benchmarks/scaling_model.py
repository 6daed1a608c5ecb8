#!/usr/bin/python3
"""Modelled weak and strong scaling of one query block to 1,024 ranks (docs/scaling.md).

    /usr/bin/python3 benchmarks/scaling_model.py [--plots DIR] [--markdown]

Nothing here is measured by this script: it evaluates the alpha-beta-gamma model of
docs/scaling.md ("The model") with the parameters below, each of which names where it comes
from (a measurement in benchmarks/RESULTS.md or benchmarks/gpu/RESULTS.md, or a public figure in
shared/SCALE.md, or an assumption, said as such). It prints, per kind of node, the time of one
block (local pass + candidate merge + LSE merge) and the parallel efficiency for each merge
algorithm, under strong scaling (n = 2^30 keys split over P ranks) and weak scaling (2^20 keys
per rank, so n = 2^30 at P = 1,024), and with --plots draws both as PNG files.
"""
import argparse
import math
import os

S = 1 << 20  # OpenMPI's ring segment, bytes
CAND = 16    # bytes of one Candidate (float + int64, padded)

# Node kinds. local_rate: flop/s of one rank's local pass (2·m·keys·d flops for the scores; the
# exact pass doubles the flops and is counted by `exact_factor`).
NODES = {
    "CPU rank, 1 thread": dict(
        # 3.0 s for 2^19 keys x 256 rows x d = 64 per rank (benchmarks/RESULTS.md, 2026-11-25,
        # the default job's local pass with the exact pass): 5.7 GFLOP/s counted as 2·m·n·d.
        local_rate=2 * 256 * 2**19 * 64 / 3.0,
        m=256, d=64, K=16384,
        # MPI over InfiniBand NDR: beta = 1/47 GB/s (NCCL over NDR 400, nccl-tests issue 290,
        # shared/SCALE.md; an MPI ring assumed to reach the same); alpha = 2 us (assumption, a
        # typical MPI latency on InfiniBand); gamma = 12 ns per merged entry (derived from the
        # P = 2 tree merge measured here, docs/scaling.md).
        alpha=2e-6, beta=1 / 47e9, gamma=12e-9,
        algorithms=["allreduce (ring)", "tree", "allgather", "rowowner"],
    ),
    "CPU rank, 32 threads": dict(
        # The same per-thread rate times 32 (assumes the local pass scales with threads, as it
        # did 1 -> 2 threads here; measured on 16 threads of an H200 host: see gpu/RESULTS.md).
        local_rate=32 * 2 * 256 * 2**19 * 64 / 3.0,
        m=256, d=64, K=16384,
        alpha=2e-6, beta=1 / 47e9, gamma=12e-9,
        algorithms=["allreduce (ring)", "tree", "allgather", "rowowner"],
    ),
    "H200 rank (1 GPU)": dict(
        # The CUDA top-k pass at n = 2^22, m = 1024, K = 2048, d = 128 on an H200: 53.1 ms
        # (benchmarks/gpu/RESULTS.md): 20.7 TFLOP/s counted as 2·m·n·d.
        local_rate=2 * 1024 * 2**22 * 128 / 0.0531,
        m=1024, d=128, K=2048,
        # Within a node of 8 (NVSwitch): NCCL all-gather bus bandwidth about 370 GB/s
        # (nccl-tests issue 212, SCALE.md); across nodes one NDR NIC per GPU, 47 GB/s. NCCL's
        # base latency 6.6 us + 2.7 us per network hop (nccl src/graph/tuning.cc, SCALE.md).
        # The device merge: assumed to stream its inputs at HBM3e's 4.8 TB/s (an assumption:
        # the device merge has not been measured on its own), i.e. gamma = 16 B / 4.8 TB/s.
        alpha=6.6e-6 + 2.7e-6, beta=1 / 47e9, beta_node=1 / 370e9, gamma=CAND / 4.8e12, node=8,
        # "NCCL in a node, MPI row owner across" (what ncsparse does since 2026-12-07,
        # merge_on_device): the NCCL all-gather while every rank is on one node; across nodes
        # the MPI row owner on the host copies of the lists (they are on the host before the
        # merge either way) with the CPU nodes' MPI figures: alpha = 2 us (assumed), beta = 1/47
        # GB/s (one NDR NIC per GPU), gamma = 12 ns per merged entry on the host.
        host=dict(alpha=2e-6, beta=1 / 47e9, gamma=12e-9),
        algorithms=["allgather (NCCL, all nodes)", "NCCL in a node, MPI row owner across", "rowowner (device, not built)"],
    ),
}


def log2c(p):
    return math.ceil(math.log2(p)) if p > 1 else 0


def merge_time(alg, P, m, L, alpha, beta, gamma, beta_node=None, node=None):
    """Seconds of one candidate merge of m rows of L candidates over P ranks (docs/scaling.md)."""
    if P == 1:
        return 0.0
    M = m * L
    B = CAND * M
    if beta_node is not None and P <= node:
        beta = beta_node  # every rank on one node: NVSwitch
    lg = log2c(P)
    tree = lg * (alpha + beta * B + gamma * M) + (lg + B / S) * alpha + beta * B
    if alg.startswith("allreduce"):
        if m <= P:  # OpenMPI cannot split m rows over P ranks: reduce + broadcast
            return tree
        return alpha * max(2 * (P - 1), 2 * B / S) + 2 * (P - 1) / P * beta * B + (P - 1) / P * gamma * M
    if alg == "tree":
        return tree
    if alg.startswith("allgather"):
        return lg * alpha + (P - 1) * beta * B + lg * gamma * M
    if alg.startswith("rowowner"):
        own = math.ceil(m / P)
        extra = beta * P * L * CAND if m < P else 0.0
        return 2 * (P - 1) * alpha + 2 * (P - 1) / P * beta * B + own * L * lg * gamma + extra
    raise ValueError(alg)


def lse_time(P, m, d, alpha, beta, **_):
    """The exact states' log-sum-exp all-reduce: m rows of d + 3 doubles (recursive doubling)."""
    return 0.0 if P == 1 else log2c(P) * (alpha + beta * m * (d + 3) * 8)


def block_time(node, alg, P, keys_per_rank):
    local = 2 * node["m"] * keys_per_rank * node["d"] / node["local_rate"]
    kw = {k: node[k] for k in ("alpha", "beta", "gamma")}
    if "beta_node" in node:
        kw.update(beta_node=node["beta_node"], node=node["node"])
    if alg.startswith("NCCL in a node"):
        if P <= node["node"]:
            alg = "allgather"
        else:  # across nodes: the MPI row owner, and the LSE all-reduce over MPI, on the host
            alg = "rowowner"
            kw = dict(node["host"])
    merge = merge_time(alg, P, node["m"], node["K"] + 1, **kw)
    return local, merge + lse_time(P, node["m"], node["d"], kw["alpha"], kw["beta"])


RANKS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
N = 2**30


def tables():
    out = {}
    for name, node in NODES.items():
        rows = []
        for P in RANKS:
            row = {"P": P}
            for alg in node["algorithms"]:
                ls, cs = block_time(node, alg, P, N / P)  # strong
                lw, cw = block_time(node, alg, P, 2**20)  # weak
                l1, _ = block_time(node, alg, 1, N)
                row[alg] = dict(strong_s=ls + cs, strong_eff=l1 / (P * (ls + cs)), weak_s=lw + cw,
                                weak_eff=lw / (lw + cw), merge_s=cs)
            rows.append(row)
        out[name] = rows
    return out


def markdown(out):
    lines = []
    for name, rows in out.items():
        node = NODES[name]
        algs = node["algorithms"]
        lines.append(f"**{name}** (m = {node['m']}, d = {node['d']}, K = {node['K']}; efficiency, strong / weak)\n")
        lines.append("| P | " + " | ".join(algs) + " |")
        lines.append("|---|" + "---|" * len(algs))
        for r in rows:
            if r["P"] not in (1, 8, 64, 256, 1024):
                continue
            cells = [f"{r[a]['strong_eff'] * 100:.1f}% / {r[a]['weak_eff'] * 100:.1f}%" for a in algs]
            lines.append(f"| {r['P']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


COLORS = {"allreduce": "tab:blue", "tree": "tab:orange", "allgather": "tab:green", "rowowner": "tab:red",
          "NCCL": "tab:purple"}


def plots(out, folder):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    for kind, key, title in (("strong", "strong_eff", "Strong scaling, n = 2^30 keys over P ranks"),
                             ("weak", "weak_eff", "Weak scaling, 2^20 keys per rank (n = 2^30 at P = 1024)")):
        fig, axes = plt.subplots(1, len(out), figsize=(5 * len(out), 4), sharey=True)
        for ax, (name, rows) in zip(axes, out.items()):
            for alg in NODES[name]["algorithms"]:
                ax.plot([r["P"] for r in rows], [100 * r[alg][key] for r in rows], marker="o", ms=3, label=alg,
                        color=COLORS[alg.split()[0]])
            ax.set_xscale("log", base=2)
            ax.set_ylim(0, 105)
            ax.set_xlabel("ranks P")
            ax.set_title(name, fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower left")
        axes[0].set_ylabel("parallel efficiency (%)")
        fig.suptitle(title + " (modelled, not measured)", fontsize=11)
        fig.tight_layout()
        path = os.path.join(folder, f"scaling_{kind}.png")
        fig.savefig(path, dpi=110)
        print("wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plots", metavar="DIR", help="write scaling_strong.png and scaling_weak.png here")
    ap.add_argument("--markdown", action="store_true", help="print the efficiency tables as Markdown")
    a = ap.parse_args()
    out = tables()
    if a.markdown:
        print(markdown(out))
    else:
        for name, rows in out.items():
            print(name)
            for r in rows:
                print(f"  P={r['P']:5d} " + "  ".join(
                    f"{alg}: block {r[alg]['strong_s'] * 1e3:9.2f} ms merge {r[alg]['merge_s'] * 1e3:8.2f} ms "
                    f"eff {r[alg]['strong_eff'] * 100:5.1f}% weak {r[alg]['weak_eff'] * 100:5.1f}%"
                    for alg in NODES[name]["algorithms"]))
    if a.plots:
        plots(out, a.plots)


if __name__ == "__main__":
    main()
