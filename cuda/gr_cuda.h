/*
 * gr_cuda.h — internal declarations of the CUDA backend (cuda/ sources).
 *
 * The backend's state is one gr_cuda_ctx: the device, a stream every op is queued on, the
 * cuBLAS handle and its compute type (the math mode), scratch memory, and the first failure
 * since the last check() (a status and a message). Compute ops return nothing: they record a
 * failure and later ops become no-ops until check() reports and clears it. Nothing here calls
 * exit or abort.
 *
 * Built with GR_CUDA_EMU, the same sources compile as plain C++ against gr_cuda_emu.h, a CPU
 * emulation of the few runtime, cuBLAS and kernel features used, so the kernels' logic can be
 * tested on machines without a GPU (make cuda-emu).
 *
 * Rules every kernel follows (the emulation checks the launch limits; make cuda-emu-check runs
 * the op suite with GENREC_CUDA_GRID_CAP=3 so the loops run):
 *   - launch with GR_LAUNCH, never <<<>>> directly (errors are attributed to the right kernel);
 *   - size grids with gr_cuda_blocks / gr_cuda_dim and loop (grid-stride) over whatever the
 *     grid does not cover, in every dimension;
 *   - declare static shared memory with GR_SHARED, dynamic with GR_DYN_SMEM; dynamic shared
 *     memory above 48 KB is granted once per context at open (cudaFuncSetAttribute).
 */
#ifndef GR_CUDA_H
#define GR_CUDA_H

#ifdef GR_CUDA_EMU
#include "gr_cuda_emu.h"
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

extern "C"
{
#include "gr_device.h"
#include "gr_ops.h"
}

/*
 * Launch a kernel on the context's stream and check the launch; true when it was accepted.
 * An error pending from earlier, asynchronous work is reported first, naming the kernels
 * queued since the last synchronisation (gr_cuda_before_launch), so a fault is never blamed on
 * the kernel that happens to be launched next. The emulation runs the kernel on the CPU and
 * checks the launch against the limits of an sm_90 GPU (gr_cuda_emu.cc).
 */
#ifdef GR_CUDA_EMU
#define GR_LAUNCH(c, kern, grid, block, smem, ...) \
	(gr_cuda_before_launch(c) && \
	 (gr_emu_launch((const void *) &kern, #kern, dim3(grid), dim3(block), (smem), \
					[=]() { kern(__VA_ARGS__); }), \
	  gr_cuda_after_launch(c, #kern)))
#define GR_DYN_SMEM(type, name) type *name = (type *) gr_emu_dyn_smem()
/* Static shared memory: declare with GR_SHARED(type, name, [dims]) so the emulation counts it. */
#define GR_SHARED(type, name, dims) \
	static thread_local type name dims; gr_emu_static_smem(&name, sizeof(name))
#else
#define GR_LAUNCH(c, kern, grid, block, smem, ...) \
	(gr_cuda_before_launch(c) && \
	 (kern<<<(grid), (block), (smem), (c)->stream>>>(__VA_ARGS__), \
	  gr_cuda_after_launch(c, #kern)))
#define GR_DYN_SMEM(type, name) extern __shared__ __align__(16) type name[]
#define GR_SHARED(type, name, dims) __shared__ type name dims
#endif

/* Unroll a loop with a constant trip count (keeps small arrays in registers). */
#ifdef GR_CUDA_EMU
#define GR_UNROLL
#else
#define GR_UNROLL _Pragma("unroll")
#endif

#define GR_CUDA_MSG_LEN GR_ERROR_MESSAGE_LEN
#define GR_CUDA_QUEUED_NAMES 6	/* last kernels remembered for an asynchronous error */

typedef struct gr_cuda_ctx
{
	int			device;
	gr_math_mode math;
	cudaStream_t stream;
	cublasHandle_t blas;
	cublasComputeType_t compute;
	int			n_sm;
	size_t		smem_optin;		/* largest dynamic shared memory a block may ask for */

	/*
	 * Grid caps: every kernel loops (grid-stride) over the work its grid does not cover, so
	 * any cap is correct; GENREC_CUDA_GRID_CAP=N lowers both (tests use a tiny N so every
	 * multi-pass path runs).
	 */
	unsigned	grid_cap;		/* blocks along x (default 65535 * 8) */
	unsigned	grid_yz_cap;	/* blocks along y and z (default and hardware limit 65535) */
	bool		sync_each;		/* GENREC_CUDA_SYNC=1: synchronise after every launch */

	/* tiled attention kernels whose shared memory was granted at open (DH 32, 64, 128) */
	bool		attn_fwd_tiled[3];
	bool		attn_bwd_tiled[3];

	/* kernels launched since the last successful synchronisation, for error messages */
	const char *queued[GR_CUDA_QUEUED_NAMES];
	unsigned	n_queued;

	/* the first failure since the last check() */
	gr_status	err_status;
	char		err_msg[GR_CUDA_MSG_LEN];

	/* scratch: grown on demand, freed at close */
	void	   *scratch;
	size_t		scratch_bytes;

	gr_ops		ops;
	char		name[96];
} gr_cuda_ctx;

/* Record a failure unless one is already pending. */
void		gr_cuda_fail(gr_cuda_ctx *c, gr_status st, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Record a failed runtime call; returns true on success. */
bool		gr_cuda_ok(gr_cuda_ctx *c, cudaError_t e, const char *what);

/* Before a launch: report an error left by earlier asynchronous work; true when none. */
bool		gr_cuda_before_launch(gr_cuda_ctx *c);

/* After a launch: check that kernel was accepted (and, with sync_each, that it ran). */
bool		gr_cuda_after_launch(gr_cuda_ctx *c, const char *kernel);

/* Check a call that waits for the stream: a failure names the kernels that were queued. */
bool		gr_cuda_synced(gr_cuda_ctx *c, cudaError_t e, const char *what);

/* Grant the tiled attention kernels their dynamic shared memory, once per context. */
bool		gr_cuda_attn_setup(gr_cuda_ctx *c);

/* Scratch memory of at least bytes (contents undefined), or NULL after recording a failure. */
void	   *gr_cuda_scratch(gr_cuda_ctx *c, size_t bytes);

/* Blocks of `threads` threads covering n items, capped for grid-stride loops. */
static inline unsigned
gr_cuda_blocks(const gr_cuda_ctx *c, size_t n, unsigned threads)
{
	size_t		b = (n + threads - 1) / threads;

	if (b < 1)
		b = 1;
	if (b > c->grid_cap)
		b = c->grid_cap;
	return (unsigned) b;
}

/* A grid dimension covering n items (at least 1), capped at cap. */
static inline unsigned
gr_cuda_dim(size_t n, unsigned cap)
{
	return n < 1 ? 1u : n > cap ? cap : (unsigned) n;
}

#define GR_CTX(ctx) ((gr_cuda_ctx *) (ctx))
/* Skip an op once a failure is pending (its result would be garbage anyway). */
#define GR_CUDA_PENDING(c) ((c)->err_status != GR_OK)

/* pointwise, normalisation, dropout and embedding ops (gr_cuda_pointwise.cu) */
void		gr_cuda_scale(gr_cuda_ctx *c, float *x, int rows, int cols, int ld, float beta);
void		gr_cuda_add_bias(void *ctx, float *out, const float *bias, int rows, int cols);
void		gr_cuda_bias_grad(void *ctx, float *dbias, const float *dout, int rows, int cols);
void		gr_cuda_add(void *ctx, float *out, const float *a, const float *b, size_t n);
void		gr_cuda_layernorm_fwd(void *ctx, float *out, float *mean, float *rstd,
								  const float *inp, const float *w, const float *b, int rows,
								  int cols);
void		gr_cuda_layernorm_bwd(void *ctx, float *dinp, float *dw, float *db,
								  const float *dout, const float *inp, const float *w,
								  const float *mean, const float *rstd, int rows, int cols);
void		gr_cuda_gelu_fwd(void *ctx, float *out, const float *inp, size_t n);
void		gr_cuda_gelu_bwd(void *ctx, float *dinp, const float *inp, const float *dout,
							 size_t n);
void		gr_cuda_gate_fwd(void *ctx, float *out, const float *u, const float *y, size_t n);
void		gr_cuda_gate_bwd(void *ctx, float *du, float *dy, const float *dout, const float *u,
							 const float *y, size_t n);
void		gr_cuda_dropout(void *ctx, float *out, const float *inp, size_t n, float p,
							uint64_t seed, uint32_t site, uint32_t step);
void		gr_cuda_gather_rows(void *ctx, float *out, const float *table, const int32_t *idx,
								int rows, int cols, float scale, bool accumulate);
void		gr_cuda_scatter_add_rows(void *ctx, float *dtable, const float *dout,
									 const int32_t *idx, int rows, int cols, float scale);

/* attention (gr_cuda_attn.cu: the tiled causal kernels and the dispatch) */
void		gr_cuda_attn_fwd(void *ctx, float *out, float *lse, const float *qkv,
							 const float *v2, const gr_attn_seqs *seqs, gr_attn_mask mask,
							 int n_head, int d);
void		gr_cuda_attn_bwd(void *ctx, float *dqkv, float *dv2, const float *dout,
							 const float *qkv, const float *v2, const float *out,
							 const float *lse, const gr_attn_seqs *seqs, gr_attn_mask mask,
							 int n_head, int d);
/* the strict mask and the second value stream (gr_cuda_attn_ext.cu); T = longest sequence */
void		gr_cuda_attn_ext_fwd(gr_cuda_ctx *c, float *out, float *lse, const float *qkv,
								 const float *v2, const gr_attn_seqs *seqs, gr_attn_mask mask,
								 int n_head, int d, int T);
void		gr_cuda_attn_ext_bwd(gr_cuda_ctx *c, float *dqkv, float *dv2, const float *dout,
								 const float *qkv, const float *v2, const float *out,
								 const float *lse, const gr_attn_seqs *seqs, gr_attn_mask mask,
								 int n_head, int d, int T);

/* HSTU pointwise attention (gr_cuda_hstu.cu) */
void		gr_cuda_hstu_attn_fwd(void *ctx, float *out, const float *qkv, int ld,
								  const float *v2, const gr_hstu_rab *rab,
								  const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head,
								  int d, float alpha, float inv_n);
void		gr_cuda_hstu_attn_bwd(void *ctx, float *dqkv, float *dv2, float *d_w_pos,
								  float *d_w_time, const float *dout, const float *qkv, int ld,
								  const float *v2, const gr_hstu_rab *rab,
								  const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head,
								  int d, float alpha, float inv_n);

/* losses, optimiser and ranking (gr_cuda_loss.cu) */
void		gr_cuda_softmax_xent(void *ctx, float *logits, int ld, const int32_t *target,
								 int rows, int cols, float *loss, float grad_scale);
void		gr_cuda_sampled_xent(void *ctx, float *neg, int ld, float *pos,
								 const int32_t *target, const int32_t *cand, const float *logq,
								 int rows, int n_cand, float inv_temp, float *loss,
								 float grad_scale);
void		gr_cuda_row_dot(void *ctx, float *out, const float *a, const float *b, int rows,
							int cols);
void		gr_cuda_row_scale(void *ctx, float *out, const float *in, const float *s,
							  int rows, int cols, bool accumulate);
void		gr_cuda_l2norm_rows(void *ctx, float *x, float *rnorm, const int32_t *idx, int n,
								int cols);
void		gr_cuda_l2norm_bwd(void *ctx, float *dx, const float *y, const float *rnorm,
							   const float *dy, int rows, int cols);
void		gr_cuda_action_loss(void *ctx, const float *pred, const float *target, int rows,
								int k, const float *col_scale, uint32_t binary_mask,
								float *loss, float *grad);
void		gr_cuda_adamw(void *ctx, float *param, const float *grad, float *m, float *v,
						  size_t n, float lr, float beta1, float beta2, float eps,
						  float weight_decay, int t);
void		gr_cuda_adamw_rows(void *ctx, float *param, float *grad, float *m, float *v,
							   const int32_t *rows, int n_rows, int cols, float lr,
							   float beta1, float beta2, float eps, float weight_decay, int t);
void		gr_cuda_rank_targets(void *ctx, const float *scores, int ld, const int32_t *target,
								 const int32_t *excl_off, const int32_t *excl, int rows,
								 int cols, int32_t *rank_all, int32_t *rank_excl);
void		gr_cuda_topk(void *ctx, const float *scores, int ld, const int32_t *excl_off,
						 const int32_t *excl, int rows, int cols, int k, int32_t *out_idx,
						 float *out_val);

/* Sum a float over a warp. */
static __device__ __forceinline__ float
gr_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* Max of a float over a warp. */
static __device__ __forceinline__ float
gr_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

#endif							/* GR_CUDA_H */
