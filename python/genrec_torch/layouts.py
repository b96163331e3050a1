"""Token layouts (LAYOUTS.md §4, §6), one class per layout, in a registry.

A layout turns a user's interactions into a Seq (tokens.py) for training windows,
evaluation windows and serving (history + candidates), and says what the model computes for
it: whether tokens carry an action slot (reads_actions), whether there is an action head
(has_action_head) and an item head (item_head), whether its action score depends on the
candidate (candidate_actions), what the
action head reads (action_input: h, or [h ; E[next item]] for the PC coupler), how many
positions it learns and how much history serving keeps. Each token also gets the times it is
a key and a query at (Seq.set_time, as the engine's layout files call gr_layout_set_time): a
key at its own interaction's time, a query at the time of what it predicts: interaction n
for a same-step target (LAC, INT item tokens, AttnLFA/MVP, the same-step ablation L4),
n + 1 for a next-step one (item-only, INT action tokens, PC, the next-step ablations), and
serving's candidates at the request time. Adding a layout is one class here with
@register; the trunk, heads and losses (model.py) only read the Seq.
"""

import torch

from .tokens import Seq

LAYOUT = {}


def register(cls):
    """Add a layout class to the registry under its name."""
    LAYOUT[cls.name] = cls()
    return cls


def layout_of(name):
    """The registered layout called name (ValueError for an unknown one)."""
    try:
        return LAYOUT[name]
    except KeyError:
        raise ValueError("unknown layout %r (known: %s)" % (name, ", ".join(LAYOUT))) from None


def _act(actions, n):
    return tuple(float(x) for x in actions[n])


class Layout:
    """What every layout declares; the defaults are those of the action-conditioned layouts."""

    name = None
    reads_actions = True        # tokens may carry an action slot (the action encoder)
    has_action_head = True      # the model has an action head
    item_head = True            # the tied item head predicts the next item (retrieval)
    candidate_actions = True    # the served action score depends on the candidate
    # where a token's action slot enters the model: "token" (phi(a) added to the input),
    # "values" (an action stream mixed into every attention layer's values at the strict
    # keys, the trunk's attention strict-causal: AttnMVP) or "pooled" (an action stream only
    # the action head's strict-causal pooling reads: AttnLFA)
    action_input_kind = "token"
    pools_actions = False       # the action head reads [h ; p], p the pooled action stream
    candidate_tokens = True     # serving packs candidates as tokens after the history
    cold_start = True           # candidates can be scored after an empty history
    coupler = False             # the action row's coupler item is the item acted on (PC)

    @property
    def uses_actions(self):
        """Whether the layout uses action columns at all (as input or as targets)."""
        return self.reads_actions or self.has_action_head

    def window_len(self, max_len):
        """Interactions spanned by one training window (inputs plus the last target)."""
        return max_len

    def history_cap(self, max_len):
        """Interactions of history kept at serving time."""
        return max_len - 1

    def n_positions(self, max_len):
        """Learned positions: the longest training window's tokens."""
        return max_len

    def head_input_dim(self, d_model):
        """Width of the action head's input."""
        return d_model

    def action_input(self, model, h_rows, coupler, rows=None):
        """What the action head reads for each action row (rows: their flat token index in
        the last forward pass)."""
        return h_rows

    def window(self, items, actions, start, end, last_only=False, times=None):
        """Tokens and targets of interactions [start, end) (training when last_only is False;
        evaluation of interaction end-1 when True); times: the history's interaction times
        (None = all 0)."""
        raise NotImplementedError

    def serving(self, items, actions, start, cands, times=None, now=None):
        """Serving tokens: history interactions [start, N), then the candidates; times as
        for window, now the request time (None: the last interaction's)."""
        raise NotImplementedError


@register
class ItemLayout(Layout):
    """L0: token n = E[i_n] + P[n]; h_n -> i_{n+1}; candidates read the retrieval logit."""

    name = "item"
    reads_actions = False
    has_action_head = False
    candidate_actions = False
    candidate_tokens = False
    cold_start = False

    def window_len(self, max_len):
        return max_len + 1

    def history_cap(self, max_len):
        return max_len

    def window(self, items, actions, start, end, last_only=False, times=None):
        s = Seq(0 if actions is None else actions.shape[1], times)
        for n in range(start, end - 1):
            t = s.add(items[n], n - start)
            s.set_time(t, n, n + 1)
            if not last_only or n == end - 2:
                s.item_rows.append((t, int(items[n + 1])))
        s.n_hist = len(s)
        return s

    def serving(self, items, actions, start, cands, times=None, now=None):
        s = Seq(0 if actions is None else actions.shape[1], times, now)
        query = None
        for n in range(start, len(items)):
            query = s.add(items[n], n - start)
            s.set_time(query, n, n + 1)
        if query is not None:
            s.item_rows.append((query, 0))
        s.n_hist = len(s)
        return s


@register
class PcLayout(Layout):
    """PC: token n = E[i_n] + phi(a_n); h_n -> i_{n+1}; a coupler g([h_n ; E[i_{n+1}]])
    -> a_{n+1}; candidates are scored by the coupler on the last history token."""

    name = "pc"
    coupler = True
    candidate_tokens = False
    cold_start = False

    def window_len(self, max_len):
        return max_len + 1

    def history_cap(self, max_len):
        return max_len

    def head_input_dim(self, d_model):
        return 2 * d_model

    def action_input(self, model, h_rows, coupler, rows=None):
        e = model.item_emb[coupler] * (coupler > 0).unsqueeze(-1).to(h_rows.dtype)
        return torch.cat([h_rows, e], dim=-1)

    def window(self, items, actions, start, end, last_only=False, times=None):
        s = Seq(actions.shape[1], times)
        for n in range(start, end - 1):
            t = s.add(items[n], n - start, _act(actions, n))
            s.set_time(t, n, n + 1)
            if not last_only or n == end - 2:
                s.item_rows.append((t, int(items[n + 1])))
                s.act_rows.append((t, int(items[n + 1]), _act(actions, n + 1)))
        s.n_hist = len(s)
        return s

    def serving(self, items, actions, start, cands, times=None, now=None):
        s = Seq(actions.shape[1], times, now)
        query = None
        for n in range(start, len(items)):
            query = s.add(items[n], n - start, _act(actions, n))
            s.set_time(query, n, n + 1)
        if query is not None:
            s.item_rows.append((query, 0))
        s.n_hist = len(s)
        if query is not None:
            for c in cands:
                s.act_rows.append((query, int(c), None))
        return s


@register
class LacLayout(Layout):
    """LAC: token n = E[i_n] + phi(a_{n-1}) (null for the very first interaction);
    h_n -> a_n and i_{n+1}; candidates are packed with phi(a_N) at the next position."""

    name = "lac"

    def window(self, items, actions, start, end, last_only=False, times=None):
        s = Seq(actions.shape[1], times)
        for n in range(start, end):
            lag = _act(actions, n - 1) if n > 0 else s.null()
            t = s.add(items[n], n - start, lag)
            s.set_time(t, n, n)
            if not last_only or n == end - 1:
                s.act_rows.append((t, 0, _act(actions, n)))
            if n + 1 < end and (not last_only or n == end - 2):
                s.item_rows.append((t, int(items[n + 1])))
        s.n_hist = len(s)
        return s

    def serving(self, items, actions, start, cands, times=None, now=None):
        s = Seq(actions.shape[1], times, now)
        N = len(items)
        query = None
        for n in range(start, N):
            query = s.add(items[n], n - start, _act(actions, n - 1) if n > 0 else s.null())
            s.set_time(query, n, n)
        if query is not None:
            s.item_rows.append((query, 0))
        s.n_hist = len(s)
        lag = _act(actions, N - 1) if N > 0 else s.null()
        for c in cands:
            t = s.add(c, s.n_hist, lag)
            s.set_time(t, N, N)
            s.act_rows.append((t, 0, None))
        return s


@register
class IntLayout(Layout):
    """INT: item token E[i_n] at 2n -> a_n; action token phi(a_n) at 2n+1 -> i_{n+1}; no
    action token after the window's last interaction; candidates are item tokens."""

    name = "int"

    def n_positions(self, max_len):
        return 2 * max_len - 1

    def window(self, items, actions, start, end, last_only=False, times=None):
        s = Seq(actions.shape[1], times)
        for n in range(start, end):
            p = 2 * (n - start)
            t = s.add(items[n], p)
            s.set_time(t, n, n)
            if not last_only or n == end - 1:
                s.act_rows.append((t, 0, _act(actions, n)))
            if n + 1 < end:
                t = s.add(0, p + 1, _act(actions, n))
                s.set_time(t, n, n + 1)
                if not last_only or n == end - 2:
                    s.item_rows.append((t, int(items[n + 1])))
        s.n_hist = len(s)
        return s

    def serving(self, items, actions, start, cands, times=None, now=None):
        s = Seq(actions.shape[1], times, now)
        N = len(items)
        query = None
        for n in range(start, N):
            p = n - start
            s.set_time(s.add(items[n], 2 * p), n, n)
            query = s.add(0, 2 * p + 1, _act(actions, n))
            s.set_time(query, n, n + 1)
        if query is not None:
            s.item_rows.append((query, 0))
        s.n_hist = len(s)
        for c in cands:
            t = s.add(c, s.n_hist)
            s.set_time(t, N, N)
            s.act_rows.append((t, 0, None))
        return s


class _StreamLayout(Layout):
    """Item tokens E[i_n] + P[n] carrying their own action a_n in the action stream (never
    in the input); h_n -> a_n (every position) and i_{n+1}; candidates are packed at the next
    position without an action."""

    def window(self, items, actions, start, end, last_only=False, times=None):
        s = Seq(actions.shape[1], times)
        for n in range(start, end):
            t = s.add(items[n], n - start, _act(actions, n))
            s.set_time(t, n, n)
            if not last_only or n == end - 1:
                s.act_rows.append((t, 0, _act(actions, n)))
            if n + 1 < end and (not last_only or n == end - 2):
                s.item_rows.append((t, int(items[n + 1])))
        s.n_hist = len(s)
        return s

    def serving(self, items, actions, start, cands, times=None, now=None):
        s = Seq(actions.shape[1], times, now)
        N = len(items)
        query = None
        for n in range(start, N):
            query = s.add(items[n], n - start, _act(actions, n))
            s.set_time(query, n, n)
        if query is not None:
            s.item_rows.append((query, 0))
        s.n_hist = len(s)
        for c in cands:
            t = s.add(c, s.n_hist)
            s.set_time(t, N, N)
            s.act_rows.append((t, 0, None))
        return s


@register
class AttnLfaLayout(_StreamLayout):
    """AttnLFA (LAYOUTS.md §4.5): items only through the trunk; after LN_f one attention layer
    pools the action stream strict-causally (q, k from h, v from phi(a_j), j < n; a
    candidate pools the whole history) into p_n; the action head reads [h_n ; p_n]."""

    name = "attnlfa"
    action_input_kind = "pooled"
    pools_actions = True

    def head_input_dim(self, d_model):
        return 2 * d_model

    def action_input(self, model, h_rows, coupler, rows=None):
        return torch.cat([h_rows, model.pooled[rows]], dim=-1)


@register
class AttnMvpLayout(_StreamLayout):
    """AttnMVP (LAYOUTS.md §4.6, primary reconstruction): every attention layer is
    strict-causal and mixes V_A = phi(a) W_va^l into its values; the head reads h_n."""

    name = "attnmvp"
    action_input_kind = "values"


class _Ablation(Layout):
    """The Table-2 ablations (LAYOUTS.md §4.7; gr_layout_ablate.c): one token per interaction
    carrying no action, a_n ("same") or a_{n-1} ("lagged"); h_n predicts i_{n+1}
    (item_target) and a_n ("same") or a_{n+1} ("next") or no action. Same-step action
    targets pack candidates (s E[c] + P[N]); next-step ones read h_N once per candidate (a
    user-level estimate, the same for every candidate)."""

    token_action = None         # None, "same" or "lagged"
    item_target = True
    act_target = None           # None, "same" or "next"

    def __init__(self):
        self.reads_actions = self.token_action is not None
        self.has_action_head = self.act_target is not None
        self.item_head = self.item_target
        self.candidate_actions = self.act_target == "same"
        self.candidate_tokens = self.act_target == "same"
        self.cold_start = self.act_target == "same"

    def _same(self):
        return self.act_target == "same"

    def window_len(self, max_len):
        return max_len if self._same() else max_len + 1

    def history_cap(self, max_len):
        return max_len - 1 if self._same() else max_len

    def _slot(self, s, actions, n):
        if self.token_action == "same":
            return _act(actions, n)
        if self.token_action == "lagged":
            return _act(actions, n - 1) if n > 0 else s.null()
        return None

    def _seq(self, actions, times, now=None):
        return Seq(0 if actions is None else actions.shape[1], times, now)

    def _token(self, s, items, actions, n, pos):
        """The token of interaction n; it queries at the time of what it predicts (n for a
        same-step target, else n + 1)."""
        t = s.add(items[n], pos, self._slot(s, actions, n))
        s.set_time(t, n, n if self._same() else n + 1)
        return t

    def window(self, items, actions, start, end, last_only=False, times=None):
        s = self._seq(actions, times)
        same = self._same()
        for n in range(start, end if same else end - 1):
            t = self._token(s, items, actions, n, n - start)
            if same and (not last_only or n == end - 1):
                s.act_rows.append((t, 0, _act(actions, n)))
            if n + 1 >= end or (last_only and n + 1 != end - 1):
                continue
            if self.item_target:
                s.item_rows.append((t, int(items[n + 1])))
            if self.act_target == "next":
                s.act_rows.append((t, 0, _act(actions, n + 1)))
        s.n_hist = len(s)
        return s

    def serving(self, items, actions, start, cands, times=None, now=None):
        s = self._seq(actions, times, now)
        N = len(items)
        query = None
        for n in range(start, N):
            query = self._token(s, items, actions, n, n - start)
        if query is not None and self.item_target:
            s.item_rows.append((query, 0))
        s.n_hist = len(s)
        if self.act_target is None:
            return s
        for c in cands:
            if self._same():
                t = s.add(c, s.n_hist)
                s.set_time(t, N, N)
                s.act_rows.append((t, 0, None))
            elif query is not None:
                s.act_rows.append((query, 0, None))
        return s


@register
class L2Layout(_Ablation):
    """L2: (i_n, a_n) -> i_{n+1}; no action head."""
    name = "l2"
    token_action = "same"


@register
class L3Layout(_Ablation):
    """L3: (i_n, a_{n-1}) -> i_{n+1}; no action head."""
    name = "l3"
    token_action = "lagged"


@register
class L4Layout(_Ablation):
    """L4: i_n -> a_n; no item head; candidates packed."""
    name = "l4"
    item_target = False
    act_target = "same"


@register
class L5Layout(_Ablation):
    """L5: i_n -> a_{n+1}; no item head; a user-level action estimate."""
    name = "l5"
    item_target = False
    act_target = "next"


@register
class L6Layout(_Ablation):
    """L6: i_n -> (i_{n+1}, a_{n+1}); a user-level action estimate."""
    name = "l6"
    act_target = "next"


@register
class L7Layout(_Ablation):
    """L7: (i_n, a_n) -> a_{n+1}; no item head; a user-level action estimate."""
    name = "l7"
    token_action = "same"
    item_target = False
    act_target = "next"


@register
class L9Layout(_Ablation):
    """L9: (i_n, a_n) -> (i_{n+1}, a_{n+1}) from one state (PC without its coupler)."""
    name = "l9"
    token_action = "same"
    act_target = "next"


LAYOUTS = tuple(LAYOUT)


# The parity reference's module-level view of the registry (layout names as keys).

def window_len(layout, max_len):
    """Interactions spanned by one training window of a layout."""
    return layout_of(layout).window_len(max_len)


def history_cap(layout, max_len):
    """Interactions of history a layout keeps at serving time."""
    return layout_of(layout).history_cap(max_len)


def n_positions(layout, max_len):
    """Learned positions of a layout."""
    return layout_of(layout).n_positions(max_len)


def window_seq(layout, items, actions, start, end, last_only=False, times=None):
    """Tokens and targets of interactions [start, end) of one history."""
    return layout_of(layout).window(items, actions, start, end, last_only, times)


def serving_seq(layout, items, actions, start, cands, times=None, now=None):
    """Serving tokens of a history [start, N) and candidates (LAYOUTS.md §6)."""
    return layout_of(layout).serving(items, actions, start, cands, times, now)
