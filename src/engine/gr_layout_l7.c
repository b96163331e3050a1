/*
 * gr_layout_l7.c — L7 (action in both, next action only), a Table-2 ablation (LAYOUTS.md §4.7, §5).
 *
 * Token n = s E[i_n] + φ(a_n) + P[n]; h_n predicts a_{n+1} (P2 violated). No item target,
 * so no retrieval; every candidate gets the user-level estimate f(h_N)
 * (GR_CANDIDATES_USER).
 */
#include "gr_layout_ablate.h"

static const gr_ablate_spec l7_spec = {
	.name = "l7",.input = GR_ABLATE_IN_SAME,.item_target = false,.act_target = GR_ABLATE_ACT_NEXT,
};

/* Interactions of a training window. */
static int
l7_window_len(int max_len)
{
	return gr_ablate_window_len(&l7_spec, max_len);
}

/* Interactions kept when serving. */
static int
l7_history_cap(int max_len)
{
	return gr_ablate_history_cap(&l7_spec, max_len);
}

/* Learned positions needed. */
static int
l7_positions(int max_len)
{
	return gr_ablate_positions(&l7_spec, max_len);
}

/* Append one training or evaluation window. */
static gr_status
l7_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	return gr_ablate_add_window(&l7_spec, tb, seq, start, end, last_only, err);
}

/* Append one serving sequence. */
static gr_status
l7_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	return gr_ablate_add_serving(&l7_spec, tb, seq, start, cands, n_cands, err);
}

const gr_layout gr_layout_l7 = {
	.name = "l7",
	.id = GR_LAYOUT_L7,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.item_head = GR_ITEM_HEAD_NONE,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_USER,
	.window_len = l7_window_len,
	.history_cap = l7_history_cap,
	.positions = l7_positions,
	.add_window = l7_add_window,
	.add_serving = l7_add_serving,
};
