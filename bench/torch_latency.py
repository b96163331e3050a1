#!/usr/bin/python3
"""torch_latency.py — the PyTorch counterpart of bench/cpu_latency: serving latency of the same
model for one user, written as a PyTorch user would (float32, torch.no_grad, one padded
sequence, the block-causal mask as a boolean tensor): one-pass scoring of C candidates and
top-k retrieval over the catalogue with seen items excluded, as p50/p99 over many calls.

    /usr/bin/python3 bench/torch_latency.py --layout lac --n-items 1682 [--history 50]
        [--candidates 100] [--k 10] [--iters 2000] [--threads 1] [--d 64 --layers 2 --heads 2
        --max-len 50] [--json]

The weights are random (latency does not depend on them); the history is a fixed random one
of --history interactions with actions.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import genrec_torch as gt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", default="lac", choices=gt.LAYOUTS)
    ap.add_argument("--n-items", type=int, default=1682)
    ap.add_argument("--history", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    K = 1
    model = gt.GenRec(a.layout, a.n_items, d_model=a.d, n_layer=a.layers, n_head=a.heads,
                      max_len=a.max_len, n_actions=K)
    model.init_gpt2()
    model.eval()
    rng = np.random.default_rng(0)
    items = list(rng.integers(1, a.n_items + 1, size=a.history))
    actions = rng.random((a.history, K)).astype(np.float32)
    cands = [1 + (c % a.n_items) for c in range(a.candidates)]
    start = max(0, a.history - gt.history_cap(a.layout, a.max_len))

    def score():
        s = gt.serving_seq(a.layout, items, actions, start, cands)
        b = gt.collate([s], K, model.n_buckets)
        h = model(b).reshape(-1, a.d)
        q = h[b["irow_tok"]]
        logits = (model.item_emb[torch.tensor(cands)] @ q[0]) if len(q) else None
        if model.uses_actions:
            return model.action_pred(h[b["arow_tok"]], b["arow_cpl"]), logits
        return None, logits

    seen = torch.tensor(sorted(set(int(i) - 1 for i in items)), dtype=torch.long)

    def recommend():
        s = gt.serving_seq(a.layout, items, actions, start, [])
        b = gt.collate([s], K, model.n_buckets)
        h = model(b).reshape(-1, a.d)
        logits = model.item_logits(h[b["irow_tok"]])[0]
        logits[seen] = float("-inf")
        return torch.topk(logits, a.k)

    def timed(fn):
        with torch.no_grad():
            for _ in range(max(1, a.iters // 10)):
                fn()
            t = np.empty(a.iters)
            for i in range(a.iters):
                t0 = time.perf_counter()
                fn()
                t[i] = (time.perf_counter() - t0) * 1e6
        return float(np.percentile(t, 50)), float(np.percentile(t, 99))

    s50, s99 = timed(score)
    r50, r99 = timed(recommend)
    res = {"layout": a.layout, "history": a.history, "candidates": a.candidates, "k": a.k,
           "threads": a.threads, "iters": a.iters, "score_p50_us": s50, "score_p99_us": s99,
           "recommend_p50_us": r50, "recommend_p99_us": r99, "torch": torch.__version__}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{a.layout}: score {a.candidates} candidates (history {a.history}): p50 {s50:.1f} us, "
              f"p99 {s99:.1f} us; top-{a.k}: p50 {r50:.1f} us, p99 {r99:.1f} us "
              f"({a.threads} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
