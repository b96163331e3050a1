/*
 * gr_layout.h — token layouts (LAYOUTS.md §4): each layout is one file that turns a user
 * history into token metadata (gr_tokens) for training, evaluation and serving. Nothing
 * outside the layout files knows which interaction lands in which token.
 */
#ifndef GR_LAYOUT_H
#define GR_LAYOUT_H

#include "gr_ops.h"
#include "gr_tokens.h"

typedef enum gr_layout_id
{
	GR_LAYOUT_ITEM = 0,			/* L0: item-only (SASRec-style) */
	GR_LAYOUT_INT = 1,			/* interleaved item and action tokens (HSTU-style) */
	GR_LAYOUT_LAC = 2,			/* lagged action conditioning */
	GR_LAYOUT_PC = 3,			/* patched conditioning (coupler head) */
	GR_LAYOUT_ATTNLFA = 4,		/* attention-based late fusion of actions (pooling head) */
	GR_LAYOUT_ATTNMVP = 5,		/* attention-based mixed value pooling (action values in
								 * every attention layer) */
	/* the Table-2 ablations of LAYOUTS.md §4.7 (gr_layout_l2.c … gr_layout_l9.c) */
	GR_LAYOUT_L2 = 6,
	GR_LAYOUT_L3 = 7,
	GR_LAYOUT_L4 = 8,
	GR_LAYOUT_L5 = 9,
	GR_LAYOUT_L6 = 10,
	GR_LAYOUT_L7 = 11,
	GR_LAYOUT_L9 = 12,
	GR_LAYOUT_COUNT
} gr_layout_id;

/* One user's history: dense item ids (0 = unknown item), normalised actions and times. */
typedef struct gr_seq_view
{
	const int32_t *items;
	const float *actions;		/* [n * K], NaN = missing; NULL when K = 0 */
	int			n;
	int			n_actions;		/* K */
	const int64_t *times;		/* [n] in the time column's unit; NULL = all 0 */
	bool		has_now;		/* serving: now is the request time */
	int64_t		now;			/* the request time (serving), when has_now */
} gr_seq_view;

/*
 * What a layout needs of the computation, declared by behaviour. The model's tensors, the
 * heads and serving follow from these; nothing else asks which layout it is.
 */

/* Where a token's action slot enters the model. */
typedef enum gr_action_input
{
	GR_ACTION_INPUT_NONE = 0,	/* no action reaches the model */
	GR_ACTION_INPUT_TOKEN,		/* φ(a) is added to the token's input vector */
	/*
	 * φ(a_j) of each token is its own stream A [N, d], never added to the input; every
	 * attention layer of the trunk reads A W_va^l as a second value stream at the strict keys
	 * (k < q) and the trunk's attention itself is strict-causal (AttnMVP, LAYOUTS.md §4.6,
	 * primary reconstruction: O_n = sum_{j<n} P_nj (V_I,j + V_A,j)). The token of
	 * interaction j carries a_j; it reaches only queries after j.
	 */
	GR_ACTION_INPUT_VALUES,
	/*
	 * φ(a_j) of each token is its own stream A [N, d] that only the action head's pooling
	 * reads (GR_ACTION_HEAD_POOLED); the trunk sees items only (AttnLFA, §4.5).
	 */
	GR_ACTION_INPUT_POOLED,
} gr_action_input;

/* Whether the tied item head predicts the next item (and so the model retrieves). */
typedef enum gr_item_head
{
	GR_ITEM_HEAD_TIED = 0,		/* z_v = <h, E[v]>: next-item targets, retrieval, logits */
	GR_ITEM_HEAD_NONE,			/* no item target: no retrieval and no retrieval logit */
} gr_item_head;

/* What the action head reads (its input width follows: gr_layout_head_inputs). */
typedef enum gr_action_head
{
	GR_ACTION_HEAD_NONE = 0,	/* no action head: a candidate's score is its retrieval logit */
	GR_ACTION_HEAD_STATE,		/* an MLP over h of the row's token */
	GR_ACTION_HEAD_COUPLER,		/* an MLP over [h ; E[coupler item]] (PC) */
	/*
	 * An MLP over [h_n ; p_n], p_n = W_o sum_{j<n} softmax_j(q_n.k_j) W_v A_j with
	 * q = W_q h, k = W_k h: one multi-head attention layer after the trunk (and its final
	 * LayerNorm) pooling the action stream strict-causally (AttnLFA, §4.5); a candidate
	 * pools over the whole history.
	 */
	GR_ACTION_HEAD_POOLED,
} gr_action_head;

/* How serving scores C candidates. */
typedef enum gr_candidates
{
	GR_CANDIDATES_LOGIT = 0,	/* retrieval logit <h_N, E[c]> (no action head) */
	GR_CANDIDATES_PACKED,		/* candidate tokens after the history, block-causal; an empty
								 * history is a cold start */
	GR_CANDIDATES_COUPLED,		/* the history once, then the coupler per candidate */
	/*
	 * No candidate-specific action score (the layout predicts a_{n+1} without i_{n+1}, P2
	 * violated): the history once, and the action head at its last token gives the
	 * user-level estimate f(h_N), the same for every candidate; candidates rank by the
	 * retrieval logit where the layout has an item head.
	 */
	GR_CANDIDATES_USER,
} gr_candidates;

typedef struct gr_layout
{
	const char *name;
	gr_layout_id id;
	int			tokens_per_interaction;
	gr_action_input action_input;
	gr_item_head item_head;
	gr_action_head action_head;
	gr_candidates candidates;

	/* interactions spanned by one training window, for max_len */
	int			(*window_len) (int max_len);
	/* interactions of history kept when serving, for max_len */
	int			(*history_cap) (int max_len);
	/* learned positions needed (the longest window's tokens), for max_len */
	int			(*positions) (int max_len);

	/*
	 * Append one sequence for the interactions [start, end) of seq with their targets; when
	 * last_only, only the targets of interaction end - 1 (evaluation). Token positions start
	 * at 0 for interaction start.
	 */
	gr_status	(*add_window) (gr_tokens *tb, const gr_seq_view *seq, int start, int end,
							   bool last_only, gr_error *err);

	/*
	 * Append one sequence for serving: the history [start, seq->n), one item read-out row
	 * (the retrieval query; none when the history is empty), and one action read-out row per
	 * candidate (dense ids, 0 = unknown item), in candidate order.
	 */
	gr_status	(*add_serving) (gr_tokens *tb, const gr_seq_view *seq, int start,
								const int32_t *cands, int n_cands, gr_error *err);
} gr_layout;

extern const gr_layout gr_layout_item;
extern const gr_layout gr_layout_int;
extern const gr_layout gr_layout_lac;
extern const gr_layout gr_layout_pc;
extern const gr_layout gr_layout_attnlfa;
extern const gr_layout gr_layout_attnmvp;
extern const gr_layout gr_layout_l2;
extern const gr_layout gr_layout_l3;
extern const gr_layout gr_layout_l4;
extern const gr_layout gr_layout_l5;
extern const gr_layout gr_layout_l6;
extern const gr_layout gr_layout_l7;
extern const gr_layout gr_layout_l9;

/* Layout by id, or NULL. */
const gr_layout *gr_layout_by_id(int id);

/* Layout by name ("item", "int", "lac", "pc", "attnlfa", "attnmvp", "l2" … "l9"; the
 * aliases "l0" = item, "l8" = lac and "l10" = pc of Table 2), or NULL. */
const gr_layout *gr_layout_by_name(const char *name);

/* The names of the layouts, comma separated, into buf (for messages); with packing_only,
 * only those that pack candidates (and so score cold starts). */
void		gr_layout_list(char *buf, size_t size, bool packing_only);

/* Whether the layout's tokens carry action values into the model (the action encoder). */
bool		gr_layout_reads_actions(const gr_layout *layout);

/* Whether φ(a) is kept as a separate action stream A [N, d] rather than added to the
 * tokens' input (VALUES, POOLED). */
bool		gr_layout_action_stream(const gr_layout *layout);

/* The mask of the trunk's attention: strict-causal when action values join it (VALUES),
 * else causal (block-causal over packed candidates). */
gr_attn_mask gr_layout_trunk_mask(const gr_layout *layout);

/* Whether the action head pools the action stream after the trunk (POOLED). */
bool		gr_layout_pools_actions(const gr_layout *layout);

/* Whether the layout needs action columns at all (as input or as targets). */
bool		gr_layout_needs_actions(const gr_layout *layout);

/* Whether the model has an action head (otherwise candidates score by retrieval logit). */
bool		gr_layout_has_action_head(const gr_layout *layout);

/* Whether the tied item head predicts the next item: retrieval, logits, HR / NDCG. */
bool		gr_layout_has_item_head(const gr_layout *layout);

/* Whether serving's action prediction depends on the candidate (an action head that reads
 * the candidate: packed or coupled); false for GR_CANDIDATES_USER and without a head. */
bool		gr_layout_candidate_actions(const gr_layout *layout);

/* Width of the action head's input in multiples of d_model (0 without an action head). */
int			gr_layout_head_inputs(const gr_layout *layout);

/* Whether serving packs candidate tokens after the history (and so scores a user without
 * history as a cold start). */
bool		gr_layout_packs_candidates(const gr_layout *layout);

/* Actions of interaction n of seq (NULL when K = 0). */
static inline const float *
gr_seq_action(const gr_seq_view *seq, int n)
{
	return seq->actions ? seq->actions + (size_t) n * seq->n_actions : NULL;
}

/*
 * Time of interaction n of seq: times[n] inside the history; at or past its end (the next
 * interaction, as serving's candidates and retrieval query are) the request time when
 * given, else the last interaction's (gap 0). Without times, 0.
 */
static inline int64_t
gr_seq_time(const gr_seq_view *seq, int n)
{
	if (seq->times == NULL)
		return 0;
	if (n < seq->n)
		return seq->times[n < 0 ? 0 : n];
	if (seq->has_now)
		return seq->now;
	return seq->n > 0 ? seq->times[seq->n - 1] : 0;
}

/* Set token tok's times for a layout: key at interaction key_n, query at query_n. */
static inline void
gr_layout_set_time(gr_tokens *tb, int tok, const gr_seq_view *seq, int key_n, int query_n)
{
	gr_tokens_set_time(tb, tok, gr_seq_time(seq, key_n), gr_seq_time(seq, query_n));
}

/*
 * The token builder of the action-stream layouts (AttnLFA, AttnMVP; gr_layout_attnlfa.c):
 * item tokens carrying their own action a_n in the stream, targets a_n and i_{n+1}; serving
 * packs action-less candidates at the next position. The max_len rules are LAC's.
 */
gr_status	gr_layout_stream_add_window(gr_tokens *tb, const gr_seq_view *seq, int start,
										int end, bool last_only, gr_error *err);
gr_status	gr_layout_stream_add_serving(gr_tokens *tb, const gr_seq_view *seq, int start,
										 const int32_t *cands, int n_cands, gr_error *err);
int			gr_layout_stream_window_len(int max_len);
int			gr_layout_stream_history_cap(int max_len);
int			gr_layout_stream_positions(int max_len);

/* Fail with a capacity error (shared by the layout files). */
gr_status	gr_layout_full(gr_error *err);

#endif							/* GR_LAYOUT_H */
