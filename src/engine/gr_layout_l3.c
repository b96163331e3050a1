/*
 * gr_layout_l3.c — L3 (action only in input, lagged), a Table-2 ablation (LAYOUTS.md §4.7, §5).
 *
 * Token n = s E[i_n] + φ(a_{n-1}) + P[n] (φ_null for the first interaction, the real a_{start-1}
 * for a window that starts later), h_n predicts i_{n+1}: LAC's input without its action
 * target. No action head: a candidate's score is its retrieval logit.
 */
#include "gr_layout_ablate.h"

static const gr_ablate_spec l3_spec = {
	.name = "l3",.input = GR_ABLATE_IN_LAGGED,.item_target = true,.act_target = GR_ABLATE_ACT_NONE,
};

/* Interactions of a training window. */
static int
l3_window_len(int max_len)
{
	return gr_ablate_window_len(&l3_spec, max_len);
}

/* Interactions kept when serving. */
static int
l3_history_cap(int max_len)
{
	return gr_ablate_history_cap(&l3_spec, max_len);
}

/* Learned positions needed. */
static int
l3_positions(int max_len)
{
	return gr_ablate_positions(&l3_spec, max_len);
}

/* Append one training or evaluation window. */
static gr_status
l3_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	return gr_ablate_add_window(&l3_spec, tb, seq, start, end, last_only, err);
}

/* Append one serving sequence. */
static gr_status
l3_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	return gr_ablate_add_serving(&l3_spec, tb, seq, start, cands, n_cands, err);
}

const gr_layout gr_layout_l3 = {
	.name = "l3",
	.id = GR_LAYOUT_L3,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.item_head = GR_ITEM_HEAD_TIED,
	.action_head = GR_ACTION_HEAD_NONE,
	.candidates = GR_CANDIDATES_LOGIT,
	.window_len = l3_window_len,
	.history_cap = l3_history_cap,
	.positions = l3_positions,
	.add_window = l3_add_window,
	.add_serving = l3_add_serving,
};
