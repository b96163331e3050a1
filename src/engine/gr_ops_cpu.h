/*
 * gr_ops_cpu.h — internal declarations shared by the CPU backend's files.
 */
#ifndef GR_OPS_CPU_H
#define GR_OPS_CPU_H

#include "gr_ops.h"

/*
 * GR_HOT marks a hot CPU kernel for runtime dispatch: GCC compiles it three times, for the
 * build's baseline (x86-64 by default), for x86-64-v3 (AVX2, FMA) and for x86-64-v4
 * (AVX-512), and the dynamic loader picks the best clone for the CPU it runs on (an ifunc,
 * resolved once at load). The rest of the engine is baseline code, so the module runs on any
 * x86-64 CPU. OpenMP regions inside a clone are cloned and dispatched with it. Native builds
 * (make NATIVE=1 defines GR_NO_CLONES), other architectures and other compilers build one
 * version for their -march.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
	!defined(GR_NO_CLONES)
#define GR_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GR_HOT
#endif

/*
 * A helper of GR_HOT kernels that must run at the kernel's level: inlined into every clone
 * (a function with clones of its own cannot be inlined, and a plain one called from three
 * clones is no longer "called once", so GCC would keep it as a baseline call).
 */
#define GR_HOT_INLINE inline __attribute__((always_inline))

/* Keys [0, nk) visible to query q, *self when q (a causal candidate) also sees itself, and
 * the strict keys [0, *nk2) that the second value stream is read at. */
static inline int
gr_cpu_visible_keys(int q, int n_hist, gr_attn_mask mask, bool *self, int *nk2)
{
	bool		candidate = q >= n_hist;

	*nk2 = candidate ? n_hist : q;
	if (mask == GR_MASK_STRICT)
	{
		*self = false;
		return *nk2;
	}
	*self = candidate;
	return candidate ? n_hist : q + 1;
}

void		gr_cpu_hstu_attn_fwd(void *ctx, float *out, const float *qkv, int ld,
								 const float *v2, const gr_hstu_rab *rab,
								 const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d,
								 float alpha, float inv_n);
void		gr_cpu_hstu_attn_bwd(void *ctx, float *dqkv, float *dv2, float *d_w_pos,
								 float *d_w_time, const float *dout, const float *qkv, int ld,
								 const float *v2, const gr_hstu_rab *rab,
								 const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d,
								 float alpha, float inv_n);
void		gr_cpu_attn_fwd(void *ctx, float *out, float *lse, const float *qkv,
							const float *v2, const gr_attn_seqs *seqs, gr_attn_mask mask,
							int n_head, int d);
void		gr_cpu_attn_bwd(void *ctx, float *dqkv, float *dv2, const float *dout,
							const float *qkv, const float *v2, const float *out,
							const float *lse, const gr_attn_seqs *seqs, gr_attn_mask mask,
							int n_head, int d);
void		gr_cpu_softmax_xent(void *ctx, float *logits, int ld, const int32_t *target,
								int rows, int cols, float *loss, float grad_scale);
void		gr_cpu_sampled_xent(void *ctx, float *neg, int ld, float *pos,
								const int32_t *target, const int32_t *cand, const float *logq,
								int rows, int n_cand, float inv_temp, float *loss,
								float grad_scale);
void		gr_cpu_action_loss(void *ctx, const float *pred, const float *target, int rows,
							   int k, const float *col_scale, uint32_t binary_mask,
							   float *loss, float *grad);
void		gr_cpu_adamw(void *ctx, float *param, const float *grad, float *m, float *v,
						 size_t n, float lr, float beta1, float beta2, float eps,
						 float weight_decay, int t);
void		gr_cpu_adamw_rows(void *ctx, float *param, float *grad, float *m, float *v,
							  const int32_t *rows, int n_rows, int cols, float lr, float beta1,
							  float beta2, float eps, float weight_decay, int t);
void		gr_cpu_rank_targets(void *ctx, const float *scores, int ld, const int32_t *target,
								const int32_t *excl_off, const int32_t *excl, int rows,
								int cols, int32_t *rank_all, int32_t *rank_excl);
void		gr_cpu_topk(void *ctx, const float *scores, int ld, const int32_t *excl_off,
						const int32_t *excl, int rows, int cols, int k, int32_t *out_idx,
						float *out_val);

/* Plain-C blocked GEMM (row-major, as cblas_sgemm), used when built with GR_BLAS=none. */
void		gr_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
						const float *a, int lda, const float *b, int ldb, float beta, float *c,
						int ldc);

/* Row-major SGEMM: OpenBLAS loaded at first use, or plain loops without it (gr_blas.c). */
void		gr_blas_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
						  int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Set OpenBLAS's thread count. */
void		gr_blas_set_threads(int n);

#endif							/* GR_OPS_CPU_H */
