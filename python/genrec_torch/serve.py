"""Scoring and top-k retrieval for one user with external ids and raw action values, as the
engine serves them (gr_serve.c, LAYOUTS.md §6).

The most recent history_cap(max_len) interactions of the history are used (LAC also reads the
action just before them), items the model does not know become dense id 0, raw actions are
normalised with the model's ranges and clamped to [0, 1] (NaN = missing). Candidates are
scored in one pass (block-causal packing, or the PC coupler on the last history token); the
score of a candidate is its retrieval logit <h_query, E[c]> (NaN for unknown items) and, for
the action layouts, each action column's prediction on the raw scale (a probability for a
binary column). Times (the history's, in the model's time unit, and the request time now)
matter only to the HSTU trunk's time bias, as in the engine's gr_history: without times
every token's time is 0; without now the next interaction is at the last history time.
"""

import numpy as np
import torch

from .data import dense_lookup
from .tokens import attention_mask, collate


class EmptyHistory(ValueError):
    """A layout that needs a history got none (the engine's P0002)."""


def _item_ids(model):
    if model.item_ids is None:
        return np.arange(1, model.n_items + 1, dtype=np.int64)
    return np.asarray(model.item_ids, dtype=np.int64)


def normalise(model, raw):
    """Raw action values [N, K] on the model's [0, 1] scale (clamped), NaN kept."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, model.K)
    lo = np.asarray(model.action_min, dtype=np.float64)
    hi = np.asarray(model.action_max, dtype=np.float64)
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _times(times, N):
    """The history's times as int64 [N], or None."""
    if times is None:
        return None
    times = np.asarray(times, dtype=np.int64).reshape(-1)
    if len(times) != N:
        raise ValueError("history has %d interactions and %d times" % (N, len(times)))
    return times


def _history(model, items, actions):
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    N = len(items)
    raw = None if actions is None else np.asarray(actions, dtype=np.float64)
    if raw is None or raw.size == 0:
        raw = np.full((N, model.K), np.nan)
    else:
        raw = raw.reshape(N, -1)
        if raw.shape[1] != model.K:
            raise ValueError("history has %d action columns, the model %d"
                             % (raw.shape[1], model.K))
    dense = dense_lookup(_item_ids(model), items)
    start = max(0, N - model.spec.history_cap(model.max_len))
    acts = normalise(model, raw) if model.K > 0 else np.zeros((N, 0), np.float32)
    return items, dense, acts, start


def _forward(model, seq):
    dtype = model.item_emb.dtype
    b = collate([seq], model.K, model.n_buckets, dtype=dtype, device=model.item_emb.device)
    h = model(b, attention_mask(b["n_hist"], b["valid"])).reshape(-1, model.d)
    return b, h


@torch.no_grad()
def score(model, items, candidates, actions=None, times=None, now=None):
    """Score candidates (external ids) after a history (external ids, oldest first; actions
    raw, [N] or [N, K], NaN = missing, None = all missing; times [N] or None; now the request
    time or None). Returns a dict of NumPy arrays:
    known [C] bool, logit [C] (NaN for unknown items), action [C, K] raw scale (NaN without
    an action head)."""
    was_training = model.training
    model.eval()
    try:
        items, dense, acts, start = _history(model, items, actions)
        times = _times(times, len(items))
        cands_ext = np.asarray(candidates, dtype=np.int64).reshape(-1)
        cands = dense_lookup(_item_ids(model), cands_ext)
        C = len(cands)
        out = {"known": cands > 0, "logit": np.full(C, np.nan),
               "action": np.full((C, model.K), np.nan)}
        if len(items) == 0 and not model.spec.cold_start:
            raise EmptyHistory("the %s layout needs a non-empty history" % model.layout)
        if C == 0:
            return out
        seq = model.spec.serving(dense, acts, start, cands, times, now)
        b, h = _forward(model, seq)
        if b["irow_tok"].numel() > 0:
            q = h[b["irow_tok"][0]]
            logit = (model.item_emb[torch.from_numpy(cands)] @ q).double().cpu().numpy()
            out["logit"] = np.where(cands > 0, logit, np.nan)
        if model.has_action_head and model.K > 0:
            z = model.action_pred(h[b["arow_tok"]], b["arow_cpl"],
                                  b["arow_tok"], b).double().cpu().numpy()
            for k in range(model.K):
                if model.binary[k]:
                    out["action"][:, k] = 1.0 / (1.0 + np.exp(-z[:, k]))
                else:
                    lo, hi = model.action_min[k], model.action_max[k]
                    out["action"][:, k] = lo + z[:, k] * (hi - lo)
        return out
    finally:
        model.train(was_training)


@torch.no_grad()
def recommend(model, items, k=10, actions=None, exclude_seen=True, times=None, now=None):
    """Top k items of the catalogue by retrieval logit after a history, best first (items of
    the history excluded unless exclude_seen is False; times and now as for score). Returns
    (item ids, logits)."""
    ids = _item_ids(model)
    if not 1 <= k <= model.n_items:
        raise ValueError("k must be in 1..%d (the catalogue), got %d" % (model.n_items, k))
    if not model.spec.item_head:
        raise ValueError("layout %s predicts no next item, so it cannot retrieve" % model.layout)
    items, dense, acts, start = _history(model, items, actions)
    times = _times(times, len(items))
    if len(items) == 0:
        raise EmptyHistory("retrieval needs a non-empty history")
    was_training = model.training
    model.eval()
    try:
        seq = model.spec.serving(dense, acts, start, [], times, now)
        b, h = _forward(model, seq)
        logits = model.item_logits(h[b["irow_tok"][0]].unsqueeze(0))[0].double().cpu()
    finally:
        model.train(was_training)
    if exclude_seen:
        seen = np.unique(dense[dense > 0]) - 1
        logits[torch.from_numpy(seen)] = float("-inf")
    n = min(k, int(torch.isfinite(logits).sum()))
    top = torch.topk(logits, n)
    return ids[top.indices.numpy()], top.values.numpy()
