/*
 * gr_layout_l6.c — L6 (action only in output, next item and next action), a Table-2 ablation (LAYOUTS.md §4.7, §5).
 *
 * Token n = s E[i_n] + P[n]; h_n predicts i_{n+1} and a_{n+1} (P2 violated: a_{n+1} is
 * predicted without i_{n+1}). Candidates rank by the retrieval logit <h_N, E[c]>; the action
 * estimate f(h_N) is the same for every candidate (GR_CANDIDATES_USER).
 */
#include "gr_layout_ablate.h"

static const gr_ablate_spec l6_spec = {
	.name = "l6",.input = GR_ABLATE_IN_NONE,.item_target = true,.act_target = GR_ABLATE_ACT_NEXT,
};

/* Interactions of a training window. */
static int
l6_window_len(int max_len)
{
	return gr_ablate_window_len(&l6_spec, max_len);
}

/* Interactions kept when serving. */
static int
l6_history_cap(int max_len)
{
	return gr_ablate_history_cap(&l6_spec, max_len);
}

/* Learned positions needed. */
static int
l6_positions(int max_len)
{
	return gr_ablate_positions(&l6_spec, max_len);
}

/* Append one training or evaluation window. */
static gr_status
l6_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	return gr_ablate_add_window(&l6_spec, tb, seq, start, end, last_only, err);
}

/* Append one serving sequence. */
static gr_status
l6_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	return gr_ablate_add_serving(&l6_spec, tb, seq, start, cands, n_cands, err);
}

const gr_layout gr_layout_l6 = {
	.name = "l6",
	.id = GR_LAYOUT_L6,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_NONE,
	.item_head = GR_ITEM_HEAD_TIED,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_USER,
	.window_len = l6_window_len,
	.history_cap = l6_history_cap,
	.positions = l6_positions,
	.add_window = l6_add_window,
	.add_serving = l6_add_serving,
};
