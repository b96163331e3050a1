/*
 * gr_serve.h — inference: one-pass scoring of C candidates (block-causal packing for LAC and
 * INT, the coupler GEMM for PC, retrieval logits for item-only) and top-k retrieval over the
 * whole catalogue (LAYOUTS.md §6), for one user or for a batch of users in one pass.
 *
 * Histories arrive in external ids and raw action values, oldest first; the most recent
 * history_cap(max_len) interactions are used. A session holds reusable buffers; it belongs to
 * one thread at a time.
 *
 * Batches. gr_score_batch and gr_recommend_batch put each request's packed sequence into one
 * token batch, so the trunk, the final LayerNorm and the heads run once over all of them
 * (attention never crosses sequences; every other op is row-wise or a GEMM over the rows).
 * gr_score and gr_recommend are batches of one. A request's results equal those of a batch of
 * one up to the GEMM kernel's rounding: OpenBLAS's FMA kernels round a taller matrix
 * differently in the last bits (test_serve_batch: within 1e-5, typically a few ulps); a
 * request alone in its batch gets exactly gr_score's bits.
 */
#ifndef GR_SERVE_H
#define GR_SERVE_H

#include "gr_forward.h"
#include "gr_ivf.h"

/* A user's history in external ids and raw action values. */
typedef struct gr_history
{
	const int64_t *items;
	const double *actions;		/* [n * K] raw values, NaN = missing; NULL = all missing */
	int			n;
	const int64_t *times;		/* [n] in the model's time unit, ascending; NULL = none */
	bool		has_now;		/* now is the request time; else the last history time */
	int64_t		now;
} gr_history;

/* What a pass needs room for (gr_serve.c sizes it per batch). */
typedef struct gr_serve_caps
{
	int			tokens;
	int			seqs;
	int			rows;			/* item rows and action rows, each */
	int			excl;			/* exclusion entries / candidate columns at once */
	int			cands;			/* dense candidate ids of the whole batch */
	int			vals;			/* host floats: action predictions, top-k scores */
	int			cols;			/* host ints: exclusions, top-k indices */
} gr_serve_caps;

typedef struct gr_session
{
	const gr_model *model;
	gr_tokens	tb;
	gr_acts    *acts;
	gr_serve_caps cap;			/* what the buffers below hold; zero before first use */
	int32_t    *dense;			/* host scratch: one history's dense ids */
	float	   *norm;			/* host scratch: one history's normalised actions */
	int32_t    *cand;			/* host scratch: the batch's dense candidate ids */
	int32_t    *cols;			/* host scratch: exclusions, top-k indices */
	float	   *vals;			/* host scratch: action predictions, top-k scores */
	uint8_t    *seen;			/* host scratch: one flag per catalogue item */
	int32_t    *req_rows;		/* per request: first action row, item row (-1 none) */
	const gr_ivf *ivf;			/* retrieval index (the caller's), or NULL: exact */
	int			ivf_probes;		/* lists an indexed retrieval scans; 0 = exact */
	gr_ivf_scratch ivf_scratch;
} gr_session;

/* Create a session for a model; buffers grow on demand. */
gr_status	gr_session_create(const gr_model *model, gr_session **out, gr_error *err);

/*
 * Serve gr_recommend / gr_recommend_batch through an IVF index built over this model's item
 * embeddings (gr_ivf_build), scanning probes lists per request: scores stay exact logits,
 * items outside the probed lists can be missed. NULL or probes 0 restores exact retrieval.
 * The index must outlive its use by the session. Scoring (gr_score) never uses it.
 */
gr_status	gr_session_use_index(gr_session *s, const gr_ivf *ivf, int probes, gr_error *err);

/* Free a session; NULL is ignored. */
void		gr_session_free(gr_session *s);

typedef struct gr_scores
{
	float	   *action;			/* [C * K] predicted action per candidate, raw scale
								 * (probability for binary columns); NaN without an
								 * action head; for GR_CANDIDATES_USER layouts the
								 * user-level estimate f(h_N), equal for every candidate
								 * (gr_layout_candidate_actions); NULL to skip */
	float	   *logit;			/* [C] retrieval logit <h_query, E[c]>; NaN for unknown
								 * items, an empty history or a layout without an item
								 * head; NULL to skip */
	uint8_t    *known;			/* [C] 1 if the model knows the item; NULL to skip */
} gr_scores;

/* Score C candidates for one history in one pass. */
gr_status	gr_score(gr_session *s, const gr_history *h, const int64_t *cands, int n_cands,
					 gr_scores *out, gr_error *err);

/* Top k items for one history, best first; fills items/scores with up to k entries and
 * *n_out with how many. exclude_seen drops every item of the history. A layout without an
 * item head (l4, l5, l7) cannot retrieve: GR_ERR_INVALID_ARGUMENT. */
gr_status	gr_recommend(gr_session *s, const gr_history *h, int k, bool exclude_seen,
						 int64_t *items, float *scores, int *n_out, gr_error *err);

/* One user's scoring request in a batch. */
typedef struct gr_score_request
{
	gr_history	h;
	const int64_t *cands;
	int			n_cands;
	gr_scores	out;
	gr_status	status;			/* set by gr_score_batch: GR_OK or why this one failed */
	gr_error	err;
} gr_score_request;

/*
 * Score n requests in one pass. A request that cannot be scored (invalid arguments, an empty
 * history where the layout needs one) gets its own status and error and is left out of the
 * pass; the return value and err report failures of the whole pass (memory, device), after
 * which no request's outputs are valid.
 */
gr_status	gr_score_batch(gr_session *s, gr_score_request *reqs, int n, gr_error *err);

/* One user's retrieval request in a batch. */
typedef struct gr_recommend_request
{
	gr_history	h;
	bool		exclude_seen;
	int64_t    *items;			/* [k] out */
	float	   *scores;			/* [k] out */
	int			n_out;
	gr_status	status;
	gr_error	err;
} gr_recommend_request;

/* Top k items for each of n requests in one pass (statuses as gr_score_batch). */
gr_status	gr_recommend_batch(gr_session *s, int k, gr_recommend_request *reqs, int n,
							   gr_error *err);

#endif							/* GR_SERVE_H */
