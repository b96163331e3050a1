#!/usr/bin/python3
"""genrec_ref — the float64 PyTorch reference for the engine's parity test.

Given a dump written by build/ref/parity_dump (OUTDIR/<tag>.json plus the parameter blobs; the
tag is the layout's name, with "@hstu" for the HSTU trunk), it recomputes everything from
the raw interactions with its own code (python/genrec_torch, written from LAYOUTS.md /
PROTOCOL.md):

  dataset      stable sort, dense ids, training-split min/max, normalisation, times
  windows      the most recent training window of every user
  tokens       the layout's token batch (items, positions, action slots, the tokens' key
               and query times, rows)
  step 0       loss parts and gradients from the engine's initial parameters
  sampled      the sampled and in-batch item losses (the engine's candidates, log-Q
               recomputed from the training counts): loss and gradients
  training     ten AdamW steps (torch.optim.AdamW, betas (0.9, 0.98), eps 1e-8, wd 0):
               the ten losses and the final parameters
  evaluation   leave-one-out HR/NDCG/MRR (seen items excluded and not), action RMSE and the
               bias baseline on the validation and test splits
  serving      candidate scores and retrieval logits (block-causal packing with an explicit
               boolean mask, the PC coupler), and top-k recommendations, computed with the
               ENGINE's final parameters so serving is checked apart from training drift;
               the history's times and the request time as the case gives them

    genrec_ref.py DUMPDIR [tag ...]     prints a summary of the reference results
"""

import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import genrec_torch as gt  # noqa: E402

DTYPE = torch.float64


def _nan(v):
    return float("nan") if v is None else float(v)


def load_dump(dump_dir, tag):
    with open(os.path.join(dump_dir, tag + ".json")) as f:
        d = json.load(f)
    blobs = {}
    for key, name in d["files"].items():
        blobs[key] = np.fromfile(os.path.join(dump_dir, name), dtype="<f4")
    return d, blobs


def blob_to_tensors(d, flat):
    """Split a parameter blob into named float64 tensors following the dumped table."""
    out = {}
    for t in d["tensors"]:
        a = flat[t["offset"]: t["offset"] + t["numel"]].astype(np.float64)
        out[t["name"]] = torch.from_numpy(a.reshape(t["shape"]).copy())
    return out


def build_model(d, params):
    c = d["config"]
    m = gt.GenRec(d["layout"], c["n_items"], d_model=c["d_model"], n_layer=c["n_layer"],
                  n_head=c["n_head"], max_len=c["max_len"], n_actions=c["n_actions"],
                  n_buckets=c["n_buckets"], emb_scale=c["emb_scale"],
                  head_hidden=c["head_hidden"], dropout=0.0,
                  action_binary=c["action_binary"], trunk=c.get("trunk", "gpt2"),
                  action_bias=c.get("action_bias", False)).to(DTYPE)
    names = {n for n, _ in m.named_parameters()}
    if names != set(params):
        raise SystemExit("parameter names differ: reference only %s, engine only %s"
                         % (sorted(names - set(params)), sorted(set(params) - names)))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if tuple(p.shape) != tuple(params[n].shape):
                raise SystemExit("shape of %s: reference %s, engine %s"
                                 % (n, tuple(p.shape), tuple(params[n].shape)))
            p.copy_(params[n])
    return m


def build_dataset(d):
    raw = d["raw"]
    K = d["config"]["n_actions"]
    acts = np.array([_nan(v) for v in raw["action"]], dtype=np.float64).reshape(-1, K)
    return gt.Dataset(raw["user"], raw["item"], raw["time"], acts,
                      binary=d["config"]["action_binary"])


def train_batch(layout, ds, max_len):
    """The most recent training window of every user that has a target."""
    W = gt.window_len(layout, max_len)
    seqs, windows = [], []
    for u, (items, acts) in enumerate(ds.seqs):
        end = ds.train_end(u)
        start = max(0, end - W)
        s = gt.window_seq(layout, items, acts, start, end, times=ds.times[u])
        added = end - start >= 1 and (len(s.item_rows) + len(s.act_rows)) > 0
        windows.append({"user": u, "start": start, "end": end, "added": added})
        if added:
            seqs.append(s)
    return seqs, windows


def seqs_to_flat(seqs, K):
    """The token batch in the engine's flat form, for comparison."""
    out = {k: [] for k in ("item", "pos", "has_action", "action", "key_time", "query_time",
                           "seq_off", "n_hist", "item_rows", "act_rows")}
    off = 0
    out["seq_off"].append(0)
    for s in seqs:
        for t in range(len(s)):
            out["item"].append(s.item[t])
            out["pos"].append(s.pos[t])
            out["key_time"].append(s.key_time[t])
            out["query_time"].append(s.query_time[t])
            out["has_action"].append(int(s.act[t] is not None and K > 0))
            out["action"].append(list(s.act[t]) if s.act[t] is not None
                                 else [float("nan")] * K)
        for t, tgt in s.item_rows:
            out["item_rows"].append((off + t, tgt))
        for t, cpl, tgt in s.act_rows:
            out["act_rows"].append((off + t, cpl, tuple(tgt) if tgt is not None
                                    else tuple([float("nan")] * K)))
        off += len(s)
        out["seq_off"].append(off)
        out["n_hist"].append(s.n_hist)
    return out


def grads_of(model):
    return {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in model.named_parameters()}


def serve(d, ds, model, case):
    """Score and recommend for one serving case with the given model."""
    layout = d["layout"]
    c = d["config"]
    K = c["n_actions"]
    hist_ext = case["history"]["items"]
    hist_raw = np.array([[_nan(v) for v in row] for row in case["history"]["actions"]],
                        dtype=np.float64).reshape(len(hist_ext), K)
    item_ids = np.array(d["dataset"]["item_ids"], dtype=np.int64)
    items = gt.dense_lookup(item_ids, hist_ext)
    acts = np.empty((len(items), K), dtype=np.float32)
    for k in range(K):
        lo, hi = c["action_min"][k], c["action_max"][k]
        v = (hist_raw[:, k] - lo) / (hi - lo)
        acts[:, k] = np.clip(v, 0.0, 1.0)
    cap = gt.history_cap(layout, c["max_len"])
    N = len(items)
    start = max(0, N - cap)
    cands_ext = case["candidates"]
    cands = gt.dense_lookup(item_ids, cands_ext)
    res = {"known": [int(x > 0) for x in cands]}
    times = case["history"].get("times")
    times = None if times is None else np.array(times, dtype=np.int64)
    now = case["history"].get("now")

    s = gt.serving_seq(layout, items, acts if K > 0 else None, start, cands, times,
                       None if now is None else int(now))
    if not gt.layout_of(layout).cold_start and N == 0:
        res["score_status"] = "empty history"
    else:
        res["score_status"] = "ok"
    res["tokens"] = seqs_to_flat([s], K) if len(s) > 0 else None
    logits_all = None
    with torch.no_grad():
        if res["score_status"] == "ok":
            b = gt.collate([s], K, c["n_buckets"], dtype=DTYPE)
            allow = gt.attention_mask(b["n_hist"], b["valid"])
            res["mask"] = allow[0].numpy().astype(int).tolist()
            h = model(b, allow).reshape(-1, c["d_model"])
            if b["irow_tok"].numel() > 0:
                q = h[b["irow_tok"][0]]
                E = model.item_emb
                res["logit"] = [float(q @ E[x]) if x > 0 else None for x in cands]
                logits_all = model.item_logits(q.unsqueeze(0))[0]
            else:
                res["logit"] = [None] * len(cands)
            if gt.HAS_ACTION_HEAD[layout] and K > 0:
                z = model.action_pred(h[b["arow_tok"]], b["arow_cpl"], b["arow_tok"], b)
                act = []
                for r in range(len(cands)):
                    row = []
                    for k in range(K):
                        if c["action_binary"][k]:
                            row.append(float(torch.sigmoid(z[r, k])))
                        else:
                            lo, hi = c["action_min"][k], c["action_max"][k]
                            row.append(lo + float(z[r, k]) * (hi - lo))
                    act.append(row)
                res["action"] = act
            else:
                res["action"] = [[None] * K for _ in cands]
    # recommendations: top k over the catalogue, best first
    for key, excl in (("recommend", True), ("recommend_all", False)):
        r = {"k": 5}
        if not gt.layout_of(layout).item_head:
            r["status"] = "invalid argument"
        elif N == 0 or logits_all is None:
            r["status"] = "empty history"
        else:
            r["status"] = "ok"
            sc = logits_all.clone()
            if excl:
                seen = [x for x in gt.dense_lookup(item_ids, hist_ext) if x > 0]
                for x in seen:
                    sc[x - 1] = float("-inf")
            order = torch.argsort(sc, descending=True)[:5]
            r["items"] = [int(item_ids[i]) for i in order]
            r["scores"] = [float(sc[i]) for i in order]
            r["all_scores"] = sc.numpy()
        res[key] = r
    return res


def evaluate(d, ds, model, split, ks):
    """Leave-one-out metrics of a split (PROTOCOL.md): the target's rank among all V items
    (1 + items scoring strictly higher), with and without the user's earlier items excluded
    (never the target itself); HR@K, NDCG@K, MRR over users; RMSE of the target's action on
    the normalised scale; and the bias baseline. Also returns the smallest score gap around
    each target, to tell a genuine rank difference from a float32 near-tie."""
    layout = d["layout"]
    c = d["config"]
    K = c["n_actions"]
    W = gt.window_len(layout, c["max_len"])
    seqs, tgts, excl, users = [], [], [], []
    for u, (items, acts) in enumerate(ds.seqs):
        t = ds.target(u, split)
        if t is None:
            continue
        seqs.append(gt.window_seq(layout, items, acts if K else None, max(0, t + 1 - W), t + 1,
                                  last_only=True, times=ds.times[u]))
        tgts.append(int(items[t]))
        excl.append(sorted({int(x) for x in items[:t] if x > 0 and x != items[t]}))
        users.append(u)
    out = {"n_users": len(seqs)}
    hr = np.zeros(len(ks)); ndcg = np.zeros(len(ks)); hr_a = np.zeros(len(ks)); ndcg_a = np.zeros(len(ks))
    mrr = mrr_a = 0.0
    n_rank = 0
    min_gap = float("inf")
    with torch.no_grad():
        b = gt.collate(seqs, K, c["n_buckets"], dtype=DTYPE)
        h = model(b).reshape(-1, c["d_model"])
        scores = model.item_logits(h[b["irow_tok"]])
        row_seq = b["irow_tok"] // b["item"].shape[1]
        for r in range(scores.shape[0]):
            j = int(row_seq[r])
            tgt = int(b["irow_tgt"][r])
            if tgt <= 0:
                continue
            sc = scores[r].numpy()
            st = sc[tgt - 1]
            others = np.delete(sc, tgt - 1)
            min_gap = min(min_gap, float(np.min(np.abs(others - st))))
            rank_all = 1 + int(np.sum(sc > st))
            sc_ex = sc.copy()
            sc_ex[[x - 1 for x in excl[j]]] = -np.inf
            rank = 1 + int(np.sum(sc_ex > st))
            for i, k in enumerate(ks):
                if rank <= k:
                    hr[i] += 1
                    ndcg[i] += 1 / math.log2(rank + 1)
                if rank_all <= k:
                    hr_a[i] += 1
                    ndcg_a[i] += 1 / math.log2(rank_all + 1)
            mrr += 1 / rank
            mrr_a += 1 / rank_all
            n_rank += 1
        n = max(n_rank, 1)
        out.update(hr=list(hr / n), ndcg=list(ndcg / n), mrr=mrr / n, hr_all=list(hr_a / n),
                   ndcg_all=list(ndcg_a / n), mrr_all=mrr_a / n, min_gap=min_gap)
        if n_rank == 0:     # a layout without an item head ranks nothing (engine: NaN)
            out.update({key: [None] * len(ks) for key in ("hr", "ndcg", "hr_all", "ndcg_all")})
            out.update(mrr=None, mrr_all=None)
        rmse, nat = [], []
        if gt.HAS_ACTION_HEAD[layout] and b["arow_tok"].numel() > 0:
            pred = model.action_pred(h[b["arow_tok"]], b["arow_cpl"], b["arow_tok"], b)
            y = b["arow_tgt"]
            for k in range(K):
                m = ~torch.isnan(y[:, k])
                nat.append(int(m.sum()))
                rmse.append(float(torch.sqrt(((pred[m, k] - y[m, k]) ** 2).mean())) if nat[-1] else None)
        else:   # a layout without an action head predicts nothing for any column
            rmse, nat = [None] * K, [0] * K
        out["rmse"], out["n_action_targets"] = rmse, nat
        out["baseline_rmse"] = [bias_baseline(ds, split, k) if nat[k] else None for k in range(K)]
    return out


def bias_baseline(ds, split, k, item_shrink=25.0, user_shrink=10.0):
    """Global mean + item bias + user bias fitted on the training split (shrinkage 25 / 10,
    the engine's constants, after Koren 2008), clamped to [0, 1]; RMSE on the split."""
    tr = [(items[:ds.train_end(u)], acts[:ds.train_end(u), k]) for u, (items, acts) in enumerate(ds.seqs)]
    ys = np.concatenate([a for _, a in tr]).astype(np.float64)
    ys = ys[~np.isnan(ys)]
    mu = ys.mean() if len(ys) else 0.5
    isum, icnt = {}, {}
    for items, a in tr:
        for i, y in zip(items, a):
            if not np.isnan(y):
                isum[i] = isum.get(i, 0.0) + (float(y) - mu)
                icnt[i] = icnt.get(i, 0) + 1
    bi = {i: isum[i] / (item_shrink + icnt[i]) for i in isum}
    sq, n = 0.0, 0
    for u, (items, acts) in enumerate(ds.seqs):
        t = ds.target(u, split)
        if t is None:
            continue
        ti, ta = tr[u]
        r = [float(y) - mu - bi.get(i, 0.0) for i, y in zip(ti, ta) if not np.isnan(y)]
        bu = sum(r) / (user_shrink + len(r))
        y = acts[t, k]
        if np.isnan(y):
            continue
        p = min(1.0, max(0.0, mu + bu + bi.get(items[t], 0.0)))
        sq += (p - float(y)) ** 2
        n += 1
    return math.sqrt(sq / n) if n else None


def item_counts(ds, V):
    """How often each item (column = dense id - 1) occurs in the training split."""
    counts = np.zeros(V, dtype=np.float64)
    for u, (items, _) in enumerate(ds.seqs):
        for x in items[: ds.train_end(u)]:
            if 0 < int(x) <= V:
                counts[int(x) - 1] += 1
    return counts


def sampled_item_loss(model, batch, h, case, counts):
    """The sampled / in-batch item loss (LAYOUTS.md §2.6 2-3) with the engine's candidates
    (columns, -1 = padding) and log-Q corrections recomputed here: log(S Q(c)) with Q uniform
    or the training popularity (sampled), or for in-batch draws (S rows of R drawn, n with a
    target) log(S n / R p_c) with p_c the popularity. negatives_per "user": the candidates are
    one set of S per sequence of the batch, in order, and each row meets its sequence's set."""
    V = counts.shape[0]
    per_user = case.get("negatives_per", "batch") == "user"
    cand = torch.tensor(case["cand"], dtype=torch.long)
    B, T = h.shape[0], h.shape[1]
    S = len(case["cand"]) // B if per_user else len(case["cand"])
    tgt_all = batch["irow_tgt"]
    R = int(tgt_all.numel())
    n = int((tgt_all > 0).sum())
    if n == 0:
        return h.new_zeros(())      # a layout without item targets: no item loss
    p = torch.from_numpy(np.maximum(counts, 1.0) / counts.sum())
    safe = cand.clamp(min=0)
    if case["loss"] == "sampled":
        q = p[safe] if case["sampler"] == "popularity" else \
            torch.full((safe.numel(),), 1.0 / V, dtype=DTYPE)
        logq = torch.log(S * q)
    else:
        logq = torch.log(S * n / R * p[safe])
    hf = h.reshape(-1, h.shape[-1])
    keep = tgt_all > 0
    tgt = tgt_all[keep] - 1
    tok = batch["irow_tok"][keep]
    H = hf[tok]
    if case.get("similarity", "dot") == "cosine":
        H = torch.nn.functional.normalize(H, dim=-1)
    E = model.item_emb[1:]
    inv_t = 1.0 / case["temperature"]
    pos = (H * E[tgt]).sum(-1) * inv_t
    if per_user:
        seq = tok // T                      # the row's sequence in the padded batch
        rc = cand.view(B, S)[seq]           # [rows, S]
        rs = safe.view(B, S)[seq]
        neg = torch.einsum("rd,rsd->rs", H, E[rs]) * inv_t - logq.view(B, S)[seq]
        drop = (rc < 0) | (rc == tgt[:, None])
    else:
        neg = H @ E[safe].t() * inv_t - logq
        drop = (cand[None, :] < 0) | (cand[None, :] == tgt[:, None])
    neg = neg.masked_fill(drop, float("-inf"))
    z = torch.cat([pos[:, None], neg], dim=1)
    return (torch.logsumexp(z, dim=1) - pos).mean()


def sampled_reference(d, ds, init, batch, allow):
    """Step loss and gradients of every sampled-loss case of the dump."""
    c, tc = d["config"], d["train"]
    counts = item_counts(ds, c["n_items"])
    out = []
    for case in d.get("sampled", []):
        model = build_model(d, init)
        if case.get("similarity", "dot") == "cosine":
            # the trainer starts a cosine model from unit item rows (a zero row stays zero)
            with torch.no_grad():
                model.item_emb.copy_(torch.nn.functional.normalize(model.item_emb, dim=-1))
        model.zero_grad(set_to_none=False)
        h = model(batch, allow)
        lp = model.losses(batch, h, 0.0, tc["w_action"])
        item = sampled_item_loss(model, batch, h, case, counts)
        total = tc["w_item"] * item + lp["total"]
        total.backward()
        out.append({"item": float(item), "total": float(total), "grads": grads_of(model)})
    return out


def run_reference(dump_dir, tag):
    """Everything the parity test compares, computed by the reference."""
    torch.set_num_threads(1)
    d, blobs = load_dump(dump_dir, tag)
    layout = d["layout"]
    c, tc = d["config"], d["train"]
    K = c["n_actions"]
    ref = {}

    ds = build_dataset(d)
    ref["dataset"] = ds
    seqs, windows = train_batch(layout, ds, c["max_len"])
    ref["windows"] = windows
    ref["batch"] = seqs_to_flat(seqs, K)

    init = blob_to_tensors(d, blobs["init"])
    model = build_model(d, init)
    opt = gt.make_adamw(model, lr=tc["lr"], betas=(tc["beta1"], tc["beta2"]), eps=tc["eps"],
                        weight_decay=tc["weight_decay"])
    batch = gt.collate(seqs, K, c["n_buckets"], dtype=DTYPE)
    allow = gt.attention_mask(batch["n_hist"], batch["valid"])
    ref["sampled"] = sampled_reference(d, ds, init, batch, allow)
    losses = []
    for step in range(tc["steps"]):
        opt.zero_grad(set_to_none=False)
        h = model(batch, allow)
        lp = model.losses(batch, h, tc["w_item"], tc["w_action"])
        lp["total"].backward()
        if step == 0:
            ref["step0"] = {"item": float(lp["item"]),
                            "action": [float(x) for x in lp["action"]],
                            "total": float(lp["total"]),
                            "n_item_targets": int((batch["irow_tgt"] > 0).sum()),
                            "n_action_targets": [int((~torch.isnan(batch["arow_tgt"][:, k])).sum())
                                                 for k in range(K)] if gt.HAS_ACTION_HEAD[layout]
                            else []}
            ref["grads0"] = grads_of(model)
        losses.append(float(lp["total"]))
        opt.step()
    ref["losses"] = losses
    ref["final"] = {n: p.detach().clone() for n, p in model.named_parameters()}

    # evaluation and serving with the engine's trained parameters
    smodel = build_model(d, blob_to_tensors(d, blobs["final"]))
    smodel.eval()
    ref["eval"] = {split: evaluate(d, ds, smodel, split, d["eval"][split].get("ks", [1, 3, 10]))
                   for split in ("valid", "test")} if "eval" in d else None
    ref["serving"] = [serve(d, ds, smodel, case) for case in d["serving"]]
    return d, blobs, ref


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    tags = argv[2:] or [l + t for t in ("", "@hstu") for l in gt.LAYOUTS]
    for tag in tags:
        d, _, ref = run_reference(argv[1], tag)
        s0 = ref["step0"]
        print("%-5s step0 item %.6f action %s total %.6f; losses %s" % (
            tag, s0["item"], ["%.6f" % x for x in s0["action"]], s0["total"],
            " ".join("%.5f" % x for x in ref["losses"])))
        for case, r in zip(d["serving"], ref["serving"]):
            print("      %-6s score %s logit %s rec %s" % (
                case["name"], r.get("action"), r.get("logit"), r["recommend"].get("items")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
