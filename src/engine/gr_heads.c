/*
 * gr_heads.c — the tied item head (full-catalogue softmax cross-entropy, chunked over rows;
 * or a sampled softmax / in-batch InfoNCE over candidates shared by the batch; logit
 * read-outs for evaluation and serving) and the action head (an MLP over h, or over
 * [h ; E[item]] for the PC coupler, or over [h ; p] with AttnLFA's pooled actions p; its
 * input width is gr_layout_head_inputs) with its bias path.
 *
 * The bias path (gr_model.h, GR_USER_OFFSET_SHRINK): pred = MLP + b_out + b_item[item] +
 * W_u u. Why in the head rather than only in the stopping rule: the bias baseline's three
 * terms are what an MLP over h learns worst — a per-item constant must otherwise be carried
 * through the tied item embedding (shared with retrieval) and the trunk, and the user's mean
 * rating through attention averaging — while as explicit parameters they are fitted in a few
 * steps, initialised from the training split (gr_train.c) so that the first epoch starts at
 * the baseline and the MLP learns the sequential residual on top. The item bias exists only
 * where the row names the item acted on (gr_layout_candidate_actions); the user offset only
 * where tokens carry actions, from the causal context alone (gr_forward.c), so P3 holds.
 */
#include "gr_arch.h"
#include "gr_rng.h"

#include <math.h>

/* Probability of column c under the popularity (uniform without one). */
static double
popularity_p(const gr_item_popularity *pop, int V, int c)
{
	if (pop == NULL || pop->cdf == NULL || !(pop->cdf[V - 1] > 0.0))
		return 1.0 / V;

	double		n = pop->cdf[c] - (c > 0 ? pop->cdf[c - 1] : 0.0);

	/* an in-batch target always occurs at least once */
	return GR_MAX(n, 1.0) / pop->cdf[V - 1];
}

/* Column of a popularity draw u in [0, 1): the first c with cdf[c] > u * total. */
static int
popularity_draw(const gr_item_popularity *pop, int V, double u)
{
	double		x = u * pop->cdf[V - 1];
	int			lo = 0, hi = V - 1;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (pop->cdf[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/*
 * Sampled: S = negatives columns drawn from Q (uniform, or popularity), with replacement, for
 * the whole batch or (negatives_per user) for each of its sequences;
 * in-batch: the targets of S rows drawn uniformly from the batch's item rows (every row once
 * when negatives is 0; a row without a target gives a padding candidate), which are draws
 * from the targets' popularity. Either
 * way logq = log(S Q(c)), the expected count of c among the candidates, so that
 * sum_c exp(z_c - logq_c) estimates the full softmax's sum over the catalogue.
 */
int
gr_item_negatives(const gr_model *m, const gr_acts *a, const gr_pass *p, int32_t *cand,
				  float *logq)
{
	const gr_item_popularity *pop = p->popularity;
	int			V = m->cfg.n_items, S = 0;
	bool		use_pop = pop != NULL && pop->cdf != NULL && pop->cdf[V - 1] > 0.0;

	if (m->cfg.item_loss == GR_LOSS_SAMPLED)
	{
		/* per user: sequence s of the batch draws counters s S .. s S + S - 1 */
		int			sets = m->cfg.negatives_per == GR_NEGATIVES_PER_USER && a->tokens != NULL ?
			GR_MAX(a->tokens->n_seq, 1) : 1;

		S = m->cfg.negatives;
		for (int j = 0; j < S * sets; j++)
		{
			gr_philox4	w = gr_rng_words(p->seed, GR_STREAM_NEGATIVES, p->step, (uint64_t) j);
			int			c;

			if (m->cfg.sampler == GR_SAMPLER_POPULARITY && use_pop)
				/* a uniform double in [0, 1) from 27 + 26 random bits */
				c = popularity_draw(pop, V, ((double) (w.v[0] >> 5) * 67108864.0 +
											 (double) (w.v[1] >> 6)) / 9007199254740992.0);
			else
				c = (int) (((uint64_t) w.v[0] * (uint64_t) V) >> 32);
			cand[j] = c;
			logq[j] = (float) log((double) S * (m->cfg.sampler == GR_SAMPLER_POPULARITY ?
												popularity_p(pop, V, c) : 1.0 / V));
		}
		return S * sets;
	}
	/* in-batch: the host targets of the uploaded batch's rows */
	const gr_tokens *tb = a->tokens;
	int			R = tb->n_item_rows, n = 0;

	for (int r = 0; r < R; r++)
		n += tb->item_row_target[r] > 0 && tb->item_row_target[r] <= V;
	if (n == 0)
		return 0;
	S = m->cfg.negatives > 0 ? m->cfg.negatives : R;
	for (int j = 0; j < S; j++)
	{
		int			r = j;

		if (m->cfg.negatives > 0)
		{
			gr_philox4	w = gr_rng_words(p->seed, GR_STREAM_NEGATIVES, p->step, (uint64_t) j);

			r = (int) (((uint64_t) w.v[0] * (uint64_t) R) >> 32);
		}
		int32_t		t = tb->item_row_target[r];

		cand[j] = t > 0 && t <= V ? t - 1 : -1;
	}
	/* a row drawn has a target with probability n / R */
	for (int j = 0; j < S; j++)
		logq[j] = cand[j] < 0 ? 0.0f :
			(float) log((double) S * n / R * popularity_p(pop, V, cand[j]));
	return S;
}
/* Logits, loss and gradients of item rows [r0, r1) against one candidate set (S columns
 * from cand, corrections logq, both on the backend): the negatives' embeddings gathered
 * once, one GEMM for their logits per chunk of rows, and their gradient scattered into gE. */
static void
item_candidates_backward(const gr_model *m, gr_acts *a, float *gE, int r0, int r1,
						 const int32_t *cand, const float *logq, int S, float scale)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			d = m->cfg.d_model;
	const float *E = m->w.item_emb + d;	/* rows 1..V */
	float		inv_t = 1.0f / m->cfg.temperature;

	ops->gather_rows(cx, a->neg_e, E, cand, S, d, 1.0f, false);
	ops->zero(cx, a->d_neg_e, sizeof(float) * (size_t) S * d);
	for (int c0 = r0; c0 < r1; c0 += a->neg_rows)
	{
		int			n = GR_MIN(a->neg_rows, r1 - c0);
		const float *hr = a->item_h + (size_t) c0 * d;

		ops->gemm(cx, false, true, n, S, d, 1.0f, hr, d, a->neg_e, d, 0.0f, a->neg_logits, S);
		ops->sampled_xent(cx, a->neg_logits, S, a->item_pos + c0, a->item_row_col + c0,
						  cand, logq, n, S, inv_t, a->item_loss + c0, scale);
		ops->gemm(cx, false, false, n, d, S, 1.0f, a->neg_logits, S, a->neg_e, d, 0.0f,
				  a->d_item_h + (size_t) c0 * d, d);
		ops->gemm(cx, true, false, S, d, n, 1.0f, a->neg_logits, S, hr, d, 1.0f, a->d_neg_e, d);
	}
	ops->scatter_add_rows(cx, gE, a->d_neg_e, cand, S, d, 1.0f);
}

/* Sequence of the batch that token tok belongs to (binary search over seq_off). */
static int
sequence_of_token(const gr_tokens *tb, int tok)
{
	int			lo = 0, hi = tb->n_seq - 1;

	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if (tb->seq_off[mid] <= tok)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Sampled or in-batch item loss and backward (LAYOUTS.md §2.6 2-3): the rows against the
 * batch's candidate set, or (negatives_per user) each sequence's rows against its own set,
 * the positive as a row dot product; with the cosine similarity the rows' states are
 * normalised first and their gradients taken back through the normalisation. */
static double
item_sampled_backward(const gr_model *m, gr_acts *a, gr_weights *g, const gr_pass *p,
					  float scale)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	const gr_tokens *tb = a->tokens;
	int			R = a->n_item_rows, d = m->cfg.d_model;
	const float *E = m->w.item_emb + d;	/* rows 1..V */
	float	   *gE = g->item_emb + d;
	int32_t    *cand = a->h_int;
	float	   *logq = a->h_float;
	int			n = gr_item_negatives(m, a, p, cand, logq);
	bool		per_user = m->cfg.item_loss == GR_LOSS_SAMPLED &&
		m->cfg.negatives_per == GR_NEGATIVES_PER_USER;
	int			S = per_user ? m->cfg.negatives : n;
	bool		cosine = m->cfg.similarity == GR_SIMILARITY_COSINE;

	if (n == 0)
	{
		/* no candidates: every row's loss is log 1 = 0 */
		n = S = 1;
		per_user = false;
		cand[0] = -1;
		logq[0] = 0.0f;
	}
	ops->upload(cx, a->neg_cand, cand, sizeof(int32_t) * n);
	ops->upload(cx, a->neg_logq, logq, sizeof(float) * n);

	ops->gather_rows(cx, a->item_h, a->h, a->item_row_tok, R, d, 1.0f, false);
	if (cosine)
		ops->l2norm_rows(cx, a->item_h, a->item_rnorm, NULL, R, d);
	ops->gather_rows(cx, a->item_pe, E, a->item_row_col, R, d, 1.0f, false);
	ops->row_dot(cx, a->item_pos, a->item_h, a->item_pe, R, d);
	if (!per_user)
		item_candidates_backward(m, a, gE, 0, R, a->neg_cand, a->neg_logq, S, scale);
	else
	{
		/* runs of rows whose tokens lie in one sequence (item rows are appended sequence
		 * by sequence, so one run each), against that sequence's set */
		for (int r0 = 0, r1; r0 < R; r0 = r1)
		{
			int			s = sequence_of_token(tb, tb->item_row_tok[r0]);

			for (r1 = r0 + 1; r1 < R && sequence_of_token(tb, tb->item_row_tok[r1]) == s; r1++)
				;
			item_candidates_backward(m, a, gE, r0, r1, a->neg_cand + (size_t) s * S,
									 a->neg_logq + (size_t) s * S, S, scale);
		}
	}
	/* the positives: dh += dpos E[t], dE[t] += dpos h */
	ops->row_scale(cx, a->d_item_h, a->item_pe, a->item_pos, R, d, true);
	ops->row_scale(cx, a->item_pe, a->item_h, a->item_pos, R, d, false);
	ops->scatter_add_rows(cx, gE, a->item_pe, a->item_row_col, R, d, 1.0f);
	if (cosine)
		ops->l2norm_bwd(cx, a->d_item_h, a->item_h, a->item_rnorm, a->d_item_h, R, d);
	ops->scatter_add_rows(cx, a->d_res, a->d_item_h, a->item_row_tok, R, d, 1.0f);

	float	   *loss = a->h_float;
	double		sum = 0.0;

	ops->download(cx, loss, a->item_loss, (size_t) R * sizeof(float));
	for (int r = 0; r < R; r++)
		sum += loss[r];
	return sum;
}

/* Item head loss and backward; accumulates into d_res (dh) and the item table gradient. */
double
gr_head_item_backward(const gr_model *m, gr_acts *a, gr_weights *g, const gr_pass *p,
					  float weight)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			R = a->n_item_rows, d = m->cfg.d_model, V = m->cfg.n_items;
	const float *E = m->w.item_emb + d;	/* rows 1..V */
	float	   *gE = g->item_emb + d;

	if (R == 0 || a->n_item_targets == 0)
		return 0.0;
	float		scale = weight / (float) a->n_item_targets;

	if (a->neg_cap > 0)
		return item_sampled_backward(m, a, g, p, scale);
	ops->gather_rows(cx, a->item_h, a->h, a->item_row_tok, R, d, 1.0f, false);
	for (int r0 = 0; r0 < R; r0 += a->logit_rows)
	{
		int			n = GR_MIN(a->logit_rows, R - r0);
		const float *hr = a->item_h + (size_t) r0 * d;

		ops->gemm(cx, false, true, n, V, d, 1.0f, hr, d, E, d, 0.0f, a->logits, V);
		ops->softmax_xent(cx, a->logits, V, a->item_row_col + r0, n, V, a->item_loss + r0, scale);
		ops->gemm(cx, false, false, n, d, V, 1.0f, a->logits, V, E, d, 0.0f,
				  a->d_item_h + (size_t) r0 * d, d);
		ops->gemm(cx, true, false, V, d, n, 1.0f, a->logits, V, hr, d, 1.0f, gE, d);
	}
	ops->scatter_add_rows(cx, a->d_res, a->d_item_h, a->item_row_tok, R, d, 1.0f);

	float	   *loss = a->h_float;
	double		sum = 0.0;

	ops->download(cx, loss, a->item_loss, (size_t) R * sizeof(float));
	for (int r = 0; r < R; r++)
		sum += loss[r];
	return sum;
}

/* Logits of item rows [row0, row0 + n) against the whole catalogue. */
void
gr_model_item_logits(const gr_model *m, gr_acts *a, int row0, int n)
{
	const gr_ops *ops = m->ops;
	int			d = m->cfg.d_model, V = m->cfg.n_items;

	ops->gather_rows(ops->ctx, a->item_h + (size_t) row0 * d, a->h, a->item_row_tok + row0, n,
					 d, 1.0f, false);
	ops->gemm(ops->ctx, false, true, n, V, d, 1.0f, a->item_h + (size_t) row0 * d, d,
			  m->w.item_emb + d, d, 0.0f, a->logits, V);
}

/* Retrieval logits of given candidates against one item row's state. */
void
gr_model_candidate_logits(const gr_model *m, gr_acts *a, int row, const int32_t *dense, int n,
						  float *out)
{
	const gr_ops *ops = m->ops;
	int			d = m->cfg.d_model;
	int32_t    *cols = a->h_int;

	if (n <= 0)
		return;
	const float *hq = a->h + (size_t) a->tokens->item_row_tok[row] * d;

	for (int c = 0; c < n; c++)
		cols[c] = dense[c] > 0 ? dense[c] : -1;
	ops->upload(ops->ctx, a->excl, cols, sizeof(int32_t) * n);
	ops->gather_rows(ops->ctx, a->item_h, m->w.item_emb, a->excl, n, d, 1.0f, false);
	ops->gemm(ops->ctx, false, true, n, 1, d, 1.0f, a->item_h, d, hq, d, 0.0f, a->logits, 1);
	ops->download(ops->ctx, out, a->logits, sizeof(float) * n);
	for (int c = 0; c < n; c++)
		if (dense[c] <= 0)
			out[c] = NAN;
}

/* Action head forward: pred = W2 GELU(W1 [h ; e] + b1) + b2 for every action row, e the
 * coupler item's embedding (PC) or the row token's pooled actions (AttnLFA). */
void
gr_head_action_forward(const gr_model *m, gr_acts *a)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			R = a->n_act_rows, d = m->cfg.d_model, H = m->cfg.head_hidden;
	int			K = m->cfg.n_actions;
	int			in = gr_layout_head_inputs(m->layout) * d;
	bool		coupler = m->layout->action_head == GR_ACTION_HEAD_COUPLER;
	bool		pooled = gr_layout_pools_actions(m->layout);

	if (R == 0 || !gr_layout_has_action_head(m->layout))
		return;
	ops->gather_rows(cx, a->act_in, a->h, a->act_row_tok, R, d, 1.0f, false);
	ops->gemm(cx, false, true, R, H, d, 1.0f, a->act_in, d, m->w.head_fc_w, in, 0.0f,
			  a->act_fc, H);
	if (coupler || pooled)
	{
		if (coupler)
			ops->gather_rows(cx, a->act_cpl, m->w.item_emb, a->act_row_cpl, R, d, 1.0f, false);
		else
			ops->gather_rows(cx, a->act_cpl, a->pool_out, a->act_row_tok, R, d, 1.0f, false);
		ops->gemm(cx, false, true, R, H, d, 1.0f, a->act_cpl, d, m->w.head_fc_w + d, in, 1.0f,
				  a->act_fc, H);
	}
	ops->add_bias(cx, a->act_fc, m->w.head_fc_b, R, H);
	ops->gelu_fwd(cx, a->act_g, a->act_fc, (size_t) R * H);
	ops->gemm(cx, false, true, R, K, H, 1.0f, a->act_g, H, m->w.head_out_w, H, 0.0f,
			  a->act_pred, K);
	ops->add_bias(cx, a->act_pred, m->w.head_out_b, R, K);
	if (m->w.head_item_b != NULL)
		ops->gather_rows(cx, a->act_pred, m->w.head_item_b, a->act_row_item, R, K, 1.0f, true);
	if (m->w.head_user_w != NULL)
		ops->gemm(cx, false, true, R, K, GR_USER_FEATURES * K, 1.0f, a->act_uoff,
				  GR_USER_FEATURES * K, m->w.head_user_w, GR_USER_FEATURES * K, 1.0f,
				  a->act_pred, K);
}

/* Action head loss and backward from the forward pass's predictions; accumulates into d_res,
 * the head and the second input's source: the item table (PC) or d_pool (AttnLFA). */
void
gr_head_action_backward(const gr_model *m, gr_acts *a, gr_weights *g, float weight,
						const float *w_task, double *col_loss)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			R = a->n_act_rows, d = m->cfg.d_model, H = m->cfg.head_hidden;
	int			K = m->cfg.n_actions;
	int			in = gr_layout_head_inputs(m->layout) * d;
	bool		coupler = m->layout->action_head == GR_ACTION_HEAD_COUPLER;
	bool		pooled = gr_layout_pools_actions(m->layout);
	float		col_scale[GR_MAX_ACTIONS];
	uint32_t	binary = 0;

	for (int k = 0; k < K; k++)
		col_loss[k] = 0.0;
	if (R == 0 || !gr_layout_has_action_head(m->layout))
		return;
	for (int k = 0; k < K; k++)
	{
		col_scale[k] = a->n_act_targets[k] > 0 ?
			weight * (w_task ? w_task[k] : 1.0f) / (float) a->n_act_targets[k] : 0.0f;
		if (m->cfg.action_binary[k])
			binary |= 1u << k;
	}
	ops->action_loss(cx, a->act_pred, a->act_row_target, R, K, col_scale, binary, a->act_loss,
					 a->act_grad);
	/* output layer */
	ops->gemm(cx, true, false, K, H, R, 1.0f, a->act_grad, K, a->act_g, H, 1.0f,
			  g->head_out_w, H);
	ops->bias_grad(cx, g->head_out_b, a->act_grad, R, K);
	if (m->w.head_item_b != NULL)
		ops->scatter_add_rows(cx, g->head_item_b, a->act_grad, a->act_row_item, R, K, 1.0f);
	if (m->w.head_user_w != NULL)
		ops->gemm(cx, true, false, K, GR_USER_FEATURES * K, R, 1.0f, a->act_grad, K,
				  a->act_uoff, GR_USER_FEATURES * K, 1.0f, g->head_user_w,
				  GR_USER_FEATURES * K);
	ops->gemm(cx, false, false, R, H, K, 1.0f, a->act_grad, K, m->w.head_out_w, H, 0.0f,
			  a->d_act_g, H);
	ops->gelu_bwd(cx, a->d_act_g, a->act_fc, a->d_act_g, (size_t) R * H);
	/* hidden layer, split into its h part and its coupler part */
	ops->gemm(cx, true, false, H, d, R, 1.0f, a->d_act_g, H, a->act_in, d, 1.0f,
			  g->head_fc_w, in);
	ops->bias_grad(cx, g->head_fc_b, a->d_act_g, R, H);
	ops->gemm(cx, false, false, R, d, H, 1.0f, a->d_act_g, H, m->w.head_fc_w, in, 0.0f,
			  a->d_act_in, d);
	ops->scatter_add_rows(cx, a->d_res, a->d_act_in, a->act_row_tok, R, d, 1.0f);
	if (coupler || pooled)
	{
		ops->gemm(cx, true, false, H, d, R, 1.0f, a->d_act_g, H, a->act_cpl, d, 1.0f,
				  g->head_fc_w + d, in);
		ops->gemm(cx, false, false, R, d, H, 1.0f, a->d_act_g, H, m->w.head_fc_w + d, in, 0.0f,
				  a->d_act_cpl, d);
		if (coupler)
			ops->scatter_add_rows(cx, g->item_emb, a->d_act_cpl, a->act_row_cpl, R, d, 1.0f);
		else
			ops->scatter_add_rows(cx, a->d_pool, a->d_act_cpl, a->act_row_tok, R, d, 1.0f);
	}

	float	   *loss = a->h_float;

	ops->download(cx, loss, a->act_loss, (size_t) R * K * sizeof(float));
	for (size_t i = 0; i < (size_t) R * K; i++)
		col_loss[i % K] += loss[i];
}
