"""Interactions in leave-one-out form (PROTOCOL.md) and the external -> dense item id map.

Dataset sorts each user's interactions by time (stable: equal times keep input order), maps
items to dense ids 1..V (0 = unknown), and normalises every action column to [0, 1] with the
training split's min/max (or a given range: a loaded model's), clamped, NaN kept.
"""

import numpy as np


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
