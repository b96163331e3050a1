/*
 * gr_forward.c — the activation workspace, batch upload, embeddings and the GPT-2 pre-LN trunk
 * (forward and backward), written once against the ops interface.
 */
#include "gr_forward.h"

#include <math.h>
#include <string.h>

/* Dropout sites: 0 = embeddings, 1 + 2l = attention output of layer l, 2 + 2l = MLP output. */
#define SITE_EMBED 0u
#define SITE_ATTN(l) (1u + 2u * (uint32_t) (l))
#define SITE_MLP(l) (2u + 2u * (uint32_t) (l))

/* A float slice reserved in the workspace layout. */
typedef struct slot
{
	float	  **ptr;
	size_t		n;
} slot;

typedef struct islot
{
	int32_t   **ptr;
	size_t		n;
} islot;

/* Round a float count up to a multiple of 16 (64 bytes). */
static size_t
pad16(size_t n)
{
	return (n + 15) & ~(size_t) 15;
}

/* Allocate the workspace: every buffer is a slice of one float and one int backend buffer. */
gr_status
gr_acts_create(const gr_model *model, int cap_tokens, int cap_seq, int cap_rows, int cap_excl,
			   bool train, gr_acts **out, gr_error *err)
{
	const gr_env *env = model->env;
	const gr_ops *ops = model->ops;
	const gr_model_config *c = &model->cfg;
	size_t		N = (size_t) cap_tokens, R = (size_t) cap_rows;
	size_t		d = c->d_model, K = c->n_actions > 0 ? c->n_actions : 1, H = c->head_hidden;
	size_t		V = c->n_items;

	*out = NULL;
	if (cap_tokens < 1 || cap_seq < 1 || cap_rows < 1 || cap_excl < 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "invalid workspace capacity");
	gr_acts    *a = gr_calloc(env, 1, sizeof(gr_acts));

	if (a == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a workspace");
	a->model = model;
	a->cap_tokens = cap_tokens;
	a->cap_seq = cap_seq;
	a->cap_rows = cap_rows;
	a->cap_excl = cap_excl;
	a->train = train;
	/* about 16M floats of logits at a time, at least one row */
	a->logit_rows = (int) GR_MAX((size_t) 1, GR_MIN(R, ((size_t) 1 << 24) / V));

	slot		fs[40 + 13 * GR_MAX_LAYERS];
	islot		is[16];
	int			nf = 0, ni = 0;

#define F(p, cnt) (fs[nf].ptr = &(p), fs[nf++].n = (cnt))
#define I(p, cnt) (is[ni].ptr = &(p), is[ni++].n = (cnt))
	F(a->x0, N * d);
	for (int l = 0; l < c->n_layer; l++)
	{
		gr_layer_acts *L = &a->layer[l];

		F(L->ln1, N * d);
		F(L->ln1_mean, N);
		F(L->ln1_rstd, N);
		F(L->qkv, N * 3 * d);
		F(L->att, N * d);
		F(L->lse, N * c->n_head);
		F(L->res1, N * d);
		F(L->ln2, N * d);
		F(L->ln2_mean, N);
		F(L->ln2_rstd, N);
		F(L->fc, N * 4 * d);
		F(L->fcg, N * 4 * d);
		F(L->out, N * d);
	}
	F(a->h, N * d);
	F(a->lnf_mean, N);
	F(a->lnf_rstd, N);
	F(a->item_h, R * d);
	F(a->logits, (size_t) a->logit_rows * V);
	F(a->item_loss, R);
	F(a->act_in, R * d);
	F(a->act_cpl, R * d);
	F(a->act_fc, R * H);
	F(a->act_g, R * H);
	F(a->act_pred, R * K);
	F(a->act_grad, R * K);
	F(a->act_loss, R * K);
	F(a->tok_actval, N * K);
	F(a->act_row_target, R * K);
	F(a->topk_val, R);
	/* the backward pass needs d_res even for inference-only use of the heads */
	F(a->d_res, N * d);
	F(a->d_item_h, R * d);
	F(a->d_act_in, R * d);
	F(a->d_act_cpl, R * d);
	F(a->d_act_g, R * H);
	if (train)
	{
		F(a->d_res2, N * d);
		F(a->d_tmp, N * d);
		F(a->d_qkv, N * 3 * d);
		F(a->d_big, N * 4 * d);
	}
	I(a->tok_item, N);
	I(a->tok_pos, N);
	I(a->tok_bucket, N * K);
	I(a->seq_off, (size_t) cap_seq + 1);
	I(a->n_hist, (size_t) cap_seq);
	I(a->item_row_tok, R);
	I(a->item_row_col, R);
	I(a->act_row_tok, R);
	I(a->act_row_cpl, R);
	I(a->excl_off, R + 1);
	I(a->excl, (size_t) cap_excl + 1);
	I(a->topk_idx, R);
#undef F
#undef I

	size_t		total_f = 0, total_i = 0;

	for (int i = 0; i < nf; i++)
		total_f += pad16(fs[i].n);
	for (int i = 0; i < ni; i++)
		total_i += pad16(is[i].n);
	a->fbuf = ops->alloc(ops->ctx, total_f * sizeof(float));
	a->ibuf = ops->alloc(ops->ctx, total_i * sizeof(int32_t));
	size_t		stage = GR_MAX(N * K, GR_MAX(R * K, (size_t) cap_excl + R + 1));

	stage = GR_MAX(stage, N);
	a->h_float = gr_alloc(env, stage * sizeof(float));
	a->h_int = gr_alloc(env, stage * sizeof(int32_t));
	if (a->fbuf == NULL || a->ibuf == NULL || a->h_float == NULL || a->h_int == NULL)
	{
		gr_acts_free(a);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY,
					   "out of memory for a workspace of %d tokens (%zu MB)", cap_tokens,
					   (total_f * 4 + total_i * 4) >> 20);
	}
	size_t		off = 0;

	for (int i = 0; i < nf; i++)
	{
		*fs[i].ptr = a->fbuf + off;
		off += pad16(fs[i].n);
	}
	off = 0;
	for (int i = 0; i < ni; i++)
	{
		*is[i].ptr = a->ibuf + off;
		off += pad16(is[i].n);
	}
	*out = a;
	return GR_OK;
}

/* Free a workspace. */
void
gr_acts_free(gr_acts *acts)
{
	if (acts == NULL)
		return;
	const gr_ops *ops = acts->model->ops;
	const gr_env *env = acts->model->env;

	if (acts->fbuf)
		ops->free(ops->ctx, acts->fbuf);
	if (acts->ibuf)
		ops->free(ops->ctx, acts->ibuf);
	gr_free(env, acts->h_float);
	gr_free(env, acts->h_int);
	gr_free(env, acts);
}

/* Upload one int32 host array through the staging buffer after transforming it. */
static void
upload_ints(const gr_ops *ops, int32_t *dst, const int32_t *src, size_t n)
{
	ops->upload(ops->ctx, dst, src, n * sizeof(int32_t));
}

/* Copy a token batch's metadata into the workspace's backend buffers. */
gr_status
gr_pass_upload(gr_acts *a, const gr_tokens *tb, gr_error *err)
{
	const gr_model *m = a->model;
	const gr_ops *ops = m->ops;
	int			N = tb->n_tokens, K = m->cfg.n_actions, nb = m->cfg.n_buckets;

	if (N > a->cap_tokens || tb->n_seq > a->cap_seq || tb->n_item_rows > a->cap_rows ||
		tb->n_act_rows > a->cap_rows)
		return gr_fail(err, GR_ERR_INTERNAL, "batch exceeds the workspace capacity");
	if (tb->n_actions != K && m->layout->uses_actions)
		return gr_fail(err, GR_ERR_INTERNAL, "batch has %d actions, model %d", tb->n_actions, K);
	a->tokens = tb;
	a->n_tokens = N;
	a->n_item_rows = tb->n_item_rows;
	a->n_act_rows = tb->n_act_rows;

	int32_t    *hi = a->h_int;
	float	   *hf = a->h_float;

	for (int t = 0; t < N; t++)
	{
		int32_t		it = tb->item[t];

		hi[t] = (it > 0 && it <= m->cfg.n_items) ? it : -1;
	}
	upload_ints(ops, a->tok_item, hi, N);
	for (int t = 0; t < N; t++)
	{
		int32_t		p = tb->pos[t];

		if (p < 0 || p >= m->n_positions)
			return gr_fail(err, GR_ERR_INTERNAL, "position %d outside the table of %d", p,
						   m->n_positions);
	}
	upload_ints(ops, a->tok_pos, tb->pos, N);
	if (m->layout->uses_actions)
	{
		for (int k = 0; k < K; k++)
			for (int t = 0; t < N; t++)
			{
				float		v = tb->action[(size_t) t * K + k];

				hi[(size_t) k * N + t] = tb->has_action[t] ?
					k * (nb + 1) + gr_action_bucket(v, nb) : -1;
			}
		upload_ints(ops, a->tok_bucket, hi, (size_t) K * N);
		for (size_t i = 0; i < (size_t) N * K; i++)
		{
			float		v = tb->action[i];

			hf[i] = (tb->has_action[i / K] && !isnan(v)) ? v : 0.0f;
		}
		ops->upload(ops->ctx, a->tok_actval, hf, (size_t) N * K * sizeof(float));
	}
	upload_ints(ops, a->seq_off, tb->seq_off, (size_t) tb->n_seq + 1);
	upload_ints(ops, a->n_hist, tb->n_hist, (size_t) tb->n_seq);
	a->seqs.n_seq = tb->n_seq;
	a->seqs.max_tokens = tb->max_seq_tokens;
	a->seqs.seq_off = tb->seq_off;
	a->seqs.n_hist = tb->n_hist;
	a->seqs.dev_seq_off = a->seq_off;
	a->seqs.dev_n_hist = a->n_hist;

	/* item rows: token index and target column */
	int			R = tb->n_item_rows;

	a->n_item_targets = 0;
	upload_ints(ops, a->item_row_tok, tb->item_row_tok, R);
	for (int r = 0; r < R; r++)
	{
		int32_t		t = tb->item_row_target[r];

		hi[r] = (t > 0 && t <= m->cfg.n_items) ? t - 1 : -1;
		a->n_item_targets += hi[r] >= 0;
	}
	upload_ints(ops, a->item_row_col, hi, R);

	/* action rows */
	R = tb->n_act_rows;
	memset(a->n_act_targets, 0, sizeof(a->n_act_targets));
	if (m->layout->uses_actions && R > 0)
	{
		upload_ints(ops, a->act_row_tok, tb->act_row_tok, R);
		for (int r = 0; r < R; r++)
		{
			int32_t		c = tb->act_row_coupler[r];

			hi[r] = (c > 0 && c <= m->cfg.n_items) ? c : -1;
		}
		upload_ints(ops, a->act_row_cpl, hi, R);
		for (size_t i = 0; i < (size_t) R * K; i++)
			a->n_act_targets[i % K] += !isnan(tb->act_row_target[i]);
		ops->upload(ops->ctx, a->act_row_target, tb->act_row_target,
					(size_t) R * K * sizeof(float));
	}
	return ops->check(ops->ctx, err);
}

/* Embeddings: x0 = s E[item] + P[pos] + sum_k A_k[bucket] + actval * W_lin, then dropout. */
static void
embed_forward(const gr_model *m, gr_acts *a, float dropout, uint64_t seed, uint32_t step)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model, K = m->cfg.n_actions;

	ops->gather_rows(cx, a->x0, m->w.pos_emb, a->tok_pos, N, d, 1.0f, false);
	ops->gather_rows(cx, a->x0, m->w.item_emb, a->tok_item, N, d, m->cfg.emb_scale, true);
	if (m->layout->uses_actions)
	{
		for (int k = 0; k < K; k++)
			ops->gather_rows(cx, a->x0, m->w.act_emb, a->tok_bucket + (size_t) k * N, N, d,
							 1.0f, true);
		ops->gemm(cx, false, false, N, d, K, 1.0f, a->tok_actval, K, m->w.act_lin, d, 1.0f,
				  a->x0, d);
	}
	ops->dropout(cx, a->x0, a->x0, (size_t) N * d, dropout, seed, SITE_EMBED, step);
}

/* Y[N, out] = X[N, in] W^T + b. */
static void
linear_forward(const gr_ops *ops, float *y, const float *x, const float *w, const float *b,
			   int n, int in, int out)
{
	ops->gemm(ops->ctx, false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
	ops->add_bias(ops->ctx, y, b, n, out);
}

/* dX[N, in] (= or +=) dY W; dW += dY^T X; db += colsum dY. dx may be NULL. */
static void
linear_backward(const gr_ops *ops, float *dx, float *dw, float *db, const float *dy,
				const float *x, const float *w, int n, int in, int out, bool accumulate_dx)
{
	if (dx)
		ops->gemm(ops->ctx, false, false, n, in, out, 1.0f, dy, out, w, in,
				  accumulate_dx ? 1.0f : 0.0f, dx, in);
	ops->gemm(ops->ctx, true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
	ops->bias_grad(ops->ctx, db, dy, n, out);
}

/* One pre-LN block forward: x -> L->out. */
static void
block_forward(const gr_model *m, gr_acts *a, int l, const float *x, float dropout,
			  uint64_t seed, uint32_t step)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	const gr_layer_weights *W = &m->w.layer[l];
	gr_layer_acts *L = &a->layer[l];
	int			N = a->n_tokens, d = m->cfg.d_model;
	size_t		nd = (size_t) N * d;

	ops->layernorm_fwd(cx, L->ln1, L->ln1_mean, L->ln1_rstd, x, W->ln1_w, W->ln1_b, N, d);
	linear_forward(ops, L->qkv, L->ln1, W->qkv_w, W->qkv_b, N, d, 3 * d);
	ops->attn_fwd(cx, L->att, L->lse, L->qkv, &a->seqs, m->cfg.n_head, d);
	linear_forward(ops, L->res1, L->att, W->proj_w, W->proj_b, N, d, d);
	ops->dropout(cx, L->res1, L->res1, nd, dropout, seed, SITE_ATTN(l), step);
	ops->add(cx, L->res1, L->res1, x, nd);
	ops->layernorm_fwd(cx, L->ln2, L->ln2_mean, L->ln2_rstd, L->res1, W->ln2_w, W->ln2_b, N, d);
	linear_forward(ops, L->fc, L->ln2, W->fc_w, W->fc_b, N, d, 4 * d);
	ops->gelu_fwd(cx, L->fcg, L->fc, nd * 4);
	linear_forward(ops, L->out, L->fcg, W->fcproj_w, W->fcproj_b, N, 4 * d, d);
	ops->dropout(cx, L->out, L->out, nd, dropout, seed, SITE_MLP(l), step);
	ops->add(cx, L->out, L->out, L->res1, nd);
}

/* Embeddings, all blocks and the final LayerNorm. */
void
gr_trunk_forward(const gr_model *m, gr_acts *a, float dropout, uint64_t seed, uint32_t step)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model;
	const float *x = a->x0;

	if (N == 0)
		return;
	embed_forward(m, a, dropout, seed, step);
	for (int l = 0; l < m->cfg.n_layer; l++)
	{
		block_forward(m, a, l, x, dropout, seed, step);
		x = a->layer[l].out;
	}
	ops->layernorm_fwd(ops->ctx, a->h, a->lnf_mean, a->lnf_rstd, x, m->w.lnf_w, m->w.lnf_b,
					   N, d);
}

/* One block backward: dout (residual gradient at the block output) -> dx (block input). */
static void
block_backward(const gr_model *m, gr_acts *a, gr_weights *g, int l, const float *x,
			   const float *dout, float *dx, float dropout, uint64_t seed, uint32_t step)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	const gr_layer_weights *W = &m->w.layer[l];
	gr_layer_weights *G = &g->layer[l];
	gr_layer_acts *L = &a->layer[l];
	int			N = a->n_tokens, d = m->cfg.d_model;
	size_t		nd = (size_t) N * d;

	/* MLP branch: out = res1 + drop(fcg W2^T + b2) */
	ops->dropout(cx, a->d_tmp, dout, nd, dropout, seed, SITE_MLP(l), step);
	linear_backward(ops, a->d_big, G->fcproj_w, G->fcproj_b, a->d_tmp, L->fcg, W->fcproj_w,
					N, 4 * d, d, false);
	ops->gelu_bwd(cx, a->d_big, L->fc, a->d_big, nd * 4);
	linear_backward(ops, a->d_tmp, G->fc_w, G->fc_b, a->d_big, L->ln2, W->fc_w, N, d, 4 * d,
					false);
	/* dres1 = dout + LN2'(dln2), built in dx */
	ops->copy(cx, dx, dout, nd * sizeof(float));
	ops->layernorm_bwd(cx, dx, G->ln2_w, G->ln2_b, a->d_tmp, L->res1, W->ln2_w, L->ln2_mean,
					   L->ln2_rstd, N, d);
	/* attention branch: res1 = x + drop(att Wp^T + bp) */
	ops->dropout(cx, a->d_tmp, dx, nd, dropout, seed, SITE_ATTN(l), step);
	linear_backward(ops, a->d_big, G->proj_w, G->proj_b, a->d_tmp, L->att, W->proj_w, N, d, d,
					false);
	ops->attn_bwd(cx, a->d_qkv, a->d_big, L->qkv, L->att, L->lse, &a->seqs, m->cfg.n_head, d);
	linear_backward(ops, a->d_tmp, G->qkv_w, G->qkv_b, a->d_qkv, L->ln1, W->qkv_w, N, d,
					3 * d, false);
	ops->layernorm_bwd(cx, dx, G->ln1_w, G->ln1_b, a->d_tmp, x, W->ln1_w, L->ln1_mean,
					   L->ln1_rstd, N, d);
}

/* Embedding backward: scatter dx0 (after the dropout mask) into the tables. */
static void
embed_backward(const gr_model *m, gr_acts *a, gr_weights *g, const float *dx0, float dropout,
			   uint64_t seed, uint32_t step)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model, K = m->cfg.n_actions;

	ops->dropout(cx, a->d_tmp, dx0, (size_t) N * d, dropout, seed, SITE_EMBED, step);
	ops->scatter_add_rows(cx, g->pos_emb, a->d_tmp, a->tok_pos, N, d, 1.0f);
	ops->scatter_add_rows(cx, g->item_emb, a->d_tmp, a->tok_item, N, d, m->cfg.emb_scale);
	if (m->layout->uses_actions)
	{
		for (int k = 0; k < K; k++)
			ops->scatter_add_rows(cx, g->act_emb, a->d_tmp, a->tok_bucket + (size_t) k * N, N,
								  d, 1.0f);
		ops->gemm(cx, true, false, K, d, N, 1.0f, a->tok_actval, K, a->d_tmp, d, 1.0f,
				  g->act_lin, d);
	}
}

/* Backward of the final LayerNorm, the blocks and the embeddings; d_res holds dh on entry. */
bool
gr_trunk_backward(const gr_model *m, gr_acts *a, gr_weights *g, float dropout, uint64_t seed,
				  uint32_t step)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model, L = m->cfg.n_layer;
	size_t		nd = (size_t) N * d;

	if (N == 0)
		return true;
	/* dX_L = LN_f'(dh): d_res (dh) -> d_res2 */
	const float *x_last = a->layer[L - 1].out;

	ops->zero(ops->ctx, a->d_res2, nd * sizeof(float));
	ops->layernorm_bwd(ops->ctx, a->d_res2, g->lnf_w, g->lnf_b, a->d_res, x_last, m->w.lnf_w,
					   a->lnf_mean, a->lnf_rstd, N, d);
	float	   *cur = a->d_res2, *other = a->d_res;

	for (int l = L - 1; l >= 0; l--)
	{
		const float *x = l > 0 ? a->layer[l - 1].out : a->x0;

		if (gr_should_stop(m->env))
			return false;
		block_backward(m, a, g, l, x, cur, other, dropout, seed, step);
		float	   *t = cur;

		cur = other;
		other = t;
	}
	embed_backward(m, a, g, cur, dropout, seed, step);
	return true;
}
