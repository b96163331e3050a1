"""The genrec model in plain PyTorch, written from the spec (LAYOUTS.md §2, §4, §6), not from
the C engine.

x = s*E[item] + P[pos] + sum_k (A_k[bucket(a_k)] + a_k*W_k) for tokens with an action slot,
a trunk of blocks, LN_f, the tied item head <h, E[v]> and the action head MLP over what the
layout feeds it (h, or [h ; E[item]] for the PC coupler, or [h ; p] for AttnLFA), and the
losses. The action-stream layouts keep phi(a) out of the input: AttnMVP's blocks mix
phi(a) W_va^l into their values under the strict-causal mask (attn.va.weight), AttnLFA pools
it after LN_f (action_pool.*).

The action head's bias path (configuration key action_bias; the engine's gr_model.h) adds
to the MLP output b_item[item] (action_head.item_bias.weight [V+1, K], where the row names
the item acted on: the token's item, or the PC coupler) and W_u u (action_head.user_offset,
[K, 2K], where tokens carry actions), u = (S / (n + 10), n / (n + 10)) per column, S and n
the sum and count of the present action values at the keys the row's token attends to
(the causal mask; the strict one for the action streams, whose tokens carry their own
label).

Parameter names equal the engine's tensor names (item_emb, pos_emb, action_emb,
action_linear, blocks.L.ln1.weight, blocks.L.attn.qkv.weight, ..., ln_f.bias,
action_head.fc.weight, ...), so state dicts and safetensors files map one to one.

Trunks are a registry like layouts: a block class registered with @register_trunk(name)
takes (d_model, n_head, dropout, action_values, n_positions) and maps (x, ctx) -> x, where
ctx carries the attention mask and the batch (for blocks that read more, e.g. times or
action values). Two trunks: "gpt2" (Block: pre-LN GPT-2) and "hstu" (HstuBlock: the
engine's gr_arch_hstu.c, DLRM-v3 HSTU with pointwise SiLU attention and relative position
and time biases).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layouts import LAYOUT, layout_of
from .tokens import attention_mask, buckets, strict_mask

TRUNKS = {}


def register_trunk(name):
    """Add a block class to the trunk registry under name."""
    def add(cls):
        TRUNKS[name] = cls
        return cls
    return add


class TrunkContext:
    """What every block of one forward pass may read."""

    def __init__(self, allow, batch, strict=None, astream=None):
        self.allow = allow      # [B, T, T] boolean: query may attend to key
        self.batch = batch
        self.strict = strict    # [B, T, T] the strict-causal predicate (k < q)
        self.astream = astream  # [B, T, d] the action stream phi(a) (AttnMVP), or None


def masked_attention(q, k, v, allow, H, strict=None, v2=None):
    """Softmax attention of [B, T, d] q, k, v with H heads over the keys allow permits;
    a query that sees no key gets 0. With v2, sum_allow P v + sum_strict P v2."""
    B, T, d = q.shape
    dh = d // H

    def heads(t):
        return t.reshape(B, -1, H, dh).transpose(1, 2)

    s = torch.matmul(heads(q), heads(k).transpose(-2, -1)) * (1.0 / math.sqrt(dh))
    a = allow.unsqueeze(1)
    any_key = a.any(-1, keepdim=True)
    s = s.masked_fill(~a, float("-inf"))
    s = torch.where(any_key, s, torch.zeros_like(s))
    p = torch.softmax(s, dim=-1) * any_key.to(s.dtype)
    y = torch.matmul(p, heads(v))
    if v2 is not None:
        y = y + torch.matmul(p * strict.unsqueeze(1).to(p.dtype), heads(v2))
    return y.transpose(1, 2).reshape(B, T, d)


# HSTU's time buckets (the engine's gr_hstu.h): bucket(gap) = the number of edges at or below
# |gap|, edges ceil(e^{0.301 b}) for b = 1..128, i.e. floor(ln(max(gap, 1)) / 0.301) clamped
# to [0, 128] made exact in integers (the parity test compares this table with the engine's).
TIME_EDGES = tuple(math.ceil(math.exp(0.301 * b)) for b in range(1, 129))
TIME_BUCKETS = len(TIME_EDGES) + 1


def time_bucket(gap):
    """The time bucket of each int64 gap (either sign), a long tensor of gap's shape."""
    edges = torch.tensor(TIME_EDGES, dtype=torch.long, device=gap.device)
    return torch.searchsorted(edges, gap.abs().contiguous(), right=True)


class Attention(nn.Module):
    """Multi-head softmax attention with an explicit boolean mask; with action_values
    (AttnMVP) a per-layer projection va mixes the action stream into the values at the
    strict keys."""

    def __init__(self, d, n_head, action_values=False):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d, 3 * d)      # rows: q | k | v, heads contiguous inside each
        self.proj = nn.Linear(d, d)
        if action_values:
            self.va = nn.Linear(d, d, bias=False)

    def forward(self, x, allow, ctx=None):
        d = x.shape[-1]
        q, k, v = self.qkv(x).split(d, dim=-1)
        v2 = self.va(ctx.astream) if hasattr(self, "va") else None
        y = masked_attention(q, k, v, allow, self.n_head, ctx.strict if ctx else None, v2)
        return self.proj(y)


class ActionPool(nn.Module):
    """AttnLFA's pooling after LN_f: p = W_o strict-attn(q = W_q h, k = W_k h, v = W_v A) + b_o
    (no q/k/v biases, as in the engine's gr_pool.c)."""

    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.qk = nn.Linear(d, 2 * d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.proj = nn.Linear(d, d)

    def forward(self, h, astream, strict):
        q, k = self.qk(h).split(h.shape[-1], dim=-1)
        return self.proj(masked_attention(q, k, self.v(astream), strict, self.n_head))


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


@register_trunk("gpt2")
class Block(nn.Module):
    """GPT-2 pre-LN block: x + drop(attn(LN1 x)); then + drop(mlp(LN2 x))."""

    def __init__(self, d, n_head, dropout, action_values=False, n_positions=None):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, n_head, action_values)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = MLP(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, ctx):
        x = x + self.drop(self.attn(self.ln1(x), ctx.allow, ctx))
        return x + self.drop(self.mlp(self.ln2(x)))


class HstuAttention(nn.Module):
    """HSTU's attention part on A = LN(x) [B, T, d] (gr_arch_hstu.c): Q|K|V = A Wqkv^T + b,
    U = A Wu^T + bu; per head S = alpha q.k + rab_pos[clamp(pos_q - pos_k, 0, n_pos - 1)]
    + rab_time[bucket(tq_q - tk_k)], alpha = 1 / sqrt(d_head), and the pointwise weights
    W = SiLU(S) / n_pos over the keys allow permits (no softmax); O = W V (+ W V_A at the
    strict keys with action values, V_A = phi(a) W_va^T: AttnMVP); then
    proj(SiLU(U) * LN_out(O)). The biases are shared by the heads."""

    def __init__(self, d, n_head, n_positions, action_values=False):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d, 3 * d)      # rows: q | k | v, heads contiguous inside each
        self.u = nn.Linear(d, d)
        if action_values:
            self.va = nn.Linear(d, d, bias=False)
        self.rab_pos = nn.Parameter(torch.zeros(n_positions))
        self.rab_time = nn.Parameter(torch.zeros(TIME_BUCKETS))
        self.ln_out = nn.LayerNorm(d, eps=1e-5)
        self.proj = nn.Linear(d, d)

    def forward(self, a, ctx):
        B, T, d = a.shape
        H = self.n_head
        dh = d // H
        P = self.rab_pos.shape[0]

        def heads(t):
            return t.reshape(B, T, H, dh).transpose(1, 2)      # [B, H, T, dh]

        q, k, v = self.qkv(a).split(d, dim=-1)
        pos, tq, tk = ctx.batch["pos"], ctx.batch["tq"], ctx.batch["tk"]
        gap_pos = (pos[:, :, None] - pos[:, None, :]).clamp(0, P - 1)     # [B, T(q), T(k)]
        bias = self.rab_pos[gap_pos] + self.rab_time[time_bucket(tq[:, :, None] - tk[:, None, :])]
        s = torch.matmul(heads(q), heads(k).transpose(-2, -1)) / math.sqrt(dh) + bias[:, None]
        w = F.silu(s) / P * ctx.allow[:, None].to(s.dtype)
        o = torch.matmul(w, heads(v))
        if hasattr(self, "va"):
            o = o + torch.matmul(w * ctx.strict[:, None].to(s.dtype), heads(self.va(ctx.astream)))
        o = o.transpose(1, 2).reshape(B, T, d)
        return self.proj(F.silu(self.u(a)) * self.ln_out(o))


@register_trunk("hstu")
class HstuBlock(nn.Module):
    """HSTU block (DLRM-v3 variant, no MLP): x + drop(attn(LN x)), attn = HstuAttention."""

    # the engine's order of a layer's tensors in a file (HSTU_LAYER_TENSORS of
    # gr_arch_hstu.c); PyTorch lists attn's own tables before its sub-modules' parameters
    FILE_ORDER = ("ln.weight", "ln.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.u.weight",
                  "attn.u.bias", "attn.va.weight", "attn.rab_pos", "attn.rab_time",
                  "attn.ln_out.weight", "attn.ln_out.bias", "attn.proj.weight",
                  "attn.proj.bias")

    def __init__(self, d, n_head, dropout, action_values=False, n_positions=1):
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.attn = HstuAttention(d, n_head, n_positions, action_values)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, ctx):
        return x + self.drop(self.attn(self.ln(x), ctx))


USER_OFFSET_SHRINK = 10.0


class ActionHead(nn.Module):
    """MLP over the head's input, plus the bias path's item bias and user offset when the
    model has them (item_bias: Embedding(V+1, K); user_offset: Linear(4K, K) without bias)."""

    def __init__(self, d_in, hidden, K, n_items=None, user_offset=False):
        super().__init__()
        self.fc = nn.Linear(d_in, hidden)
        self.out = nn.Linear(hidden, K)
        if n_items is not None:
            self.item_bias = nn.Embedding(n_items + 1, K)   # declared after out: file order
        if user_offset:
            self.user_offset = nn.Linear(4 * K, K, bias=False)

    def forward(self, x, item=None, u=None):
        y = self.out(F.gelu(self.fc(x), approximate="tanh"))
        if hasattr(self, "item_bias") and item is not None:
            w = self.item_bias.weight
            known = ((item > 0) & (item < w.shape[0])).unsqueeze(-1)
            y = y + w[item.clamp(0, w.shape[0] - 1)] * known.to(y.dtype)
        if hasattr(self, "user_offset") and u is not None:
            y = y + self.user_offset(u)
        return y


class GenRec(nn.Module):
    """The model of one layout and trunk. Loaded from a file (files.load) it also holds the
    item id map (item_ids: external id of dense ids 1..V), the action columns' raw ranges
    and the file's metadata, which serving and saving use."""

    def __init__(self, layout, n_items, d_model=64, n_layer=2, n_head=2, max_len=50,
                 n_actions=0, n_buckets=8, emb_scale=1.0, head_hidden=64, dropout=0.0,
                 action_binary=None, trunk="gpt2", action_min=None, action_max=None,
                 item_ids=None, action_bias=False):
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError("unknown trunk %r (known: %s)" % (trunk, ", ".join(TRUNKS)))
        if d_model % n_head != 0:
            raise ValueError("n_head %d does not divide d_model %d" % (n_head, d_model))
        self.layout = layout
        self.spec = layout_of(layout)
        self.trunk = trunk
        self.n_items, self.d, self.K = n_items, d_model, n_actions
        self.n_head, self.head_hidden = n_head, head_hidden
        self.n_buckets, self.emb_scale = n_buckets, emb_scale
        self.max_len = max_len
        self.uses_actions = self.spec.uses_actions
        self.reads_actions = self.spec.reads_actions
        self.has_action_head = self.spec.has_action_head
        self.binary = [int(b) for b in (action_binary or [0] * n_actions)]
        self.action_min = list(action_min) if action_min is not None else [0.0] * n_actions
        self.action_max = list(action_max) if action_max is not None else [1.0] * n_actions
        self.item_ids = item_ids            # numpy int64 [V] or None (ids 1..V)
        self.action_bias = bool(action_bias)    # the action head's bias path
        self.config_json = None             # the file's configuration text, when loaded
        self.extra = None                   # the file's "genrec.extra" summary, when any
        self.extra_json = None              # ... and its text
        self.metadata = {}                  # other metadata of the file, kept on save
        P = self.spec.n_positions(max_len)
        self.item_emb = nn.Parameter(torch.zeros(n_items + 1, d_model))
        self.pos_emb = nn.Parameter(torch.zeros(P, d_model))
        if self.reads_actions:
            self.action_emb = nn.Parameter(torch.zeros(n_actions, n_buckets + 1, d_model))
            self.action_linear = nn.Parameter(torch.zeros(n_actions, d_model))
        self.drop = nn.Dropout(dropout)
        block = TRUNKS[trunk]
        kw = {"action_values": True} if self.spec.action_input_kind == "values" else {}
        self.blocks = nn.ModuleList([block(d_model, n_head, dropout, n_positions=P, **kw)
                                     for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        if self.spec.pools_actions:
            self.action_pool = ActionPool(d_model, n_head)
        self.pooled = None                  # [B*T, d] p of the last forward pass (AttnLFA)
        if self.has_action_head:
            bias = self.action_bias and n_actions > 0
            self.action_head = ActionHead(
                self.spec.head_input_dim(d_model), head_hidden, n_actions,
                n_items if bias and self.spec.candidate_actions else None,
                bias and self.reads_actions)

    def set_dropout(self, p):
        """Set every dropout rate of the model (fine-tuning; 0 for scoring)."""
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = float(p)

    def init_gpt2(self, generator=None):
        """GPT-2 style init (the engine's, for either trunk): N(0, 0.02), residual projections
        N(0, 0.02/sqrt(2L)), positions N(0, 0.01), LayerNorm 1/0, biases 0, HSTU's relative
        bias tables 0, padding row 0."""
        L = len(self.blocks)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if ".ln" in name or name.startswith("ln_f"):
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif name.endswith(".bias") or ".rab_" in name \
                        or name.startswith("action_head.item_bias") \
                        or name.startswith("action_head.user_offset"):
                    p.zero_()
                elif name == "pos_emb":
                    p.normal_(0.0, 0.01, generator=generator)
                elif name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * L), generator=generator)
                else:
                    p.normal_(0.0, 0.02, generator=generator)
            self.item_emb[0].zero_()

    def file_parameters(self):
        """(name, parameter) in the engine's file order (model->tensors): named_parameters(),
        except that the parameters of a block whose class gives FILE_ORDER follow it."""
        params = dict(self.named_parameters())
        names = list(params)
        for l, blk in enumerate(self.blocks):
            order = getattr(blk, "FILE_ORDER", None)
            if order is None:
                continue
            pre = "blocks.%d." % l
            ranked = iter(sorted((n for n in names if n.startswith(pre)),
                                 key=lambda n: order.index(n[len(pre):])))
            names = [next(ranked) if n.startswith(pre) else n for n in names]
        return [(n, params[n]) for n in names]

    def embed(self, batch):
        item = batch["item"]
        x = self.emb_scale * self.item_emb[item] * (item > 0).unsqueeze(-1).to(self.item_emb.dtype)
        x = x + self.pos_emb[batch["pos"]]
        if self.reads_actions and self.spec.action_input_kind == "token":
            x = x + self.action_stream(batch)
        return self.drop(x)

    def action_stream(self, batch):
        """phi(a) of every token with an action slot, 0 elsewhere: [B, T, d]."""
        slot = batch["slot"].unsqueeze(-1).to(self.item_emb.dtype)
        aval = batch["aval"]
        bk = buckets(aval, self.n_buckets)
        lin = torch.nan_to_num(aval, nan=0.0)
        a = torch.zeros(aval.shape[:2] + (self.d,), dtype=self.item_emb.dtype,
                        device=aval.device)
        for k in range(self.K):
            a = a + slot * (self.action_emb[k][bk[..., k]] + lin[..., k:k + 1] * self.action_linear[k])
        return a

    def forward(self, batch, allow=None):
        """Final hidden states h [B, T, d] (after LN_f); allow is the causal (block-causal)
        mask, the strict one follows from the batch. AttnLFA's pooled p is kept in
        self.pooled for the action head."""
        if allow is None:
            allow = attention_mask(batch["n_hist"], batch["valid"])
        kind = self.spec.action_input_kind
        strict = strict_mask(batch["n_hist"], batch["valid"])
        astream = self.action_stream(batch) if kind in ("values", "pooled") else None
        ctx = TrunkContext(strict if kind == "values" else allow, batch, strict,
                           astream if kind == "values" else None)
        x = self.embed(batch)
        for blk in self.blocks:
            x = blk(x, ctx)
        h = self.ln_f(x)
        if self.spec.pools_actions:
            self.pooled = self.action_pool(h, astream, strict).reshape(-1, self.d)
        return h

    # heads

    def item_logits(self, h_rows):
        """<h, E[v]> for v = 1..V."""
        return h_rows @ self.item_emb[1:].t()

    def action_pred(self, h_rows, coupler=None, rows=None, batch=None):
        """Action head outputs (normalised scale; logits for binary columns) of action rows
        (rows: their flat token indices in the last forward pass, for AttnLFA's pooling and
        the bias path, which also reads the batch)."""
        x = self.spec.action_input(self, h_rows, coupler, rows)
        item = u = None
        if batch is not None and rows is not None:
            if hasattr(self.action_head, "item_bias"):
                item = coupler if self.spec.coupler else batch["item"].reshape(-1)[rows]
            if hasattr(self.action_head, "user_offset"):
                u = self.user_offset_features(batch, rows)
        return self.action_head(x, item, u)

    def user_offset_features(self, batch, rows):
        """u [R, 4K] of action rows: per column S / (n + 10), n / (n + 10), the latest
        value (0 if none) and whether there is one, over the present action values at the
        keys the row's token attends to."""
        if self.spec.action_input_kind == "token":
            vis = attention_mask(batch["n_hist"], batch["valid"])
        else:
            vis = strict_mask(batch["n_hist"], batch["valid"])
        B, T = batch["valid"].shape
        aval = batch["aval"]
        present = (~torch.isnan(aval)) & batch["slot"].unsqueeze(-1)
        val = torch.where(present, aval, torch.zeros_like(aval))
        pres = present.to(aval.dtype)
        b = rows // T
        v = vis.reshape(B * T, T)[rows].to(aval.dtype)            # [R, T]
        S = torch.einsum("rt,rtk->rk", v, val[b])
        n = torch.einsum("rt,rtk->rk", v, pres[b])
        # the latest visible present value: the largest visible key index holding one
        # (a packed candidate's own slot, after the history, is the latest)
        q = (rows % T).view(-1, 1, 1)
        cand = q >= batch["n_hist"][b].view(-1, 1, 1)
        order = torch.arange(T, device=aval.device).view(1, T, 1)
        key = torch.where(cand & (order == q), torch.full_like(order, T), order)
        score = torch.where((v.unsqueeze(-1) > 0) & present[b], key.to(aval.dtype),
                            torch.full_like(val[b], -1.0))
        idx = score.argmax(dim=1, keepdim=True)                   # [R, 1, K]
        has = (score.max(dim=1).values >= 0).to(aval.dtype)
        last = torch.gather(val[b], 1, idx).squeeze(1) * has
        return torch.cat([S / (n + USER_OFFSET_SHRINK), n / (n + USER_OFFSET_SHRINK),
                          last, has], dim=-1)

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
        if self.has_action_head and batch["arow_tok"].numel() > 0:
            pred = self.action_pred(hf[batch["arow_tok"]], batch["arow_cpl"], batch["arow_tok"],
                                    batch)
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

    def loss(self, batch, w_item=1.0, w_action=1.0):
        """The weighted training loss of a collated batch (fine-tuning loops)."""
        return self.losses(batch, self(batch), w_item, w_action)["total"]

    # serving with external ids and raw action values (serve.py)

    def score(self, items, candidates, actions=None, times=None, now=None):
        """Score candidates after a history (oldest first): see serve.score."""
        from .serve import score
        return score(self, items, candidates, actions, times, now)

    def recommend(self, items, k=10, actions=None, exclude_seen=True, times=None, now=None):
        """Top k items after a history: see serve.recommend."""
        from .serve import recommend
        return recommend(self, items, k, actions, exclude_seen, times, now)


USES_ACTIONS = {name: spec.uses_actions for name, spec in LAYOUT.items()}
HAS_ACTION_HEAD = {name: spec.has_action_head for name, spec in LAYOUT.items()}
COUPLER = {name: spec.head_input_dim(1) == 2 for name, spec in LAYOUT.items()}
CANDIDATE_TOKENS = {name: spec.candidate_tokens for name, spec in LAYOUT.items()}


def make_adamw(model, lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0):
    """AdamW with the engine's defaults."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps,
                             weight_decay=weight_decay)
