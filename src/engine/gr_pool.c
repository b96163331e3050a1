/*
 * gr_pool.c — AttnLFA's late-fusion action pooling (LAYOUTS.md §4.5), one multi-head
 * attention layer after the trunk and its final LayerNorm:
 *   q_n = W_q h_n, k_j = W_k h_j, v_j = W_v A_j   (A = φ(a), the action stream)
 *   p_n = W_o sum_{j<n} softmax_{j<n}(q_n.k_j / sqrt(d_h)) v_j + b_o
 * under the strict mask (a candidate pools over the whole history), written with the trunk's
 * attention op: q | k | v go into one [N, 3d] buffer (q | k straight from a GEMM with row
 * stride 3d, v likewise), so no new kernel is needed on either backend. The empty set pools
 * to 0 (the op's convention), so p_1 = b_o.
 */
#include "gr_arch.h"

/* The pooling forward over every token. */
void
gr_pool_forward(const gr_model *m, gr_acts *a)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model;

	ops->gemm(cx, false, true, N, 2 * d, d, 1.0f, a->h, d, m->w.pool_qk_w, d, 0.0f,
			  a->pool_qkv, 3 * d);
	ops->gemm(cx, false, true, N, d, d, 1.0f, a->astream, d, m->w.pool_v_w, d, 0.0f,
			  a->pool_qkv + 2 * d, 3 * d);
	ops->attn_fwd(cx, a->pool_att, a->pool_lse, a->pool_qkv, NULL, &a->seqs, GR_MASK_STRICT,
				  m->cfg.n_head, d);
	gr_linear_forward(ops, a->pool_out, a->pool_att, m->w.pool_proj_w, m->w.pool_proj_b, N, d, d);
}

/* The pooling backward from a->d_pool. */
void
gr_pool_backward(const gr_model *m, gr_acts *a, gr_weights *g)
{
	const gr_ops *ops = m->ops;
	void	   *cx = ops->ctx;
	int			N = a->n_tokens, d = m->cfg.d_model;
	const float *dqk = a->d_pool_qkv, *dv = a->d_pool_qkv + 2 * d;

	gr_linear_backward(ops, a->d_pool_att, g->pool_proj_w, g->pool_proj_b, a->d_pool,
					   a->pool_att, m->w.pool_proj_w, N, d, d, false);
	ops->attn_bwd(cx, a->d_pool_qkv, NULL, a->d_pool_att, a->pool_qkv, NULL, a->pool_att,
				  a->pool_lse, &a->seqs, GR_MASK_STRICT, m->cfg.n_head, d);
	/* q | k = h W_qk^T: dh += dqk W_qk, dW_qk += dqk^T h */
	ops->gemm(cx, false, false, N, d, 2 * d, 1.0f, dqk, 3 * d, m->w.pool_qk_w, d, 1.0f,
			  a->d_res, d);
	ops->gemm(cx, true, false, 2 * d, d, N, 1.0f, dqk, 3 * d, a->h, d, 1.0f, g->pool_qk_w, d);
	/* v = A W_v^T: dA += dv W_v, dW_v += dv^T A */
	ops->gemm(cx, false, false, N, d, d, 1.0f, dv, 3 * d, m->w.pool_v_w, d, 1.0f,
			  a->d_astream, d);
	ops->gemm(cx, true, false, d, d, N, 1.0f, dv, 3 * d, a->astream, d, 1.0f, g->pool_v_w, d);
}
