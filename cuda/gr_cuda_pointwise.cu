/*
 * gr_cuda_pointwise.cu — elementwise ops, bias and LayerNorm (forward and backward), GELU,
 * dropout with the engine's counter-based RNG (gr_rng.h: the same mask as the CPU for the same
 * seed, site, step and element), and embedding gather / scatter-add.
 *
 * Column sums (bias and LayerNorm parameter gradients) are accumulated by blocks that each
 * own 32 columns of a chunk of rows and add their partial sums with atomicAdd: these ops
 * accumulate (+=) by contract, and a chunked sum is as accurate as the CPU's running sum.
 */
#include "gr_cuda.h"
#include "gr_rng.h"

#define GR_GELU_C 0.7978845608028654f	/* sqrt(2/pi) */
#define PW_THREADS 256

/* x = beta * x over a strided matrix (beta == 0 writes zeros without reading). */
static __global__ void
scale_kernel(float *x, int rows, int cols, int ld, float beta)
{
	size_t		n = (size_t) rows * cols;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float	   *p = x + (i / cols) * (size_t) ld + i % cols;

		*p = beta == 0.0f ? 0.0f : beta * *p;
	}
}

/* Scale a strided matrix in place (the k = 0 GEMM). */
void
gr_cuda_scale(gr_cuda_ctx *c, float *x, int rows, int cols, int ld, float beta)
{
	if (beta == 1.0f)
		return;
	(void) GR_LAUNCH(c, scale_kernel, gr_cuda_blocks(c, (size_t) rows * cols, PW_THREADS),
					 PW_THREADS, 0, x, rows, cols, ld, beta);
}

/* out[r, c] += bias[c]. */
static __global__ void
add_bias_kernel(float *out, const float *bias, int rows, int cols)
{
	size_t		n = (size_t) rows * cols;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		out[i] += bias[i % cols];
}

/* Add a bias vector to every row. */
void
gr_cuda_add_bias(void *ctx, float *out, const float *bias, int rows, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, add_bias_kernel, gr_cuda_blocks(c, (size_t) rows * cols, PW_THREADS),
					 PW_THREADS, 0, out, bias, rows, cols);
}

/*
 * Column sums of chunks of rows: block (x = 32-column groups, y = row chunks, both
 * grid-stride), 256 threads as 8 row lanes of 32 columns. With xhat (LayerNorm), also sum
 * dout * (x - mean) * rstd.
 */
static __global__ void
colsum_kernel(float *sum_dy, float *sum_dyxh, const float *dout, const float *inp,
			  const float *mean, const float *rstd, int rows, int cols, int rows_per_block)
{
	GR_SHARED(float, s1, [8][33]);
	GR_SHARED(float, s2, [8][33]);
	int			lane = threadIdx.x & 31, wy = threadIdx.x >> 5;
	int			n_groups = (cols + 31) / 32, n_chunks = (rows + rows_per_block - 1) / rows_per_block;

	for (int g = blockIdx.x; g < n_groups; g += gridDim.x)
		for (int ch = blockIdx.y; ch < n_chunks; ch += gridDim.y)
		{
			int			col = g * 32 + lane;
			int			r0 = ch * rows_per_block;
			int			r1 = min(rows, r0 + rows_per_block);
			float		a = 0.0f, b = 0.0f;

			if (col < cols)
				for (int r = r0 + wy; r < r1; r += 8)
				{
					float		dy = dout[(size_t) r * cols + col];

					a += dy;
					if (sum_dyxh != NULL)
						b += dy * (inp[(size_t) r * cols + col] - mean[r]) * rstd[r];
				}
			__syncthreads();	/* the previous item's readers are done */
			s1[wy][lane] = a;
			s2[wy][lane] = b;
			__syncthreads();
			if (wy == 0 && col < cols)
			{
				for (int i = 1; i < 8; i++)
				{
					a += s1[i][lane];
					b += s2[i][lane];
				}
				atomicAdd(&sum_dy[col], a);
				if (sum_dyxh != NULL)
					atomicAdd(&sum_dyxh[col], b);
			}
		}
}

/* Launch colsum_kernel with enough row chunks to fill the device. */
static void
launch_colsum(gr_cuda_ctx *c, float *sum_dy, float *sum_dyxh, const float *dout,
			  const float *inp, const float *mean, const float *rstd, int rows, int cols)
{
	int			col_blocks = (cols + 31) / 32;
	int			want = GR_MAX(1, 4 * c->n_sm / col_blocks);
	int			rpb = GR_MAX(64, (rows + want - 1) / want);
	int			row_blocks = (rows + rpb - 1) / rpb;

	(void) GR_LAUNCH(c, colsum_kernel, dim3(gr_cuda_dim(col_blocks, c->grid_cap),
											gr_cuda_dim(row_blocks, c->grid_yz_cap)), 256, 0,
					 sum_dy, sum_dyxh, dout, inp, mean, rstd, rows, cols, rpb);
}

/* dbias[c] += sum_r dout[r, c]. */
void
gr_cuda_bias_grad(void *ctx, float *dbias, const float *dout, int rows, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	launch_colsum(c, dbias, NULL, dout, NULL, NULL, NULL, rows, cols);
}

/* out = a + b. */
static __global__ void
add_kernel(float *out, const float *a, const float *b, size_t n)
{
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		out[i] = a[i] + b[i];
}

/* Elementwise sum (out may alias a or b). */
void
gr_cuda_add(void *ctx, float *out, const float *a, const float *b, size_t n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, add_kernel, gr_cuda_blocks(c, n, PW_THREADS), PW_THREADS, 0, out, a, b,
					 n);
}

/* LayerNorm forward of one row by one warp (eps 1e-5, two-pass variance as on the CPU). */
static __device__ __forceinline__ void
layernorm_fwd_row(float *out, float *mean, float *rstd, const float *inp, const float *w,
				  const float *b, size_t row, int cols, int lane)
{
	const float *x = inp + (size_t) row * cols;
	float	   *y = out + (size_t) row * cols;
	float		m = 0.0f, v = 0.0f;

	for (int i = lane; i < cols; i += 32)
		m += x[i];
	m = gr_warp_sum(m) / (float) cols;
	for (int i = lane; i < cols; i += 32)
	{
		float		t = x[i] - m;

		v += t * t;
	}
	v = gr_warp_sum(v) / (float) cols;
	float		s = 1.0f / sqrtf(v + 1e-5f);

	for (int i = lane; i < cols; i += 32)
		y[i] = (x[i] - m) * s * w[i] + b[i];
	if (lane == 0)
	{
		mean[row] = m;
		rstd[row] = s;
	}
}

/* LayerNorm forward, one warp per row, grid-stride. */
static __global__ void
layernorm_fwd_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
					 const float *b, int rows, int cols)
{
	int			lane = threadIdx.x & 31;
	size_t		stride = (size_t) gridDim.x * (blockDim.x >> 5);

	for (size_t row = (size_t) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
		 row < (size_t) rows; row += stride)
		layernorm_fwd_row(out, mean, rstd, inp, w, b, row, cols, lane);
}

/* LayerNorm forward over rows. */
void
gr_cuda_layernorm_fwd(void *ctx, float *out, float *mean, float *rstd, const float *inp,
					  const float *w, const float *b, int rows, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, layernorm_fwd_kernel, gr_cuda_blocks(c, (size_t) rows * 32, 256), 256, 0,
					 out, mean, rstd, inp, w, b, rows, cols);
}

/* LayerNorm input gradient of one row by one warp: dinp += rstd (g - mean(g) - xh mean(g xh)). */
static __device__ __forceinline__ void
layernorm_bwd_row(float *dinp, const float *dout, const float *inp, const float *w,
				  const float *mean, const float *rstd, size_t row, int cols, int lane)
{
	const float *x = inp + (size_t) row * cols;
	const float *dy = dout + (size_t) row * cols;
	float	   *dx = dinp + (size_t) row * cols;
	float		m = mean[row], s = rstd[row];
	float		mg = 0.0f, mgx = 0.0f;

	for (int i = lane; i < cols; i += 32)
	{
		float		g = dy[i] * w[i];

		mg += g;
		mgx += g * (x[i] - m) * s;
	}
	mg = gr_warp_sum(mg) / (float) cols;
	mgx = gr_warp_sum(mgx) / (float) cols;
	for (int i = lane; i < cols; i += 32)
	{
		float		xh = (x[i] - m) * s;

		dx[i] += s * (dy[i] * w[i] - mg - xh * mgx);
	}
}

/* LayerNorm input gradient, one warp per row, grid-stride. */
static __global__ void
layernorm_bwd_kernel(float *dinp, const float *dout, const float *inp, const float *w,
					 const float *mean, const float *rstd, int rows, int cols)
{
	int			lane = threadIdx.x & 31;
	size_t		stride = (size_t) gridDim.x * (blockDim.x >> 5);

	for (size_t row = (size_t) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
		 row < (size_t) rows; row += stride)
		layernorm_bwd_row(dinp, dout, inp, w, mean, rstd, row, cols, lane);
}

/* LayerNorm backward: accumulate into dinp, dw and db. */
void
gr_cuda_layernorm_bwd(void *ctx, float *dinp, float *dw, float *db, const float *dout,
					  const float *inp, const float *w, const float *mean, const float *rstd,
					  int rows, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	if (!GR_LAUNCH(c, layernorm_bwd_kernel, gr_cuda_blocks(c, (size_t) rows * 32, 256), 256, 0,
				   dinp, dout, inp, w, mean, rstd, rows, cols))
		return;
	launch_colsum(c, db, dw, dout, inp, mean, rstd, rows, cols);
}

/* GELU (tanh form) of u. */
static __device__ __forceinline__ float
gelu(float u)
{
	float		t = tanhf(GR_GELU_C * (u + 0.044715f * u * u * u));

	return 0.5f * u * (1.0f + t);
}

/* GELU forward. */
static __global__ void
gelu_fwd_kernel(float *out, const float *inp, size_t n)
{
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		out[i] = gelu(inp[i]);
}

/* GELU backward: dinp = dout * gelu'(inp). */
static __global__ void
gelu_bwd_kernel(float *dinp, const float *inp, const float *dout, size_t n)
{
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		u = inp[i];
		float		t = tanhf(GR_GELU_C * (u + 0.044715f * u * u * u));
		float		g = 0.5f * (1.0f + t) +
			0.5f * u * (1.0f - t * t) * GR_GELU_C * (1.0f + 3.0f * 0.044715f * u * u);

		dinp[i] = dout[i] * g;
	}
}

/* GELU forward over n elements. */
void
gr_cuda_gelu_fwd(void *ctx, float *out, const float *inp, size_t n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, gelu_fwd_kernel, gr_cuda_blocks(c, n, PW_THREADS), PW_THREADS, 0, out,
					 inp, n);
}

/* GELU backward over n elements (dinp may alias dout). */
void
gr_cuda_gelu_bwd(void *ctx, float *dinp, const float *inp, const float *dout, size_t n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, gelu_bwd_kernel, gr_cuda_blocks(c, n, PW_THREADS), PW_THREADS, 0, dinp,
					 inp, dout, n);
}

/* HSTU gating forward: out = SiLU(u) * y. */
static __global__ void
gate_fwd_kernel(float *out, const float *u, const float *y, size_t n)
{
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		sg = 1.0f / (1.0f + expf(-u[i]));

		out[i] = u[i] * sg * y[i];
	}
}

/* HSTU gating backward: du = dout y SiLU'(u), dy = dout SiLU(u). */
static __global__ void
gate_bwd_kernel(float *du, float *dy, const float *dout, const float *u, const float *y,
				size_t n)
{
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		z = u[i], sg = 1.0f / (1.0f + expf(-z)), g = dout[i];
		float		yi = y[i];

		du[i] = g * yi * sg * (1.0f + z * (1.0f - sg));
		dy[i] = g * z * sg;
	}
}

/* HSTU gating forward over n elements. */
void
gr_cuda_gate_fwd(void *ctx, float *out, const float *u, const float *y, size_t n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, gate_fwd_kernel, gr_cuda_blocks(c, n, PW_THREADS), PW_THREADS, 0, out,
					 u, y, n);
}

/* HSTU gating backward over n elements. */
void
gr_cuda_gate_bwd(void *ctx, float *du, float *dy, const float *dout, const float *u,
				 const float *y, size_t n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, gate_bwd_kernel, gr_cuda_blocks(c, n, PW_THREADS), PW_THREADS, 0, du,
					 dy, dout, u, y, n);
}

/* Inverted dropout with the counter-based mask of gr_rng.h: one Philox draw per thread
 * covers elements 4b .. 4b + 3, exactly as the CPU draws them. */
static __global__ void
dropout_kernel(float *out, const float *inp, size_t n, float p, float scale, uint64_t seed,
			   uint32_t site, uint32_t step)
{
	size_t		blocks = (n + 3) / 4;

	for (size_t b = (size_t) blockIdx.x * blockDim.x + threadIdx.x; b < blocks;
		 b += (size_t) gridDim.x * blockDim.x)
	{
		unsigned	keep = gr_dropout_keep4(seed, site, step, b, p);

		for (size_t i = 4 * b; i < 4 * b + 4 && i < n; i++)
			out[i] = (keep >> (i & 3)) & 1u ? inp[i] * scale : 0.0f;
	}
}

/* Dropout forward (and, with the same arguments, its backward). */
void
gr_cuda_dropout(void *ctx, float *out, const float *inp, size_t n, float p, uint64_t seed,
				uint32_t site, uint32_t step)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	if (p <= 0.0f)
	{
		if (out != inp)
			gr_cuda_ok(c, cudaMemcpyAsync(out, inp, n * sizeof(float), cudaMemcpyDeviceToDevice,
										  c->stream), "dropout (copy)");
		return;
	}
	(void) GR_LAUNCH(c, dropout_kernel, gr_cuda_blocks(c, (n + 3) / 4, PW_THREADS), PW_THREADS, 0,
					 out, inp, n, p, 1.0f / (1.0f - p), seed, site, step);
}

/* Gather rows: a block per row (grid-stride), threads over columns. */
static __global__ void
gather_rows_kernel(float *out, const float *table, const int32_t *idx, int rows, int cols,
				   float scale, bool accumulate)
{
	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		int			id = idx[r];
		float	   *o = out + (size_t) r * cols;

		if (id < 0)
		{
			if (!accumulate)
				for (int i = threadIdx.x; i < cols; i += blockDim.x)
					o[i] = 0.0f;
			continue;
		}
		const float *t = table + (size_t) id * cols;

		if (accumulate)
			for (int i = threadIdx.x; i < cols; i += blockDim.x)
				o[i] += scale * t[i];
		else
			for (int i = threadIdx.x; i < cols; i += blockDim.x)
				o[i] = scale * t[i];
	}
}

/* Gather (or accumulate) scaled table rows. */
void
gr_cuda_gather_rows(void *ctx, float *out, const float *table, const int32_t *idx, int rows,
					int cols, float scale, bool accumulate)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	int			threads = cols >= 256 ? 256 : cols > 64 ? 128 : 64;

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, gather_rows_kernel, gr_cuda_dim(rows, c->grid_cap), threads, 0, out,
					 table, idx, rows, cols, scale, accumulate);
}

/* Scatter-add rows with atomics (duplicate indices accumulate). */
static __global__ void
scatter_add_rows_kernel(float *dtable, const float *dout, const int32_t *idx, int rows,
						int cols, float scale)
{
	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		int			id = idx[r];

		if (id < 0)
			continue;
		float	   *t = dtable + (size_t) id * cols;
		const float *d = dout + (size_t) r * cols;

		for (int i = threadIdx.x; i < cols; i += blockDim.x)
			atomicAdd(&t[i], scale * d[i]);
	}
}

/* dtable[idx[r]] += scale * dout[r]. */
void
gr_cuda_scatter_add_rows(void *ctx, float *dtable, const float *dout, const int32_t *idx,
						 int rows, int cols, float scale)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	int			threads = cols >= 256 ? 256 : cols > 64 ? 128 : 64;

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, scatter_add_rows_kernel, gr_cuda_dim(rows, c->grid_cap), threads, 0,
					 dtable, dout, idx, rows, cols, scale);
}
