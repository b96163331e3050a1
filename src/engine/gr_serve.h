/*
 * gr_serve.h — inference for one user: one-pass scoring of C candidates (block-causal packing
 * for LAC and INT, the coupler GEMM for PC, retrieval logits for item-only) and top-k
 * retrieval over the whole catalogue (LAYOUTS.md §6).
 *
 * Histories arrive in external ids and raw action values, oldest first; the most recent
 * history_cap(max_len) interactions are used. A session holds reusable buffers; it belongs to
 * one thread at a time.
 */
#ifndef GR_SERVE_H
#define GR_SERVE_H

#include "gr_forward.h"

/* A user's history in external ids and raw action values. */
typedef struct gr_history
{
	const int64_t *items;
	const double *actions;		/* [n * K] raw values, NaN = missing; NULL = all missing */
	int			n;
} gr_history;

typedef struct gr_session
{
	const gr_model *model;
	gr_tokens	tb;
	gr_acts    *acts;
	int			cap_cands;
	int32_t    *dense;			/* host scratch: dense history ids, then candidates */
	float	   *norm;			/* host scratch: normalised history actions */
	int32_t    *cols;			/* host scratch: candidate columns / exclusions */
	float	   *vals;			/* host scratch */
	uint8_t    *seen;			/* host scratch: one flag per catalogue item */
	int			cap_hist;
} gr_session;

/* Create a session for a model; buffers grow on demand. */
gr_status	gr_session_create(const gr_model *model, gr_session **out, gr_error *err);

/* Free a session; NULL is ignored. */
void		gr_session_free(gr_session *s);

typedef struct gr_scores
{
	float	   *action;			/* [C * K] predicted action per candidate, raw scale
								 * (probability for binary columns); NULL to skip */
	float	   *logit;			/* [C] retrieval logit <h_query, E[c]>; NaN for unknown
								 * items or an empty history; NULL to skip */
	uint8_t    *known;			/* [C] 1 if the model knows the item; NULL to skip */
} gr_scores;

/* Score C candidates for one history in one pass. */
gr_status	gr_score(gr_session *s, const gr_history *h, const int64_t *cands, int n_cands,
					 gr_scores *out, gr_error *err);

/* Top k items for one history, best first; fills items/scores with up to k entries and
 * *n_out with how many. exclude_seen drops every item of the history. */
gr_status	gr_recommend(gr_session *s, const gr_history *h, int k, bool exclude_seen,
						 int64_t *items, float *scores, int *n_out, gr_error *err);

#endif							/* GR_SERVE_H */
