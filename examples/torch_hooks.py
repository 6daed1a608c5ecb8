#!/usr/bin/env python3
"""Window strategies on the attention of a small PyTorch transformer, per layer and per head.

A randomly initialised decoder (no weights can be downloaded here) runs over one long input;
forward hooks on each layer's query, key and value projections collect Q, K and V, which
ncsparse.attend evaluates (causal, exact reference on) for every window strategy at once. It
prints one line per layer, head and strategy and saves a plot of the attention-row error.

    PYTHONPATH=build/python python3 examples/torch_hooks.py [--n 8192] [--plot torch_hooks.png]
    PYTHONPATH=build/python python3 examples/torch_hooks.py --small      # what the test suite runs
"""

import argparse
import math

import torch
from torch import nn

import ncsparse


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions, q/k/v as separate projections (hooked)."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads, self.dh = heads, width // heads
        self.q, self.k, self.v = (nn.Linear(width, width, bias=False) for _ in range(3))
        self.out = nn.Linear(width, width, bias=False)

    def rope(self, x):  # (heads, n, dh): pairs of coordinates turned by position * theta^(-2i/dh)
        n = x.shape[1]
        inv = 10000.0 ** (-torch.arange(0, self.dh, 2, dtype=torch.float32) / self.dh)
        ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None]
        c, s = ang.cos(), ang.sin()
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)

    def split(self, x):  # (n, width) -> (heads, n, dh)
        return x.view(x.shape[0], self.heads, self.dh).transpose(0, 1)

    def forward(self, x):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        o = nn.functional.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True) \
            if hasattr(nn.functional, "scaled_dot_product_attention") else self.naive(self.rope(q), self.rope(k), v)
        return self.out(o.transpose(0, 1).reshape(x.shape))

    @staticmethod
    def naive(q, k, v):  # torch < 2.0; only for the model's own forward pass (small n)
        s = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        s = s.masked_fill(torch.ones_like(s, dtype=torch.bool).triu(1), float("-inf"))
        return s.softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192, help="tokens of the input")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--queries", type=int, default=512, help="sampled query rows per head")
    ap.add_argument("--gain", type=float, default=3.0, help="init gain of the q/k projections (sharper attention)")
    ap.add_argument("--windows", nargs="+", default=["const:32", "log:4", "power:1,0.5", "mass:1e-2", "sink:4,60"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", default="torch_hooks.png")
    ap.add_argument("--small", action="store_true", help="a quick run (n=1024, 2 layers, 2 heads, width 64)")
    a = ap.parse_args()
    if a.small:
        a.n, a.layers, a.heads, a.width, a.queries = 1024, 2, 2, 64, 128

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(1000, a.width), *[Block(a.width, a.heads) for _ in range(a.layers)]).eval()
    for blk in model[1:]:
        for lin in (blk.attn.q, blk.attn.k):
            nn.init.normal_(lin.weight, std=a.gain / math.sqrt(a.width))

    # Forward hooks on the projections: each layer's Q, K, V as (heads, n, dh), rotary applied to Q and K.
    captured = {}

    def hook(layer, name, attn):
        def fn(module, inputs, output):
            x = attn.split(output.detach())
            captured[(layer, name)] = (attn.rope(x) if name in "qk" else x).contiguous()
        return fn

    for i, blk in enumerate(model[1:]):
        for name in "qkv":
            getattr(blk.attn, name).register_forward_hook(hook(i, name, blk.attn))
    tokens = torch.randint(0, 1000, (a.n,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(tokens)

    rows = []
    for layer in range(a.layers):
        q, k, v = (captured[(layer, t)] for t in "qkv")
        r = ncsparse.attend(q, k, v, windows=a.windows, causal=True, queries=a.queries, threads=a.threads)
        assert not any(r.copied.values())  # contiguous float32 tensors: read in place
        frame = r.to_pandas()
        frame.insert(0, "layer", layer)
        rows.append(frame)
    import pandas as pd
    table = pd.concat(rows, ignore_index=True)

    cols = ["layer", "head", "strategy", "k_mean", "kept_mass_mean", "attn_l1_mean", "attn_l1_p99", "out_rel_mean"]
    print(f"n={a.n} tokens, {a.layers} layers x {a.heads} heads, d={a.width // a.heads}, causal, "
          f"{a.queries} sampled query rows per head")
    with pd.option_context("display.width", 200, "display.max_rows", 1000):
        print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    best = table.groupby("strategy")[["k_mean", "attn_l1_mean"]].mean().sort_values("attn_l1_mean")
    print("\nmean over layers and heads:")
    print(best.to_string(float_format=lambda x: f"{x:.4g}"))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"L{l}H{h}" for l, h in table[["layer", "head"]].drop_duplicates().itertuples(index=False)]
    for s in a.windows:
        sel = table[table["strategy"] == s]
        ax.plot(range(len(sel)), sel["attn_l1_mean"].to_numpy(), marker="o", label=s)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yscale("log")
    ax.set_ylabel("mean attention-row l1 error")
    ax.set_title(f"window strategies per layer and head (n={a.n}, causal)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.plot, dpi=120)
    print(f"\nplot: {a.plot}")


if __name__ == "__main__":
    main()
