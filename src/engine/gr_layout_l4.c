/*
 * gr_layout_l4.c — L4 (action only in output, same step), a Table-2 ablation (LAYOUTS.md §4.7, §5).
 *
 * Token n = s E[i_n] + P[n]; h_n predicts a_n (action given item: P2 holds). No item target,
 * so no retrieval. Candidates are packed after the history as s E[c] + P[N] (block-causal)
 * and each reads its own state: a candidate-specific action score; an empty history is a
 * cold start.
 */
#include "gr_layout_ablate.h"

static const gr_ablate_spec l4_spec = {
	.name = "l4",.input = GR_ABLATE_IN_NONE,.item_target = false,.act_target = GR_ABLATE_ACT_SAME,
};

/* Interactions of a training window. */
static int
l4_window_len(int max_len)
{
	return gr_ablate_window_len(&l4_spec, max_len);
}

/* Interactions kept when serving. */
static int
l4_history_cap(int max_len)
{
	return gr_ablate_history_cap(&l4_spec, max_len);
}

/* Learned positions needed. */
static int
l4_positions(int max_len)
{
	return gr_ablate_positions(&l4_spec, max_len);
}

/* Append one training or evaluation window. */
static gr_status
l4_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end, bool last_only,
			  gr_error *err)
{
	return gr_ablate_add_window(&l4_spec, tb, seq, start, end, last_only, err);
}

/* Append one serving sequence. */
static gr_status
l4_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start, const int32_t *cands,
			   int n_cands, gr_error *err)
{
	return gr_ablate_add_serving(&l4_spec, tb, seq, start, cands, n_cands, err);
}

const gr_layout gr_layout_l4 = {
	.name = "l4",
	.id = GR_LAYOUT_L4,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_NONE,
	.item_head = GR_ITEM_HEAD_NONE,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_PACKED,
	.window_len = l4_window_len,
	.history_cap = l4_history_cap,
	.positions = l4_positions,
	.add_window = l4_add_window,
	.add_serving = l4_add_serving,
};
