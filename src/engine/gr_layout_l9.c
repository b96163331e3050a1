/*
 * gr_layout_l9.c — L9 (action in both, next item and next action), a Table-2 ablation (LAYOUTS.md §4.7, §5).
 *
 * Token n = s E[i_n] + φ(a_n) + P[n]; h_n predicts i_{n+1} and a_{n+1} from the same state
 * (P2 violated: PC's tokens and targets without its coupler). Candidates rank by the
 * retrieval logit; the action estimate f(h_N) is the same for every candidate
 * (GR_CANDIDATES_USER).
 */
#include "gr_layout_ablate.h"

static const gr_ablate_spec l9_spec = {
	.name = "l9",.input = GR_ABLATE_IN_SAME,.item_target = true,.act_target = GR_ABLATE_ACT_NEXT,
};

/* Interactions of a training window. */
static int
l9_window_len(int max_len)
{
	return gr_ablate_window_len(&l9_spec, max_len);
}

/* Interactions kept when serving. */
static int
l9_history_cap(int max_len)
{
	return gr_ablate_history_cap(&l9_spec, max_len);
}

/* Learned positions needed. */
static int
l9_positions(int max_len)
{
	return gr_ablate_positions(&l9_spec, max_len);
}

/* Append one training or evaluation window. */
static gr_status
l9_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	return gr_ablate_add_window(&l9_spec, tb, seq, start, end, last_only, err);
}

/* Append one serving sequence. */
static gr_status
l9_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	return gr_ablate_add_serving(&l9_spec, tb, seq, start, cands, n_cands, err);
}

const gr_layout gr_layout_l9 = {
	.name = "l9",
	.id = GR_LAYOUT_L9,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_TOKEN,
	.item_head = GR_ITEM_HEAD_TIED,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_USER,
	.window_len = l9_window_len,
	.history_cap = l9_history_cap,
	.positions = l9_positions,
	.add_window = l9_add_window,
	.add_serving = l9_add_serving,
};
