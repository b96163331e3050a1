/*
 * gr_layout_l2.c — L2 (action only in input, same step), a Table-2 ablation (LAYOUTS.md §4.7, §5).
 *
 * Token n = s E[i_n] + φ(a_n) + P[n]; h_n predicts i_{n+1}. No action head: a candidate's
 * score is its retrieval logit <h_N, E[c]> (P1 half: actions in the input only; P3 holds,
 * the next item is the only target).
 */
#include "gr_layout_ablate.h"

static const gr_ablate_spec l2_spec = {
	.name = "l2",.input = GR_ABLATE_IN_SAME,.item_target = true,.act_target = GR_ABLATE_ACT_NONE,
};

/* Interactions of a training window. */
static int
l2_window_len(int max_len)
{
	return gr_ablate_window_len(&l2_spec, max_len);
}

/* Interactions kept when serving. */
static int
l2_history_cap(int max_len)
{
	return gr_ablate_history_cap(&l2_spec, max_len);
}

/* Learned positions needed. */
static int
l2_positions(int max_len)
{
	return gr_ablate_positions(&l2_spec, max_len);
}

/* Append one training or evaluation window. */
static gr_status
l2_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	return gr_ablate_add_window(&l2_spec, tb, seq, start, end, last_only, err);
}

/* Append one serving sequence. */
static gr_status
l2_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	return gr_ablate_add_serving(&l2_spec, tb, seq, start, cands, n_cands, err);
}

const gr_layout gr_layout_l2 = {
	.name = "l2",
	.id = GR_LAYOUT_L2,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.item_head = GR_ITEM_HEAD_TIED,
	.action_head = GR_ACTION_HEAD_NONE,
	.candidates = GR_CANDIDATES_LOGIT,
	.window_len = l2_window_len,
	.history_cap = l2_history_cap,
	.positions = l2_positions,
	.add_window = l2_add_window,
	.add_serving = l2_add_serving,
};
