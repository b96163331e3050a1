/*
 * gr_ops.h — the compute backend interface.
 *
 * Model code is written once against this table of function pointers; the CPU implementation
 * (gr_ops_cpu*.c, OpenBLAS for GEMM) and the CUDA implementation (cuda/, loaded with dlopen)
 * fill it. Every float pointer is backend memory from ops->alloc (host memory for the CPU);
 * every matrix is row-major. Compute ops return nothing: a backend that can fail (CUDA)
 * records the first failure and reports it through check(), which model code calls after each
 * forward, backward and optimiser step. Index arrays (int32) live in backend memory too.
 */
#ifndef GR_OPS_H
#define GR_OPS_H

#include "gr_common.h"
#include "gr_hstu.h"

/*
 * The sequences of one packed batch. Tokens of sequence s occupy rows
 * [seq_off[s], seq_off[s+1]); the first n_hist[s] of them are history tokens, the rest are
 * candidates. Host copies are given for launch configuration; device copies for kernels.
 */
typedef struct gr_attn_seqs
{
	int			n_seq;
	int			max_tokens;		/* longest sequence */
	const int32_t *seq_off;		/* host, n_seq + 1 */
	const int32_t *n_hist;		/* host, n_seq */
	const int32_t *dev_seq_off; /* backend copy of seq_off */
	const int32_t *dev_n_hist;	/* backend copy of n_hist */
} gr_attn_seqs;

/*
 * Attention mask predicates over one packed sequence (LAYOUTS.md §2.4), with H = n_hist:
 *   GR_MASK_CAUSAL   allow(q, k) = (q < H && k <= q) || (q >= H && (k < H || k == q))
 *                    causal over the history; a candidate sees the history and itself
 *                    (block-causal packed scoring); plain causal when H is the length
 *   GR_MASK_STRICT   strict(q, k) = (q < H && k < q) || (q >= H && k < H)
 *                    strictly earlier history keys only (AttnLFA pooling, AttnMVP)
 * Evaluated inside the kernels; no T x T mask is ever built. A query that sees no key (the
 * first token under the strict mask) gets the output 0 and lse = -inf.
 */
typedef enum gr_attn_mask
{
	GR_MASK_CAUSAL = 0,
	GR_MASK_STRICT = 1,
} gr_attn_mask;

/* The smallest row norm l2norm_rows divides by (as torch.nn.functional.normalize). */
#define GR_L2NORM_EPS 1e-12f

typedef enum gr_device_kind
{
	GR_DEVICE_CPU = 0,
	GR_DEVICE_CUDA = 1
} gr_device_kind;

typedef struct gr_ops
{
	const char *name;
	gr_device_kind device;
	void	   *ctx;			/* backend state: BLAS/cuBLAS handles, scratch */

	/* memory: alloc returns NULL on failure */
	void	   *(*alloc) (void *ctx, size_t bytes);
	void		(*free) (void *ctx, void *ptr);
	void		(*upload) (void *ctx, void *dst, const void *src, size_t bytes);
	void		(*download) (void *ctx, void *dst, const void *src, size_t bytes);
	void		(*zero) (void *ctx, void *dst, size_t bytes);
	void		(*copy) (void *ctx, void *dst, const void *src, size_t bytes);
	/* wait for queued work and return (then clear) the first failure since the last check */
	gr_status	(*check) (void *ctx, gr_error *err);

	/* C[m,n] = alpha * op(A) * op(B) + beta * C */
	void		(*gemm) (void *ctx, bool trans_a, bool trans_b, int m, int n, int k,
						 float alpha, const float *a, int lda, const float *b, int ldb,
						 float beta, float *c, int ldc);
	/* out[r,c] += bias[c] */
	void		(*add_bias) (void *ctx, float *out, const float *bias, int rows, int cols);
	/* dbias[c] += sum_r dout[r,c] */
	void		(*bias_grad) (void *ctx, float *dbias, const float *dout, int rows, int cols);
	/* out = a + b, elementwise (out may alias a or b) */
	void		(*add) (void *ctx, float *out, const float *a, const float *b, size_t n);

	/* LayerNorm over rows; mean and rstd (rows) are saved for the backward pass */
	void		(*layernorm_fwd) (void *ctx, float *out, float *mean, float *rstd,
								  const float *inp, const float *w, const float *b,
								  int rows, int cols);
	/* dinp += ..., dw += ..., db += ... */
	void		(*layernorm_bwd) (void *ctx, float *dinp, float *dw, float *db,
								  const float *dout, const float *inp, const float *w,
								  const float *mean, const float *rstd, int rows, int cols);
	/* GELU, tanh form */
	void		(*gelu_fwd) (void *ctx, float *out, const float *inp, size_t n);
	/* dinp = dout * gelu'(inp); dinp may alias dout */
	void		(*gelu_bwd) (void *ctx, float *dinp, const float *inp, const float *dout,
							 size_t n);
	/* HSTU's gating: out = SiLU(u) * y, elementwise (SiLU(z) = z sigmoid(z)) */
	void		(*gate_fwd) (void *ctx, float *out, const float *u, const float *y, size_t n);
	/* its backward: du = dout * y * SiLU'(u), dy = dout * SiLU(u), both overwritten */
	void		(*gate_bwd) (void *ctx, float *du, float *dy, const float *dout, const float *u,
							 const float *y, size_t n);
	/* out[i] = keep(i) ? inp[i] / (1 - p) : 0, keep drawn from gr_dropout_keep(seed, site,
	 * step, i); the same call applies the mask in the backward pass. out may alias inp. */
	void		(*dropout) (void *ctx, float *out, const float *inp, size_t n, float p,
							uint64_t seed, uint32_t site, uint32_t step);

	/* out[r] (= or +=) scale * table[idx[r]] for idx[r] >= 0; rows with idx < 0 get 0 (or
	 * are left alone when accumulating) */
	void		(*gather_rows) (void *ctx, float *out, const float *table, const int32_t *idx,
								int rows, int cols, float scale, bool accumulate);
	/* dtable[idx[r]] += scale * dout[r] for idx[r] >= 0 (duplicates accumulate) */
	void		(*scatter_add_rows) (void *ctx, float *dtable, const float *dout,
									 const int32_t *idx, int rows, int cols, float scale);

	/*
	 * Softmax attention over packed sequences: qkv is [tokens, 3d] (q | k | v, heads
	 * contiguous in each); out is [tokens, d]; lse is [tokens, n_head] (log-sum-exp of the
	 * scaled scores). P is the softmax of q.k / sqrt(d_head) over the keys mask allows. v2,
	 * when not NULL, is a second value stream [tokens, d] read with the same P but only at
	 * the keys of the strict predicate:
	 *   out_q = sum_{allow(q,k)} P_qk v_k + sum_{strict(q,k)} P_qk v2_k
	 * (with mask = GR_MASK_STRICT that is sum_k P_qk (v_k + v2_k), AttnMVP's mixed values).
	 */
	void		(*attn_fwd) (void *ctx, float *out, float *lse, const float *qkv,
							 const float *v2, const gr_attn_seqs *seqs, gr_attn_mask mask,
							 int n_head, int d);
	/* dqkv (and dv2 when v2 is given) = gradients given dout; both overwritten */
	void		(*attn_bwd) (void *ctx, float *dqkv, float *dv2, const float *dout,
							 const float *qkv, const float *v2, const float *out,
							 const float *lse, const gr_attn_seqs *seqs, gr_attn_mask mask,
							 int n_head, int d);

	/*
	 * HSTU pointwise attention (LAYOUTS.md §2.3) over packed sequences: q | k | v are the
	 * first 3d columns of qkv (row stride ld >= 3d, heads contiguous in each), out is [tokens,
	 * d]. Per head, S_qk = alpha q.k + the relative biases of rab (gr_hstu.h) and
	 * A_qk = SiLU(S_qk) * inv_n (no softmax: inv_n is 1 / the model's positions); then
	 *   out_q = sum_{allow(q,k)} A_qk v_k + sum_{strict(q,k)} A_qk v2_k
	 * with v2 (optional, [tokens, d]) as in attn_fwd. A query that sees no key gets 0.
	 */
	void		(*hstu_attn_fwd) (void *ctx, float *out, const float *qkv, int ld,
								  const float *v2, const gr_hstu_rab *rab,
								  const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head,
								  int d, float alpha, float inv_n);
	/* The gradients given dout: the q | k | v columns of dqkv (row stride ld) and dv2 (when v2
	 * is given) are overwritten; d_w_pos [n_pos] and d_w_time [GR_HSTU_TIME_BUCKETS]
	 * accumulate. */
	void		(*hstu_attn_bwd) (void *ctx, float *dqkv, float *dv2, float *d_w_pos,
								  float *d_w_time, const float *dout, const float *qkv, int ld,
								  const float *v2, const gr_hstu_rab *rab,
								  const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head,
								  int d, float alpha, float inv_n);

	/* Softmax cross-entropy in place: logits[r] (row stride ld) becomes
	 * grad_scale * (softmax - onehot(target[r])); loss[r] = -log softmax[target[r]].
	 * Rows with target < 0 get zero gradient and zero loss. */
	void		(*softmax_xent) (void *ctx, float *logits, int ld, const int32_t *target,
								 int rows, int cols, float *loss, float grad_scale);
	/*
	 * Sampled softmax cross-entropy over candidates shared by the rows (LAYOUTS.md §2.6 2-3).
	 * Row r with target column t = target[r] >= 0 has the logits z_0 = inv_temp * pos[r] (its
	 * positive) and z_c = inv_temp * neg[r, c] - logq[c] for every candidate c < n_cand with
	 * cand[c] >= 0 and cand[c] != t; other candidates (accidental hits, padding) are left out.
	 * loss[r] = logsumexp(z) - z_0. In place, neg[r, c] becomes grad_scale * inv_temp * p_c
	 * (0 where left out) and pos[r] grad_scale * inv_temp * (p_0 - 1): the gradients of
	 * grad_scale * loss with respect to the raw scores. Rows with target < 0 get zero
	 * gradients and zero loss. neg has row stride ld; logq is [n_cand].
	 */
	void		(*sampled_xent) (void *ctx, float *neg, int ld, float *pos,
								 const int32_t *target, const int32_t *cand, const float *logq,
								 int rows, int n_cand, float inv_temp, float *loss,
								 float grad_scale);
	/* out[r] = sum_c a[r, c] b[r, c] */
	void		(*row_dot) (void *ctx, float *out, const float *a, const float *b, int rows,
							int cols);
	/* out[r, :] (= or +=) s[r] * in[r, :] */
	void		(*row_scale) (void *ctx, float *out, const float *in, const float *s, int rows,
							  int cols, bool accumulate);

	/*
	 * Unit rows in place: x[i, :] /= max(|x[i, :]|, GR_L2NORM_EPS) for the n rows listed in
	 * idx (backend int32, >= 0, distinct), or rows 0 .. n-1 when idx is NULL; rnorm[i] (when
	 * not NULL) gets 1 / max(|x[i, :]|, GR_L2NORM_EPS). A zero row stays zero.
	 */
	void		(*l2norm_rows) (void *ctx, float *x, float *rnorm, const int32_t *idx, int n,
								int cols);
	/* Backward of y = x / |x| per row from the forward's y and rnorm:
	 * dx[r, :] = rnorm[r] (dy[r, :] - y[r, :] (y[r, :] . dy[r, :])); dx may be dy. */
	void		(*l2norm_bwd) (void *ctx, float *dx, const float *y, const float *rnorm,
							   const float *dy, int rows, int cols);

	/* Action losses with NaN targets skipped, per element of pred/target [rows, k]:
	 * continuous columns: loss = (pred - y)^2, grad = scale[c] * 2 (pred - y);
	 * binary columns (bit c of binary_mask; pred is a logit): loss = softplus(pred) - y pred,
	 * grad = scale[c] * (sigmoid(pred) - y). col_scale is a host array of k floats. */
	void		(*action_loss) (void *ctx, const float *pred, const float *target, int rows,
								int k, const float *col_scale, uint32_t binary_mask,
								float *loss, float *grad);

	/* AdamW with bias correction at step t (1-based); decoupled weight decay */
	void		(*adamw) (void *ctx, float *param, const float *grad, float *m, float *v,
						  size_t n, float lr, float beta1, float beta2, float eps,
						  float weight_decay, int t);

	/*
	 * Lazy AdamW on a table's rows: for each of the n_rows rows listed in rows (backend int32,
	 * distinct, >= 0) of a row-major [*, cols] table, the adamw update above on its cols
	 * elements of param, m and v, then grad's row set to zero. Rows not listed are not read
	 * or written (no moment decay, no weight decay): the item table's update for the sampled
	 * losses, which touch few rows per step (see gr_train_lazy.c).
	 */
	void		(*adamw_rows) (void *ctx, float *param, float *grad, float *m, float *v,
							   const int32_t *rows, int n_rows, int cols, float lr,
							   float beta1, float beta2, float eps, float weight_decay, int t);

	/* For each row r of scores (row stride ld, cols items): rank of column target[r] among
	 * the columns, 1 + count of strictly higher scores. rank_all counts every column;
	 * rank_excl skips the columns listed in excl[excl_off[r] .. excl_off[r+1]), sorted
	 * ascending without duplicates (never the target itself). Rows with target < 0 get rank 0;
	 * a NaN target score ranks last (cols); NaN scores of other columns never rank above. */
	void		(*rank_targets) (void *ctx, const float *scores, int ld, const int32_t *target,
								 const int32_t *excl_off, const int32_t *excl, int rows,
								 int cols, int32_t *rank_all, int32_t *rank_excl);
	/* Top k columns of each row by score, best first, skipping excluded columns (as above,
	 * excl may be NULL) and NaN scores; fills out_idx/out_val [rows, k], -1 / -inf when fewer
	 * exist. Ties are deterministic on every backend: equal scores (-0.0 equals +0.0) go by
	 * ascending column, both in the order and in which of them make the cut. */
	void		(*topk) (void *ctx, const float *scores, int ld, const int32_t *excl_off,
						 const int32_t *excl, int rows, int cols, int k, int32_t *out_idx,
						 float *out_val);
} gr_ops;

/* The CPU backend (OpenBLAS GEMM, OpenMP loops); always available. Its buffers come from
 * the C library; transient per-thread scratch inside parallel loops always does (a host
 * allocator such as PostgreSQL's is not thread-safe) and is freed before the op returns. */
const gr_ops *gr_ops_cpu(void);

/* Fill *out with the CPU backend allocating its buffers through allocator (which must
 * outlive every buffer), e.g. a PostgreSQL memory context so an error frees them. */
void		gr_ops_cpu_bind(gr_ops *out, const gr_allocator *allocator);

/* Set the CPU backend's thread count (BLAS and OpenMP); n <= 0 leaves the defaults. */
void		gr_ops_cpu_set_threads(int n);

/* Describe the CPU backend's GEMM library (path, configuration, core type) or "builtin". */
const char *gr_blas_name(void);

#endif							/* GR_OPS_H */
