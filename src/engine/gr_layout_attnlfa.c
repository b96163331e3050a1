/*
 * gr_layout_attnlfa.c — AttnLFA, attention-based late fusion of actions (LAYOUTS.md §4.5),
 * and the token builder it shares with AttnMVP (gr_layout_attnmvp.c).
 *
 * Token n = s E[i_n] + P[n]: no action enters the trunk's input. The token of interaction n
 * carries its own action a_n in its action slot, which becomes row n of the action stream
 * A = φ(a) (GR_ACTION_INPUT_POOLED); after the trunk and its final LayerNorm one multi-head
 * attention layer pools A strict-causally (q_n, k_j from h, values from A_j, j < n only) into
 * p_n, and the action head reads [h_n ; p_n] (GR_ACTION_HEAD_POOLED). a_n is the target at
 * every position n (dense supervision, the spec's first [D] option, as LAC does), and a_n is
 * only ever a value for queries after n, so no label leaks (P3); a_n is predicted from a
 * state that contains i_n (P2).
 *
 * Choices the spec leaves open [D], made here:
 *  - the empty visible set (n = 1, or a cold-start candidate) pools to p = 0 before the
 *    output projection (the attention op's convention: no key, output 0), so p_1 = b_o;
 *    no learned sink: it would be the only parameter seen by one position only;
 *  - softmax pooling (the GPT-2 trunk's attention op, reused with the strict mask), with
 *    n_head heads of d / n_head; the HSTU SiLU form is left to the HSTU trunk;
 *  - no bias on q, k, v (the key bias cancels in the softmax, the value bias is a constant
 *    the output bias already carries); the output projection has one;
 *  - no hand-crafted features f_hand (genrec has none to offer);
 *  - the optional tied next-item head on h_n is trained jointly (w_item, as for LAC) so the
 *    layout can also retrieve and report HR/NDCG; its query ignores actions (the trunk sees
 *    items only), which is what the spec describes;
 *  - candidates are packed after the history at position N (0-based), block-causal in the
 *    trunk, and pool over the whole history (§6.2), never over each other or themselves.
 */
#include "gr_layout.h"

/* A window spans max_len tokens; the last one carries the evaluated item. */
int
gr_layout_stream_window_len(int max_len)
{
	return max_len;
}

/* Serving keeps max_len - 1 interactions so candidates take a trained position. */
int
gr_layout_stream_history_cap(int max_len)
{
	return max_len - 1;
}

/* One position per token of a window. */
int
gr_layout_stream_positions(int max_len)
{
	return max_len;
}

/* Append tokens i_n carrying their own action a_n, with targets a_n and i_{n+1}. */
gr_status
gr_layout_stream_add_window(gr_tokens *tb, const gr_seq_view *seq, int start, int end,
							bool last_only, gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	for (int n = start; n < end; n++)
	{
		int			tok = gr_tokens_add(tb, seq->items[n], n - start, true, gr_seq_action(seq, n));

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

/* Append the history (with its actions) and one action-less candidate token per candidate,
 * all at the next position. */
gr_status
gr_layout_stream_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start,
							 const int32_t *cands, int n_cands, gr_error *err)
{
	GR_TRY(gr_tokens_begin_seq(tb, err));
	int			tok = -1;

	for (int n = start; n < seq->n; n++)
	{
		if ((tok = gr_tokens_add(tb, seq->items[n], n - start, true, gr_seq_action(seq, n))) < 0)
			return gr_layout_full(err);
		gr_layout_set_time(tb, tok, seq, n, n);
	}
	if (tok >= 0 && !gr_tokens_add_item_row(tb, tok, 0, -1))
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

const gr_layout gr_layout_attnlfa = {
	.name = "attnlfa",
	.id = GR_LAYOUT_ATTNLFA,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_POOLED,
	.action_head = GR_ACTION_HEAD_POOLED,
	.candidates = GR_CANDIDATES_PACKED,
	.window_len = gr_layout_stream_window_len,
	.history_cap = gr_layout_stream_history_cap,
	.positions = gr_layout_stream_positions,
	.add_window = gr_layout_stream_add_window,
	.add_serving = gr_layout_stream_add_serving,
};
