/*
 * gr_arch_hstu.c — the HSTU trunk (LAYOUTS.md §2.3; Zhai et al. 2024, "Actions Speak Louder
 * than Words"), the DLRM-v3 variant of the generative-recommenders code.
 *
 * Per layer, on X [N, d]:
 *   A = LN1(X)                                  LayerNorm with gain and shift
 *   Q|K|V = A Wqkv^T + b;  U = A Wu^T + bu      (the uvqk projection, as two GEMMs)
 *   O = hstu_attn(Q, K, V)                      per head: SiLU(alpha q.k + rab_pos + rab_time) / n
 *   Y = X + drop((SiLU(U) * LNo(O)) Wo^T + bo)  U-gating of the normalised attention output
 * with no MLP. With action values (GR_ACTION_INPUT_VALUES, AttnMVP) the attention is
 * strict-causal and mixes V_A = A_stream W_va^T into its values, as in the GPT-2 trunk.
 *
 * Choices [D], and why:
 *  - DLRM-v3 rather than the research code: LayerNorms with affine parameters, biased
 *    projections, SiLU on U only, alpha = 1 / sqrt(d_head). It is the production variant, and
 *    its scaled scores keep SiLU out of saturation at initialisation without tuning.
 *  - n = the model's learned positions (the padded max length of both variants), a constant:
 *    the attention weights of a key do not depend on how many keys a query sees, which is
 *    what makes HSTU's pointwise attention well defined for the strict mask's empty rows.
 *  - rab_pos is indexed by the gap of the tokens' position ids, clamped to [0, n_pos): the
 *    HSTU code's Toeplitz w_p[N - 1 + j - i] restricted to the causal half, and the clamp
 *    puts a packed candidate (at position T_h) at gap pos_q - pos_k from the history keys and
 *    0 from itself. rab_time buckets |tq - tk| exactly as gr_hstu.h defines.
 *  - The learned absolute positions of the input stay (the HSTU research code's input
 *    preprocessor adds them too); the final LayerNorm of gr_forward.c follows the trunk.
 * The tensors and activations of a layer are declared once below.
 */
#include "gr_arch.h"

#include <math.h>

/* Layer tensors: X(field, name, ndim, d0, d1, d2, init, present). */
#define HSTU_LAYER_TENSORS(X) \
	X(ln_w, "ln.weight", 1, z->D, 0, 0, GR_INIT_ONE, true) \
	X(ln_b, "ln.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	X(qkv_w, "attn.qkv.weight", 2, 3 * z->D, z->D, 0, GR_INIT_NORMAL, true) \
	X(qkv_b, "attn.qkv.bias", 1, 3 * z->D, 0, 0, GR_INIT_ZERO, true) \
	X(u_w, "attn.u.weight", 2, z->D, z->D, 0, GR_INIT_NORMAL, true) \
	X(u_b, "attn.u.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	X(va_w, "attn.va.weight", 2, z->D, z->D, 0, GR_INIT_NORMAL, \
	  lay->action_input == GR_ACTION_INPUT_VALUES) \
	X(rab_pos, "attn.rab_pos", 1, z->P, 0, 0, GR_INIT_ZERO, true) \
	X(rab_time, "attn.rab_time", 1, GR_HSTU_TIME_BUCKETS, 0, 0, GR_INIT_ZERO, true) \
	X(lno_w, "attn.ln_out.weight", 1, z->D, 0, 0, GR_INIT_ONE, true) \
	X(lno_b, "attn.ln_out.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	X(proj_w, "attn.proj.weight", 2, z->D, z->D, 0, GR_INIT_RESIDUAL, true) \
	X(proj_b, "attn.proj.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true)

/* Layer activations: X(field, floats, present) for z->N tokens. */
#define HSTU_LAYER_ACTS(X) \
	X(ln, z->N * z->D, true) \
	X(ln_mean, z->N, true) \
	X(ln_rstd, z->N, true) \
	X(qkv, z->N * 3 * z->D, true)	/* q | k | v, heads contiguous in each */ \
	X(u, z->N * z->D, true)		/* U before SiLU */ \
	X(va, z->N * z->D, values)	/* AttnMVP: action values A W_va^T */ \
	X(att, z->N * z->D, true)	/* attention output O */ \
	X(lno, z->N * z->D, true)	/* LNo(O) */ \
	X(lno_mean, z->N, true) \
	X(lno_rstd, z->N, true) \
	X(gated, z->N * z->D, true)	/* SiLU(U) * LNo(O) */ \
	X(out, z->N * z->D, true)	/* the layer's output */

/* Backward scratch shared by all layers: X(field, floats, present). */
#define HSTU_SCRATCH(X) \
	X(d_qkv, z->N * 3 * z->D, true) \
	X(d_va, z->N * z->D, values) \
	X(d_gated, z->N * z->D, true) \
	X(d_u, z->N * z->D, true) \
	X(d_lno, z->N * z->D, true)

GR_ARCH_LISTS(HSTU_LAYER_TENSORS, HSTU_LAYER_ACTS, HSTU_SCRATCH)

/* The relative biases of layer W over the uploaded batch. */
static gr_hstu_rab
layer_rab(const gr_model *m, const gr_acts *a, const layer_w *W)
{
	gr_hstu_rab r = {
		.w_pos = W->rab_pos,.w_time = W->rab_time,.n_pos = m->n_positions,
		.pos = a->tok_pos,.tq = a->tok_tq,.tk = a->tok_tk,
	};

	return r;
}

/* alpha = 1 / sqrt(d_head). */
static float
score_scale(const gr_model *m)
{
	return 1.0f / sqrtf((float) (m->cfg.d_model / m->cfg.n_head));
}

/* All blocks forward: x0 -> the last block's output. */
static const float *
hstu_forward(const gr_model *m, gr_acts *a, const gr_pass *p)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model;
	size_t		nd = (size_t) N * d;
	const float *x = a->x0;
	gr_attn_mask mask = gr_layout_trunk_mask(m->layout);
	float		alpha = score_scale(m), inv_n = 1.0f / (float) m->n_positions;

	for (int l = 0; l < m->cfg.n_layer; l++)
	{
		layer_w		W = bind_w(&m->w, l);
		layer_a		A = bind_a(a, l);
		gr_hstu_rab rab = layer_rab(m, a, &W);

		gr_norm_forward(ops, A.ln, A.ln_mean, A.ln_rstd, x, W.ln_w, W.ln_b, N, d);
		gr_linear_forward(ops, A.qkv, A.ln, W.qkv_w, W.qkv_b, N, d, 3 * d);
		gr_linear_forward(ops, A.u, A.ln, W.u_w, W.u_b, N, d, d);
		if (W.va_w)				/* AttnMVP: V_A = A W_va^T, mixed in at the strict keys */
			ops->gemm(ops->ctx, false, true, N, d, d, 1.0f, a->astream, d, W.va_w, d, 0.0f,
					  A.va, d);
		ops->hstu_attn_fwd(ops->ctx, A.att, A.qkv, 3 * d, W.va_w ? A.va : NULL, &rab, &a->seqs,
						   mask, m->cfg.n_head, d, alpha, inv_n);
		gr_norm_forward(ops, A.lno, A.lno_mean, A.lno_rstd, A.att, W.lno_w, W.lno_b, N, d);
		ops->gate_fwd(ops->ctx, A.gated, A.u, A.lno, nd);
		gr_linear_forward(ops, A.out, A.gated, W.proj_w, W.proj_b, N, d, d);
		gr_residual_forward(ops, A.out, x, nd, p, GR_SITE_LAYER(l, 0));
		x = A.out;
	}
	return x;
}

/* All blocks backward: dx at the last output -> d x0 (returned), or NULL when stopped. */
static float *
hstu_backward(const gr_model *m, gr_acts *a, gr_weights *g, const gr_pass *p, float *dx)
{
	const gr_ops *ops = m->ops;
	int			N = a->n_tokens, d = m->cfg.d_model;
	size_t		nd = (size_t) N * d;
	scratch		S = bind_s(a);
	gr_attn_mask mask = gr_layout_trunk_mask(m->layout);
	float		alpha = score_scale(m), inv_n = 1.0f / (float) m->n_positions;
	float	   *cur = dx,
			   *other = dx == a->d_res ? a->d_res2 : a->d_res,
			   *tmp = a->d_tmp;

	for (int l = m->cfg.n_layer - 1; l >= 0; l--)
	{
		layer_w		W = bind_w(&m->w, l), G = bind_w(g, l);
		layer_a		A = bind_a(a, l);
		gr_hstu_rab rab = layer_rab(m, a, &W);
		const float *x = l > 0 ? bind_a(a, l - 1).out : a->x0;

		if (gr_should_stop(m->env))
			return NULL;
		/* out = x + drop(gated Wo^T + bo) */
		gr_residual_backward(ops, tmp, cur, nd, p, GR_SITE_LAYER(l, 0));
		gr_linear_backward(ops, S.d_gated, G.proj_w, G.proj_b, tmp, A.gated, W.proj_w, N, d, d,
						   false);
		/* gated = SiLU(U) * LNo(O) */
		ops->gate_bwd(ops->ctx, S.d_u, S.d_lno, S.d_gated, A.u, A.lno, nd);
		ops->zero(ops->ctx, tmp, nd * sizeof(float));
		gr_norm_backward(ops, tmp, G.lno_w, G.lno_b, S.d_lno, A.att, W.lno_w, A.lno_mean,
						 A.lno_rstd, N, d);
		/* O = hstu_attn(Q, K, V [, V_A]): tmp holds dO */
		ops->hstu_attn_bwd(ops->ctx, S.d_qkv, W.va_w ? S.d_va : NULL, G.rab_pos, G.rab_time, tmp,
						   A.qkv, 3 * d, W.va_w ? A.va : NULL, &rab, &a->seqs, mask,
						   m->cfg.n_head, d, alpha, inv_n);
		if (W.va_w)
		{
			/* V_A = A W_va^T: dA += dV_A W_va, dW_va += dV_A^T A */
			ops->gemm(ops->ctx, false, false, N, d, d, 1.0f, S.d_va, d, W.va_w, d, 1.0f,
					  a->d_astream, d);
			ops->gemm(ops->ctx, true, false, d, d, N, 1.0f, S.d_va, d, a->astream, d, 1.0f,
					  G.va_w, d);
		}
		/* d LN1 output = dQKV Wqkv + dU Wu, into tmp */
		gr_linear_backward(ops, tmp, G.qkv_w, G.qkv_b, S.d_qkv, A.ln, W.qkv_w, N, d, 3 * d,
						   false);
		gr_linear_backward(ops, tmp, G.u_w, G.u_b, S.d_u, A.ln, W.u_w, N, d, d, true);
		/* d x = d out + LN1'(tmp), built in other */
		ops->copy(ops->ctx, other, cur, nd * sizeof(float));
		gr_norm_backward(ops, other, G.ln_w, G.ln_b, tmp, x, W.ln_w, A.ln_mean, A.ln_rstd, N, d);
		float	   *t = cur;

		cur = other;
		other = t;
	}
	return cur;
}

/* The ops beyond GPT-2's that HSTU needs, when the backend lacks one. */
static const char *
hstu_missing_op(const gr_ops *ops)
{
	if (ops->hstu_attn_fwd == NULL || ops->hstu_attn_bwd == NULL)
		return "hstu_attn";
	if (ops->gate_fwd == NULL || ops->gate_bwd == NULL)
		return "gate";
	return NULL;
}

const gr_arch gr_arch_hstu = {
	.name = "hstu",
	.id = GR_TRUNK_HSTU,
	.reads_time = true,
	.missing_op = hstu_missing_op,
	.declare_tensors = arch_declare_tensors,
	.declare_acts = arch_declare_acts,
	.forward = hstu_forward,
	.backward = hstu_backward,
};
