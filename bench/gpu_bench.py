#!/usr/bin/env python3
"""gpu_bench.py — PyTorch's side of the GPU benchmark (bench/gpu_bench.c is the engine's).

The same model as the engine's, written as a PyTorch user would on a GPU: GPT-2 pre-LN trunk
with learned positions, scaled_dot_product_attention (causal), dropout 0.2 at the embedding,
attention-output and MLP-output sites, a tied item head with full-catalogue softmax
cross-entropy, and (int, lac, pc) an action input (bucket embedding + linear term) and an MLP
action head with MSE (over [h ; E[item]] for pc). AdamW (betas 0.9/0.98). Tokens per sequence
match the engine's layouts: len for item/lac/pc, 2 len - 1 for int. Synthetic histories over a
20,000-item catalogue; batch shapes as in gpu_bench.c (small: d=64, 2 layers, 2 heads, len 50,
128 users; large: d=768, 12 layers, 12 heads, len 1024, 8 users).

Each configuration is timed eagerly and under torch.compile (median step time of full
optimiser steps after warm-up, CUDA events). Also measures the GEMM peak (8192^3 matmul, fp32
with TF32 allowed, and bf16) as the engine does.

    python3 bench/gpu_bench.py [--sizes small,large] [--layouts item,int,lac,pc]
                               [--math tf32|fp32|bf16] [--steps 20] [--no-compile] --json OUT
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {
    "tiny": dict(d=32, layers=1, heads=2, len=16, users=8),
    "small": dict(d=64, layers=2, heads=2, len=50, users=128),
    "large": dict(d=768, layers=12, heads=12, len=1024, users=8),
}
N_ITEMS = 20000
N_BUCKETS = 8
HEAD_HIDDEN = 64


class Block(nn.Module):
    """One GPT-2 pre-LN block with SDPA attention."""

    def __init__(self, d, heads, p):
        super().__init__()
        self.heads, self.p = heads, p
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fcproj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(B, T, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        a = a.transpose(1, 2).reshape(B, T, d)
        x = x + F.dropout(self.proj(a), self.p, self.training)
        h = F.gelu(self.fc(self.ln2(x)), approximate="tanh")
        return x + F.dropout(self.fcproj(h), self.p, self.training)


class Model(nn.Module):
    """Embeddings, trunk, tied item head and (optionally) the action head."""

    def __init__(self, layout, d, layers, heads, T, p=0.2):
        super().__init__()
        self.layout, self.p = layout, p
        self.actions = layout != "item"
        self.item_emb = nn.Embedding(N_ITEMS + 1, d)
        self.pos_emb = nn.Embedding(T, d)
        if self.actions:
            self.act_emb = nn.Embedding(N_BUCKETS + 1, d)
            self.act_lin = nn.Linear(1, d, bias=False)
            cin = 2 * d if layout == "pc" else d
            self.head = nn.Sequential(nn.Linear(cin, HEAD_HIDDEN), nn.GELU(approximate="tanh"),
                                      nn.Linear(HEAD_HIDDEN, 1))
        self.blocks = nn.ModuleList(Block(d, heads, p) for _ in range(layers))
        self.lnf = nn.LayerNorm(d)

    def forward(self, items, pos, bucket, actval, item_rows, item_tgt, act_rows, act_cpl,
                act_tgt):
        x = self.item_emb(items) + self.pos_emb(pos)
        if self.actions:
            x = x + self.act_emb(bucket) + self.act_lin(actval.unsqueeze(-1))
        x = F.dropout(x, self.p, self.training)
        for b in self.blocks:
            x = b(x)
        h = self.lnf(x).flatten(0, 1)
        logits = h[item_rows] @ self.item_emb.weight[1:].t()
        loss = F.cross_entropy(logits, item_tgt)
        if self.actions:
            ha = h[act_rows]
            if self.layout == "pc":
                ha = torch.cat([ha, self.item_emb(act_cpl)], dim=1)
            loss = loss + F.mse_loss(self.head(ha).squeeze(-1), act_tgt)
        return loss


def make_batch(layout, cfg, dev, gen):
    """Synthetic token batch with the engine's token count and read-out rows."""
    B, n = cfg["users"], cfg["len"]
    T = 2 * n - 1 if layout == "int" else n
    items = torch.randint(1, N_ITEMS + 1, (B, T), device=dev, generator=gen)
    act = torch.rand(B, T, device=dev, generator=gen)
    bucket = (act * N_BUCKETS).long().clamp(max=N_BUCKETS - 1)
    pos = torch.arange(T, device=dev).expand(B, T)
    base = (torch.arange(B, device=dev) * T).unsqueeze(1)
    if layout == "int":
        # item rows at action tokens (odd), action rows at item tokens (even)
        item_rows = (base + torch.arange(1, T, 2, device=dev)).flatten()
        act_rows = (base + torch.arange(0, T, 2, device=dev)).flatten()
    else:
        item_rows = (base + torch.arange(0, T - 1, device=dev)).flatten()
        act_rows = (base + torch.arange(0, T, device=dev)).flatten()
    item_tgt = torch.randint(0, N_ITEMS, (item_rows.numel(),), device=dev, generator=gen)
    act_cpl = torch.randint(1, N_ITEMS + 1, (act_rows.numel(),), device=dev, generator=gen)
    act_tgt = torch.rand(act_rows.numel(), device=dev, generator=gen)
    return (items, pos, bucket, act, item_rows, item_tgt, act_rows, act_cpl, act_tgt), B * T


def time_steps(model, opt, batch, steps, warmup, amp):
    """Median seconds of full optimiser steps."""
    times = []
    for i in range(warmup + steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = model(*batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        end.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


def peak(dtype, n=8192, reps=10):
    """TFLOP/s of an n^3 matmul on random data."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    ts.sort()
    return 2 * n ** 3 / ts[len(ts) // 2] / 1e12


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--layouts", default="item,int,lac,pc")
    ap.add_argument("--math", default="tf32", choices=["tf32", "fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_bench.py: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    tf32 = args.math != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "math": args.math,
           "peak_tf32_tflops": peak(torch.float32), "peak_bf16_tflops": peak(torch.bfloat16),
           "train": []}
    print(f"device {out['device']}, torch {out['torch']}, peak tf32 {out['peak_tf32_tflops']:.0f}"
          f" bf16 {out['peak_bf16_tflops']:.0f} TFLOP/s", flush=True)
    gen = torch.Generator(device=dev)
    gen.manual_seed(1)
    for size in args.sizes.split(","):
        cfg = SIZES[size]
        for layout in args.layouts.split(","):
            batch, tokens = make_batch(layout, cfg, dev, gen)
            T = batch[0].shape[1]
            row = {"size": size, "layout": layout, "tokens_per_step": tokens}
            modes = [("eager", False)] + ([] if args.no_compile else [("compile", True)])
            for name, comp in modes:
                torch.manual_seed(0)
                model = Model(layout, cfg["d"], cfg["layers"], cfg["heads"], T).to(dev)
                opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98),
                                        weight_decay=0.0)
                run = torch.compile(model) if comp else model
                try:
                    s = time_steps(run, opt, batch, args.steps, 10 if comp else 3,
                                   args.math == "bf16")
                    row[f"{name}_step_ms"] = s * 1e3
                    row[f"{name}_tokens_per_s"] = tokens / s
                except Exception as e:  # keep the other numbers when one mode fails
                    row[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
                    s = math.nan
                print(f"torch {size:5s} {layout:4s} {name:7s} {tokens:7d} tokens/step "
                      f"{s * 1e3:9.2f} ms/step {tokens / s:12.0f} tokens/s", flush=True)
                del model, opt, run
                torch.cuda.empty_cache()
            out["train"].append(row)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
