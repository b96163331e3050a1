/*
 * gr_forward.c — the model's one pass (gr_forward.h): the workspace laid out from the model's
 * and the architecture's declarations, batch upload, embeddings, the final LayerNorm, and the
 * forward / backward that training, evaluation and serving call.
 */
#include "gr_arch.h"

#include <math.h>
#include <string.h>

/* Model-level float buffers of the workspace: X(field, floats, when). */
#define GR_ACTS(X) \
	X(x0, N * d, true) \
	X(h, N * d, true) \
	X(lnf_mean, N, true) \
	X(lnf_rstd, N, true) \
	X(item_h, R * d, true) \
	X(logits, (size_t) a->logit_rows * V, !train || c->item_loss == GR_LOSS_FULL) \
	X(item_loss, R, true) \
	X(astream, N * d, stream) \
	X(pool_qkv, N * 3 * d, pooled) \
	X(pool_att, N * d, pooled) \
	X(pool_lse, N * nh, pooled) \
	X(pool_out, N * d, pooled) \
	X(neg_logits, (size_t) a->neg_rows * S, S > 0) \
	X(neg_e, S * d, S > 0) \
	X(d_neg_e, S * d, S > 0) \
	X(neg_logq, Sd, S > 0) \
	X(item_pos, R, S > 0) \
	X(item_rnorm, R, S > 0) \
	X(item_pe, R * d, S > 0) \
	X(act_in, R * d, true) \
	X(act_cpl, R * d, true) \
	X(act_fc, R * H, true) \
	X(act_g, R * H, true) \
	X(act_pred, R * K, true) \
	X(act_uoff, R * GR_USER_FEATURES * K, true) \
	X(act_grad, R * K, true) \
	X(act_loss, R * K, true) \
	X(tok_actval, N * K, true) \
	X(act_row_target, R * K, true) \
	X(topk_val, R, true) \
	/* the heads' backward runs for inference-only read-outs too: d_res always */ \
	X(d_res, N * d, true) \
	X(d_item_h, R * d, true) \
	X(d_act_in, R * d, true) \
	X(d_act_cpl, R * d, true) \
	X(d_act_g, R * H, true) \
	X(d_pool, N * d, pooled) \
	X(d_res2, N * d, train) \
	X(d_tmp, N * d, train) \
	X(d_astream, N * d, stream && train) \
	X(d_pool_att, N * d, pooled && train) \
	X(d_pool_qkv, N * 3 * d, pooled && train)

typedef struct islot
{
	int32_t   **ptr;
	size_t		n;
} islot;

/* Float slots a workspace may declare: the model's, and the architecture's per layer. */
enum
{
#define COUNT(f, n, when) +1
	GR_N_MODEL_ACTS = 0 GR_ACTS(COUNT),
#undef COUNT
	GR_ACTS_MAX_FLOAT_SLOTS = GR_N_MODEL_ACTS + GR_MAX_LAYERS * GR_MAX_LAYER_ACTS +
	GR_MAX_ARCH_SCRATCH
};

/* Round a float count up to a multiple of 16 (64 bytes). */
static size_t
pad16(size_t n)
{
	return (n + 15) & ~(size_t) 15;
}

/* A workspace's layout: every float and int slot with its size. */
typedef struct acts_plan
{
	gr_act_slot fs[GR_ACTS_MAX_FLOAT_SLOTS];
	gr_act_table ft;
	islot		is[16];
	int			ni;
	size_t		total_f;		/* floats of the float buffer (slots padded) */
	size_t		total_i;		/* ints of the int buffer */
	size_t		stage;			/* entries of each host staging buffer */
} acts_plan;

/* Lay out a workspace of a configuration and architecture into a (slot pointers) and p. */
static void
plan_acts(const gr_model_config *c, const gr_arch *arch, int cap_tokens, int cap_seq,
		  int cap_rows, int cap_excl, bool train, gr_acts *a, acts_plan *p)
{
	size_t		N = (size_t) cap_tokens, R = (size_t) cap_rows;
	size_t		d = c->d_model, K = c->n_actions > 0 ? c->n_actions : 1, H = c->head_hidden;
	size_t		V = c->n_items, nh = c->n_head;
	const gr_layout *lay = gr_layout_by_id(c->layout);
	bool		stream = gr_layout_action_stream(lay),
				pooled = gr_layout_pools_actions(lay);
	gr_dims		z;
	int			ni = 0;

	/* about 16M floats of logits at a time, at least one row */
	a->logit_rows = (int) GR_MAX((size_t) 1, GR_MIN(R, ((size_t) 1 << 24) / V));
	/* the sampled losses' candidates: negatives, or every row of the batch */
	size_t		S = !train || c->item_loss == GR_LOSS_FULL ? 0 :
		c->negatives > 0 ? (size_t) c->negatives : R;

	/* negatives_per user: every sequence of a step draws its own S */
	size_t		Sd = S * (c->negatives_per == GR_NEGATIVES_PER_USER ? (size_t) cap_seq : 1);

	a->neg_cap = (int) S;
	a->neg_draws = (int) Sd;
	a->neg_rows = S > 0 ? (int) GR_MAX((size_t) 1, GR_MIN(R, ((size_t) 1 << 24) / S)) : 0;
	p->ft = (gr_act_table) {.slots = p->fs,.cap = GR_ACTS_MAX_FLOAT_SLOTS};
#define DECLARE(f, n, when) if (when) gr_act_declare(&p->ft, &a->f, (n));
	GR_ACTS(DECLARE)
#undef DECLARE
	gr_model_dims(c, &z);
	z.N = (int64_t) N;
	z.R = (int64_t) R;
	arch->declare_acts(&p->ft, a, &z, lay, train);
#define I(ptr_, cnt) (p->is[ni].ptr = &(ptr_), p->is[ni++].n = (cnt))
	I(a->tok_item, N);
	I(a->tok_pos, N);
	I(a->tok_time, 4 * N);		/* two int64 per token: query, then key times */
	I(a->tok_bucket, N * K);
	I(a->seq_off, (size_t) cap_seq + 1);
	I(a->n_hist, (size_t) cap_seq);
	I(a->item_row_tok, R);
	I(a->item_row_col, R);
	I(a->act_row_tok, R);
	I(a->act_row_cpl, R);
	I(a->act_row_item, R);
	if (S > 0)
		I(a->neg_cand, Sd);
	I(a->excl_off, R + 1);
	I(a->excl, (size_t) cap_excl + 1);
	I(a->topk_idx, R);
#undef I
	p->ni = ni;
	p->total_f = 0;
	p->total_i = 0;
	for (int i = 0; i < p->ft.n; i++)
		p->total_f += pad16(p->ft.slots[i].n);
	for (int i = 0; i < ni; i++)
		p->total_i += pad16(p->is[i].n);
	p->stage = GR_MAX(GR_MAX(N * K, GR_MAX(R * GR_USER_FEATURES * K, (size_t) cap_excl + R + 1)),
					  GR_MAX(N, Sd));
}

/* Bytes a workspace of these capacities takes (backend buffers, staging and the struct). */
size_t
gr_acts_bytes(const gr_model_config *cfg, int cap_tokens, int cap_seq, int cap_rows,
			  int cap_excl, bool train)
{
	gr_acts		a;
	acts_plan	p;

	if (gr_model_config_validate(cfg, NULL) != GR_OK || cap_tokens < 1 || cap_seq < 1 ||
		cap_rows < 1 || cap_excl < 0)
		return 0;
	memset(&a, 0, sizeof(a));
	plan_acts(cfg, gr_arch_by_id(cfg->trunk), cap_tokens, cap_seq, cap_rows, cap_excl, train,
			  &a, &p);
	return (p.total_f + p.total_i) * sizeof(float) +
		p.stage * (sizeof(float) + sizeof(int32_t)) + sizeof(gr_acts);
}

/* Allocate the workspace: every buffer is a slice of one float and one int backend buffer. */
gr_status
gr_acts_create(const gr_model *model, int cap_tokens, int cap_seq, int cap_rows, int cap_excl,
			   bool train, gr_acts **out, gr_error *err)
{
	const gr_env *env = model->env;
	const gr_ops *ops = model->ops;
	acts_plan	plan,
			   *p = &plan;

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
	plan_acts(&model->cfg, model->arch, cap_tokens, cap_seq, cap_rows, cap_excl, train, a, p);
	if (p->ft.overflow)
	{
		gr_acts_free(a);
		return gr_fail(err, GR_ERR_INTERNAL, "workspace declarations overflow their slots");
	}
	a->fbuf = ops->alloc(ops->ctx, p->total_f * sizeof(float));
	a->ibuf = ops->alloc(ops->ctx, p->total_i * sizeof(int32_t));
	a->h_float = gr_alloc(env, p->stage * sizeof(float));
	a->h_int = gr_alloc(env, p->stage * sizeof(int32_t));
	if (a->fbuf == NULL || a->ibuf == NULL || a->h_float == NULL || a->h_int == NULL)
	{
		gr_acts_free(a);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY,
					   "out of memory for a workspace of %d tokens (%zu MB)", cap_tokens,
					   (p->total_f * 4 + p->total_i * 4) >> 20);
	}
	size_t		off = 0;

	for (int i = 0; i < p->ft.n; i++)
	{
		*p->ft.slots[i].ptr = a->fbuf + off;
		off += pad16(p->ft.slots[i].n);
	}
	off = 0;
	for (int i = 0; i < p->ni; i++)
	{
		*p->is[i].ptr = a->ibuf + off;
		off += pad16(p->is[i].n);
	}
	a->tok_tq = (int64_t *) a->tok_time;	/* 64-byte aligned, as every slot */
	a->tok_tk = a->tok_tq + cap_tokens;
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

/*
 * The user-offset features of every action row into u [rows, 4K] (gr_model.h): per column
 * the shrunk sum S / (n + s), the weight n / (n + s), the latest value and whether there is
 * one, over the present values among the action slots the row's token attends to. Those are
 * the attention mask's keys: tokens t <= tok of its sequence for a history token, the
 * history and the token itself for a packed candidate; without the token itself where
 * actions travel in a stream that is read strict-causally (AttnMVP's values, AttnLFA's
 * pooling: the token carries its own label). The layouts obey P3 under their masks, so no
 * row sees its own target. O(rows x window) per batch, small beside the trunk.
 */
static void
user_offset_features(const gr_model *m, const gr_tokens *tb, float *u)
{
	int			K = m->cfg.n_actions, R = tb->n_act_rows, s = 0;
	bool		self = m->layout->action_input == GR_ACTION_INPUT_TOKEN;
	float		shrink = GR_USER_OFFSET_SHRINK;

	for (int r = 0; r < R; r++)
	{
		int			tok = tb->act_row_tok[r];
		double		sum[GR_MAX_ACTIONS] = {0}, n[GR_MAX_ACTIONS] = {0};
		float		last[GR_MAX_ACTIONS] = {0};

		while (s + 1 < tb->n_seq && tb->seq_off[s + 1] <= tok)
			s++;
		while (s > 0 && tb->seq_off[s] > tok)
			s--;
		int			t0 = tb->seq_off[s], hist_end = t0 + tb->n_hist[s];
		bool		cand = tok >= hist_end;
		/* the visible history [t0, t1), then the candidate's own slot where visible */
		int			t1 = cand ? hist_end : (self ? tok + 1 : tok);

		for (int t = t0; t <= t1; t++)
		{
			int			tt = t < t1 ? t : (cand && self ? tok : -1);

			if (tt < 0 || !tb->has_action[tt])
				continue;
			for (int k = 0; k < K; k++)
			{
				float		v = tb->action[(size_t) tt * K + k];

				if (!isnan(v))
				{
					sum[k] += v;
					n[k] += 1.0;
					last[k] = v;	/* tokens come in order, the candidate's own last */
				}
			}
		}
		for (int k = 0; k < K; k++)
		{
			float	   *ur = u + (size_t) r * GR_USER_FEATURES * K;

			ur[k] = (float) (sum[k] / (n[k] + shrink));
			ur[K + k] = (float) (n[k] / (n[k] + shrink));
			ur[2 * K + k] = last[k];
			ur[3 * K + k] = n[k] > 0.0 ? 1.0f : 0.0f;
		}
	}
}

/* Copy a token batch's metadata into the workspace's backend buffers. */
static gr_status
pass_upload(gr_acts *a, const gr_tokens *tb, gr_error *err)
{
	const gr_model *m = a->model;
	const gr_ops *ops = m->ops;
	int			N = tb->n_tokens, K = m->cfg.n_actions, nb = m->cfg.n_buckets;

	if (N > a->cap_tokens || tb->n_seq > a->cap_seq || tb->n_item_rows > a->cap_rows ||
		tb->n_act_rows > a->cap_rows)
		return gr_fail(err, GR_ERR_INTERNAL, "batch exceeds the workspace capacity");
	if (tb->n_actions != K && gr_layout_needs_actions(m->layout))
		return gr_fail(err, GR_ERR_INTERNAL, "batch has %d actions, model %d", tb->n_actions, K);
	a->tokens = tb;
	a->n_tokens = N;
	a->n_item_rows = tb->n_item_rows;
	a->n_act_rows = tb->n_act_rows;

	int32_t    *hi = a->h_int;
	float	   *hf = a->h_float;

	ops->upload(ops->ctx, a->tok_tq, tb->query_time, sizeof(int64_t) * N);
	ops->upload(ops->ctx, a->tok_tk, tb->key_time, sizeof(int64_t) * N);

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
	if (gr_layout_reads_actions(m->layout))
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
	if (gr_layout_has_action_head(m->layout) && R > 0)
	{
		upload_ints(ops, a->act_row_tok, tb->act_row_tok, R);
		for (int r = 0; r < R; r++)
		{
			int32_t		c = tb->act_row_coupler[r];

			hi[r] = (c > 0 && c <= m->cfg.n_items) ? c : -1;
		}
		upload_ints(ops, a->act_row_cpl, hi, R);
		if (m->w.head_item_b != NULL)
		{
			/* the item acted on: the coupler (PC), else the row token's item */
			for (int r = 0; r < R; r++)
			{
				int32_t		c = m->layout->action_head == GR_ACTION_HEAD_COUPLER ?
					tb->act_row_coupler[r] : tb->item[tb->act_row_tok[r]];

				hi[r] = (c > 0 && c <= m->cfg.n_items) ? c : -1;
			}
			upload_ints(ops, a->act_row_item, hi, R);
		}
		if (m->w.head_user_w != NULL)
		{
			user_offset_features(m, tb, hf);
			ops->upload(ops->ctx, a->act_uoff, hf,
						(size_t) R * GR_USER_FEATURES * K * sizeof(float));
		}
		for (size_t i = 0; i < (size_t) R * K; i++)
			a->n_act_targets[i % K] += !isnan(tb->act_row_target[i]);
		ops->upload(ops->ctx, a->act_row_target, tb->act_row_target,
					(size_t) R * K * sizeof(float));
	}
	return ops->check(ops->ctx, err);
}

/* φ(a) = sum_k A_k[bucket] + actval * W_lin accumulated into out [N, d]. */
static void
action_encode(const gr_model *m, gr_acts *a, float *out)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model, K = m->cfg.n_actions;

	for (int k = 0; k < K; k++)
		ops->gather_rows(cx, out, m->w.act_emb, a->tok_bucket + (size_t) k * N, N, d, 1.0f,
						 true);
	ops->gemm(cx, false, false, N, d, K, 1.0f, a->tok_actval, K, m->w.act_lin, d, 1.0f, out, d);
}

/* The action encoder's backward from d φ(a) [N, d]. */
static void
action_encode_backward(const gr_model *m, gr_acts *a, gr_weights *g, const float *dphi)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model, K = m->cfg.n_actions;

	for (int k = 0; k < K; k++)
		ops->scatter_add_rows(cx, g->act_emb, dphi, a->tok_bucket + (size_t) k * N, N, d, 1.0f);
	ops->gemm(cx, true, false, K, d, N, 1.0f, a->tok_actval, K, dphi, d, 1.0f, g->act_lin, d);
}

/*
 * Embeddings: x0 = s E[item] + P[pos] (+ φ(a) for token input), then dropout. An action
 * stream layout gets φ(a) in its own buffer instead, without dropout [D: the stream is read
 * as attention values only, where the residual dropout of the consuming layer applies].
 */
static void
embed_forward(const gr_model *m, gr_acts *a, const gr_pass *p)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model;

	ops->gather_rows(cx, a->x0, m->w.pos_emb, a->tok_pos, N, d, 1.0f, false);
	ops->gather_rows(cx, a->x0, m->w.item_emb, a->tok_item, N, d, m->cfg.emb_scale, true);
	if (m->layout->action_input == GR_ACTION_INPUT_TOKEN)
		action_encode(m, a, a->x0);
	else if (gr_layout_action_stream(m->layout))
	{
		ops->zero(cx, a->astream, (size_t) N * d * sizeof(float));
		action_encode(m, a, a->astream);
	}
	ops->dropout(cx, a->x0, a->x0, (size_t) N * d, p->dropout, p->seed, GR_SITE_EMBED, p->step);
}

/* Embedding backward: scatter dx0 (after the dropout mask) into the tables. */
static void
embed_backward(const gr_model *m, gr_acts *a, gr_weights *g, const float *dx0, const gr_pass *p)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model;

	ops->dropout(cx, a->d_tmp, dx0, (size_t) N * d, p->dropout, p->seed, GR_SITE_EMBED, p->step);
	ops->scatter_add_rows(cx, g->pos_emb, a->d_tmp, a->tok_pos, N, d, 1.0f);
	ops->scatter_add_rows(cx, g->item_emb, a->d_tmp, a->tok_item, N, d, m->cfg.emb_scale);
	if (m->layout->action_input == GR_ACTION_INPUT_TOKEN)
		action_encode_backward(m, a, g, a->d_tmp);
	else if (gr_layout_action_stream(m->layout))
		action_encode_backward(m, a, g, a->d_astream);
}

static const gr_pass inference_pass = {0};

/* Upload, embed, trunk, final LayerNorm, action head. */
gr_status
gr_model_forward(const gr_model *m, gr_acts *a, const gr_tokens *tb, const gr_pass *p,
				 gr_error *err)
{
	const gr_ops *ops = m->ops;

	if (p == NULL)
		p = &inference_pass;
	GR_TRY(pass_upload(a, tb, err));
	if (a->n_tokens > 0)
	{
		embed_forward(m, a, p);
		a->trunk_out = m->arch->forward(m, a, p);
		gr_norm_forward(ops, a->h, a->lnf_mean, a->lnf_rstd, a->trunk_out, m->w.lnf_w, m->w.lnf_b,
						a->n_tokens, m->cfg.d_model);
		if (gr_layout_pools_actions(m->layout))
			gr_pool_forward(m, a);
		gr_head_action_forward(m, a);
	}
	return ops->check(ops->ctx, err);
}

/* The losses and their gradients: heads, final LayerNorm, trunk, embeddings. */
gr_status
gr_model_backward(const gr_model *m, gr_acts *a, gr_weights *g, const gr_pass *p,
				  gr_step_loss *out, gr_error *err)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model, K = m->cfg.n_actions;
	size_t		nd = (size_t) N * d;
	double		col_loss[GR_MAX_ACTIONS];

	memset(out, 0, sizeof(*out));
	if (!a->train)
		return gr_fail(err, GR_ERR_INTERNAL, "backward pass on an inference workspace");
	/* a cancel is honoured between phases of a step, not only between steps */
	if (gr_should_stop(m->env))
		return gr_fail(err, GR_ERR_CANCELLED, "training cancelled");
	ops->zero(ops->ctx, a->d_res, nd * sizeof(float));
	if (gr_layout_action_stream(m->layout))
		ops->zero(ops->ctx, a->d_astream, nd * sizeof(float));
	if (gr_layout_pools_actions(m->layout))
		ops->zero(ops->ctx, a->d_pool, nd * sizeof(float));
	double		item_sum = gr_head_item_backward(m, a, g, p, p->w_item);

	gr_head_action_backward(m, a, g, p->w_action, p->w_task, col_loss);
	if (gr_layout_pools_actions(m->layout) && N > 0)
		gr_pool_backward(m, a, g);
	if (gr_should_stop(m->env))
		return gr_fail(err, GR_ERR_CANCELLED, "training cancelled");
	if (N > 0)
	{
		/* d x_L = LN_f'(dh): d_res (dh) -> d_res2 */
		ops->zero(ops->ctx, a->d_res2, nd * sizeof(float));
		gr_norm_backward(ops, a->d_res2, g->lnf_w, g->lnf_b, a->d_res, a->trunk_out, m->w.lnf_w,
						 a->lnf_mean, a->lnf_rstd, N, d);
		float	   *dx0 = m->arch->backward(m, a, g, p, a->d_res2);

		if (dx0 == NULL)
			return gr_fail(err, GR_ERR_CANCELLED, "training cancelled");
		embed_backward(m, a, g, dx0, p);
	}
	GR_TRY(ops->check(ops->ctx, err));

	out->n_item_targets = a->n_item_targets;
	out->item = a->n_item_targets > 0 ? item_sum / a->n_item_targets : 0.0;
	out->total = p->w_item * out->item;
	for (int k = 0; k < K && gr_layout_has_action_head(m->layout); k++)
	{
		out->n_action_targets[k] = a->n_act_targets[k];
		out->action[k] = a->n_act_targets[k] > 0 ? col_loss[k] / a->n_act_targets[k] : 0.0;
		out->total += p->w_action * (p->w_task ? p->w_task[k] : 1.0f) * out->action[k];
	}
	return GR_OK;
}
