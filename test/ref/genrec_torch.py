"""genrec_torch — the genrec model written in plain PyTorch, from the spec (docs LAYOUTS.md §2,
§4, §6 and PROTOCOL.md), not from the C engine.

Shared by the float64 parity reference (test/ref/genrec_ref.py) and the float32 training
benchmark (bench/torch_train.py). It holds:

* the leave-one-out dataset (stable time sort, dense item ids 1..V, actions normalised to
  [0, 1] with the training split's min/max and clamped),
* the token builders of the four layouts (item, int, lac, pc) for training windows,
  evaluation windows and serving (history + candidates),
* padded [B, T] collation with an explicit boolean attention mask (block-causal when a
  sequence has candidates, plain causal otherwise; padding keys never visible),
* the model: x = s*E[item] + P[pos] + sum_k (A_k[bucket(a_k)] + a_k*W_k) for tokens with an
  action slot, a GPT-2 pre-LN trunk, the tied item head and the action head MLP (over h, or
  over [h ; E[item]] for the PC coupler), and the losses.

Parameter names equal the engine's tensor names (item_emb, pos_emb, action_emb,
action_linear, blocks.L.ln1.weight, blocks.L.attn.qkv.weight, ..., ln_f.bias,
action_head.fc.weight, ...), so state dicts and engine parameter blobs map one to one.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYOUTS = ("item", "int", "lac", "pc")
USES_ACTIONS = {"item": False, "int": True, "lac": True, "pc": True}
COUPLER = {"item": False, "int": False, "lac": False, "pc": True}
CANDIDATE_TOKENS = {"item": False, "int": True, "lac": True, "pc": False}


def window_len(layout, max_len):
    """Interactions spanned by one training window (inputs plus the last target)."""
    # item/pc: max_len input tokens, each predicting the next interaction, so max_len + 1
    # interactions; int/lac: the last token is the evaluated step itself.
    return max_len + 1 if layout in ("item", "pc") else max_len


def history_cap(layout, max_len):
    """Interactions of history kept at serving time (candidates must get a trained position)."""
    return max_len if layout in ("item", "pc") else max_len - 1


def n_positions(layout, max_len):
    """Learned positions: the longest training window's tokens."""
    return 2 * max_len - 1 if layout == "int" else max_len


# ---------------------------------------------------------------------------------------------
# data


class Dataset:
    """Interactions in leave-one-out form (PROTOCOL.md).

    users: ascending external user ids; item_ids: ascending external item ids of dense ids
    1..V; seqs[u] = (items int list of dense ids, actions float32 array [n, K] with NaN for
    missing); action_min/max: the training split's range per column.
    """

    def __init__(self, user, item, time, actions=None, binary=None, item_ids=None,
                 action_range=None):
        user = np.asarray(user, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        time = np.zeros_like(user) if time is None else np.asarray(time, dtype=np.int64)
        n = len(user)
        K = 0 if actions is None else np.asarray(actions).reshape(n, -1).shape[1]
        acts = (np.zeros((n, 0)) if actions is None
                else np.asarray(actions, dtype=np.float64).reshape(n, K))
        self.n_actions = K
        self.binary = [bool(b) for b in (binary if binary is not None else [0] * K)]
        # stable sort by (user, time): equal times keep input order
        order = np.lexsort((np.arange(n), time, user))
        user, item, time, acts = user[order], item[order], time[order], acts[order]
        self.item_ids = (np.unique(item) if item_ids is None
                         else np.asarray(item_ids, dtype=np.int64))
        self.n_items = len(self.item_ids)
        pos = np.searchsorted(self.item_ids, item)
        pos_c = np.minimum(pos, self.n_items - 1)
        dense = np.where(self.item_ids[pos_c] == item, pos_c + 1, 0)
        bounds = np.flatnonzero(np.diff(user)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [n]])
        self.users = user[starts]
        self.times = [time[s:e] for s, e in zip(starts, ends)]
        raw = [acts[s:e] for s, e in zip(starts, ends)]
        items = [dense[s:e].astype(np.int64) for s, e in zip(starts, ends)]
        # ranges over the training split only
        self.action_min, self.action_max = [], []
        for k in range(K):
            if action_range is not None:
                lo, hi = action_range[0][k], action_range[1][k]
            else:
                vals = np.concatenate([r[: self.train_end_of(len(r)), k] for r in raw])
                vals = vals[~np.isnan(vals)]
                if self.binary[k] or len(vals) == 0:
                    lo, hi = 0.0, 1.0
                else:
                    lo, hi = float(vals.min()), float(vals.max())
                if not hi > lo:
                    hi = lo + 1.0
            self.action_min.append(lo)
            self.action_max.append(hi)
        self.seqs = []
        for it, r in zip(items, raw):
            a = np.empty((len(it), K), dtype=np.float32)
            for k in range(K):
                a[:, k] = self.normalise(k, r[:, k])
            self.seqs.append((it, a))

    def normalise(self, k, raw):
        """Raw values of column k on the [0, 1] scale (clamped), NaN kept, as float32."""
        raw = np.asarray(raw, dtype=np.float64)
        v = (raw - self.action_min[k]) / (self.action_max[k] - self.action_min[k])
        return np.clip(v, 0.0, 1.0).astype(np.float32)

    @staticmethod
    def train_end_of(m):
        return m - 2 if m >= 3 else m

    def train_end(self, u):
        return self.train_end_of(len(self.seqs[u][0]))

    def target(self, u, split):
        """Index of user u's target: 'valid' M-2, 'test' M-1; None for users with M < 3."""
        m = len(self.seqs[u][0])
        if m < 3:
            return None
        return m - 2 if split == "valid" else m - 1


def dense_lookup(item_ids, external):
    """Dense ids of external ids (0 = unknown)."""
    external = np.asarray(external, dtype=np.int64)
    if len(item_ids) == 0 or external.size == 0:
        return np.zeros(external.shape, dtype=np.int64)
    pos = np.minimum(np.searchsorted(item_ids, external), len(item_ids) - 1)
    return np.where(item_ids[pos] == external, pos + 1, 0).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# token layouts (LAYOUTS.md §4): one packed sequence per window or serving request


class Seq:
    """One token sequence.

    item[t]: dense id (0 = no item); pos[t]: learned position; act[t]: None (no action slot) or
    a K-tuple of normalised values (NaN = missing; all-NaN = the null action); n_hist: the
    first n_hist tokens are history, the rest candidates. item_rows: (token, target dense id,
    0 = read-out only); act_rows: (token, coupler dense id or 0, K-tuple target or None).
    """

    def __init__(self, K):
        self.K = K
        self.item, self.pos, self.act = [], [], []
        self.item_rows, self.act_rows = [], []
        self.n_hist = None

    def add(self, item, pos, act=None):
        self.item.append(int(item))
        self.pos.append(int(pos))
        self.act.append(None if act is None else tuple(float(x) for x in act))
        return len(self.item) - 1

    def null(self):
        return tuple([float("nan")] * self.K)

    def __len__(self):
        return len(self.item)


def _act(actions, n):
    return tuple(float(x) for x in actions[n])


def window_seq(layout, items, actions, start, end, last_only=False):
    """Tokens and targets of interactions [start, end) of one history (training when
    last_only is False; evaluation of interaction end-1 when True)."""
    K = 0 if actions is None else actions.shape[1]
    s = Seq(K)
    if layout == "item":
        # token n = E[i_n] + P[n - start]; h_n -> i_{n+1}
        for n in range(start, end - 1):
            t = s.add(items[n], n - start)
            if not last_only or n == end - 2:
                s.item_rows.append((t, int(items[n + 1])))
    elif layout == "pc":
        # token n = E[i_n] + phi(a_n); h_n -> i_{n+1}; g([h_n ; E[i_{n+1}]]) -> a_{n+1}
        for n in range(start, end - 1):
            t = s.add(items[n], n - start, _act(actions, n))
            if not last_only or n == end - 2:
                s.item_rows.append((t, int(items[n + 1])))
                s.act_rows.append((t, int(items[n + 1]), _act(actions, n + 1)))
    elif layout == "lac":
        # token n = E[i_n] + phi(a_{n-1}) (null for the very first interaction);
        # h_n -> a_n and i_{n+1}
        for n in range(start, end):
            lag = _act(actions, n - 1) if n > 0 else s.null()
            t = s.add(items[n], n - start, lag)
            if not last_only or n == end - 1:
                s.act_rows.append((t, 0, _act(actions, n)))
            if n + 1 < end and (not last_only or n == end - 2):
                s.item_rows.append((t, int(items[n + 1])))
    elif layout == "int":
        # item token E[i_n] at 2(n-start) -> a_n; action token phi(a_n) at 2(n-start)+1
        # -> i_{n+1}; no action token after the window's last interaction
        for n in range(start, end):
            p = 2 * (n - start)
            t = s.add(items[n], p)
            if not last_only or n == end - 1:
                s.act_rows.append((t, 0, _act(actions, n)))
            if n + 1 < end:
                t = s.add(0, p + 1, _act(actions, n))
                if not last_only or n == end - 2:
                    s.item_rows.append((t, int(items[n + 1])))
    else:
        raise ValueError(layout)
    s.n_hist = len(s)
    return s


def serving_seq(layout, items, actions, start, cands):
    """Serving tokens (LAYOUTS.md §6): history interactions [start, N) of one user, then
    (int, lac) one candidate token per candidate at the next position. The item row is the
    retrieval query; action rows read each candidate (pc: the last history token coupled
    with the candidate's embedding)."""
    K = 0 if actions is None else actions.shape[1]
    N = len(items)
    s = Seq(K)
    query = None
    for n in range(start, N):
        p = n - start
        if layout == "item":
            query = s.add(items[n], p)
        elif layout == "pc":
            query = s.add(items[n], p, _act(actions, n))
        elif layout == "lac":
            query = s.add(items[n], p, _act(actions, n - 1) if n > 0 else s.null())
        else:
            s.add(items[n], 2 * p)
            query = s.add(0, 2 * p + 1, _act(actions, n))
    if query is not None:
        s.item_rows.append((query, 0))
    s.n_hist = len(s)
    for c in cands:
        if layout == "lac":
            lag = _act(actions, N - 1) if N > 0 else s.null()
            t = s.add(c, s.n_hist, lag)
            s.act_rows.append((t, 0, None))
        elif layout == "int":
            t = s.add(c, s.n_hist)
            s.act_rows.append((t, 0, None))
        elif layout == "pc" and query is not None:
            s.act_rows.append((query, int(c), None))
    return s


# ---------------------------------------------------------------------------------------------
# collation


def collate(seqs, K, n_buckets, dtype=torch.float32, device="cpu"):
    """Pad a list of Seq into [B, T] tensors plus flat row index tensors."""
    B = len(seqs)
    T = max(1, max(len(s) for s in seqs))
    item = np.zeros((B, T), dtype=np.int64)
    pos = np.zeros((B, T), dtype=np.int64)
    valid = np.zeros((B, T), dtype=bool)
    slot = np.zeros((B, T), dtype=bool)
    aval = np.full((B, T, max(K, 1)), np.nan, dtype=np.float64)
    n_hist = np.zeros(B, dtype=np.int64)
    irow_tok, irow_tgt, arow_tok, arow_cpl, arow_tgt = [], [], [], [], []
    for b, s in enumerate(seqs):
        L = len(s)
        item[b, :L] = s.item
        pos[b, :L] = s.pos
        valid[b, :L] = True
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


def buckets(aval, n_buckets):
    """Input bucket of each normalised action value: clamp(floor(a * nb), 0, nb-1); NaN -> nb."""
    b = torch.floor(aval * n_buckets).clamp(0, n_buckets - 1)
    b = torch.where(torch.isnan(aval), torch.full_like(b, n_buckets), b)
    return b.long()


# ---------------------------------------------------------------------------------------------
# the model


class Attention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d, 3 * d)      # rows: q | k | v, heads contiguous inside each
        self.proj = nn.Linear(d, d)

    def forward(self, x, allow):
        B, T, d = x.shape
        H = self.n_head
        dh = d // H
        q, k, v = self.qkv(x).split(d, dim=-1)
        q = q.view(B, T, H, dh).transpose(1, 2)
        k = k.view(B, T, H, dh).transpose(1, 2)
        v = v.view(B, T, H, dh).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))
        s = s.masked_fill(~allow.unsqueeze(1), float("-inf"))
        p = torch.softmax(s, dim=-1)
        y = torch.matmul(p, v).transpose(1, 2).reshape(B, T, d)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    """GPT-2 pre-LN block: x + drop(attn(LN1 x)); then + drop(mlp(LN2 x))."""

    def __init__(self, d, n_head, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, n_head)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = MLP(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, allow):
        x = x + self.drop(self.attn(self.ln1(x), allow))
        return x + self.drop(self.mlp(self.ln2(x)))


class ActionHead(nn.Module):
    def __init__(self, d_in, hidden, K):
        super().__init__()
        self.fc = nn.Linear(d_in, hidden)
        self.out = nn.Linear(hidden, K)

    def forward(self, x):
        return self.out(F.gelu(self.fc(x), approximate="tanh"))


class GenRec(nn.Module):
    def __init__(self, layout, n_items, d_model=64, n_layer=2, n_head=2, max_len=50,
                 n_actions=0, n_buckets=8, emb_scale=1.0, head_hidden=64, dropout=0.0,
                 action_binary=None):
        super().__init__()
        self.layout = layout
        self.n_items, self.d, self.K = n_items, d_model, n_actions
        self.n_buckets, self.emb_scale = n_buckets, emb_scale
        self.max_len = max_len
        self.uses_actions = USES_ACTIONS[layout]
        self.binary = list(action_binary or [0] * n_actions)
        P = n_positions(layout, max_len)
        self.item_emb = nn.Parameter(torch.zeros(n_items + 1, d_model))
        self.pos_emb = nn.Parameter(torch.zeros(P, d_model))
        if self.uses_actions:
            self.action_emb = nn.Parameter(torch.zeros(n_actions, n_buckets + 1, d_model))
            self.action_linear = nn.Parameter(torch.zeros(n_actions, d_model))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(d_model, n_head, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        if self.uses_actions:
            d_in = 2 * d_model if COUPLER[layout] else d_model
            self.action_head = ActionHead(d_in, head_hidden, n_actions)

    def init_gpt2(self, generator=None):
        """GPT-2 style init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), positions
        N(0, 0.01), LayerNorm 1/0, biases 0, padding row 0."""
        L = len(self.blocks)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if ".ln" in name or name.startswith("ln_f"):
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif name.endswith(".bias"):
                    p.zero_()
                elif name == "pos_emb":
                    p.normal_(0.0, 0.01, generator=generator)
                elif name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * L), generator=generator)
                else:
                    p.normal_(0.0, 0.02, generator=generator)
            self.item_emb[0].zero_()

    def embed(self, batch):
        item = batch["item"]
        x = self.emb_scale * self.item_emb[item] * (item > 0).unsqueeze(-1).to(self.item_emb.dtype)
        x = x + self.pos_emb[batch["pos"]]
        if self.uses_actions:
            slot = batch["slot"].unsqueeze(-1).to(x.dtype)
            aval = batch["aval"]
            bk = buckets(aval, self.n_buckets)
            lin = torch.nan_to_num(aval, nan=0.0)
            for k in range(self.K):
                phi = self.action_emb[k][bk[..., k]] + lin[..., k:k + 1] * self.action_linear[k]
                x = x + slot * phi
        return self.drop(x)

    def forward(self, batch, allow=None):
        """Final hidden states h [B, T, d] (after LN_f)."""
        if allow is None:
            allow = attention_mask(batch["n_hist"], batch["valid"])
        x = self.embed(batch)
        for blk in self.blocks:
            x = blk(x, allow)
        return self.ln_f(x)

    # heads

    def item_logits(self, h_rows):
        """<h, E[v]> for v = 1..V."""
        return h_rows @ self.item_emb[1:].t()

    def action_pred(self, h_rows, coupler=None):
        x = h_rows
        if COUPLER[self.layout]:
            e = self.item_emb[coupler] * (coupler > 0).unsqueeze(-1).to(h_rows.dtype)
            x = torch.cat([h_rows, e], dim=-1)
        return self.action_head(x)

    def losses(self, batch, h, w_item=1.0, w_action=1.0):
        """Loss parts: mean CE over item rows with a target, per-column mean action loss over
        present targets, and the weighted total."""
        hf = h.reshape(-1, h.shape[-1])
        out = {"item": h.new_zeros(()), "action": [], "total": None}
        tgt = batch["irow_tgt"]
        keep = tgt > 0
        if int(keep.sum()) > 0:
            logits = self.item_logits(hf[batch["irow_tok"][keep]])
            out["item"] = F.cross_entropy(logits, tgt[keep] - 1)
        total = w_item * out["item"]
        if self.uses_actions and batch["arow_tok"].numel() > 0:
            pred = self.action_pred(hf[batch["arow_tok"]], batch["arow_cpl"])
            y = batch["arow_tgt"]
            for k in range(self.K):
                m = ~torch.isnan(y[:, k])
                if int(m.sum()) == 0:
                    lk = h.new_zeros(())
                elif self.binary[k]:
                    lk = F.binary_cross_entropy_with_logits(pred[m, k], y[m, k])
                else:
                    lk = ((pred[m, k] - y[m, k]) ** 2).mean()
                out["action"].append(lk)
                total = total + w_action * lk
        out["total"] = total
        return out


def make_adamw(model, lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps,
                             weight_decay=weight_decay)
