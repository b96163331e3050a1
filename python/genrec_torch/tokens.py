"""Token sequences and their padded batches (LAYOUTS.md §2.1, §2.4).

A layout (layouts.py) turns interactions into a Seq: per token an item (dense id, 0 = none),
a learned position, an action slot (None, or the K normalised values with NaN = missing),
the times it is a key and a query at (read by the HSTU trunk's time bias) and which tokens
are history; plus the rows the heads read (item rows: token and next-item target; action
rows: token, coupler item and action target). collate() pads a list of Seq into [B, T]
tensors; attention_mask() is the engine's mask predicate made explicit.
"""

import numpy as np
import torch


def seq_time(times, n, now=None):
    """Time of interaction n of a history (the engine's gr_seq_time): times[n] inside it; at
    or past its end (the next interaction, as serving's candidates and retrieval query are)
    the request time now when given, else the last interaction's; 0 without times."""
    if times is None:
        return 0
    if n < len(times):
        return int(times[max(n, 0)])
    if now is not None:
        return int(now)
    return int(times[-1]) if len(times) > 0 else 0


class Seq:
    """One token sequence.

    item[t]: dense id (0 = no item); pos[t]: learned position; act[t]: None (no action slot) or
    a K-tuple of normalised values (NaN = missing; all-NaN = the null action); key_time[t] /
    query_time[t]: the times token t is a key and a query at (0 until set_time); n_hist: the
    first n_hist tokens are history, the rest candidates. item_rows: (token, target dense id,
    0 = read-out only); act_rows: (token, coupler dense id or 0, K-tuple target or None).
    times / now: the history's interaction times and the request time (serving) that
    set_time reads, as the engine's gr_seq_view.
    """

    def __init__(self, K, times=None, now=None):
        self.K = K
        self.times, self.now = times, now
        self.item, self.pos, self.act = [], [], []
        self.key_time, self.query_time = [], []
        self.item_rows, self.act_rows = [], []
        self.n_hist = None

    def add(self, item, pos, act=None):
        """Append a token (times 0); returns its index."""
        self.item.append(int(item))
        self.pos.append(int(pos))
        self.act.append(None if act is None else tuple(float(x) for x in act))
        self.key_time.append(0)
        self.query_time.append(0)
        return len(self.item) - 1

    def set_time(self, t, key_n, query_n):
        """Token t is a key at interaction key_n's time and queries at query_n's (the
        engine's gr_layout_set_time)."""
        self.key_time[t] = seq_time(self.times, key_n, self.now)
        self.query_time[t] = seq_time(self.times, query_n, self.now)

    def null(self):
        """The null action (every column missing)."""
        return tuple([float("nan")] * self.K)

    def __len__(self):
        return len(self.item)


def collate(seqs, K, n_buckets=None, dtype=torch.float32, device="cpu"):
    """Pad a list of Seq into [B, T] tensors plus flat row index tensors (row b*T + t)."""
    B = len(seqs)
    T = max(1, max(len(s) for s in seqs))
    item = np.zeros((B, T), dtype=np.int64)
    pos = np.zeros((B, T), dtype=np.int64)
    valid = np.zeros((B, T), dtype=bool)
    slot = np.zeros((B, T), dtype=bool)
    aval = np.full((B, T, max(K, 1)), np.nan, dtype=np.float64)
    tk = np.zeros((B, T), dtype=np.int64)
    tq = np.zeros((B, T), dtype=np.int64)
    n_hist = np.zeros(B, dtype=np.int64)
    irow_tok, irow_tgt, arow_tok, arow_cpl, arow_tgt = [], [], [], [], []
    for b, s in enumerate(seqs):
        L = len(s)
        item[b, :L] = s.item
        pos[b, :L] = s.pos
        valid[b, :L] = True
        tk[b, :L] = s.key_time
        tq[b, :L] = s.query_time
        n_hist[b] = s.n_hist
        for t, a in enumerate(s.act):
            if a is not None and K > 0:
                slot[b, t] = True
                aval[b, t, :K] = a
        for t, tgt in s.item_rows:
            irow_tok.append(b * T + t)
            irow_tgt.append(tgt)
        for t, cpl, tgt in s.act_rows:
            arow_tok.append(b * T + t)
            arow_cpl.append(cpl)
            arow_tgt.append([float("nan")] * K if tgt is None else list(tgt))
    aval = aval[:, :, :K]
    return {
        "item": torch.from_numpy(item).to(device),
        "pos": torch.from_numpy(pos).to(device),
        "valid": torch.from_numpy(valid).to(device),
        "tk": torch.from_numpy(tk).to(device),
        "tq": torch.from_numpy(tq).to(device),
        "slot": torch.from_numpy(slot).to(device),
        "aval": torch.from_numpy(aval).to(device=device, dtype=dtype),
        "n_hist": torch.from_numpy(n_hist).to(device),
        "irow_tok": torch.tensor(irow_tok, dtype=torch.long, device=device),
        "irow_tgt": torch.tensor(irow_tgt, dtype=torch.long, device=device),
        "arow_tok": torch.tensor(arow_tok, dtype=torch.long, device=device),
        "arow_cpl": torch.tensor(arow_cpl, dtype=torch.long, device=device),
        "arow_tgt": torch.tensor(arow_tgt, dtype=dtype, device=device).reshape(len(arow_tok), K),
    }


def attention_mask(n_hist, valid):
    """allowed[b, q, k] (LAYOUTS.md §2.4, block-causal packed scoring):
    (q < n_hist and k <= q) or (q >= n_hist and (k < n_hist or k == q)), never a padding key.
    With n_hist = length this is plain causal attention. Padding queries see themselves only
    (their outputs are never read), which keeps every softmax row finite."""
    B, T = valid.shape
    q = torch.arange(T, device=valid.device).view(1, T, 1)
    k = torch.arange(T, device=valid.device).view(1, 1, T)
    nh = n_hist.view(B, 1, 1)
    allow = ((q < nh) & (k <= q)) | ((q >= nh) & ((k < nh) | (k == q)))
    allow = allow & valid.view(B, 1, T)
    return allow | (q == k)


def strict_mask(n_hist, valid):
    """strict[b, q, k] (LAYOUTS.md §2.4, strict-causal): (q < n_hist and k < q) or
    (q >= n_hist and k < n_hist), never a padding key. Rows may be empty (the first token):
    attention over them gives 0."""
    B, T = valid.shape
    q = torch.arange(T, device=valid.device).view(1, T, 1)
    k = torch.arange(T, device=valid.device).view(1, 1, T)
    nh = n_hist.view(B, 1, 1)
    strict = ((q < nh) & (k < q)) | ((q >= nh) & (k < nh))
    return strict & valid.view(B, 1, T)


def buckets(aval, n_buckets):
    """Input bucket of each normalised action value: clamp(floor(a * nb), 0, nb-1); NaN -> nb."""
    b = torch.floor(aval * n_buckets).clamp(0, n_buckets - 1)
    b = torch.where(torch.isnan(aval), torch.full_like(b, n_buckets), b)
    return b.long()
