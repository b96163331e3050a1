/*
 * gr_cuda_sampled.cu — the sampled softmax / in-batch InfoNCE loss over candidates shared by
 * the rows (the CUDA twin of gr_cpu_sampled_xent, gr_ops.h), the two row ops its positives
 * need (a dot product per pair of rows and a per-row scale), and the row normalisation of the
 * cosine similarity with its backward (one block per row, as the dot product).
 *
 * The loss takes one block per row (grid-stride): the candidates of a row are a few hundred to
 * a few thousand, so one pass folds an online (max, sum of exp) per thread, a warp shuffle and
 * a shared-memory step combine them, and a second pass writes the gradient in place. Left-out
 * candidates (accidental hits, padding) are skipped in both passes, as on the CPU.
 */
#include "gr_cuda.h"

#define SX_THREADS 256
#define RD_THREADS 128

/* Fold (m2, s2) into the running (m, s) of a sum of exponentials. */
static __device__ __forceinline__ void
sx_merge(float *m, float *s, float m2, float s2)
{
	float		mn = fmaxf(*m, m2);

	if (mn == -INFINITY)
		return;
	*s = (*m == -INFINITY ? 0.0f : *s * expf(*m - mn)) +
		(m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn));
	*m = mn;
}

/* One block per row: logsumexp over the positive and the kept candidates, then gradients. */
static __global__ void
sampled_xent_kernel(float *neg, int ld, float *pos, const int32_t *target, const int32_t *cand,
					const float *logq, int rows, int n_cand, float inv_temp, float *loss,
					float grad_scale)
{
	GR_SHARED(float, sm, [SX_THREADS / 32]);
	GR_SHARED(float, ss, [SX_THREADS / 32]);
	GR_SHARED(float, row, [2]);

	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		float	   *x = neg + (size_t) r * ld;
		int			t = target[r];

		if (t < 0)
		{
			for (int c = threadIdx.x; c < n_cand; c += blockDim.x)
				x[c] = 0.0f;
			if (threadIdx.x == 0)
				pos[r] = loss[r] = 0.0f;
			continue;
		}
		float		z0 = inv_temp * pos[r];
		float		m = threadIdx.x == 0 ? z0 : -INFINITY, s = threadIdx.x == 0 ? 1.0f : 0.0f;

		for (int c = threadIdx.x; c < n_cand; c += blockDim.x)
			if (cand[c] >= 0 && cand[c] != t)
				sx_merge(&m, &s, inv_temp * x[c] - logq[c], 1.0f);
		for (int o = 16; o > 0; o >>= 1)
		{
			float		m2 = __shfl_xor_sync(0xffffffffu, m, o);
			float		s2 = __shfl_xor_sync(0xffffffffu, s, o);

			sx_merge(&m, &s, m2, s2);
		}
		__syncthreads();		/* the previous row's row[] was read */
		if ((threadIdx.x & 31) == 0)
		{
			sm[threadIdx.x >> 5] = m;
			ss[threadIdx.x >> 5] = s;
		}
		__syncthreads();
		if (threadIdx.x == 0)
		{
			for (int w = 1; w < (int) (blockDim.x / 32); w++)
				sx_merge(&m, &s, sm[w], ss[w]);
			row[0] = m;
			row[1] = s;
		}
		__syncthreads();
		float		rm = row[0], inv = grad_scale * inv_temp / row[1];

		for (int c = threadIdx.x; c < n_cand; c += blockDim.x)
			x[c] = (cand[c] >= 0 && cand[c] != t) ?
				expf(inv_temp * x[c] - logq[c] - rm) * inv : 0.0f;
		if (threadIdx.x == 0)
		{
			loss[r] = logf(row[1]) - (z0 - rm);
			pos[r] = expf(z0 - rm) * inv - grad_scale * inv_temp;
		}
	}
}

/* Sampled softmax cross-entropy over shared candidates, gradients in place. */
void
gr_cuda_sampled_xent(void *ctx, float *neg, int ld, float *pos, const int32_t *target,
					 const int32_t *cand, const float *logq, int rows, int n_cand,
					 float inv_temp, float *loss, float grad_scale)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || n_cand < 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, sampled_xent_kernel, gr_cuda_dim(rows, c->grid_cap), SX_THREADS, 0,
					 neg, ld, pos, target, cand, logq, rows, n_cand, inv_temp, loss,
					 grad_scale);
}

/* Sum a per-thread value over the block; every thread gets the total. part holds one float
 * per warp and total one; the caller's loop may reuse them for its next row. */
static __device__ float
rd_block_sum(float s, float *part, float *total)
{
	for (int o = 16; o > 0; o >>= 1)
		s += __shfl_xor_sync(0xffffffffu, s, o);
	__syncthreads();			/* the previous row's partials and total were read */
	if ((threadIdx.x & 31) == 0)
		part[threadIdx.x >> 5] = s;
	__syncthreads();
	if (threadIdx.x == 0)
	{
		for (int w = 1; w < (int) (blockDim.x / 32); w++)
			s += part[w];
		*total = s;
	}
	__syncthreads();
	return *total;
}

/* One block per row: the dot product of a[r] and b[r]. */
static __global__ void
row_dot_kernel(float *out, const float *a, const float *b, int rows, int cols)
{
	GR_SHARED(float, part, [RD_THREADS / 32]);
	GR_SHARED(float, total, [1]);

	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		const float *x = a + (size_t) r * cols, *y = b + (size_t) r * cols;
		float		s = 0.0f;

		for (int i = threadIdx.x; i < cols; i += blockDim.x)
			s += x[i] * y[i];
		s = rd_block_sum(s, part, total);
		if (threadIdx.x == 0)
			out[r] = s;
	}
}

/* Dot product of each pair of rows. */
void
gr_cuda_row_dot(void *ctx, float *out, const float *a, const float *b, int rows, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, row_dot_kernel, gr_cuda_dim(rows, c->grid_cap), RD_THREADS, 0, out, a,
					 b, rows, cols);
}

/* Elementwise out (= or +=) s[row] * in, grid-stride. */
static __global__ void
row_scale_kernel(float *out, const float *in, const float *s, int rows, int cols,
				 bool accumulate)
{
	size_t		n = (size_t) rows * cols;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		v = s[i / cols] * in[i];

		out[i] = accumulate ? out[i] + v : v;
	}
}

/* Scale each row by its own factor, into or onto out. */
void
gr_cuda_row_scale(void *ctx, float *out, const float *in, const float *s, int rows, int cols,
				  bool accumulate)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, row_scale_kernel, gr_cuda_blocks(c, (size_t) rows * cols, 256), 256, 0,
					 out, in, s, rows, cols, accumulate);
}

/* One block per row: scale the row (listed, or the r-th) to unit length. */
static __global__ void
l2norm_rows_kernel(float *x, float *rnorm, const int32_t *idx, int n, int cols)
{
	GR_SHARED(float, part, [RD_THREADS / 32]);
	GR_SHARED(float, total, [1]);

	for (int r = blockIdx.x; r < n; r += gridDim.x)
	{
		float	   *o = x + (size_t) (idx != NULL ? idx[r] : r) * cols;
		float		s = 0.0f;

		for (int i = threadIdx.x; i < cols; i += blockDim.x)
			s += o[i] * o[i];

		float		f = 1.0f / fmaxf(sqrtf(rd_block_sum(s, part, total)), GR_L2NORM_EPS);

		for (int i = threadIdx.x; i < cols; i += blockDim.x)
			o[i] *= f;
		if (rnorm != NULL && threadIdx.x == 0)
			rnorm[r] = f;
	}
}

/* Scale rows (listed, or the first n) to unit length in place. */
void
gr_cuda_l2norm_rows(void *ctx, float *x, float *rnorm, const int32_t *idx, int n, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (n <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, l2norm_rows_kernel, gr_cuda_dim(n, c->grid_cap), RD_THREADS, 0, x,
					 rnorm, idx, n, cols);
}

/* One block per row: dx = rnorm (dy - y (y . dy)). */
static __global__ void
l2norm_bwd_kernel(float *dx, const float *y, const float *rnorm, const float *dy, int rows,
				  int cols)
{
	GR_SHARED(float, part, [RD_THREADS / 32]);
	GR_SHARED(float, total, [1]);

	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		const float *yr = y + (size_t) r * cols, *g = dy + (size_t) r * cols;
		float	   *o = dx + (size_t) r * cols;
		float		s = 0.0f;

		for (int i = threadIdx.x; i < cols; i += blockDim.x)
			s += yr[i] * g[i];

		float		t = rd_block_sum(s, part, total);

		for (int i = threadIdx.x; i < cols; i += blockDim.x)
			o[i] = rnorm[r] * (g[i] - yr[i] * t);
	}
}

/* Backward of the row normalisation. */
void
gr_cuda_l2norm_bwd(void *ctx, float *dx, const float *y, const float *rnorm, const float *dy,
				   int rows, int cols)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, l2norm_bwd_kernel, gr_cuda_dim(rows, c->grid_cap), RD_THREADS, 0, dx,
					 y, rnorm, dy, rows, cols);
}
