/*
 * gr_layout_int.c — INT, interleaved item and action tokens (LAYOUTS.md §4.2; HSTU-style).
 *
 * Interaction n becomes an item token E[i_n] + P[2n] and an action token φ(a_n) + P[2n+1].
 * The item token's state predicts a_n; the action token's state predicts i_{n+1}. The last
 * interaction of a window has no action token (it would have no target). Candidates are
 * packed after the history as item tokens E[c] + P[2N].
 */
#include "gr_layout.h"

/* A window spans max_len interactions (2 * max_len - 1 tokens). */
static int
int_window_len(int max_len)
{
	return max_len;
}

/* Serving keeps max_len - 1 interactions so candidates take a trained position. */
static int
int_history_cap(int max_len)
{
	return max_len - 1;
}

/* Two positions per interaction, less the dropped last action token. */
static int
int_positions(int max_len)
{
	return 2 * max_len - 1;
}

/* Append item and action tokens with their targets. */
static gr_status
int_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			   gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < end; n++)
	{
		int			p = 2 * (n - start);
		int			it = gr_tokens_add(tb, seq->items[n], p, false, NULL);

		if (it < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, it, seq, n, n);
		if ((!last_only || n == end - 1) &&
			!gr_tokens_add_act_row(tb, it, 0, gr_seq_action(seq, n), n))
			return gr_layout_full(err);
		if (n + 1 == end)
			break;
		int			at = gr_tokens_add(tb, 0, p + 1, true, gr_seq_action(seq, n));

		if (at < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, at, seq, n, n + 1);
		if ((!last_only || n + 1 == end - 1) &&
			!gr_tokens_add_item_row(tb, at, seq->items[n + 1], n + 1))
			return gr_layout_full(err);
	}
	gr_tokens_end_seq(tb, gr_tokens_seq_len(tb));
	return GR_OK;
}

/* Append the interleaved history and one item token per candidate. */
static gr_status
int_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
				int n_cands, gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	int			at = -1;

	for (int n = start; n < seq->n; n++)
	{
		int			p = 2 * (n - start);

		int			it = gr_tokens_add(tb, seq->items[n], p, false, NULL);

		if (it < 0 || (at = gr_tokens_add(tb, 0, p + 1, true, gr_seq_action(seq, n))) < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, it, seq, n, n);
		gr_layout_set_time(tb, at, seq, n, n + 1);
	}
	if (at >= 0 && !gr_tokens_add_item_row(tb, at, 0, -1))
		return gr_layout_full(err);
	int			n_hist = gr_tokens_seq_len(tb);

	for (int c = 0; c < n_cands; c++)
	{
		int			ct = gr_tokens_add(tb, cands[c], n_hist, false, NULL);

		if (ct < 0 || !gr_tokens_add_act_row(tb, ct, 0, NULL, -1))
			return gr_layout_full(err);
		gr_layout_set_time(tb, ct, seq, seq->n, seq->n);
	}
	gr_tokens_end_seq(tb, n_hist);
	return GR_OK;
}

const gr_layout gr_layout_int = {
	.name = "int",
	.id = GR_LAYOUT_INT,
	.tokens_per_interaction = 2,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_PACKED,
	.window_len = int_window_len,
	.history_cap = int_history_cap,
	.positions = int_positions,
	.add_window = int_add_window,
	.add_serving = int_add_serving,
};
