/*
 * gr_ops_cpu.c — the CPU backend: memory, GEMM (OpenBLAS), pointwise ops, LayerNorm, GELU,
 * dropout and embedding gather/scatter. Attention is in gr_ops_cpu_attn.c; losses, the
 * optimiser and ranking in gr_ops_cpu_loss.c.
 */
#include "gr_ops_cpu.h"
#include "gr_mathf.h"
#include "gr_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define GR_GELU_C 0.7978845608028654f	/* sqrt(2/pi) */

/* Allocate backend buffers: through the bound allocator (ctx), or 64-byte aligned memory. */
static void *
cpu_alloc(void *ctx, size_t bytes)
{
	const gr_allocator *a = ctx;
	void	   *p = NULL;

	if (bytes == 0)
		bytes = 64;
	if (a != NULL)
		return a->alloc(a->user, bytes);
	if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t) 63) != 0)
		return NULL;
	return p;
}

/* Release a buffer from cpu_alloc. */
static void
cpu_free(void *ctx, void *ptr)
{
	const gr_allocator *a = ctx;

	if (a != NULL)
		a->free(a->user, ptr);
	else
		free(ptr);
}

/* Copy bytes between host buffers (upload, download and copy are the same on the CPU). */
static void
cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
	(void) ctx;
	if (bytes > 0 && dst != src)
		memmove(dst, src, bytes);
}

/* Zero a buffer. */
static void
cpu_zero(void *ctx, void *dst, size_t bytes)
{
	(void) ctx;
	if (bytes > 0)
		memset(dst, 0, bytes);
}

/* The CPU backend never fails after allocation. */
static gr_status
cpu_check(void *ctx, gr_error *err)
{
	(void) ctx;
	(void) err;
	return GR_OK;
}

#define GR_SKINNY_ROWS 8

/*
 * C = alpha A B^T + beta C for a few rows of A against a tall B (retrieval: a handful of
 * query states against the whole item table). A BLAS packs all of B for every call, which
 * for 10^6 items costs more than the product; here every row of B is read once, straight
 * from the table, and dotted with each row of A, the items split between threads.
 */
static void
skinny_gemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
			   int ldb, float beta, float *c, int ldc)
{
#pragma omp parallel for schedule(static, 1024)
	for (int j = 0; j < n; j++)
	{
		const float *bj = b + (size_t) j * ldb;

		for (int i = 0; i < m; i++)
		{
			const float *ai = a + (size_t) i * lda;
			float		s = 0.0f;

#pragma omp simd reduction(+:s)
			for (int t = 0; t < k; t++)
				s += ai[t] * bj[t];
			float	   *cij = c + (size_t) i * ldc + j;

			*cij = alpha * s + (beta == 0.0f ? 0.0f : beta * *cij);
		}
	}
}

/* C = alpha op(A) op(B) + beta C through OpenBLAS (gr_blas.c). */
static void
cpu_gemm(void *ctx, bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
		 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	(void) ctx;
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0)
	{
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++)
				c[(size_t) i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t) i * ldc + j];
		return;
	}
	if (!ta && tb && m <= GR_SKINNY_ROWS && n >= 4096)
	{
		skinny_gemm_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	gr_blas_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Add a bias vector to every row. */
GR_HOT
static void
cpu_add_bias(void *ctx, float *out, const float *bias, int rows, int cols)
{
	(void) ctx;
#pragma omp parallel for if (rows * cols > 65536) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		float	   *o = out + (size_t) r * cols;

		for (int c = 0; c < cols; c++)
			o[c] += bias[c];
	}
}

/* Accumulate column sums of dout into dbias. */
GR_HOT
static void
cpu_bias_grad(void *ctx, float *dbias, const float *dout, int rows, int cols)
{
	(void) ctx;
#pragma omp parallel for if (rows * cols > 65536) schedule(static)
	for (int c0 = 0; c0 < cols; c0 += 64)
	{
		int			c1 = GR_MIN(cols, c0 + 64);
		float		acc[64] = {0};

		for (int r = 0; r < rows; r++)
		{
			const float *d = dout + (size_t) r * cols;

			for (int c = c0; c < c1; c++)
				acc[c - c0] += d[c];
		}
		for (int c = c0; c < c1; c++)
			dbias[c] += acc[c - c0];
	}
}

/* Elementwise sum. */
GR_HOT
static void
cpu_add(void *ctx, float *out, const float *a, const float *b, size_t n)
{
	(void) ctx;
#pragma omp parallel for if (n > 65536) schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

/* LayerNorm forward with eps 1e-5, saving mean and 1/std per row. */
GR_HOT
static void
cpu_layernorm_fwd(void *ctx, float *out, float *mean, float *rstd, const float *inp,
				  const float *w, const float *b, int rows, int cols)
{
	(void) ctx;
#pragma omp parallel for if (rows * cols > 32768) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		const float *x = inp + (size_t) r * cols;
		float	   *y = out + (size_t) r * cols;
		float		m = 0.0f, v = 0.0f;

		for (int c = 0; c < cols; c++)
			m += x[c];
		m /= (float) cols;
		for (int c = 0; c < cols; c++)
		{
			float		t = x[c] - m;

			v += t * t;
		}
		v /= (float) cols;
		float		s = 1.0f / sqrtf(v + 1e-5f);

		for (int c = 0; c < cols; c++)
			y[c] = (x[c] - m) * s * w[c] + b[c];
		mean[r] = m;
		rstd[r] = s;
	}
}

/* LayerNorm backward: accumulate into dinp, dw and db. */
GR_HOT
static void
cpu_layernorm_bwd(void *ctx, float *dinp, float *dw, float *db, const float *dout,
				  const float *inp, const float *w, const float *mean, const float *rstd,
				  int rows, int cols)
{
	(void) ctx;
	/* input gradient: rows are independent */
#pragma omp parallel for if (rows * cols > 32768) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		const float *x = inp + (size_t) r * cols;
		const float *dy = dout + (size_t) r * cols;
		float	   *dx = dinp + (size_t) r * cols;
		float		m = mean[r], s = rstd[r];
		float		mg = 0.0f, mgx = 0.0f;

		for (int c = 0; c < cols; c++)
		{
			float		g = dy[c] * w[c];

			mg += g;
			mgx += g * (x[c] - m) * s;
		}
		mg /= (float) cols;
		mgx /= (float) cols;
		for (int c = 0; c < cols; c++)
		{
			float		xh = (x[c] - m) * s;

			dx[c] += s * (dy[c] * w[c] - mg - xh * mgx);
		}
	}
	/* parameter gradients: columns are independent */
#pragma omp parallel for if (rows * cols > 32768) schedule(static)
	for (int c0 = 0; c0 < cols; c0 += 64)
	{
		int			c1 = GR_MIN(cols, c0 + 64);
		float		aw[64] = {0}, ab[64] = {0};

		for (int r = 0; r < rows; r++)
		{
			const float *x = inp + (size_t) r * cols;
			const float *dy = dout + (size_t) r * cols;
			float		m = mean[r], s = rstd[r];

			for (int c = c0; c < c1; c++)
			{
				aw[c - c0] += dy[c] * (x[c] - m) * s;
				ab[c - c0] += dy[c];
			}
		}
		for (int c = c0; c < c1; c++)
		{
			dw[c] += aw[c - c0];
			db[c] += ab[c - c0];
		}
	}
}

/* GELU (tanh approximation) forward. */
GR_HOT
static void
cpu_gelu_fwd(void *ctx, float *out, const float *inp, size_t n)
{
	(void) ctx;
#pragma omp parallel for if (n > 65536) schedule(static)
	for (size_t i = 0; i < n; i++)
	{
		float		u = inp[i];
		float		t = gr_tanhf(GR_GELU_C * (u + 0.044715f * u * u * u));

		out[i] = 0.5f * u * (1.0f + t);
	}
}

/* GELU backward: dinp = dout * gelu'(inp). */
GR_HOT
static void
cpu_gelu_bwd(void *ctx, float *dinp, const float *inp, const float *dout, size_t n)
{
	(void) ctx;
#pragma omp parallel for if (n > 65536) schedule(static)
	for (size_t i = 0; i < n; i++)
	{
		float		u = inp[i];
		float		t = gr_tanhf(GR_GELU_C * (u + 0.044715f * u * u * u));
		float		g = 0.5f * (1.0f + t) +
			0.5f * u * (1.0f - t * t) * GR_GELU_C * (1.0f + 3.0f * 0.044715f * u * u);

		dinp[i] = dout[i] * g;
	}
}

/* HSTU gating: out = SiLU(u) * y. */
GR_HOT
static void
cpu_gate_fwd(void *ctx, float *out, const float *u, const float *y, size_t n)
{
	(void) ctx;
#pragma omp parallel for if (n > 65536) schedule(static)
	for (size_t i = 0; i < n; i++)
	{
		float		sg = 1.0f / (1.0f + gr_expf(-u[i]));

		out[i] = u[i] * sg * y[i];
	}
}

/* HSTU gating backward: du = dout y SiLU'(u), dy = dout SiLU(u). */
GR_HOT
static void
cpu_gate_bwd(void *ctx, float *du, float *dy, const float *dout, const float *u, const float *y,
			 size_t n)
{
	(void) ctx;
#pragma omp parallel for if (n > 65536) schedule(static)
	for (size_t i = 0; i < n; i++)
	{
		float		z = u[i], sg = 1.0f / (1.0f + gr_expf(-z)), g = dout[i];

		du[i] = g * y[i] * sg * (1.0f + z * (1.0f - sg));
		dy[i] = g * z * sg;
	}
}

/* Dropout keep-flags of elements [16 * 4 * g, 16 * 4 * (g + 1)): the Philox rounds of
 * gr_rng.h run for 16 counters side by side so the compiler vectorises them. */
static GR_HOT_INLINE void
dropout_keep_lanes(uint64_t seed, uint32_t site, uint32_t step, uint64_t g, float p,
				   uint8_t keep[64])
{
	uint32_t	c0[16], c1[16], c2[16], c3[16];
	uint32_t	k0 = (uint32_t) seed, k1 = (uint32_t) (seed >> 32);

	for (int l = 0; l < 16; l++)
	{
		uint64_t	block = 16 * g + (uint64_t) l;

		c0[l] = (uint32_t) block;
		c1[l] = (uint32_t) (block >> 32);
		c2[l] = step;
		c3[l] = GR_STREAM_DROPOUT + site;
	}
	for (int r = 0; r < 10; r++)
	{
		for (int l = 0; l < 16; l++)
		{
			uint64_t	p0 = (uint64_t) 0xD2511F53u * c0[l];
			uint64_t	p1 = (uint64_t) 0xCD9E8D57u * c2[l];
			uint32_t	n0 = (uint32_t) (p1 >> 32) ^ c1[l] ^ k0;
			uint32_t	n2 = (uint32_t) (p0 >> 32) ^ c3[l] ^ k1;

			c1[l] = (uint32_t) p1;
			c3[l] = (uint32_t) p0;
			c0[l] = n0;
			c2[l] = n2;
		}
		k0 += 0x9E3779B9u;
		k1 += 0xBB67AE85u;
	}
	for (int l = 0; l < 16; l++)
	{
		keep[4 * l + 0] = gr_word_to_unit(c0[l]) >= p;
		keep[4 * l + 1] = gr_word_to_unit(c1[l]) >= p;
		keep[4 * l + 2] = gr_word_to_unit(c2[l]) >= p;
		keep[4 * l + 3] = gr_word_to_unit(c3[l]) >= p;
	}
}

/* Inverted dropout with a counter-based mask; the same call serves the backward pass. */
GR_HOT
static void
cpu_dropout(void *ctx, float *out, const float *inp, size_t n, float p, uint64_t seed,
			uint32_t site, uint32_t step)
{
	(void) ctx;
	if (p <= 0.0f)
	{
		if (out != inp)
			memmove(out, inp, n * sizeof(float));
		return;
	}
	float		scale = 1.0f / (1.0f - p);
	size_t		groups = (n + 63) / 64;

#pragma omp parallel for if (n > 16384) schedule(static)
	for (size_t g = 0; g < groups; g++)
	{
		uint8_t		keep[64];
		size_t		end = GR_MIN(n, 64 * g + 64);

		dropout_keep_lanes(seed, site, step, g, p, keep);
		for (size_t i = 64 * g; i < end; i++)
			out[i] = keep[i - 64 * g] ? inp[i] * scale : 0.0f;
	}
}

/* Gather (optionally accumulate) scaled table rows selected by idx. */
GR_HOT
static void
cpu_gather_rows(void *ctx, float *out, const float *table, const int32_t *idx, int rows,
				int cols, float scale, bool accumulate)
{
	(void) ctx;
#pragma omp parallel for if ((size_t) rows * cols > 65536) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		float	   *o = out + (size_t) r * cols;

		if (idx[r] < 0)
		{
			if (!accumulate)
				memset(o, 0, (size_t) cols * sizeof(float));
			continue;
		}
		const float *t = table + (size_t) idx[r] * cols;

		if (accumulate)
			for (int c = 0; c < cols; c++)
				o[c] += scale * t[c];
		else
			for (int c = 0; c < cols; c++)
				o[c] = scale * t[c];
	}
}

/* Scatter-add scaled rows of dout into the table rows selected by idx. */
GR_HOT
static void
cpu_scatter_add_rows(void *ctx, float *dtable, const float *dout, const int32_t *idx,
					 int rows, int cols, float scale)
{
	(void) ctx;
	/* split by column blocks so threads never write the same element */
#pragma omp parallel for if ((size_t) rows * cols > 65536) schedule(static)
	for (int c0 = 0; c0 < cols; c0 += 16)
	{
		int			c1 = GR_MIN(cols, c0 + 16);

		for (int r = 0; r < rows; r++)
		{
			if (idx[r] < 0)
				continue;
			float	   *t = dtable + (size_t) idx[r] * cols;
			const float *d = dout + (size_t) r * cols;

			for (int c = c0; c < c1; c++)
				t[c] += scale * d[c];
		}
	}
}

/* Dot product of each pair of rows. */
static void
cpu_row_dot(void *ctx, float *out, const float *a, const float *b, int rows, int cols)
{
	(void) ctx;
#pragma omp parallel for if ((size_t) rows * cols > 65536) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		const float *x = a + (size_t) r * cols, *y = b + (size_t) r * cols;
		float		s = 0.0f;

		for (int c = 0; c < cols; c++)
			s += x[c] * y[c];
		out[r] = s;
	}
}

/* Scale each row by its own factor, into or onto out. */
static void
cpu_row_scale(void *ctx, float *out, const float *in, const float *s, int rows, int cols,
			  bool accumulate)
{
	(void) ctx;
#pragma omp parallel for if ((size_t) rows * cols > 65536) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		float	   *o = out + (size_t) r * cols;
		const float *x = in + (size_t) r * cols;
		float		f = s[r];

		for (int c = 0; c < cols; c++)
			o[c] = (accumulate ? o[c] : 0.0f) + f * x[c];
	}
}

/* Scale rows (listed, or the first n) to unit length in place. */
static void
cpu_l2norm_rows(void *ctx, float *x, float *rnorm, const int32_t *idx, int n, int cols)
{
	(void) ctx;
#pragma omp parallel for if ((size_t) n * cols > 65536) schedule(static)
	for (int i = 0; i < n; i++)
	{
		float	   *o = x + (size_t) (idx != NULL ? idx[i] : i) * cols;
		float		s = 0.0f;

		for (int c = 0; c < cols; c++)
			s += o[c] * o[c];

		float		f = 1.0f / fmaxf(sqrtf(s), GR_L2NORM_EPS);

		for (int c = 0; c < cols; c++)
			o[c] *= f;
		if (rnorm != NULL)
			rnorm[i] = f;
	}
}

/* Backward of the row normalisation: dx = rnorm (dy - y (y . dy)). */
static void
cpu_l2norm_bwd(void *ctx, float *dx, const float *y, const float *rnorm, const float *dy,
			   int rows, int cols)
{
	(void) ctx;
#pragma omp parallel for if ((size_t) rows * cols > 65536) schedule(static)
	for (int r = 0; r < rows; r++)
	{
		const float *yr = y + (size_t) r * cols, *g = dy + (size_t) r * cols;
		float	   *o = dx + (size_t) r * cols;
		float		t = 0.0f;

		for (int c = 0; c < cols; c++)
			t += yr[c] * g[c];
		for (int c = 0; c < cols; c++)
			o[c] = rnorm[r] * (g[c] - yr[c] * t);
	}
}

static gr_ops gr_cpu_ops_table = {
	.name = "cpu",
	.device = GR_DEVICE_CPU,
	.ctx = NULL,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.zero = cpu_zero,
	.copy = cpu_copy,
	.check = cpu_check,
	.gemm = cpu_gemm,
	.add_bias = cpu_add_bias,
	.bias_grad = cpu_bias_grad,
	.add = cpu_add,
	.layernorm_fwd = cpu_layernorm_fwd,
	.layernorm_bwd = cpu_layernorm_bwd,
	.gelu_fwd = cpu_gelu_fwd,
	.gelu_bwd = cpu_gelu_bwd,
	.gate_fwd = cpu_gate_fwd,
	.gate_bwd = cpu_gate_bwd,
	.dropout = cpu_dropout,
	.gather_rows = cpu_gather_rows,
	.scatter_add_rows = cpu_scatter_add_rows,
	.attn_fwd = gr_cpu_attn_fwd,
	.attn_bwd = gr_cpu_attn_bwd,
	.hstu_attn_fwd = gr_cpu_hstu_attn_fwd,
	.hstu_attn_bwd = gr_cpu_hstu_attn_bwd,
	.softmax_xent = gr_cpu_softmax_xent,
	.sampled_xent = gr_cpu_sampled_xent,
	.row_dot = cpu_row_dot,
	.row_scale = cpu_row_scale,
	.l2norm_rows = cpu_l2norm_rows,
	.l2norm_bwd = cpu_l2norm_bwd,
	.action_loss = gr_cpu_action_loss,
	.adamw = gr_cpu_adamw,
	.adamw_rows = gr_cpu_adamw_rows,
	.rank_targets = gr_cpu_rank_targets,
	.topk = gr_cpu_topk,
};

/* Return the CPU backend (buffers from the C library). */
const gr_ops *
gr_ops_cpu(void)
{
	return &gr_cpu_ops_table;
}

/* Fill *out with the CPU backend whose buffers come from allocator (kept by the caller). */
void
gr_ops_cpu_bind(gr_ops *out, const gr_allocator *allocator)
{
	*out = gr_cpu_ops_table;
	out->ctx = (void *) allocator;
}

/* Set the BLAS and OpenMP thread counts used by the CPU backend. */
void
gr_ops_cpu_set_threads(int n)
{
	if (n <= 0)
		return;
	gr_blas_set_threads(n);
#ifdef _OPENMP
	omp_set_num_threads(n);
#endif
}
