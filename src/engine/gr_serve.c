/*
 * gr_serve.c — candidate scoring and top-k retrieval, for one user or a batch (see gr_serve.h).
 *
 * A batch is one token batch with a packed sequence per request, exactly the sequence a
 * request alone would have, so the pass is one gr_model_forward over all of them. The session
 * remembers, per request, where its action rows and its item row begin; candidate read-outs
 * (action predictions, retrieval logits) and retrieval (item logits, top-k with the request's
 * exclusions) are then taken row by row. gr_score and gr_recommend are batches of one.
 */
#include "gr_serve.h"
#include "gr_sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GR_MAX_CANDIDATES 1000000
#define GR_TOPK_ROWS_AT_ONCE 4096	/* bound on rows x k of one top-k call's workspace */

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

/* Serve retrieval through an IVF index with probes lists, or exactly (NULL or probes 0). */
gr_status
gr_session_use_index(gr_session *s, const gr_ivf *ivf, int probes, gr_error *err)
{
	const gr_model *m = s->model;

	if (ivf != NULL && (ivf->n_items != m->cfg.n_items || ivf->d != m->cfg.d_model))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "the index covers %d items of width %d, "
					   "the model %d of width %d", ivf->n_items, ivf->d, m->cfg.n_items,
					   m->cfg.d_model);
	if (probes < 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "probes must be >= 0, got %d", probes);
	if (s->ivf != ivf)
		gr_ivf_scratch_release(m->env, &s->ivf_scratch);
	s->ivf = ivf;
	s->ivf_probes = ivf != NULL ? probes : 0;
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
	gr_free(env, s->cand);
	gr_free(env, s->cols);
	gr_free(env, s->vals);
	gr_free(env, s->seen);
	gr_free(env, s->req_rows);
	s->dense = s->cand = s->cols = s->req_rows = NULL;
	s->norm = s->vals = NULL;
	s->seen = NULL;
	memset(&s->cap, 0, sizeof(s->cap));
}

/* Free a session. */
void
gr_session_free(gr_session *s)
{
	if (s == NULL)
		return;
	session_release(s);
	gr_ivf_scratch_release(s->model->env, &s->ivf_scratch);
	gr_free(s->model->env, s);
}

/* Round up to a power of two, at least 64 (n itself above 2^30). */
static int
round_cap(int n)
{
	int			c = 64;

	if (n > (1 << 30))
		return n;
	while (c < n)
		c *= 2;
	return c;
}

/* Whether every capacity of have covers need. */
static bool
caps_cover(const gr_serve_caps *have, const gr_serve_caps *need)
{
	return need->tokens <= have->tokens && need->seqs <= have->seqs &&
		need->rows <= have->rows && need->excl <= have->excl &&
		need->cands <= have->cands && need->vals <= have->vals && need->cols <= have->cols;
}

/* Make sure the session's buffers hold need (growing keeps what was already there). */
static gr_status
session_reserve(gr_session *s, const gr_serve_caps *need, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_env *env = m->env;
	int			hist = m->layout->history_cap(m->cfg.max_len) + 1;
	int			K = m->cfg.n_actions;
	gr_serve_caps c;

	if (s->acts != NULL && caps_cover(&s->cap, need))
		return GR_OK;
	c.tokens = round_cap(GR_MAX(need->tokens, s->cap.tokens));
	c.seqs = round_cap(GR_MAX(need->seqs, s->cap.seqs));
	c.rows = round_cap(GR_MAX(need->rows, s->cap.rows));
	c.excl = round_cap(GR_MAX(need->excl, s->cap.excl));
	c.cands = round_cap(GR_MAX(need->cands, s->cap.cands));
	c.vals = round_cap(GR_MAX(need->vals, s->cap.vals));
	c.cols = round_cap(GR_MAX(need->cols, s->cap.cols));
	session_release(s);
	GR_TRY(gr_tokens_init(&s->tb, env, K, m->cfg.n_buckets, c.tokens, c.seqs, c.rows, err));
	GR_TRY(gr_acts_create(m, c.tokens, c.seqs, c.rows, c.excl, false, &s->acts, err));
	s->dense = gr_alloc(env, sizeof(int32_t) * (size_t) hist);
	s->norm = gr_alloc(env, sizeof(float) * (size_t) hist * (K > 0 ? K : 1));
	s->cand = gr_alloc(env, sizeof(int32_t) * (size_t) c.cands);
	s->cols = gr_alloc(env, sizeof(int32_t) * (size_t) c.cols);
	s->vals = gr_alloc(env, sizeof(float) * (size_t) c.vals);
	s->seen = gr_alloc(env, (size_t) m->cfg.n_items);
	s->req_rows = gr_alloc(env, sizeof(int32_t) * 2 * (size_t) c.seqs);
	if (!s->dense || !s->norm || !s->cand || !s->cols || !s->vals || !s->seen || !s->req_rows)
	{
		session_release(s);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a scoring session");
	}
	s->cap = c;
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
	gr_seq_view v = {0};

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
	v.times = h->times ? h->times + first : NULL;
	v.has_now = h->has_now;
	v.now = h->now;
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

/* Tokens one request's sequence can take (the layout's serving window plus candidates). */
static int
request_tokens(const gr_model *m, const gr_history *h, int n_cands)
{
	int			hist = GR_MIN(h->n, m->layout->history_cap(m->cfg.max_len)) + 1;

	return m->layout->tokens_per_interaction * hist + n_cands;
}

/*
 * Append one request's sequence; on a refusal (the layout needs a history) the batch is left
 * as it was and the request's status says why. Records the request's first action row and
 * its item row (-1 when the layout read none out, e.g. a cold start).
 */
static gr_status
append_request(gr_session *s, const gr_history *h, const int32_t *cands, int n_cands,
			   int r, gr_error *err)
{
	int			start;
	gr_seq_view seq = map_history(s, h, &start);
	gr_tokens_mark mark = gr_tokens_get_mark(&s->tb);
	gr_status	st = s->model->layout->add_serving(&s->tb, &seq, start, cands, n_cands, err);

	if (st != GR_OK)
	{
		gr_tokens_rewind(&s->tb, &mark);
		return st;
	}
	s->req_rows[2 * r] = mark.n_act_rows;
	s->req_rows[2 * r + 1] = s->tb.n_item_rows > mark.n_item_rows ? mark.n_item_rows : -1;
	return GR_OK;
}

/* Validate one scoring request. */
static gr_status
check_score_request(const gr_score_request *q, gr_error *err)
{
	GR_TRY(check_history(&q->h, err));
	if (q->n_cands < 0 || q->n_cands > GR_MAX_CANDIDATES || (q->n_cands > 0 && q->cands == NULL))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "candidates must number 0..%d",
					   GR_MAX_CANDIDATES);
	return GR_OK;
}

/* Fill one request's outputs from the pass (after the action rows were downloaded). */
static void
score_read_out(gr_session *s, gr_score_request *q, int r, const int32_t *cd)
{
	const gr_model *m = s->model;
	int			K = m->cfg.n_actions;
	int			C = q->n_cands;
	gr_scores  *out = &q->out;

	if (out->known)
		for (int c = 0; c < C; c++)
			out->known[c] = cd[c] > 0;
	if (out->action && K > 0 && gr_layout_has_action_head(m->layout) && C > 0)
	{
		const float *z0 = s->vals + (size_t) s->req_rows[2 * r] * K;

		for (int c = 0; c < C; c++)
			for (int k = 0; k < K; k++)
			{
				float		z = z0[(size_t) c * K + k];

				out->action[(size_t) c * K + k] = m->cfg.action_binary[k] ?
					1.0f / (1.0f + expf(-z)) : (float) gr_model_denormalise_action(m, k, z);
			}
	}
	else if (out->action)
		for (size_t i = 0; i < (size_t) C * K; i++)
			out->action[i] = NAN;
	if (out->logit && C > 0)
	{
		if (s->req_rows[2 * r + 1] < 0)
			for (int c = 0; c < C; c++)
				out->logit[c] = NAN;
		else
			gr_model_candidate_logits(m, s->acts, s->req_rows[2 * r + 1], cd, C, out->logit);
	}
}

/* Score the candidates of n requests: action predictions and retrieval logits in one pass. */
gr_status
gr_score_batch(gr_session *s, gr_score_request *reqs, int n, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_ops *ops = m->ops;
	int			K = m->cfg.n_actions;
	gr_serve_caps need = {.seqs = GR_MAX(n, 1),.rows = 1,.excl = 1,.cands = 1,.vals = 1,.cols = 1};
	int			valid = 0,
				off = 0;

	for (int r = 0; r < n; r++)
	{
		gr_score_request *q = &reqs[r];

		q->status = check_score_request(q, &q->err);
		if (q->status != GR_OK)
			continue;
		valid++;
		need.tokens += request_tokens(m, &q->h, q->n_cands);
		need.rows += q->n_cands + 1;
		need.cands += q->n_cands;
		need.excl = GR_MAX(need.excl, q->n_cands + 1);
	}
	if (valid == 0)
		return GR_OK;
	need.vals = need.cands * (K > 0 ? K : 1) + 1;
	GR_TRY(session_reserve(s, &need, err));
	gr_tokens_reset(&s->tb);
	for (int r = 0; r < n; r++)
	{
		gr_score_request *q = &reqs[r];
		int32_t    *cd = s->cand + off;

		if (q->status != GR_OK)
			continue;
		for (int c = 0; c < q->n_cands; c++)
			cd[c] = gr_model_item_dense(m, q->cands[c]);
		q->status = append_request(s, &q->h, cd, q->n_cands, r, &q->err);
		if (q->status == GR_OK)
			off += q->n_cands;
	}
	if (s->tb.n_seq == 0)
		return GR_OK;
	GR_TRY(gr_model_forward(m, s->acts, &s->tb, NULL, err));
	if (K > 0 && gr_layout_has_action_head(m->layout) && s->tb.n_act_rows > 0)
		ops->download(ops->ctx, s->vals, s->acts->act_pred,
					  sizeof(float) * (size_t) s->tb.n_act_rows * K);
	off = 0;
	for (int r = 0; r < n; r++)
	{
		gr_score_request *q = &reqs[r];

		if (q->status != GR_OK)
			continue;
		score_read_out(s, q, r, s->cand + off);
		off += q->n_cands;
	}
	return ops->check(ops->ctx, err);
}

/* Score candidates for one history: a batch of one. */
gr_status
gr_score(gr_session *s, const gr_history *h, const int64_t *cands, int n_cands,
		 gr_scores *out, gr_error *err)
{
	gr_score_request q = {.cands = cands,.n_cands = n_cands,.out = *out};

	GR_TRY(check_history(h, err));
	q.h = *h;
	GR_TRY(gr_score_batch(s, &q, 1, err));
	if (q.status != GR_OK && err != NULL)
		*err = q.err;
	return q.status;
}

/* The distinct known columns of a history, ascending, into out (marked in s->seen, one pass
 * over the catalogue); returns how many. */
static int
seen_columns(gr_session *s, const gr_history *h, int32_t *out)
{
	const gr_model *m = s->model;
	int			V = m->cfg.n_items,
				n = 0;

	memset(s->seen, 0, (size_t) V);
	for (int i = 0; i < h->n; i++)
	{
		int32_t		c = gr_model_item_dense(m, h->items[i]) - 1;

		if (c >= 0)
			s->seen[c] = 1;
	}
	for (int c = 0; c < V; c++)
		if (s->seen[c])
			out[n++] = c;
	return n;
}

/*
 * The exclusion lists of requests [r0, r0 + cnt) into s->cols (each sorted and distinct) with
 * offsets off[0..cnt]; returns whether any request excludes.
 */
static bool
build_exclusions(gr_session *s, gr_recommend_request *const *rq, int cnt, int32_t *off)
{
	int			total = 0;
	bool		any = false;

	off[0] = 0;
	for (int j = 0; j < cnt; j++)
	{
		const gr_recommend_request *q = rq[j];

		if (q->exclude_seen)
		{
			any = true;
			total += seen_columns(s, &q->h, s->cols + total);
		}
		off[j + 1] = total;
	}
	return any;
}

/* Validate one retrieval request. */
static gr_status
check_recommend_request(const gr_model *m, const gr_recommend_request *q, int k, int V,
						gr_error *err)
{
	GR_TRY(check_history(&q->h, err));
	if (!gr_layout_has_item_head(m->layout))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "layout %s predicts no next item, so it "
					   "cannot retrieve", m->layout->name);
	if (k < 1 || k > V)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "k must be in 1..%d (the catalogue), got %d",
					   V, k);
	if (q->h.n == 0)
		return gr_fail(err, GR_ERR_EMPTY_HISTORY, "retrieval needs a non-empty history");
	return GR_OK;
}

/* Copy one request's top-k columns and scores out as external ids. */
static void
read_out_topk(const gr_model *m, gr_recommend_request *q, const int32_t *cols,
			  const float *vals, int k)
{
	for (int i = 0; i < k; i++)
	{
		if (cols[i] < 0)
			break;
		q->items[i] = m->item_ids[cols[i] + 1];
		q->scores[i] = vals[i];
		q->n_out++;
	}
}

/* Exact retrieval of the forwarded requests: every item's logit, then top-k per request. */
static gr_status
recommend_exact(gr_session *s, gr_recommend_request **rq, int n_rq, int k, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_ops *ops = m->ops;
	int			V = m->cfg.n_items;
	gr_acts    *a = s->acts;
	int			per_call = GR_MIN(a->logit_rows, s->cap.rows / k);
	int32_t    *off = gr_alloc(m->env, sizeof(int32_t) * ((size_t) per_call + 1));
	gr_status	st = GR_OK;

	if (off == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a retrieval batch");
	for (int done = 0; st == GR_OK && done < n_rq; done += per_call)
	{
		int			cnt = GR_MIN(per_call, n_rq - done);
		bool		any = build_exclusions(s, rq + done, cnt, off);

		gr_model_item_logits(m, a, done, cnt);
		ops->upload(ops->ctx, a->excl_off, off, sizeof(int32_t) * ((size_t) cnt + 1));
		if (off[cnt] > 0)
			ops->upload(ops->ctx, a->excl, s->cols, sizeof(int32_t) * (size_t) off[cnt]);
		ops->topk(ops->ctx, a->logits, V, a->excl_off, any ? a->excl : NULL, cnt, V, k,
				  a->topk_idx, a->topk_val);
		ops->download(ops->ctx, s->cols, a->topk_idx, sizeof(int32_t) * (size_t) cnt * k);
		ops->download(ops->ctx, s->vals, a->topk_val, sizeof(float) * (size_t) cnt * k);
		st = ops->check(ops->ctx, err);
		for (int j = 0; st == GR_OK && j < cnt; j++)
			read_out_topk(m, rq[done + j], s->cols + (size_t) j * k, s->vals + (size_t) j * k, k);
	}
	gr_free(m->env, off);
	return st;
}

/* Ascending order of dense columns. */
static inline bool
col_less(const void *ctx, const int32_t *x, const int32_t *y)
{
	(void) ctx;
	return *x < *y;
}

GR_DEFINE_SORT(sort_cols, int32_t, col_less)

/* One request's excluded columns into s->cols, sorted and distinct; returns how many. */
static int
request_exclusions(gr_session *s, const gr_recommend_request *q)
{
	const gr_model *m = s->model;
	int			n = 0;

	if (!q->exclude_seen)
		return 0;
	if (q->h.n > s->cap.cols)
	{
		/* a history longer than the buffer (repeats): mark the catalogue instead */
		return seen_columns(s, &q->h, s->cols);
	}
	for (int i = 0; i < q->h.n; i++)
	{
		int32_t		c = gr_model_item_dense(m, q->h.items[i]) - 1;

		if (c >= 0)
			s->cols[n++] = c;
	}
	sort_cols(s->cols, (size_t) n, NULL, NULL);
	int			u = 0;

	for (int i = 0; i < n; i++)
		if (u == 0 || s->cols[i] != s->cols[u - 1])
			s->cols[u++] = s->cols[i];
	return u;
}

/* Approximate retrieval through the session's IVF index (gr_ivf.h), request by request. */
static gr_status
recommend_indexed(gr_session *s, gr_recommend_request **rq, int n_rq, int k, gr_error *err)
{
	const gr_model *m = s->model;
	const gr_ops *ops = m->ops;
	int			d = m->cfg.d_model;
	gr_acts    *a = s->acts;
	float	   *q = gr_alloc(m->env, sizeof(float) * (size_t) d);
	int32_t    *cols = gr_alloc(m->env, sizeof(int32_t) * (size_t) k);
	gr_status	st = GR_OK;

	if (q == NULL || cols == NULL)
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a retrieval batch");
	for (int j = 0; st == GR_OK && j < n_rq; j++)
	{
		int			n_excl = request_exclusions(s, rq[j]);

		ops->gather_rows(ops->ctx, a->item_h, a->h, a->item_row_tok + j, 1, d, 1.0f, false);
		ops->download(ops->ctx, q, a->item_h, sizeof(float) * (size_t) d);
		st = ops->check(ops->ctx, err);
		if (st != GR_OK)
			break;
		int			found = gr_ivf_search(m->env, s->ivf, &s->ivf_scratch, q, s->ivf_probes, k,
										  s->cols, n_excl, cols, s->vals);

		if (found < 0)
			st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for an index search");
		for (int i = found; st == GR_OK && i < k; i++)
			cols[i] = -1;
		if (st == GR_OK)
			read_out_topk(m, rq[j], cols, s->vals, k);
	}
	gr_free(m->env, q);
	gr_free(m->env, cols);
	return st;
}

/* Top-k retrieval over the whole catalogue for n requests in one pass. */
gr_status
gr_recommend_batch(gr_session *s, int k, gr_recommend_request *reqs, int n, gr_error *err)
{
	const gr_model *m = s->model;
	int			V = m->cfg.n_items;
	gr_serve_caps need = {.seqs = GR_MAX(n, 1),.cands = 1};
	int			valid = 0,
				excl = 0;

	for (int r = 0; r < n; r++)
	{
		gr_recommend_request *q = &reqs[r];

		q->n_out = 0;
		q->status = check_recommend_request(m, q, k, V, &q->err);
		if (q->status != GR_OK)
			continue;
		valid++;
		need.tokens += request_tokens(m, &q->h, 0);
		if (q->exclude_seen)
			excl += GR_MIN(q->h.n, V);
	}
	if (valid == 0)
		return GR_OK;
	/* top-k of several rows at once needs rows x k entries; at least one row always fits */
	need.rows = GR_MAX(k, GR_MIN(valid * k, GR_TOPK_ROWS_AT_ONCE)) + 1;
	need.rows = GR_MAX(need.rows, valid + 1);
	need.excl = GR_MAX(excl, V) + 1;
	need.cols = GR_MAX(need.excl, need.rows) + 1;
	need.vals = need.rows + 1;
	GR_TRY(session_reserve(s, &need, err));
	gr_tokens_reset(&s->tb);

	/* the accepted requests in order; each reads out exactly one item row */
	gr_recommend_request **rq = gr_alloc(m->env, sizeof(*rq) * (size_t) valid);
	int			n_rq = 0;

	if (rq == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a retrieval batch");
	for (int r = 0; r < n; r++)
	{
		gr_recommend_request *q = &reqs[r];

		if (q->status != GR_OK)
			continue;
		q->status = append_request(s, &q->h, NULL, 0, r, &q->err);
		if (q->status == GR_OK && s->req_rows[2 * r + 1] != n_rq)
		{
			q->status = gr_fail(&q->err, GR_ERR_INTERNAL, "layout %s read out no query row",
								m->layout->name);
			gr_free(m->env, rq);
			return gr_fail(err, GR_ERR_INTERNAL, "%s", q->err.message);
		}
		if (q->status == GR_OK)
			rq[n_rq++] = q;
	}
	gr_status	st = GR_OK;

	if (n_rq > 0)
		st = gr_model_forward(m, s->acts, &s->tb, NULL, err);
	if (st == GR_OK && n_rq > 0)
		st = s->ivf != NULL && s->ivf_probes > 0 ?
			recommend_indexed(s, rq, n_rq, k, err) : recommend_exact(s, rq, n_rq, k, err);
	gr_free(m->env, rq);
	return st;
}

/* Top-k retrieval for one history: a batch of one. */
gr_status
gr_recommend(gr_session *s, const gr_history *h, int k, bool exclude_seen, int64_t *items,
			 float *scores, int *n_out, gr_error *err)
{
	gr_recommend_request q = {.exclude_seen = exclude_seen,.items = items,.scores = scores};

	*n_out = 0;
	GR_TRY(check_history(h, err));
	q.h = *h;
	GR_TRY(gr_recommend_batch(s, k, &q, 1, err));
	if (q.status != GR_OK && err != NULL)
		*err = q.err;
	*n_out = q.n_out;
	return q.status;
}
