/*
 * gr_heads.c — the tied item head (full-catalogue softmax cross-entropy, chunked over rows;
 * logit read-outs for evaluation and serving) and the action head (an MLP over h, or over
 * [h ; E[item]] for the PC coupler, or over [h ; p] with AttnLFA's pooled actions p; its
 * input width is gr_layout_head_inputs).
 */
#include "gr_arch.h"

#include <math.h>

/* Item head loss and backward; accumulates into d_res (dh) and the item table gradient. */
double
gr_head_item_backward(const gr_model *m, gr_acts *a, gr_weights *g, float weight)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			R = a->n_item_rows, d = m->cfg.d_model, V = m->cfg.n_items;
	const float *E = m->w.item_emb + d;	/* rows 1..V */
	float	   *gE = g->item_emb + d;

	if (R == 0 || a->n_item_targets == 0)
		return 0.0;
	float		scale = weight / (float) a->n_item_targets;

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
