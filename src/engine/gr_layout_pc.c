/*
 * gr_layout_pc.c — PC, patched conditioning (LAYOUTS.md §4.3; ARGUS-style late fusion).
 *
 * Token n = E[i_n] + φ(a_n) + P[n]; h_n predicts i_{n+1} with the tied head, and the coupler
 * g([h_n ; E[i_{n+1}]]) predicts a_{n+1} (teacher forcing with the true next item). Scoring
 * encodes the history once and applies the coupler to every candidate.
 */
#include "gr_layout.h"

/* A window spans max_len input tokens plus the last target interaction. */
static int
pc_window_len(int max_len)
{
	return max_len + 1;
}

/* Serving keeps max_len interactions: the last one is the query and the coupler input. */
static int
pc_history_cap(int max_len)
{
	return max_len;
}

/* One position per input token of a window. */
static int
pc_positions(int max_len)
{
	return max_len;
}

/* Append tokens (i_n, a_n) with next-item and coupled next-action targets. */
static gr_status
pc_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < end - 1; n++)
	{
		int			tok = gr_tokens_add(tb, seq->items[n], n - start, true, gr_seq_action(seq, n));

		if (tok < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n + 1);
		if (last_only && n + 1 != end - 1)
			continue;
		if (!gr_tokens_add_item_row(tb, tok, seq->items[n + 1], n + 1) ||
			!gr_tokens_add_act_row(tb, tok, seq->items[n + 1], gr_seq_action(seq, n + 1), n + 1))
			return gr_layout_full(err);
	}
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

/* Append the history; the last token is the query and feeds the coupler per candidate. */
static gr_status
pc_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	if (seq->n - start <= 0)
		return gr_fail(err, GR_ERR_EMPTY_HISTORY, "the pc layout needs a non-empty history");
	GR_TRY(gr_tokens_begin_seq(tb, err));
	int			tok = -1;

	for (int n = start; n < seq->n; n++)
	{
		if ((tok = gr_tokens_add(tb, seq->items[n], n - start, true, gr_seq_action(seq, n))) < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n + 1);
	}
	if (!gr_tokens_add_item_row(tb, tok, 0, -1))
		return gr_layout_full(err);
	for (int c = 0; c < n_cands; c++)
		if (!gr_tokens_add_act_row(tb, tok, cands[c], NULL, -1))
			return gr_layout_full(err);
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

const gr_layout gr_layout_pc = {
	.name = "pc",
	.id = GR_LAYOUT_PC,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.action_head = GR_ACTION_HEAD_COUPLER,
	.candidates = GR_CANDIDATES_COUPLED,
	.window_len = pc_window_len,
	.history_cap = pc_history_cap,
	.positions = pc_positions,
	.add_window = pc_add_window,
	.add_serving = pc_add_serving,
};
