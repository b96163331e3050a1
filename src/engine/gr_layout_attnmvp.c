/*
 * gr_layout_attnmvp.c — AttnMVP, attention-based mixed value pooling (LAYOUTS.md §4.6,
 * primary reconstruction).
 *
 * The tokens are AttnLFA's (gr_layout_attnlfa.c): token n = s E[i_n] + P[n] carrying its own
 * action a_n in the action stream A = φ(a), targets a_n at every position and i_{n+1}. What
 * differs is declared by behaviour: GR_ACTION_INPUT_VALUES makes every attention layer l of
 * the trunk strict-causal and mix A W_va^l into its values,
 *   O_n = sum_{j<n} softmax_{j<n}(q_n.k_j) (V_I,j + V_A,j),
 * and the action head is a plain MLP over h_n (GR_ACTION_HEAD_STATE). By induction over the
 * layers h_j holds only actions with index < j, so a_n never reaches its own prediction (P3).
 *
 * Choices the spec leaves open [D], made here:
 *  - softmax attention over j < n (the primary reconstruction) with the convention O = 0 for
 *    the empty set (n = 1: the first token is its embedding through residual and MLP only),
 *    no learned sink; the HSTU trunk's SiLU form gives 0 there naturally;
 *  - W_va^l is [d, d] per layer without a bias (a value bias is a constant the projection
 *    bias already carries), the stream A is shared across layers and gets no dropout;
 *  - the optional next-item head on h_n is trained jointly, as for AttnLFA; retrieval from h_N
 *    sees a_1..a_{N-1} (a_N would need a token after N, the LAC trade-off of Q5 (a));
 *  - candidates are packed at position N, see the whole history's mixed values and, under
 *    the strict mask, not themselves: exactly the context a training position has.
 */
#include "gr_layout.h"

const gr_layout gr_layout_attnmvp = {
	.name = "attnmvp",
	.id = GR_LAYOUT_ATTNMVP,
	.tokens_per_interaction = 1,
	.action_input = GR_ACTION_INPUT_VALUES,
	.action_head = GR_ACTION_HEAD_STATE,
	.candidates = GR_CANDIDATES_PACKED,
	.window_len = gr_layout_stream_window_len,
	.history_cap = gr_layout_stream_history_cap,
	.positions = gr_layout_stream_positions,
	.add_window = gr_layout_stream_add_window,
	.add_serving = gr_layout_stream_add_serving,
};
