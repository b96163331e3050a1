/*
 * gr_cuda_main.cu — the CUDA backend's entry points (gr_cuda_open, gr_cuda_close), its
 * context and error handling, memory ops and GEMM through cuBLAS.
 *
 * GEMM: the engine's matrices are row-major, cuBLAS's column-major. A row-major C[m,n] is a
 * column-major C^T[n,m], and C^T = op(B)^T op(A)^T, so a row-major GEMM is one cuBLAS call
 * with the operands (and m, n) swapped and the same transpose flags. The math mode picks the
 * compute type: fp32 (CUBLAS_COMPUTE_32F), tf32 (CUBLAS_COMPUTE_32F_FAST_TF32, the default)
 * or bf16 (CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to bf16 inside cuBLAS, accumulation
 * and every stored tensor fp32 — the parameters are their own fp32 master weights, so no
 * separate bf16 copies or casts are kept).
 */
#include "gr_cuda.h"

#include <stdlib.h>

/* Record a failure unless one is already pending. */
void
gr_cuda_fail(gr_cuda_ctx *c, gr_status st, const char *fmt,...)
{
	va_list		ap;

	if (c->err_status != GR_OK)
		return;
	c->err_status = st;
	va_start(ap, fmt);
	vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
	va_end(ap);
}


/* Say which kernels were queued since the last synchronisation (the last few, oldest first). */
static void
queued_names(const gr_cuda_ctx *c, char *buf, size_t len)
{
	unsigned	n = c->n_queued < GR_CUDA_QUEUED_NAMES ? c->n_queued : GR_CUDA_QUEUED_NAMES;
	size_t		used;

	if (c->n_queued == 1)
	{
		snprintf(buf, len, "%s, the one kernel queued since the last synchronisation",
				 c->queued[0]);
		return;
	}
	used = (size_t) snprintf(buf, len, "one of the %u kernels queued since the last "
							 "synchronisation%s", c->n_queued,
							 c->sync_each ? "" : " (GENREC_CUDA_SYNC=1 names the failing one)");
	for (unsigned i = 0; i < n && used < len; i++)
	{
		unsigned	slot = (c->n_queued - n + i) % GR_CUDA_QUEUED_NAMES;

		used += (size_t) snprintf(buf + used, len - used, "%s%s", i ? ", " : "; last: ",
								  c->queued[slot]);
	}
}

/* Record an error that surfaced from queued (asynchronous) work, naming the suspects. */
static void
fail_async(gr_cuda_ctx *c, cudaError_t e, const char *what)
{
	char		names[GR_CUDA_MSG_LEN];

	queued_names(c, names, sizeof(names));
	gr_cuda_fail(c, e == cudaErrorMemoryAllocation ? GR_ERR_OUT_OF_MEMORY : GR_ERR_DEVICE,
				 "CUDA error (%s): %s; from %s", what, cudaGetErrorString(e), names);
}

/* Record a failed runtime call; an error may also be left by queued kernels (a call that
 * enqueues work reports the context's sticky error), so those are named too. */
bool
gr_cuda_ok(gr_cuda_ctx *c, cudaError_t e, const char *what)
{
	char		names[GR_CUDA_MSG_LEN];

	if (e == cudaSuccess)
		return true;
	if (e == cudaErrorMemoryAllocation || c->n_queued == 0)
	{
		gr_cuda_fail(c, e == cudaErrorMemoryAllocation ? GR_ERR_OUT_OF_MEMORY : GR_ERR_DEVICE,
					 "CUDA error in %s: %s", what, cudaGetErrorString(e));
		return false;
	}
	queued_names(c, names, sizeof(names));
	gr_cuda_fail(c, GR_ERR_DEVICE, "CUDA error in %s: %s (or left by %s)", what,
				 cudaGetErrorString(e), names);
	return false;
}

/* Check a call that waited for the stream: a failure came from queued work. */
bool
gr_cuda_synced(gr_cuda_ctx *c, cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
	{
		c->n_queued = 0;
		return true;
	}
	fail_async(c, e, what);
	return false;
}

/* Before a launch: an error pending now was left by earlier work, not by this kernel. */
bool
gr_cuda_before_launch(gr_cuda_ctx *c)
{
	cudaError_t e = cudaGetLastError();

	if (e == cudaSuccess)
		return true;
	fail_async(c, e, "pending before a launch");
	return false;
}

/* After a launch: an error now is this kernel's launch failure (bad configuration, too much
 * shared memory, no image for the device); with sync_each also its execution. */
bool
gr_cuda_after_launch(gr_cuda_ctx *c, const char *kernel)
{
	cudaError_t e = cudaGetLastError();

	if (e != cudaSuccess)
	{
		gr_cuda_fail(c, GR_ERR_DEVICE, "CUDA error launching %s: %s", kernel,
					 cudaGetErrorString(e));
		return false;
	}
	c->queued[c->n_queued % GR_CUDA_QUEUED_NAMES] = kernel;
	c->n_queued++;
	if (c->sync_each && (e = cudaStreamSynchronize(c->stream)) != cudaSuccess)
	{
		gr_cuda_fail(c, GR_ERR_DEVICE, "CUDA error in %s: %s", kernel, cudaGetErrorString(e));
		return false;
	}
	if (c->sync_each)
		c->n_queued = 0;
	return true;
}

/* Return scratch memory of at least bytes, growing it when needed. */
void *
gr_cuda_scratch(gr_cuda_ctx *c, size_t bytes)
{
	if (bytes <= c->scratch_bytes)
		return c->scratch;
	if (c->scratch != NULL)
	{
		/* the old scratch may still be read by queued work: wait before freeing */
		if (!gr_cuda_synced(c, cudaStreamSynchronize(c->stream), "scratch (synchronize)"))
			return NULL;
		cudaFree(c->scratch);
		c->scratch = NULL;
		c->scratch_bytes = 0;
	}
	bytes = (bytes + 0xfffff) & ~(size_t) 0xfffff;	/* whole MiB */
	if (!gr_cuda_ok(c, cudaMalloc(&c->scratch, bytes), "scratch (cudaMalloc)"))
	{
		c->scratch = NULL;
		return NULL;
	}
	c->scratch_bytes = bytes;
	return c->scratch;
}

/* Allocate device memory; NULL on failure (the engine reports out of memory). */
static void *
cu_alloc(void *ctx, size_t bytes)
{
	void	   *p = NULL;

	(void) ctx;
	if (bytes == 0)
		bytes = 256;
	if (cudaMalloc(&p, bytes) != cudaSuccess)
	{
		cudaGetLastError();		/* an allocation failure is not sticky */
		return NULL;
	}
	return p;
}

/* Free device memory (waits for the device, as cudaFree does). */
static void
cu_free(void *ctx, void *ptr)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (ptr != NULL)
		gr_cuda_ok(c, cudaFree(ptr), "cudaFree");
}

/* Copy host to device; the host buffer may be reused as soon as this returns. */
static void
cu_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (bytes == 0 || GR_CUDA_PENDING(c))
		return;
	/* from pageable memory the source is consumed before cudaMemcpyAsync returns */
	gr_cuda_ok(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream),
			   "upload (cudaMemcpyAsync)");
}

/* Copy device to host and wait, so the host may read the data at once. */
static void
cu_download(void *ctx, void *dst, const void *src, size_t bytes)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (bytes == 0 || GR_CUDA_PENDING(c))
		return;
	if (gr_cuda_synced(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream),
					   "download (cudaMemcpyAsync)"))
		gr_cuda_synced(c, cudaStreamSynchronize(c->stream), "download (synchronize)");
}

/* Zero device memory. */
static void
cu_zero(void *ctx, void *dst, size_t bytes)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (bytes == 0 || GR_CUDA_PENDING(c))
		return;
	gr_cuda_ok(c, cudaMemsetAsync(dst, 0, bytes, c->stream), "zero (cudaMemsetAsync)");
}

/* Copy device to device. */
static void
cu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (bytes == 0 || dst == src || GR_CUDA_PENDING(c))
		return;
	gr_cuda_ok(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream),
			   "copy (cudaMemcpyAsync)");
}

/* Wait for queued work; return and clear the first failure since the last check. */
static gr_status
cu_check(void *ctx, gr_error *err)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	gr_status	st;

	if (c->err_status == GR_OK)
	{
		if (gr_cuda_synced(c, cudaStreamSynchronize(c->stream), "synchronize"))
			gr_cuda_synced(c, cudaGetLastError(), "after synchronize");
	}
	st = c->err_status;
	if (st != GR_OK)
	{
		if (err != NULL)
		{
			err->status = st;
			snprintf(err->message, sizeof(err->message), "%s", c->err_msg);
		}
		c->err_status = GR_OK;
		c->err_msg[0] = '\0';
	}
	return st;
}

/* Row-major GEMM through column-major cuBLAS (operands swapped). */
static void
cu_gemm(void *ctx, bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
		int lda, const float *b, int ldb, float beta, float *cmat, int ldc)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	cublasStatus_t s;

	if (m <= 0 || n <= 0 || GR_CUDA_PENDING(c))
		return;
	if (k <= 0)
	{
		gr_cuda_scale(c, cmat, m, n, ldc, beta);
		return;
	}
	s = cublasGemmEx(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
					 n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, cmat,
					 CUDA_R_32F, ldc, c->compute, CUBLAS_GEMM_DEFAULT);
	if (s != CUBLAS_STATUS_SUCCESS)
		gr_cuda_fail(c, GR_ERR_DEVICE,
					 "cuBLAS GEMM (m=%d n=%d k=%d lda=%d ldb=%d ldc=%d%s%s) failed: %s", m, n,
					 k, lda, ldb, ldc, ta ? " A^T" : "", tb ? " B^T" : "",
					 cublasGetStatusString(s));
}

/* Fill a gr_error (the module cannot call the engine's gr_fail: it is dlopened). */
static gr_status
set_err(gr_error *err, gr_status st, const char *fmt,...)
{
	va_list		ap;

	if (err != NULL)
	{
		err->status = st;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return st;
}

/* Name of a math mode. */
static const char *
math_name(gr_math_mode m)
{
	return m == GR_MATH_FP32 ? "fp32" : m == GR_MATH_BF16 ? "bf16" : "tf32";
}

/* Fill the ops table. */
static void
fill_ops(gr_cuda_ctx *c)
{
	gr_ops	   *o = &c->ops;

	memset(o, 0, sizeof(*o));
	o->name = c->name;
	o->device = GR_DEVICE_CUDA;
	o->ctx = c;
	o->alloc = cu_alloc;
	o->free = cu_free;
	o->upload = cu_upload;
	o->download = cu_download;
	o->zero = cu_zero;
	o->copy = cu_copy;
	o->check = cu_check;
	o->gemm = cu_gemm;
	o->add_bias = gr_cuda_add_bias;
	o->bias_grad = gr_cuda_bias_grad;
	o->add = gr_cuda_add;
	o->layernorm_fwd = gr_cuda_layernorm_fwd;
	o->layernorm_bwd = gr_cuda_layernorm_bwd;
	o->gelu_fwd = gr_cuda_gelu_fwd;
	o->gelu_bwd = gr_cuda_gelu_bwd;
	o->gate_fwd = gr_cuda_gate_fwd;
	o->gate_bwd = gr_cuda_gate_bwd;
	o->dropout = gr_cuda_dropout;
	o->gather_rows = gr_cuda_gather_rows;
	o->scatter_add_rows = gr_cuda_scatter_add_rows;
	o->attn_fwd = gr_cuda_attn_fwd;
	o->attn_bwd = gr_cuda_attn_bwd;
	o->hstu_attn_fwd = gr_cuda_hstu_attn_fwd;
	o->hstu_attn_bwd = gr_cuda_hstu_attn_bwd;
	o->softmax_xent = gr_cuda_softmax_xent;
	o->sampled_xent = gr_cuda_sampled_xent;
	o->row_dot = gr_cuda_row_dot;
	o->row_scale = gr_cuda_row_scale;
	o->l2norm_rows = gr_cuda_l2norm_rows;
	o->l2norm_bwd = gr_cuda_l2norm_bwd;
	o->action_loss = gr_cuda_action_loss;
	o->adamw = gr_cuda_adamw;
	o->adamw_rows = gr_cuda_adamw_rows;
	o->rank_targets = gr_cuda_rank_targets;
	o->topk = gr_cuda_topk;
}

/* Release what open_ctx acquired (safe on a partly opened context). */
static void
destroy_ctx(gr_cuda_ctx *c)
{
	if (c->scratch)
		cudaFree(c->scratch);
	if (c->blas)
		cublasDestroy(c->blas);
	if (c->stream)
	{
		cudaStreamSynchronize(c->stream);
		cudaStreamDestroy(c->stream);
	}
	cudaGetLastError();
	free(c);
}

extern "C"
{

/* Interface version of this module; the loader refuses a mismatch. */
__attribute__((visibility("default"))) int
gr_cuda_abi_version(void)
{
	return GR_CUDA_ABI_VERSION;
}

/* Initialise CUDA on a device and return the CUDA ops. */
__attribute__((visibility("default"))) gr_status
gr_cuda_open(const gr_cuda_options *opt, gr_ops **out, gr_error *err)
{
	gr_cuda_ctx *c;
	cudaDeviceProp prop;
	cudaError_t e;
	cublasStatus_t s;
	const char *env;
	int			n = 0;

	*out = NULL;
	if (opt == NULL || opt->abi_version != GR_CUDA_ABI_VERSION)
		return set_err(err, GR_ERR_DEVICE, "CUDA module: interface version mismatch");
	e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0)
	{
		cudaGetLastError();
		return set_err(err, GR_ERR_DEVICE, "no CUDA device: %s",
					   e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
	}
	if (opt->device_ordinal < 0 || opt->device_ordinal >= n)
		return set_err(err, GR_ERR_DEVICE, "no CUDA device %d (%d present)",
					   opt->device_ordinal, n);
	c = (gr_cuda_ctx *) calloc(1, sizeof(gr_cuda_ctx));
	if (c == NULL)
		return set_err(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the CUDA context");
	c->device = opt->device_ordinal;
	c->math = opt->math;
	if ((e = cudaSetDevice(c->device)) != cudaSuccess ||
		(e = cudaGetDeviceProperties(&prop, c->device)) != cudaSuccess ||
		(e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess)
	{
		destroy_ctx(c);
		return set_err(err, GR_ERR_DEVICE, "cannot initialise CUDA device %d: %s",
					   opt->device_ordinal, cudaGetErrorString(e));
	}
	if ((s = cublasCreate(&c->blas)) != CUBLAS_STATUS_SUCCESS ||
		(s = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS)
	{
		destroy_ctx(c);
		return set_err(err, GR_ERR_DEVICE, "cannot initialise cuBLAS: %s",
					   cublasGetStatusString(s));
	}
	/* fp32 is pedantic so cuBLAS never picks TF32 on its own (NVIDIA_TF32_OVERRIDE aside);
	 * the other modes ask for tensor cores through the compute type */
	c->compute = c->math == GR_MATH_FP32 ? CUBLAS_COMPUTE_32F :
		c->math == GR_MATH_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F_FAST_TF32;
	if ((s = cublasSetMathMode(c->blas, c->math == GR_MATH_FP32 ? CUBLAS_PEDANTIC_MATH :
							   CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
	{
		destroy_ctx(c);
		return set_err(err, GR_ERR_DEVICE, "cannot set cuBLAS's math mode for %s: %s",
					   math_name(opt->math), cublasGetStatusString(s));
	}
	c->n_sm = prop.multiProcessorCount;
	c->smem_optin = prop.sharedMemPerBlockOptin;
	c->grid_cap = 65535u * 8u;
	c->grid_yz_cap = 65535u;
	if ((env = getenv("GENREC_CUDA_GRID_CAP")) != NULL && atol(env) > 0)
	{
		c->grid_cap = (unsigned) GR_MIN((long) c->grid_cap, atol(env));
		c->grid_yz_cap = (unsigned) GR_MIN((long) c->grid_yz_cap, atol(env));
	}
	c->sync_each = (env = getenv("GENREC_CUDA_SYNC")) != NULL && env[0] == '1';
	if (!gr_cuda_attn_setup(c))
	{
		char		msg[GR_CUDA_MSG_LEN];

		memcpy(msg, c->err_msg, sizeof(msg));
		destroy_ctx(c);
		return set_err(err, GR_ERR_DEVICE, "%s", msg);
	}
	snprintf(c->name, sizeof(c->name), "cuda:%d %.48s sm_%d%d %s", c->device, prop.name,
			 prop.major, prop.minor, math_name(c->math));
	fill_ops(c);
	*out = &c->ops;
	return GR_OK;
}

/* Release the CUDA ops from gr_cuda_open (all their memory must be freed already). */
__attribute__((visibility("default"))) void
gr_cuda_close(gr_ops *ops)
{
	if (ops == NULL || ops->ctx == NULL)
		return;
	destroy_ctx(GR_CTX(ops->ctx));
}

}								/* extern "C" */
