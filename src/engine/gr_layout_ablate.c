/*
 * gr_layout_ablate.c — the shared token builder of the ablation layouts (gr_layout_ablate.h).
 *
 * Same-step action targets (L4) put a target on every token of the window, so a window is
 * max_len interactions and serving packs candidates after max_len - 1 of history, as LAC
 * does. Next-step targets (item and/or a_{n+1}) read token n for interaction n + 1, so a
 * window is max_len + 1 interactions and serving keeps max_len; the action head then reads
 * the last history token once per candidate: the same user-level estimate f(h_N) for every
 * candidate, which is what a P2-violating layout can offer.
 */
#include "gr_layout_ablate.h"

/* Whether h_n's targets lie in interaction n itself (a window of max_len, packed serving). */
static bool
same_step(const gr_ablate_spec *s)
{
	return s->act_target == GR_ABLATE_ACT_SAME;
}

/* Interactions of a training window. */
int
gr_ablate_window_len(const gr_ablate_spec *s, int max_len)
{
	return same_step(s) ? max_len : max_len + 1;
}

/* Interactions kept when serving. */
int
gr_ablate_history_cap(const gr_ablate_spec *s, int max_len)
{
	return same_step(s) ? max_len - 1 : max_len;
}

/* One position per input token. */
int
gr_ablate_positions(const gr_ablate_spec *s, int max_len)
{
	(void) s;
	return max_len;
}

/* Append the token of interaction n at position pos with the spec's action slot; it queries
 * at the time of what it predicts (interaction n for a same-step target, else n + 1). */
static int
add_token(const gr_ablate_spec *s, gr_tokens *tb, const gr_seq_view *seq, int n, int pos)
{
	int			tok = -1;

	switch (s->input)
	{
		case GR_ABLATE_IN_NONE:
			tok = gr_tokens_add(tb, seq->items[n], pos, false, NULL);
			break;
		case GR_ABLATE_IN_SAME:
			tok = gr_tokens_add(tb, seq->items[n], pos, true, gr_seq_action(seq, n));
			break;
		case GR_ABLATE_IN_LAGGED:
			tok = gr_tokens_add(tb, seq->items[n], pos, true,
								n > 0 ? gr_seq_action(seq, n - 1) : NULL);
			break;
	}
	gr_layout_set_time(tb, tok, seq, n, same_step(s) ? n : n + 1);
	return tok;
}

/* Append tokens of [start, end) (or [start, end - 1) for next-step targets) with targets. */
gr_status
gr_ablate_add_window(const gr_ablate_spec *s, gr_tokens *tb, const gr_seq_view *seq, int start,
					 int end, bool last_only, gr_error *err)
{
	bool		same = same_step(s);

	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < (same ? end : end - 1); n++)
	{
		int			tok = add_token(s, tb, seq, n, n - start);

		if (tok < 0)
			return gr_layout_full(err);
		/* same-step: the action of n; next-step: the item and/or action of n + 1 */
		if (same && (!last_only || n == end - 1) &&
			!gr_tokens_add_act_row(tb, tok, 0, gr_seq_action(seq, n), n))
			return gr_layout_full(err);
		if (n + 1 >= end || (last_only && n + 1 != end - 1))
			continue;
		if (s->item_target && !gr_tokens_add_item_row(tb, tok, seq->items[n + 1], n + 1))
			return gr_layout_full(err);
		if (s->act_target == GR_ABLATE_ACT_NEXT &&
			!gr_tokens_add_act_row(tb, tok, 0, gr_seq_action(seq, n + 1), n + 1))
			return gr_layout_full(err);
	}
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

/* Append the history, the retrieval query and one action read-out per candidate. */
gr_status
gr_ablate_add_serving(const gr_ablate_spec *s, gr_tokens *tb, const gr_seq_view *seq,
					  int start, const int32_t *cands, int n_cands, gr_error *err)
{
	bool		same = same_step(s);
	int			tok = -1;

	if (!same && seq->n - start <= 0)
		return gr_fail(err, GR_ERR_EMPTY_HISTORY, "the %s layout needs a non-empty history",
					   s->name);
	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < seq->n; n++)
		if ((tok = add_token(s, tb, seq, n, n - start)) < 0)
			return gr_layout_full(err);
	if (tok >= 0 && s->item_target && !gr_tokens_add_item_row(tb, tok, 0, -1))
		return gr_layout_full(err);
	int			n_hist = gr_tokens_seq_len(tb);

	for (int c = 0; c < n_cands && s->act_target != GR_ABLATE_ACT_NONE; c++)
	{
		int			ct = tok;

		/* same-step: a candidate token s E[c] + P[N] (+ φ(a_N) when lagged) reads itself */
		if (same && (ct = gr_tokens_add(tb, cands[c], n_hist, s->input == GR_ABLATE_IN_LAGGED,
										s->input == GR_ABLATE_IN_LAGGED && seq->n > 0 ?
										gr_seq_action(seq, seq->n - 1) : NULL)) < 0)
			return gr_layout_full(err);
		if (same)
			gr_layout_set_time(tb, ct, seq, seq->n, seq->n);
		if (!gr_tokens_add_act_row(tb, ct, 0, NULL, -1))
			return gr_layout_full(err);
	}
	gr_tokens_end_seq(tb, n_hist);
	return GR_OK;
}
