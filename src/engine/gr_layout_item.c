/*
 * gr_layout_item.c — L0, item-only tokens (LAYOUTS.md §4.1; SASRec-style).
 *
 * Token n = E[i_n] + P[n]; h_n predicts i_{n+1}. There is no action head: a candidate's score
 * is its retrieval logit <h_N, E[c]>.
 */
#include "gr_layout.h"

/* A window spans max_len input tokens plus the last target interaction. */
static int
item_window_len(int max_len)
{
	return max_len + 1;
}

/* Serving keeps max_len interactions: the last one is the retrieval query. */
static int
item_history_cap(int max_len)
{
	return max_len;
}

/* One position per input token of a window. */
static int
item_positions(int max_len)
{
	return max_len;
}

/* Append tokens i_start..i_{end-2} with next-item targets. */
static gr_status
item_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
				gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < end - 1; n++)
	{
		int			tok = gr_tokens_add(tb, seq->items[n], n - start, false, NULL);

		if (tok < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n + 1);
		if (!last_only || n + 1 == end - 1)
			if (!gr_tokens_add_item_row(tb, tok, seq->items[n + 1], n + 1))
				return gr_layout_full(err);
	}
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

/* Append the history; the last token is the retrieval query. */
static gr_status
item_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
				 int n_cands, gr_error *err)
{
	(void) cands;
	(void) n_cands;
	if (seq->n - start <= 0)
		return gr_fail(err, GR_ERR_EMPTY_HISTORY, "the item-only layout needs a non-empty history");
	GR_TRY(gr_tokens_begin_seq(tb, err));
	int			tok = -1;

	for (int n = start; n < seq->n; n++)
	{
		if ((tok = gr_tokens_add(tb, seq->items[n], n - start, false, NULL)) < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n + 1);
	}
	if (!gr_tokens_add_item_row(tb, tok, 0, -1))
		return gr_layout_full(err);
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

const gr_layout gr_layout_item = {
	.name = "item",
	.id = GR_LAYOUT_ITEM,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_NONE,
	.action_head = GR_ACTION_HEAD_NONE,
	.candidates = GR_CANDIDATES_LOGIT,
	.window_len = item_window_len,
	.history_cap = item_history_cap,
	.positions = item_positions,
	.add_window = item_add_window,
	.add_serving = item_add_serving,
};
