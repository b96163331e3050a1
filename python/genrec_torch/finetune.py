"""Fine-tuning a loaded model in PyTorch on interactions, with genrec's training protocol:
per epoch one most-recent window of max_len interactions per user (users shuffled), the
leave-one-out hold-out kept out of training unless holdout=False, AdamW (betas 0.9/0.98),
the next-item cross-entropy plus the action losses (MSE on the [0, 1] scale, BCE for binary
columns). The model's item catalogue and action ranges stay fixed: interactions with items
it does not know are dropped.
"""

import numpy as np
import torch

from .data import Dataset, dense_lookup
from .model import make_adamw
from .tokens import collate


def dataset_for(model, user, item, time=None, actions=None):
    """A Dataset of interactions in the model's item and action space (unknown items
    dropped); returns (dataset, interactions dropped)."""
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    ids = (np.arange(1, model.n_items + 1, dtype=np.int64) if model.item_ids is None
           else np.asarray(model.item_ids, dtype=np.int64))
    keep = dense_lookup(ids, item) > 0
    acts = None
    if model.K > 0:
        if actions is None:
            raise ValueError("the model reads %d action column(s); pass actions" % model.K)
        acts = np.asarray(actions, dtype=np.float64).reshape(len(user), model.K)[keep]
    tm = None if time is None else np.asarray(time, dtype=np.int64)[keep]
    ds = Dataset(user[keep], item[keep], tm, acts, binary=model.binary, item_ids=ids,
                 action_range=(model.action_min, model.action_max) if model.K else None)
    return ds, int((~keep).sum())


def training_windows(model, ds, rng, holdout=True):
    """One epoch's token sequences: the most recent window of every user, users shuffled."""
    W = model.spec.window_len(model.max_len)
    seqs = []
    for u in rng.permutation(len(ds.seqs)):
        items, acts = ds.seqs[u]
        end = ds.train_end(u) if holdout else len(items)
        start = max(0, end - W)
        s = model.spec.window(items, acts if model.K else None, start, end, times=ds.times[u])
        if end - start >= 1 and len(s.item_rows) + len(s.act_rows) > 0:
            seqs.append(s)
    return seqs


def fit(model, user, item, time=None, actions=None, epochs=1, lr=1e-4, batch_size=128,
        dropout=0.0, weight_decay=0.0, w_item=1.0, w_action=1.0, holdout=True, seed=0,
        log=None):
    """Fine-tune model in place on interactions (arrays of user, item, time, raw actions
    [n] or [n, K]); returns the mean training loss of each epoch. Records what it did in
    model.extra["finetune"] and drops the summary's metrics, which no longer hold."""
    ds, dropped = dataset_for(model, user, item, time, actions)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = make_adamw(model, lr=lr, weight_decay=weight_decay)
    dtype = model.item_emb.dtype
    model.set_dropout(dropout)
    model.train()
    history = []
    for epoch in range(epochs):
        seqs = training_windows(model, ds, rng, holdout)
        total, steps = 0.0, 0
        for i in range(0, len(seqs), batch_size):
            batch = collate(seqs[i:i + batch_size], model.K, model.n_buckets, dtype=dtype,
                            device=model.item_emb.device)
            loss = model.loss(batch, w_item, w_action)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss)
            steps += 1
        history.append(total / max(steps, 1))
        if log:
            log("epoch %d/%d: loss %.6f (%d steps)" % (epoch + 1, epochs, history[-1], steps))
    model.set_dropout(0.0)
    model.eval()
    extra = dict(model.extra or {})
    for stale in ("valid", "test", "metrics", "result", "history"):
        extra.pop(stale, None)
    extra.setdefault("finetune", []).append({
        "by": "genrec_torch", "epochs": epochs, "lr": lr, "batch": batch_size,
        "dropout": dropout, "weight_decay": weight_decay, "w_item": w_item,
        "w_action": w_action, "holdout": holdout, "seed": seed,
        "users": len(ds.seqs), "interactions": int(sum(len(s[0]) for s in ds.seqs)),
        "dropped_unknown_items": dropped, "train_loss": history})
    model.extra = extra
    return history
