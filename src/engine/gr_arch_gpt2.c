/*
 * gr_arch_gpt2.c — the GPT-2 pre-LN decoder trunk (LAYOUTS.md §2.2; the LAC paper's backbone).
 *
 * Per layer, on X [N, d]:
 *   A = LN1(X); QKV = A Wqkv^T + b; O = attn(QKV); X1 = X + drop(O Wp^T + bp)
 *   M = LN2(X1); X2 = X1 + drop(GELU(M W1^T + b1) W2^T + b2)
 * With action values (GR_ACTION_INPUT_VALUES, AttnMVP) the attention is strict-causal and
 * mixes V_A = A W_va^T (A the action stream) into its values: attn(QKV, v2 = V_A).
 * The tensors and activations of a layer are declared once below; everything else (the
 * parameter table, init, file format, workspace) follows from these lists.
 */
#include "gr_arch.h"

/* Layer tensors: X(field, name, ndim, d0, d1, d2, init, present). */
#define GPT2_LAYER_TENSORS(X) \
	X(ln1_w, "ln1.weight", 1, z->D, 0, 0, GR_INIT_ONE, true) \
	X(ln1_b, "ln1.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	X(qkv_w, "attn.qkv.weight", 2, 3 * z->D, z->D, 0, GR_INIT_NORMAL, true) \
	X(qkv_b, "attn.qkv.bias", 1, 3 * z->D, 0, 0, GR_INIT_ZERO, true) \
	X(proj_w, "attn.proj.weight", 2, z->D, z->D, 0, GR_INIT_RESIDUAL, true) \
	X(proj_b, "attn.proj.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	/* AttnMVP's action-value projection (after attn.proj, the PyTorch module's order) */ \
	X(va_w, "attn.va.weight", 2, z->D, z->D, 0, GR_INIT_NORMAL, \
	  lay->action_input == GR_ACTION_INPUT_VALUES) \
	X(ln2_w, "ln2.weight", 1, z->D, 0, 0, GR_INIT_ONE, true) \
	X(ln2_b, "ln2.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	X(fc_w, "mlp.fc.weight", 2, 4 * z->D, z->D, 0, GR_INIT_NORMAL, true) \
	X(fc_b, "mlp.fc.bias", 1, 4 * z->D, 0, 0, GR_INIT_ZERO, true) \
	X(fcproj_w, "mlp.proj.weight", 2, z->D, 4 * z->D, 0, GR_INIT_RESIDUAL, true) \
	X(fcproj_b, "mlp.proj.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true)

/* Layer activations: X(field, floats, present) for z->N tokens. */
#define GPT2_LAYER_ACTS(X) \
	X(ln1, z->N * z->D, true) \
	X(ln1_mean, z->N, true) \
	X(ln1_rstd, z->N, true) \
	X(qkv, z->N * 3 * z->D, true)	/* q | k | v, heads contiguous in each */ \
	X(va, z->N * z->D, values)	/* AttnMVP: action values A W_va^T */ \
	X(att, z->N * z->D, true)	/* attention output before the projection */ \
	X(lse, z->N * z->H, true)	/* log-sum-exp per (token, head) */ \
	X(res1, z->N * z->D, true)	/* residual after attention */ \
	X(ln2, z->N * z->D, true) \
	X(ln2_mean, z->N, true) \
	X(ln2_rstd, z->N, true) \
	X(fc, z->N * 4 * z->D, true)	/* MLP hidden before GELU */ \
	X(fcg, z->N * 4 * z->D, true)	/* after GELU */ \
	X(out, z->N * z->D, true)	/* the layer's output */

/* Backward scratch shared by all layers: X(field, floats, present). */
#define GPT2_SCRATCH(X) \
	X(d_qkv, z->N * 3 * z->D, true) \
	X(d_va, z->N * z->D, values) \
	X(d_big, z->N * 4 * z->D, true)

GR_ARCH_LISTS(GPT2_LAYER_TENSORS, GPT2_LAYER_ACTS, GPT2_SCRATCH)

/* All blocks forward: x0 -> the last block's output. */
static const float *
gpt2_forward(const gr_model *m, gr_acts *a, const gr_pass *p)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model;
	size_t		nd = (size_t) N * d;
	const float *x = a->x0;
	gr_attn_mask mask = gr_layout_trunk_mask(m->layout);

	for (int l = 0; l < m->cfg.n_layer; l++)
	{
		layer_w		W = bind_w(&m->w, l);
		layer_a		A = bind_a(a, l);

		gr_norm_forward(ops, A.ln1, A.ln1_mean, A.ln1_rstd, x, W.ln1_w, W.ln1_b, N, d);
		gr_linear_forward(ops, A.qkv, A.ln1, W.qkv_w, W.qkv_b, N, d, 3 * d);
		if (W.va_w)				/* AttnMVP: V_A = A W_va^T, mixed in at the strict keys */
			ops->gemm(ops->ctx, false, true, N, d, d, 1.0f, a->astream, d, W.va_w, d, 0.0f,
					  A.va, d);
		gr_attention_forward(m, a, mask, A.att, A.lse, A.qkv, W.va_w ? A.va : NULL);
		gr_linear_forward(ops, A.res1, A.att, W.proj_w, W.proj_b, N, d, d);
		gr_residual_forward(ops, A.res1, x, nd, p, GR_SITE_LAYER(l, 0));
		gr_norm_forward(ops, A.ln2, A.ln2_mean, A.ln2_rstd, A.res1, W.ln2_w, W.ln2_b, N, d);
		gr_mlp_forward(ops, A.out, A.fc, A.fcg, A.ln2, W.fc_w, W.fc_b, W.fcproj_w, W.fcproj_b,
					   N, d, 4 * d);
		gr_residual_forward(ops, A.out, A.res1, nd, p, GR_SITE_LAYER(l, 1));
		x = A.out;
	}
	return x;
}

/* All blocks backward: dx at the last output -> d x0 (returned), or NULL when stopped. */
static float *
gpt2_backward(const gr_model *m, gr_acts *a, gr_weights *g, const gr_pass *p, float *dx)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model;
	size_t		nd = (size_t) N * d;
	scratch		S = bind_s(a);
	gr_attn_mask mask = gr_layout_trunk_mask(m->layout);
	float	   *cur = dx,
			   *other = dx == a->d_res ? a->d_res2 : a->d_res,
			   *tmp = a->d_tmp;

	for (int l = m->cfg.n_layer - 1; l >= 0; l--)
	{
		layer_w		W = bind_w(&m->w, l), G = bind_w(g, l);
		layer_a		A = bind_a(a, l);
		const float *x = l > 0 ? bind_a(a, l - 1).out : a->x0;

		if (gr_should_stop(m->env))
			return NULL;
		/* MLP branch: out = res1 + drop(mlp(LN2(res1))) */
		gr_residual_backward(ops, tmp, cur, nd, p, GR_SITE_LAYER(l, 1));
		gr_mlp_backward(ops, tmp, S.d_big, G.fc_w, G.fc_b, G.fcproj_w, G.fcproj_b, tmp, A.ln2,
						A.fc, A.fcg, W.fc_w, W.fcproj_w, N, d, 4 * d);
		/* d res1 = d out + LN2'(d ln2), built in other */
		ops->copy(ops->ctx, other, cur, nd * sizeof(float));
		gr_norm_backward(ops, other, G.ln2_w, G.ln2_b, tmp, A.res1, W.ln2_w, A.ln2_mean,
						 A.ln2_rstd, N, d);
		/* attention branch: res1 = x + drop(att Wp^T + bp) */
		gr_residual_backward(ops, tmp, other, nd, p, GR_SITE_LAYER(l, 0));
		gr_linear_backward(ops, S.d_big, G.proj_w, G.proj_b, tmp, A.att, W.proj_w, N, d, d,
						   false);
		gr_attention_backward(m, a, mask, S.d_qkv, W.va_w ? S.d_va : NULL, S.d_big, A.qkv,
							  W.va_w ? A.va : NULL, A.att, A.lse);
		if (W.va_w)
		{
			/* V_A = A W_va^T: dA += dV_A W_va, dW_va += dV_A^T A */
			ops->gemm(ops->ctx, false, false, N, d, d, 1.0f, S.d_va, d, W.va_w, d, 1.0f,
					  a->d_astream, d);
			ops->gemm(ops->ctx, true, false, d, d, N, 1.0f, S.d_va, d, a->astream, d, 1.0f,
					  G.va_w, d);
		}
		gr_linear_backward(ops, tmp, G.qkv_w, G.qkv_b, S.d_qkv, A.ln1, W.qkv_w, N, d, 3 * d,
						   false);
		gr_norm_backward(ops, other, G.ln1_w, G.ln1_b, tmp, x, W.ln1_w, A.ln1_mean,
						 A.ln1_rstd, N, d);
		float	   *t = cur;

		cur = other;
		other = t;
	}
	return cur;
}

const gr_arch gr_arch_gpt2 = {
	.name = "gpt2",
	.id = GR_TRUNK_GPT2,
	.reads_time = false,
	.declare_tensors = arch_declare_tensors,
	.declare_acts = arch_declare_acts,
	.forward = gpt2_forward,
	.backward = gpt2_backward,
};
