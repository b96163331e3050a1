/*
 * gr_layout_lac.c — LAC, lagged action conditioning (LAYOUTS.md §4.4).
 *
 * Token n = E[i_n] + φ(a_{n-1}) + P[n], with the null action for the first interaction of a
 * history (a window that starts later carries the real a_{start-1}, which is visible
 * history). h_n predicts a_n (same step, P2) and i_{n+1}; a_n first enters token n+1, so no
 * label leaks (P3). Candidates are packed after the history as E[c] + φ(a_N) + P[N] and see
 * the history and themselves (block-causal).
 */
#include "gr_layout.h"

/* A window spans max_len tokens; the last one carries the evaluated item. */
static int
lac_window_len(int max_len)
{
	return max_len;
}

/* Serving keeps max_len - 1 interactions so candidates take a trained position. */
static int
lac_history_cap(int max_len)
{
	return max_len - 1;
}

/* The lagged action carried by the token of interaction n (NULL: the null action). */
static const float *
lagged_action(const gr_seq_view *seq, int n)
{
	return n > 0 ? gr_seq_action(seq, n - 1) : NULL;
}

/* One position per token of a window. */
static int
lac_positions(int max_len)
{
	return max_len;
}

/* Append tokens (i_n, a_{n-1}) with same-step action and next-item targets. */
static gr_status
lac_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			   gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < end; n++)
	{
		int			tok = gr_tokens_add(tb, seq->items[n], n - start, true, lagged_action(seq, n));

		if (tok < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n);
		if ((!last_only || n == end - 1) &&
			!gr_tokens_add_act_row(tb, tok, 0, gr_seq_action(seq, n), n))
			return gr_layout_full(err);
		if (n + 1 < end && (!last_only || n + 1 == end - 1) &&
			!gr_tokens_add_item_row(tb, tok, seq->items[n + 1], n + 1))
			return gr_layout_full(err);
	}
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

/* Append the history and one candidate token per candidate, all at the next position. */
static gr_status
lac_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
				int n_cands, gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	int			tok = -1;

	for (int n = start; n < seq->n; n++)
	{
		if ((tok = gr_tokens_add(tb, seq->items[n], n - start, true, lagged_action(seq, n))) < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n);
	}
	if (tok >= 0 && !gr_tokens_add_item_row(tb, tok, 0, -1))
		return gr_layout_full(err);
	int			n_hist = gr_tokens_seq_len(tb);

	for (int c = 0; c < n_cands; c++)
	{
		int			ct = gr_tokens_add(tb, cands[c], n_hist, true, lagged_action(seq, seq->n));

		if (ct < 0 || !gr_tokens_add_act_row(tb, ct, 0, NULL, -1))
			return gr_layout_full(err);
		gr_layout_set_time(tb, ct, seq, seq->n, seq->n);
	}
	gr_tokens_end_seq(tb, n_hist);
	return GR_OK;
}

const gr_layout gr_layout_lac = {
	.name = "lac",
	.id = GR_LAYOUT_LAC,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_PACKED,
	.window_len = lac_window_len,
	.history_cap = lac_history_cap,
	.positions = lac_positions,
	.add_window = lac_add_window,
	.add_serving = lac_add_serving,
};
