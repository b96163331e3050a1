/*
 * gr_blocks.c — the block helpers architectures are written with (gr_arch.h): linear layers,
 * LayerNorm, attention over the batch's packed sequences, the GELU MLP and residual dropout,
 * each a forward and a backward over the ops interface.
 */
#include "gr_arch.h"

/* Y = X W^T + b. */
void
gr_linear_forward(const gr_ops *ops, float *y, const float *x, const float *w, const float *b,
				  int n, int in, int out)
{
	ops->gemm(ops->ctx, false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
	ops->add_bias(ops->ctx, y, b, n, out);
}

/* dX (= or +=) dY W; dW += dY^T X; db += colsum dY. */
void
gr_linear_backward(const gr_ops *ops, float *dx, float *dw, float *db, const float *dy,
				   const float *x, const float *w, int n, int in, int out, bool accumulate_dx)
{
	if (dx)
		ops->gemm(ops->ctx, false, false, n, in, out, 1.0f, dy, out, w, in,
				  accumulate_dx ? 1.0f : 0.0f, dx, in);
	ops->gemm(ops->ctx, true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
	ops->bias_grad(ops->ctx, db, dy, n, out);
}

/* LayerNorm forward. */
void
gr_norm_forward(const gr_ops *ops, float *out, float *mean, float *rstd, const float *x,
				const float *w, const float *b, int n, int d)
{
	ops->layernorm_fwd(ops->ctx, out, mean, rstd, x, w, b, n, d);
}

/* LayerNorm backward (accumulating into dx). */
void
gr_norm_backward(const gr_ops *ops, float *dx, float *dw, float *db, const float *dy,
				 const float *x, const float *w, const float *mean, const float *rstd, int n,
				 int d)
{
	ops->layernorm_bwd(ops->ctx, dx, dw, db, dy, x, w, mean, rstd, n, d);
}

/* Softmax attention of the packed batch. */
void
gr_attention_forward(const gr_model *m, gr_acts *a, gr_attn_mask mask, float *out, float *lse,
					 const float *qkv, const float *v2)
{
	m->ops->attn_fwd(m->ops->ctx, out, lse, qkv, v2, &a->seqs, mask, m->cfg.n_head,
					 m->cfg.d_model);
}

/* Softmax attention backward. */
void
gr_attention_backward(const gr_model *m, gr_acts *a, gr_attn_mask mask, float *dqkv,
					  float *dv2, const float *dout, const float *qkv, const float *v2,
					  const float *out, const float *lse)
{
	m->ops->attn_bwd(m->ops->ctx, dqkv, dv2, dout, qkv, v2, out, lse, &a->seqs, mask,
					 m->cfg.n_head, m->cfg.d_model);
}

/* The GELU MLP forward. */
void
gr_mlp_forward(const gr_ops *ops, float *y, float *u, float *g, const float *x,
			   const float *w1, const float *b1, const float *w2, const float *b2, int n, int d,
			   int hidden)
{
	gr_linear_forward(ops, u, x, w1, b1, n, d, hidden);
	ops->gelu_fwd(ops->ctx, g, u, (size_t) n * hidden);
	gr_linear_forward(ops, y, g, w2, b2, n, hidden, d);
}

/* The GELU MLP backward: dx = W1^T (gelu'(u) * (W2^T dy)). */
void
gr_mlp_backward(const gr_ops *ops, float *dx, float *du, float *dw1, float *db1, float *dw2,
				float *db2, const float *dy, const float *x, const float *u, const float *g,
				const float *w1, const float *w2, int n, int d, int hidden)
{
	gr_linear_backward(ops, du, dw2, db2, dy, g, w2, n, hidden, d, false);
	ops->gelu_bwd(ops->ctx, du, u, du, (size_t) n * hidden);
	gr_linear_backward(ops, dx, dw1, db1, du, x, w1, n, d, hidden, false);
}

/* y = residual + dropout(y). */
void
gr_residual_forward(const gr_ops *ops, float *y, const float *residual, size_t n,
					const gr_pass *p, uint32_t site)
{
	ops->dropout(ops->ctx, y, y, n, p->dropout, p->seed, site, p->step);
	ops->add(ops->ctx, y, y, residual, n);
}

/* The branch gradient of a residual: dy through the forward pass's dropout mask. */
void
gr_residual_backward(const gr_ops *ops, float *out, const float *dy, size_t n,
					 const gr_pass *p, uint32_t site)
{
	ops->dropout(ops->ctx, out, dy, n, p->dropout, p->seed, site, p->step);
}
