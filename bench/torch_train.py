#!/usr/bin/python3
"""torch_train.py — the PyTorch counterpart of `genrec train`: the same model, layouts and
protocol, written the way a PyTorch user would write it (padded [B, T] batches, batched
matmuls, float32, a fixed number of CPU threads), to put the engine's throughput and quality
next to a plain PyTorch implementation.

Model (python/genrec_torch, shared with the float64 parity reference): x = s*E[item] +
P[pos] + per action column A[bucket(a)] + a*W for tokens with an action slot; GPT-2 pre-LN
trunk; tied item head with full-softmax cross-entropy; action head MLP (over [h ; E[item]]
for PC) with MSE on the [0, 1]-normalised action; AdamW (betas 0.9/0.98, eps 1e-8, no weight
decay); dropout at the embeddings, attention and MLP outputs. Same init scheme as the engine
(GPT-2 style, action head bias = training mean), different random draws.

Protocol (docs PROTOCOL.md): stable time sort, dense ids, leave-one-out (test M, validation
M-1, train 1..M-2), one most-recent training window per user per epoch, users shuffled,
batches of --batch users, validation NDCG@10 (seen items excluded, full catalogue) after every
epoch, early stopping with --patience, test metrics at the best epoch.

    bench/torch_train.py --data /work/shared/data/ml-100k/u.data --layout lac --epochs 5

Data: ML-100k u.data (user, item, rating, time; tab separated, no header: positional
u,i,a,t), ML-1M 5-core gz TSV (header user_id movie_id timestamp, no action: item layout
only), or any TSV/CSV/"::" file with the same positional conventions as the engine's CLI
(u,i | u,i,t | u,i,a,t) or a header naming user/item/time columns.

Throughput counts only optimiser work (forward, backward, AdamW, batch assembly), not
validation; train interactions per step are min(train_end, window) per user, as in the engine.
"""

import argparse
import copy
import gzip
import io
import json
import math
import os
import sys
import time

try:
    import torch
except ImportError:  # the python3 on PATH may be one without torch
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import genrec_torch as gt  # noqa: E402

USER_NAMES = ("user", "user_id", "userid", "uid")
ITEM_NAMES = ("item", "item_id", "itemid", "movie_id", "movieid", "iid")
TIME_NAMES = ("time", "timestamp", "ts", "t")


# ---------------------------------------------------------------------------------------------
# data


def read_interactions(path, fmt):
    """(user, item, time or None, actions [n, K] or None, action names)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="latin-1") as f:
        text = f.read()
    lines = text.splitlines()
    first = next((l for l in lines if l.strip()), "")
    if fmt == "auto":
        fmt = "movielens" if "::" in first else ("tsv" if "\t" in first else
                                                 ("csv" if "," in first else "ws"))
    sep = {"movielens": "::", "tsv": "\t", "csv": ","}.get(fmt)
    fields = first.split(sep) if sep else first.split()
    header = not all(_is_number(x) for x in fields)
    body = "\n".join(lines[1:] if header else lines)
    if sep == "::":
        body = body.replace("::", "\t")
        sep = "\t"
    arr = np.loadtxt(io.StringIO(body), delimiter=sep, dtype=np.float64, ndmin=2)
    n_fields = arr.shape[1]
    if header:
        names = [x.strip().lower() for x in fields]
        u = _find(names, USER_NAMES)
        i = _find(names, ITEM_NAMES)
        t = _find(names, TIME_NAMES)
        if u is None or i is None:
            raise SystemExit("%s: cannot tell the user and item columns from the header %s"
                             % (path, fields))
        acols = [c for c in range(n_fields) if c not in (u, i, t)]
        anames = [names[c] for c in acols]
    else:
        u, i = 0, 1
        t = 2 if n_fields == 3 else (3 if n_fields >= 4 else None)
        acols = [2] if n_fields >= 4 else []
        anames = ["col2"] if acols else []
    user = arr[:, u].astype(np.int64)
    item = arr[:, i].astype(np.int64)
    tm = arr[:, t].astype(np.int64) if t is not None else None
    acts = arr[:, acols] if acols else None
    return user, item, tm, acts, anames, fmt


def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def _find(names, wanted):
    for c, n in enumerate(names):
        if n in wanted:
            return c
    return None


# ---------------------------------------------------------------------------------------------
# packed windows: one row per user, every token holds at most one item row and one action row


class Packed:
    """Token windows of many users as padded [N, T] arrays, built once."""

    def __init__(self, seqs, K):
        N = len(seqs)
        T = max(1, max(len(s) for s in seqs))
        self.N, self.T, self.K = N, T, K
        self.item = np.zeros((N, T), np.int64)
        self.pos = np.zeros((N, T), np.int64)
        self.slot = np.zeros((N, T), bool)
        self.aval = np.full((N, T, K), np.nan, np.float32)
        self.length = np.zeros(N, np.int64)
        self.item_tgt = np.zeros((N, T), np.int64)         # 0 = no item row
        self.has_arow = np.zeros((N, T), bool)
        self.act_tgt = np.full((N, T, K), np.nan, np.float32)
        self.cpl = np.zeros((N, T), np.int64)
        for b, s in enumerate(seqs):
            L = len(s)
            self.length[b] = L
            self.item[b, :L] = s.item
            self.pos[b, :L] = s.pos
            for t, a in enumerate(s.act):
                if a is not None and K > 0:
                    self.slot[b, t] = True
                    self.aval[b, t] = a
            for t, tgt in s.item_rows:
                assert self.item_tgt[b, t] == 0
                self.item_tgt[b, t] = tgt
            for t, cpl, tgt in s.act_rows:
                assert not self.has_arow[b, t]
                self.has_arow[b, t] = True
                self.cpl[b, t] = cpl
                if tgt is not None:
                    self.act_tgt[b, t] = tgt
        # torch views, shared memory
        self.t = {k: torch.from_numpy(getattr(self, k)) for k in
                  ("item", "pos", "slot", "aval", "length", "item_tgt", "has_arow",
                   "act_tgt", "cpl")}

    def batch(self, idx):
        """A model batch for rows idx, trimmed to its longest sequence."""
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        L = self.t["length"][idx_t]
        T = int(L.max())
        g = {k: v[idx_t][:, :T] for k, v in self.t.items() if k != "length"}
        valid = torch.arange(T).unsqueeze(0) < L.unsqueeze(1)
        irow = (g["item_tgt"] > 0).reshape(-1).nonzero().squeeze(1)
        arow = g["has_arow"].reshape(-1).nonzero().squeeze(1)
        K = self.K
        return {
            "item": g["item"], "pos": g["pos"], "valid": valid, "slot": g["slot"],
            "aval": g["aval"], "n_hist": L,
            "irow_tok": irow, "irow_tgt": g["item_tgt"].reshape(-1)[irow],
            "arow_tok": arow, "arow_cpl": g["cpl"].reshape(-1)[arow],
            "arow_tgt": g["act_tgt"].reshape(len(idx) * T, K)[arow],
            "n_tokens": int(L.sum()),
        }


def causal_mask(batch):
    """Training/evaluation mask: causal over each sequence's tokens, padding keys hidden."""
    valid = batch["valid"]
    T = valid.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril_()
    return (causal.unsqueeze(0) & valid.unsqueeze(1)) | torch.eye(T, dtype=torch.bool)


# ---------------------------------------------------------------------------------------------
# evaluation


class EvalSet:
    """The evaluation windows of one split, their targets and exclusion lists."""

    def __init__(self, layout, ds, max_len, split):
        W = gt.window_len(layout, max_len)
        seqs, users, targets, excl = [], [], [], []
        for u, (items, acts) in enumerate(ds.seqs):
            t = ds.target(u, split)
            if t is None:
                continue
            s = gt.window_seq(layout, items, acts if ds.n_actions else None,
                              max(0, t + 1 - W), t + 1, last_only=True)
            seqs.append(s)
            users.append(u)
            targets.append(int(items[t]))
            prev = np.unique(items[:t])
            prev = prev[(prev > 0) & (prev != items[t])]
            excl.append(prev - 1)
        self.packed = Packed(seqs, ds.n_actions)
        self.targets = np.array(targets, np.int64)
        self.excl = excl
        self.n = len(seqs)


@torch.no_grad()
def evaluate(model, es, ks=(10, 50), batch_users=256):
    model.eval()
    sums = {"hr": np.zeros(len(ks)), "ndcg": np.zeros(len(ks)), "mrr": 0.0,
            "hr_all": np.zeros(len(ks)), "ndcg_all": np.zeros(len(ks)), "mrr_all": 0.0}
    n_rank = 0
    sq = np.zeros(model.K)
    n_act = np.zeros(model.K, np.int64)
    for i in range(0, es.n, batch_users):
        idx = np.arange(i, min(es.n, i + batch_users))
        b = es.packed.batch(idx)
        h = model(b, causal_mask(b)).reshape(-1, model.d)
        if b["irow_tok"].numel() > 0:
            # one item row per user, in user order
            assert b["irow_tok"].numel() == len(idx)
            scores = model.item_logits(h[b["irow_tok"]])
            tgt = torch.from_numpy(es.targets[idx]) - 1
            st = scores.gather(1, tgt.unsqueeze(1))
            rank_all = 1 + (scores > st).sum(1)
            rows = np.concatenate([np.full(len(es.excl[j]), r) for r, j in enumerate(idx)])
            cols = np.concatenate([es.excl[j] for j in idx])
            if len(cols):
                scores[torch.from_numpy(rows).long(), torch.from_numpy(cols).long()] = float("-inf")
            rank = 1 + (scores > st).sum(1)
            for r_, suffix in ((rank, ""), (rank_all, "_all")):
                r_ = r_.double().numpy()
                for j, k in enumerate(ks):
                    hit = r_ <= k
                    sums["hr" + suffix][j] += hit.sum()
                    sums["ndcg" + suffix][j] += (hit / np.log2(r_ + 1)).sum()
                sums["mrr" + suffix] += (1.0 / r_).sum()
            n_rank += len(idx)
        if model.uses_actions and b["arow_tok"].numel() > 0:
            pred = model.action_pred(h[b["arow_tok"]], b["arow_cpl"]).double()
            y = b["arow_tgt"].double()
            for k in range(model.K):
                m = ~torch.isnan(y[:, k])
                sq[k] += float(((pred[m, k] - y[m, k]) ** 2).sum())
                n_act[k] += int(m.sum())
    out = {"users": es.n}
    for j, k in enumerate(ks):
        out["hr@%d" % k] = sums["hr"][j] / max(n_rank, 1)
    for j, k in enumerate(ks):
        out["ndcg@%d" % k] = sums["ndcg"][j] / max(n_rank, 1)
    out["mrr"] = sums["mrr"] / max(n_rank, 1)
    out["nothing_excluded"] = {}
    for j, k in enumerate(ks):
        out["nothing_excluded"]["hr@%d" % k] = sums["hr_all"][j] / max(n_rank, 1)
    for j, k in enumerate(ks):
        out["nothing_excluded"]["ndcg@%d" % k] = sums["ndcg_all"][j] / max(n_rank, 1)
    out["nothing_excluded"]["mrr"] = sums["mrr_all"] / max(n_rank, 1)
    if model.uses_actions:
        out["rmse"] = [math.sqrt(sq[k] / n_act[k]) if n_act[k] else None for k in range(model.K)]
    model.train()
    return out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--format", default="auto", choices=("auto", "tsv", "csv", "movielens"))
    ap.add_argument("--layout", default="lac", choices=gt.LAYOUTS)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--buckets", type=int, default=8)
    ap.add_argument("--head-hidden", type=int, default=64)
    ap.add_argument("--emb-scale", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--eval-batch", type=int, default=256)
    ap.add_argument("--json", help="write the results here ('-' = stdout)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    t0 = time.time()
    user, item, tm, acts, anames, fmt = read_interactions(args.data, args.format)
    if gt.USES_ACTIONS[args.layout] and acts is None:
        raise SystemExit("layout %s needs an action column; %s has none (use --layout item)"
                         % (args.layout, args.data))
    if not gt.USES_ACTIONS[args.layout]:
        acts, anames = None, []
    ds = gt.Dataset(user, item, tm, acts)
    K = ds.n_actions
    W = gt.window_len(args.layout, args.max_len)

    # the training windows never change: build them once
    seqs, inter = [], []
    for u, (items, a) in enumerate(ds.seqs):
        end = ds.train_end(u)
        start = max(0, end - W)
        if end - start < 1:
            continue
        s = gt.window_seq(args.layout, items, a if K else None, start, end)
        if s.item_rows or s.act_rows:
            seqs.append(s)
            inter.append(end - start)
    train = Packed(seqs, K)
    inter = np.array(inter, np.int64)
    valid_set = EvalSet(args.layout, ds, args.max_len, "valid")
    test_set = EvalSet(args.layout, ds, args.max_len, "test")
    prep = time.time() - t0
    log("data: %s (%s): %d interactions, %d users, %d items, %d action(s); %d training "
        "windows; prepared in %.1f s" % (args.data, fmt, len(user), len(ds.seqs), ds.n_items,
                                         K, train.N, prep))

    model = gt.GenRec(args.layout, ds.n_items, d_model=args.d, n_layer=args.layers,
                      n_head=args.heads, max_len=args.max_len, n_actions=K,
                      n_buckets=args.buckets, emb_scale=args.emb_scale,
                      head_hidden=args.head_hidden, dropout=args.dropout)
    gen = torch.Generator().manual_seed(args.seed)
    model.init_gpt2(gen)
    if model.uses_actions:  # the engine starts the action head at the training mean
        with torch.no_grad():
            for k in range(K):
                v = np.concatenate([a[: ds.train_end(u), k] for u, (_, a) in enumerate(ds.seqs)])
                v = v[~np.isnan(v)]
                model.action_head.out.bias[k] = float(v.mean()) if len(v) else 0.5
    model.train()
    opt = gt.make_adamw(model, lr=args.lr)
    n_params = sum(p.numel() for p in model.parameters())
    log("model: layout %s, d %d, %d layers, %d heads, max_len %d, %d parameters; torch %s, "
        "%d threads" % (args.layout, args.d, args.layers, args.heads, args.max_len, n_params,
                        torch.__version__, torch.get_num_threads()))

    rng = np.random.default_rng(args.seed)
    best, best_epoch, best_state, since = -1.0, 0, None, 0
    train_s = eval_s = 0.0
    steps = tokens = interactions = 0
    history = []
    for epoch in range(1, args.epochs + 1):
        te = time.time()
        perm = rng.permutation(train.N)
        loss_sum, n_steps = 0.0, 0
        for i in range(0, train.N, args.batch):
            idx = perm[i: i + args.batch]
            b = train.batch(idx)
            h = model(b, causal_mask(b))
            lp = model.losses(b, h)
            opt.zero_grad(set_to_none=True)
            lp["total"].backward()
            opt.step()
            loss_sum += float(lp["total"])
            n_steps += 1
            steps += 1
            tokens += b["n_tokens"]
            interactions += int(inter[idx].sum())
        t1 = time.time()
        train_s += t1 - te
        vm = evaluate(model, valid_set, batch_users=args.eval_batch)
        eval_s += time.time() - t1
        improved = vm["ndcg@10"] > best
        if improved:
            best, best_epoch, since = vm["ndcg@10"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
        rec = {"epoch": epoch, "steps": steps, "train_loss": loss_sum / max(n_steps, 1),
               "valid_hr@10": vm["hr@10"], "valid_ndcg@10": vm["ndcg@10"],
               "valid_rmse": vm.get("rmse", [None])[0] if K else None,
               "train_seconds": t1 - te, "improved": improved}
        history.append(rec)
        log("epoch %3d  loss %.4f  valid HR@10 %.4f NDCG@10 %.4f%s  %.2f s%s" % (
            epoch, rec["train_loss"], vm["hr@10"], vm["ndcg@10"],
            "  RMSE %.4f" % rec["valid_rmse"] if rec["valid_rmse"] is not None else "",
            t1 - te, "  *" if improved else ""))
        if since >= args.patience:
            break
    model.load_state_dict(best_state)
    valid_best = evaluate(model, valid_set, batch_users=args.eval_batch)
    test = evaluate(model, test_set, batch_users=args.eval_batch)
    epochs_run = len(history)
    result = {
        "epochs_run": epochs_run, "best_epoch": best_epoch, "steps": steps,
        "train_seconds": train_s, "eval_seconds": eval_s, "train_tokens": tokens,
        "train_interactions": interactions,
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "interactions_per_second": interactions / train_s if train_s > 0 else None,
        "tokens_per_second": tokens / train_s if train_s > 0 else None,
        "seconds_per_epoch": train_s / epochs_run if epochs_run else None,
    }
    log("throughput: %.0f train interactions/s, %.0f tokens/s, %.2f s per epoch (training "
        "only; %.2f s training + %.2f s validation over %d epochs, %d steps)" % (
            result["interactions_per_second"], result["tokens_per_second"],
            result["seconds_per_epoch"], train_s, eval_s, epochs_run, steps))
    log("test at best epoch %d (%d users, seen items excluded): HR@10 %.4f NDCG@10 %.4f "
        "HR@50 %.4f NDCG@50 %.4f MRR %.4f%s" % (
            best_epoch, test["users"], test["hr@10"], test["ndcg@10"], test["hr@50"],
            test["ndcg@50"], test["mrr"],
            "  RMSE %.4f" % test["rmse"][0] if K and test["rmse"][0] is not None else ""))
    out = {
        "implementation": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "data": {"path": args.data, "format": fmt, "interactions": int(len(user)),
                 "users": len(ds.seqs), "items": ds.n_items, "actions": anames},
        "model": {"layout": args.layout, "d_model": args.d, "n_layer": args.layers,
                  "n_head": args.heads, "max_len": args.max_len, "n_buckets": args.buckets,
                  "head_hidden": args.head_hidden, "emb_scale": args.emb_scale,
                  "parameters": n_params},
        "train": {"epochs": args.epochs, "batch_size": args.batch, "lr": args.lr,
                  "beta1": 0.9, "beta2": 0.98, "weight_decay": 0.0, "dropout": args.dropout,
                  "patience": args.patience, "seed": args.seed},
        "result": result, "epochs": history, "valid": valid_best, "test": test,
    }
    if args.json:
        text = json.dumps(out, indent=2, default=float)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
