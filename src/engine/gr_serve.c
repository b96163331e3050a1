/*
 * gr_serve.c — candidate scoring and top-k retrieval for one user (see gr_serve.h).
 */
#include "gr_serve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GR_MAX_CANDIDATES 1000000

/* Create an empty session; buffers are sized on first use. */
gr_status
gr_session_create(const gr_model *model, gr_session **out, gr_error *err)
{
	gr_session *s = gr_calloc(model->env, 1, sizeof(gr_session));

	*out = NULL;
	if (s == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a session");
	s->model = model;
	*out = s;
	return GR_OK;
}

/* Release a session's buffers. */
static void
session_release(gr_session *s)
{
	const gr_env *env = s->model->env;

	gr_tokens_free(&s->tb);
	gr_acts_free(s->acts);
	s->acts = NULL;
	gr_free(env, s->dense);
	gr_free(env, s->norm);
	gr_free(env, s->cols);
	gr_free(env, s->vals);
	gr_free(env, s->seen);
	s->seen = NULL;
	s->dense = s->cols = NULL;
	s->norm = s->vals = NULL;
	s->cap_cands = s->cap_hist = 0;
}

/* Free a session. */
void
gr_session_free(gr_session *s)
{
	if (s == NULL)
		return;
	session_release(s);
	gr_free(s->model->env, s);
}

/* Round up to a power of two, at least 64. */
static int
round_cap(int n)
{
	int			c = 64;

	while (c < n)
		c *= 2;
	return c;
}

/* Make sure the session can hold the history cap and n_cands candidates. */
static gr_status
session_reserve(gr_session *s, int n_cands, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_env *env = m->env;
	int			hist = m->layout->history_cap(m->cfg.max_len) + 1;
	int			K = m->cfg.n_actions;

	if (s->acts != NULL && n_cands <= s->cap_cands)
		return GR_OK;
	session_release(s);
	int			C = round_cap(n_cands);
	int			tokens = m->layout->tokens_per_interaction * hist + C;
	int			rows = C + 1;
	int			big = GR_MAX(C, GR_MAX(hist, m->cfg.n_items)) + 1;

	GR_TRY(gr_tokens_init(&s->tb, env, K, m->cfg.n_buckets, tokens, 1, rows, err));
	GR_TRY(gr_acts_create(m, tokens, 1, rows, big, false, &s->acts, err));
	s->dense = gr_alloc(env, sizeof(int32_t) * (size_t) (hist + C));
	s->norm = gr_alloc(env, sizeof(float) * (size_t) hist * (K > 0 ? K : 1));
	s->cols = gr_alloc(env, sizeof(int32_t) * (size_t) big);
	s->vals = gr_alloc(env, sizeof(float) * (size_t) big * (K > 0 ? K : 1));
	s->seen = gr_alloc(env, (size_t) m->cfg.n_items);
	if (!s->dense || !s->norm || !s->cols || !s->vals || !s->seen)
	{
		session_release(s);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a scoring session");
	}
	s->cap_cands = C;
	s->cap_hist = hist;
	return GR_OK;
}

/*
 * Map the used part of a history into the session's scratch: returns a view over
 * [first, n) with first = one before the kept window (LAC reads the lagged action), and the
 * start of the window inside that view.
 */
static gr_seq_view
map_history(gr_session *s, const gr_history *h, int *start_in_view)
{
	const gr_model *m = s->model;
	int			K = m->cfg.n_actions;
	int			keep = GR_MIN(h->n, m->layout->history_cap(m->cfg.max_len));
	int			start = h->n - keep;
	int			first = GR_MAX(0, start - 1);
	gr_seq_view v;

	for (int i = first; i < h->n; i++)
	{
		s->dense[i - first] = gr_model_item_dense(m, h->items[i]);
		for (int k = 0; k < K; k++)
			s->norm[(size_t) (i - first) * K + k] = h->actions ?
				gr_model_normalise_action(m, k, h->actions[(size_t) i * K + k]) : NAN;
	}
	v.items = s->dense;
	v.actions = K > 0 ? s->norm : NULL;
	v.n = h->n - first;
	v.n_actions = K;
	*start_in_view = start - first;
	return v;
}

/* Check the common arguments of scoring and retrieval. */
static gr_status
check_history(const gr_history *h, gr_error *err)
{
	if (h == NULL || h->n < 0 || (h->n > 0 && h->items == NULL))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "invalid history");
	return GR_OK;
}

/* Score candidates: action predictions and retrieval logits in one pass. */
gr_status
gr_score(gr_session *s, const gr_history *h, const int64_t *cands, int n_cands,
		 gr_scores *out, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_ops *ops = m->ops;
	int			K = m->cfg.n_actions;
	int			start;

	GR_TRY(check_history(h, err));
	if (n_cands < 0 || n_cands > GR_MAX_CANDIDATES || (n_cands > 0 && cands == NULL))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "candidates must number 0..%d",
					   GR_MAX_CANDIDATES);
	GR_TRY(session_reserve(s, n_cands, err));
	gr_seq_view seq = map_history(s, h, &start);
	int32_t    *cd = s->dense + seq.n;

	for (int c = 0; c < n_cands; c++)
	{
		cd[c] = gr_model_item_dense(m, cands[c]);
		if (out->known)
			out->known[c] = cd[c] > 0;
	}
	gr_tokens_reset(&s->tb);
	GR_TRY(m->layout->add_serving(&s->tb, &seq, start, cd, n_cands, err));
	GR_TRY(gr_model_forward(m, s->acts, &s->tb, NULL, err));

	if (out->action && K > 0 && gr_layout_has_action_head(m->layout) && n_cands > 0)
	{
		ops->download(ops->ctx, s->vals, s->acts->act_pred, sizeof(float) * (size_t) n_cands * K);
		for (int c = 0; c < n_cands; c++)
			for (int k = 0; k < K; k++)
			{
				float		z = s->vals[(size_t) c * K + k];

				out->action[(size_t) c * K + k] = m->cfg.action_binary[k] ?
					1.0f / (1.0f + expf(-z)) : (float) gr_model_denormalise_action(m, k, z);
			}
	}
	else if (out->action)
		for (size_t i = 0; i < (size_t) n_cands * K; i++)
			out->action[i] = NAN;

	if (out->logit && n_cands > 0)
	{
		if (s->tb.n_item_rows == 0)
			for (int c = 0; c < n_cands; c++)
				out->logit[c] = NAN;
		else
			gr_model_candidate_logits(m, s->acts, 0, cd, n_cands, out->logit);
	}
	return ops->check(ops->ctx, err);
}

/* Top-k retrieval over the whole catalogue. */
gr_status
gr_recommend(gr_session *s, const gr_history *h, int k, bool exclude_seen, int64_t *items,
			 float *scores, int *n_out, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_ops *ops = m->ops;
	int			V = m->cfg.n_items;
	int			start;

	*n_out = 0;
	GR_TRY(check_history(h, err));
	if (k < 1 || k > V)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "k must be in 1..%d (the catalogue), got %d",
					   V, k);
	if (h->n == 0)
		return gr_fail(err, GR_ERR_EMPTY_HISTORY, "retrieval needs a non-empty history");
	GR_TRY(session_reserve(s, k, err));
	gr_seq_view seq = map_history(s, h, &start);

	gr_tokens_reset(&s->tb);
	GR_TRY(m->layout->add_serving(&s->tb, &seq, start, NULL, 0, err));
	GR_TRY(gr_model_forward(m, s->acts, &s->tb, NULL, err));
	gr_model_item_logits(m, s->acts, 0, 1);

	/* exclusions: every known item of the whole history, sorted and distinct */
	int			n_excl = 0;
	int32_t		off[2] = {0, 0};
	gr_acts    *a = s->acts;

	if (exclude_seen)
	{
		memset(s->seen, 0, (size_t) V);
		for (int i = 0; i < h->n; i++)
		{
			int32_t		dcol = gr_model_item_dense(m, h->items[i]) - 1;

			if (dcol >= 0)
				s->seen[dcol] = 1;
		}
		for (int c = 0; c < V; c++)
			if (s->seen[c])
				s->cols[n_excl++] = c;
	}
	off[1] = n_excl;
	ops->upload(ops->ctx, a->excl_off, off, sizeof(off));
	if (n_excl > 0)
		ops->upload(ops->ctx, a->excl, s->cols, sizeof(int32_t) * n_excl);
	ops->topk(ops->ctx, a->logits, V, a->excl_off, exclude_seen ? a->excl : NULL, 1, V, k,
			  a->topk_idx, a->topk_val);
	int32_t    *idx = s->cols;

	ops->download(ops->ctx, idx, a->topk_idx, sizeof(int32_t) * k);
	ops->download(ops->ctx, scores, a->topk_val, sizeof(float) * k);
	GR_TRY(ops->check(ops->ctx, err));
	for (int i = 0; i < k; i++)
	{
		if (idx[i] < 0)
			break;
		items[i] = m->item_ids[idx[i] + 1];
		(*n_out)++;
	}
	return GR_OK;
}
