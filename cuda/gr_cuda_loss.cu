/*
 * gr_cuda_loss.cu — full-catalogue softmax cross-entropy (chunked, in place), action losses,
 * AdamW, target ranks and top-k selection over the catalogue.
 *
 * Softmax cross-entropy splits each row into chunks so that a few rows over a large
 * catalogue still fill the device: pass 1 stores an online (max, sum of exp) per chunk, pass 2
 * combines a row's chunks and writes the gradient in place (and the loss, from the block that
 * holds the target).
 *
 * Top-k is a radix select, not a sort: four 8-bit histogram passes over order-preserving keys
 * of the scores (spread over many blocks per row) find the k-th largest key; one more pass
 * collects the k winners (ties at the threshold by arrival), and one block per row sorts just
 * those k with a bitonic sort in shared memory. Excluded columns are subtracted from each
 * histogram (their list is short) and skipped when collecting. k above 4096 takes a host path.
 */
#include "gr_cuda.h"

#include <stdlib.h>

extern "C"
{
#include "gr_tokens.h"			/* GR_MAX_ACTIONS */
}

#define XE_THREADS 256
#define TK_THREADS 256
#define TK_CHUNK 8192			/* scores per block in the top-k passes */
#define TK_MAX_SORT 4096		/* largest k sorted on the device */

/* Fold (m2, s2) into the running (m, s) of a sum of exponentials. */
static __device__ __forceinline__ void
lse_merge(float *m, float *s, float m2, float s2)
{
	float		mn = fmaxf(*m, m2);

	if (mn == -INFINITY)
		return;
	*s = (*m == -INFINITY ? 0.0f : *s * expf(*m - mn)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn));
	*m = mn;
}

/* Pass 1: (max, sum exp) of each chunk of each row; block (chunk, row). */
static __global__ void
xent_partial_kernel(float *part, const float *logits, int ld, int cols, int chunk)
{
	__shared__ float sm[XE_THREADS / 32], ss[XE_THREADS / 32];
	int			r = blockIdx.y, c0 = blockIdx.x * chunk, c1 = min(cols, c0 + chunk);
	const float *x = logits + (size_t) r * ld;
	float		m = -INFINITY, s = 0.0f;

	for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
		lse_merge(&m, &s, x[c], 1.0f);
	for (int o = 16; o > 0; o >>= 1)
	{
		float		m2 = __shfl_xor_sync(0xffffffffu, m, o);
		float		s2 = __shfl_xor_sync(0xffffffffu, s, o);

		lse_merge(&m, &s, m2, s2);
	}
	if ((threadIdx.x & 31) == 0)
	{
		sm[threadIdx.x >> 5] = m;
		ss[threadIdx.x >> 5] = s;
	}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		for (int w = 1; w < XE_THREADS / 32; w++)
			lse_merge(&m, &s, sm[w], ss[w]);
		part[((size_t) r * gridDim.x + blockIdx.x) * 2] = m;
		part[((size_t) r * gridDim.x + blockIdx.x) * 2 + 1] = s;
	}
}

/* Pass 2: combine a row's chunks, write the scaled gradient in place and the loss. */
static __global__ void
xent_grad_kernel(float *logits, int ld, const int32_t *target, int cols, int chunk,
				 const float *part, float *loss, float grad_scale)
{
	__shared__ float row_m, row_s;
	int			r = blockIdx.y, c0 = blockIdx.x * chunk, c1 = min(cols, c0 + chunk);
	int			t = target[r];
	float	   *x = logits + (size_t) r * ld;

	if (t < 0 || t >= cols)
	{
		for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
			x[c] = 0.0f;
		if (blockIdx.x == 0 && threadIdx.x == 0)
			loss[r] = 0.0f;
		return;
	}
	if (threadIdx.x == 0)
	{
		float		m = -INFINITY, s = 0.0f;

		for (unsigned i = 0; i < gridDim.x; i++)
			lse_merge(&m, &s, part[((size_t) r * gridDim.x + i) * 2],
					  part[((size_t) r * gridDim.x + i) * 2 + 1]);
		row_m = m;
		row_s = s;
	}
	__syncthreads();
	float		m = row_m, inv = grad_scale / row_s;

	for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
	{
		float		v = x[c];
		float		g = expf(v - m) * inv;

		if (c == t)
		{
			loss[r] = logf(row_s) - (v - m);
			g -= grad_scale;
		}
		x[c] = g;
	}
}

/* Softmax cross-entropy over rows of logits, in place. */
void
gr_cuda_softmax_xent(void *ctx, float *logits, int ld, const int32_t *target, int rows,
					 int cols, float *loss, float grad_scale)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	int			max_chunks = (cols + 2047) / 2048;
	int			want = (4 * c->n_sm + rows - 1) / GR_MAX(rows, 1);
	int			nch = GR_MAX(1, GR_MIN(max_chunks, want));
	int			chunk = (cols + nch - 1) / nch;
	float	   *part;

	if (rows <= 0 || cols <= 0 || GR_CUDA_PENDING(c))
		return;
	nch = (cols + chunk - 1) / chunk;
	part = (float *) gr_cuda_scratch(c, (size_t) rows * nch * 2 * sizeof(float));
	if (part == NULL)
		return;
	for (int r0 = 0; r0 < rows; r0 += 65535)
	{
		int			n = GR_MIN(65535, rows - r0);

		GR_LAUNCH(xent_partial_kernel, dim3(nch, n), XE_THREADS, 0, c->stream,
				  part + (size_t) r0 * nch * 2, logits + (size_t) r0 * ld, ld, cols, chunk);
		if (!gr_cuda_launched(c, "xent_partial_kernel"))
			return;
		GR_LAUNCH(xent_grad_kernel, dim3(nch, n), XE_THREADS, 0, c->stream,
				  logits + (size_t) r0 * ld, ld, target + r0, cols, chunk,
				  part + (size_t) r0 * nch * 2, loss + r0, grad_scale);
		if (!gr_cuda_launched(c, "xent_grad_kernel"))
			return;
	}
}

typedef struct col_scales
{
	float		v[GR_MAX_ACTIONS];
} col_scales;

/* Per-element MSE or BCE-with-logits loss and scaled gradient; NaN targets skipped. */
static __global__ void
action_loss_kernel(const float *pred, const float *target, int rows, int k, col_scales sc,
				   uint32_t binary_mask, float *loss, float *grad)
{
	size_t		n = (size_t) rows * k;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		int			j = (int) (i % k);
		float		y = target[i], z = pred[i];

		if (isnan(y))
		{
			loss[i] = 0.0f;
			grad[i] = 0.0f;
		}
		else if (binary_mask & (1u << j))
		{
			loss[i] = fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))) - y * z;
			grad[i] = sc.v[j] * (1.0f / (1.0f + expf(-z)) - y);
		}
		else
		{
			loss[i] = (z - y) * (z - y);
			grad[i] = sc.v[j] * 2.0f * (z - y);
		}
	}
}

/* Action losses (col_scale is a host array of k floats). */
void
gr_cuda_action_loss(void *ctx, const float *pred, const float *target, int rows, int k,
					const float *col_scale, uint32_t binary_mask, float *loss, float *grad)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	col_scales	sc;

	if (rows <= 0 || k <= 0 || GR_CUDA_PENDING(c))
		return;
	if (k > GR_MAX_ACTIONS)
	{
		gr_cuda_fail(c, GR_ERR_INVALID_ARGUMENT, "action_loss: %d columns (at most %d)", k,
					 GR_MAX_ACTIONS);
		return;
	}
	memset(&sc, 0, sizeof(sc));
	for (int j = 0; j < k; j++)
		sc.v[j] = col_scale[j];
	GR_LAUNCH(action_loss_kernel, gr_cuda_blocks((size_t) rows * k, 256), 256, 0, c->stream, pred,
			  target, rows, k, sc, binary_mask, loss, grad);
	gr_cuda_launched(c, "action_loss_kernel");
}

/* AdamW step; c1, c2 are the bias corrections computed on the host as the CPU does. */
static __global__ void
adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n, float lr,
			 float beta1, float beta2, float eps, float wd, float c1, float c2)
{
	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		g = grad[i];
		float		mi = beta1 * m[i] + (1.0f - beta1) * g;
		float		vi = beta2 * v[i] + (1.0f - beta2) * g * g;
		float		p = param[i];

		m[i] = mi;
		v[i] = vi;
		param[i] = p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd * p);
	}
}

/* One AdamW update with bias correction and decoupled weight decay. */
void
gr_cuda_adamw(void *ctx, float *param, const float *grad, float *m, float *v, size_t n,
			  float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	float		c1 = 1.0f - powf(beta1, (float) t);
	float		c2 = 1.0f - powf(beta2, (float) t);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	GR_LAUNCH(adamw_kernel, gr_cuda_blocks(n, 256), 256, 0, c->stream, param, grad, m, v, n, lr,
			  beta1, beta2, eps, weight_decay, c1, c2);
	gr_cuda_launched(c, "adamw_kernel");
}

/* Sum an int over a block of TK_THREADS threads (thread 0 gets the sum). */
static __device__ int
block_sum_int(int v, int *red)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = v;
	__syncthreads();
	int			s = 0;

	if (threadIdx.x == 0)
		for (int w = 0; w < TK_THREADS / 32; w++)
			s += red[w];
	__syncthreads();
	return s;
}

/* Ranks of the targets: a block per row. */
static __global__ void
rank_kernel(const float *scores, int ld, const int32_t *target, const int32_t *excl_off,
			const int32_t *excl, int rows, int cols, int32_t *rank_all, int32_t *rank_excl)
{
	__shared__ int red[TK_THREADS / 32];

	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		const float *x = scores + (size_t) r * ld;
		int			t = target[r];

		if (t < 0 || t >= cols)
		{
			if (threadIdx.x == 0)
				rank_all[r] = rank_excl[r] = 0;
			continue;
		}
		float		st = x[t];
		int			above = 0, above_ex = 0;

		if (isnan(st))
		{
			/* a target without a score ranks last */
			if (threadIdx.x == 0)
				rank_all[r] = rank_excl[r] = cols;
			continue;			/* uniform over the block */
		}
		for (int c = threadIdx.x; c < cols; c += blockDim.x)
			above += x[c] > st;
		if (excl != NULL)
			for (int j = excl_off[r] + threadIdx.x; j < excl_off[r + 1]; j += blockDim.x)
			{
				int			c = excl[j];

				above_ex += (c >= 0 && c < cols && c != t && x[c] > st);
			}
		above = block_sum_int(above, red);
		above_ex = block_sum_int(above_ex, red);
		if (threadIdx.x == 0)
		{
			rank_all[r] = 1 + above;
			rank_excl[r] = 1 + above - above_ex;
		}
	}
}

/* Rank of each row's target among all columns and among the non-excluded ones. */
void
gr_cuda_rank_targets(void *ctx, const float *scores, int ld, const int32_t *target,
					 const int32_t *excl_off, const int32_t *excl, int rows, int cols,
					 int32_t *rank_all, int32_t *rank_excl)
{
	gr_cuda_ctx *c = GR_CTX(ctx);

	if (rows <= 0 || GR_CUDA_PENDING(c))
		return;
	GR_LAUNCH(rank_kernel, GR_MIN(rows, 65535 * 8), TK_THREADS, 0, c->stream, scores, ld, target,
			  excl_off, excl, rows, cols, rank_all, rank_excl);
	gr_cuda_launched(c, "rank_kernel");
}

/* Per-row state of the radix select. */
typedef struct topk_state
{
	unsigned	prefix;			/* the threshold key's digits found so far */
	int			k_rem;			/* how many of the keys matching prefix to take */
	int			take_all;		/* fewer valid columns than k: take them all */
	int			n_taken;		/* collect: slots filled */
	int			n_eq;			/* collect: threshold-equal keys seen */
	int			hist[256];
} topk_state;

/* Order-preserving key of a float (larger float, larger key). */
static __device__ __forceinline__ unsigned
fkey(float x)
{
	unsigned	u = __float_as_uint(x);

	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Whether column c is in the sorted exclusion list [lo, hi). */
static __device__ __forceinline__ bool
is_excluded(const int32_t *excl, int lo, int hi, int c)
{
	int			end = hi;

	while (lo < hi)
	{
		int			mid = (lo + hi) >> 1;

		if (excl[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < end && excl[lo] == c;
}

/* Reset the per-row state. */
static __global__ void
topk_init_kernel(topk_state *st, int rows, int k)
{
	topk_state *s = st + blockIdx.x;

	for (int i = threadIdx.x; i < 256; i += blockDim.x)
		s->hist[i] = 0;
	if (threadIdx.x == 0)
	{
		s->prefix = 0;
		s->k_rem = k;
		s->take_all = 0;
		s->n_taken = 0;
		s->n_eq = 0;
	}
}

/* Histogram of digit `pass` of the keys matching the prefix; block (chunk, row). */
static __global__ void
topk_hist_kernel(topk_state *st, const float *scores, int ld, int cols, int pass)
{
	__shared__ int h[256];
	topk_state *s = st + blockIdx.y;
	int			shift = 24 - 8 * pass;
	unsigned	hi_mask = pass == 0 ? 0u : ~0u << (32 - 8 * pass);
	const float *x = scores + (size_t) blockIdx.y * ld;
	int			c0 = blockIdx.x * TK_CHUNK, c1 = min(cols, c0 + TK_CHUNK);

	if (s->take_all)
		return;					/* uniform over the block */
	for (int i = threadIdx.x; i < 256; i += blockDim.x)
		h[i] = 0;
	__syncthreads();
	unsigned	prefix = s->prefix;

	for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
	{
		float		v = x[c];

		if (isnan(v))
			continue;
		unsigned	key = fkey(v);

		if ((key & hi_mask) == prefix)
			atomicAdd(&h[(key >> shift) & 255u], 1);
	}
	__syncthreads();
	for (int i = threadIdx.x; i < 256; i += blockDim.x)
		if (h[i] != 0)
			atomicAdd(&s->hist[i], h[i]);
}

/* Remove excluded columns from the histogram and pick the digit; a block per row. */
static __global__ void
topk_select_kernel(topk_state *st, const float *scores, int ld, const int32_t *excl_off,
				   const int32_t *excl, int cols, int k, int pass)
{
	topk_state *s = st + blockIdx.x;
	int			shift = 24 - 8 * pass;
	unsigned	hi_mask = pass == 0 ? 0u : ~0u << (32 - 8 * pass);
	const float *x = scores + (size_t) blockIdx.x * ld;

	if (s->take_all)
		return;
	if (excl != NULL)
		for (int j = excl_off[blockIdx.x] + threadIdx.x; j < excl_off[blockIdx.x + 1];
			 j += blockDim.x)
		{
			int			c = excl[j];

			if (c < 0 || c >= cols || isnan(x[c]))
				continue;
			unsigned	key = fkey(x[c]);

			if ((key & hi_mask) == s->prefix)
				atomicSub(&s->hist[(key >> shift) & 255u], 1);
		}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		int			cum = 0, b = 255;

		if (pass == 0)
		{
			int			n_valid = 0;

			for (int i = 0; i < 256; i++)
				n_valid += s->hist[i];
			if (n_valid <= k)
				s->take_all = 1;
		}
		if (!s->take_all)
		{
			for (; b > 0; b--)
			{
				if (cum + s->hist[b] >= s->k_rem)
					break;
				cum += s->hist[b];
			}
			s->k_rem -= cum;
			s->prefix |= (unsigned) b << shift;
		}
	}
	__syncthreads();
	for (int i = threadIdx.x; i < 256; i += blockDim.x)
		s->hist[i] = 0;
}

/* Collect the winners: keys above the threshold, and k_rem keys equal to it. */
static __global__ void
topk_collect_kernel(topk_state *st, const float *scores, int ld, const int32_t *excl_off,
					const int32_t *excl, int cols, int k, float *cand_val, int32_t *cand_idx)
{
	topk_state *s = st + blockIdx.y;
	const float *x = scores + (size_t) blockIdx.y * ld;
	int			c0 = blockIdx.x * TK_CHUNK, c1 = min(cols, c0 + TK_CHUNK);
	int			lo = excl ? excl_off[blockIdx.y] : 0, hi = excl ? excl_off[blockIdx.y + 1] : 0;
	unsigned	thr = s->prefix;
	bool		all = s->take_all != 0;
	int			k_rem = s->k_rem;
	float	   *cv = cand_val + (size_t) blockIdx.y * k;
	int32_t    *ci = cand_idx + (size_t) blockIdx.y * k;

	for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
	{
		float		v = x[c];

		if (isnan(v))
			continue;
		unsigned	key = fkey(v);

		if (!all && key < thr)
			continue;
		if (hi > lo && is_excluded(excl, lo, hi, c))
			continue;
		if (!all && key == thr && atomicAdd(&s->n_eq, 1) >= k_rem)
			continue;
		int			slot = atomicAdd(&s->n_taken, 1);

		if (slot < k)
		{
			cv[slot] = v;
			ci[slot] = c;
		}
	}
}

/* Sort each row's winners (value descending, column ascending) and write the outputs. */
static __global__ void
topk_sort_kernel(topk_state *st, const float *cand_val, const int32_t *cand_idx, int k,
				 int pow2, int32_t *out_idx, float *out_val)
{
	GR_DYN_SMEM(float, sm);
	float	   *sv = sm;
	int32_t    *si = (int32_t *) (sm + pow2);
	int			r = blockIdx.x;
	int			n = min(st[r].n_taken, k);

	for (int i = threadIdx.x; i < pow2; i += blockDim.x)
	{
		sv[i] = i < n ? cand_val[(size_t) r * k + i] : -INFINITY;
		si[i] = i < n ? cand_idx[(size_t) r * k + i] : 0x7fffffff;
	}
	__syncthreads();
	for (int size = 2; size <= pow2; size <<= 1)
		for (int stride = size >> 1; stride > 0; stride >>= 1)
		{
			for (int i = threadIdx.x; i < pow2; i += blockDim.x)
			{
				int			j = i ^ stride;

				if (j > i)
				{
					/* "first" = better: higher value, then lower column */
					bool		i_first = sv[i] > sv[j] || (sv[i] == sv[j] && si[i] < si[j]);
					bool		desc = (i & size) == 0;

					if (desc != i_first)
					{
						float		tv = sv[i];
						int32_t		ti = si[i];

						sv[i] = sv[j];
						si[i] = si[j];
						sv[j] = tv;
						si[j] = ti;
					}
				}
			}
			__syncthreads();
		}
	for (int i = threadIdx.x; i < k; i += blockDim.x)
	{
		out_idx[(size_t) r * k + i] = i < n ? si[i] : -1;
		out_val[(size_t) r * k + i] = i < n ? sv[i] : -INFINITY;
	}
}

/* Order (value, column) pairs: value descending, column ascending. */
static int
cmp_desc(const void *pa, const void *pb)
{
	const float *a = (const float *) pa, *b = (const float *) pb;

	if (a[0] != b[0])
		return a[0] > b[0] ? -1 : 1;
	return *(const int32_t *) (a + 1) < *(const int32_t *) (b + 1) ? -1 : 1;
}

/* Top-k on the host for very large k: download, sort the valid columns, upload. */
static void
topk_host(gr_cuda_ctx *c, const float *scores, int ld, const int32_t *excl_off,
		  const int32_t *excl, int rows, int cols, int k, int32_t *out_idx, float *out_val)
{
	float	   *x = (float *) malloc(sizeof(float) * (size_t) cols);
	float	   *pairs = (float *) malloc(sizeof(float) * 2 * (size_t) cols);
	int32_t    *oi = (int32_t *) malloc(sizeof(int32_t) * (size_t) k);
	float	   *ov = (float *) malloc(sizeof(float) * (size_t) k);
	int32_t    *off = (int32_t *) malloc(sizeof(int32_t) * ((size_t) rows + 1));
	int32_t    *ex = NULL;

	if (!x || !pairs || !oi || !ov || !off)
	{
		gr_cuda_fail(c, GR_ERR_OUT_OF_MEMORY, "topk: out of host memory for k = %d", k);
		goto done;
	}
	if (excl != NULL)
	{
		if (!gr_cuda_ok(c, cudaMemcpyAsync(off, excl_off, sizeof(int32_t) * ((size_t) rows + 1),
										   cudaMemcpyDeviceToHost, c->stream), "topk (offsets)") ||
			!gr_cuda_ok(c, cudaStreamSynchronize(c->stream), "topk (synchronize)"))
			goto done;
		ex = (int32_t *) malloc(sizeof(int32_t) * ((size_t) off[rows] + 1));
		if (ex == NULL ||
			!gr_cuda_ok(c, cudaMemcpyAsync(ex, excl, sizeof(int32_t) * (size_t) off[rows],
										   cudaMemcpyDeviceToHost, c->stream), "topk (exclusions)"))
			goto done;
	}
	for (int r = 0; r < rows; r++)
	{
		int			n = 0, e = ex ? off[r] : 0, e_end = ex ? off[r + 1] : 0;

		if (!gr_cuda_ok(c, cudaMemcpyAsync(x, scores + (size_t) r * ld, sizeof(float) * cols,
										   cudaMemcpyDeviceToHost, c->stream), "topk (scores)") ||
			!gr_cuda_ok(c, cudaStreamSynchronize(c->stream), "topk (synchronize)"))
			goto done;
		for (int col = 0; col < cols; col++)
		{
			while (e < e_end && ex[e] < col)
				e++;
			if ((e < e_end && ex[e] == col) || isnan(x[col]))
				continue;
			pairs[2 * n] = x[col];
			memcpy(&pairs[2 * n + 1], &col, sizeof(int32_t));
			n++;
		}
		qsort(pairs, n, 2 * sizeof(float), cmp_desc);
		for (int i = 0; i < k; i++)
		{
			ov[i] = i < n ? pairs[2 * i] : -INFINITY;
			if (i < n)
				memcpy(&oi[i], &pairs[2 * i + 1], sizeof(int32_t));
			else
				oi[i] = -1;
		}
		if (!gr_cuda_ok(c, cudaMemcpyAsync(out_idx + (size_t) r * k, oi, sizeof(int32_t) * k,
										   cudaMemcpyHostToDevice, c->stream), "topk (upload)") ||
			!gr_cuda_ok(c, cudaMemcpyAsync(out_val + (size_t) r * k, ov, sizeof(float) * k,
										   cudaMemcpyHostToDevice, c->stream), "topk (upload)") ||
			!gr_cuda_ok(c, cudaStreamSynchronize(c->stream), "topk (synchronize)"))
			goto done;
	}
done:
	free(x);
	free(pairs);
	free(oi);
	free(ov);
	free(off);
	free(ex);
}

/* Top k columns of each row, best first, skipping excluded columns. */
void
gr_cuda_topk(void *ctx, const float *scores, int ld, const int32_t *excl_off,
			 const int32_t *excl, int rows, int cols, int k, int32_t *out_idx, float *out_val)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	int			chunks = (cols + TK_CHUNK - 1) / TK_CHUNK;
	int			pow2 = 1;
	size_t		st_bytes, bytes;
	char	   *scratch;

	if (rows <= 0 || k <= 0 || GR_CUDA_PENDING(c))
		return;
	if (k > TK_MAX_SORT || cols <= 0)
	{
		topk_host(c, scores, ld, excl_off, excl, rows, GR_MAX(cols, 0), k, out_idx, out_val);
		return;
	}
	while (pow2 < k)
		pow2 <<= 1;
	st_bytes = ((sizeof(topk_state) * (size_t) rows) + 255) & ~(size_t) 255;
	bytes = st_bytes + (size_t) rows * k * (sizeof(float) + sizeof(int32_t)) + 256;
	scratch = (char *) gr_cuda_scratch(c, bytes);
	if (scratch == NULL)
		return;
	topk_state *st = (topk_state *) scratch;
	float	   *cv = (float *) (scratch + st_bytes);
	int32_t    *ci = (int32_t *) (cv + (size_t) rows * k);

	for (int r0 = 0; r0 < rows; r0 += 65535)
	{
		int			n = GR_MIN(65535, rows - r0);
		const float *x = scores + (size_t) r0 * ld;
		const int32_t *eo = excl ? excl_off + r0 : NULL;

		GR_LAUNCH(topk_init_kernel, n, 256, 0, c->stream, st, n, k);
		if (!gr_cuda_launched(c, "topk_init_kernel"))
			return;
		for (int pass = 0; pass < 4; pass++)
		{
			GR_LAUNCH(topk_hist_kernel, dim3(chunks, n), TK_THREADS, 0, c->stream, st, x, ld,
					  cols, pass);
			if (!gr_cuda_launched(c, "topk_hist_kernel"))
				return;
			GR_LAUNCH(topk_select_kernel, n, TK_THREADS, 0, c->stream, st, x, ld, eo, excl, cols,
					  k, pass);
			if (!gr_cuda_launched(c, "topk_select_kernel"))
				return;
		}
		GR_LAUNCH(topk_collect_kernel, dim3(chunks, n), TK_THREADS, 0, c->stream, st, x, ld, eo,
				  excl, cols, k, cv, ci);
		if (!gr_cuda_launched(c, "topk_collect_kernel"))
			return;
		GR_LAUNCH(topk_sort_kernel, n, 512, (size_t) pow2 * 8, c->stream, st, cv, ci, k, pow2,
				  out_idx + (size_t) r0 * k, out_val + (size_t) r0 * k);
		if (!gr_cuda_launched(c, "topk_sort_kernel"))
			return;
	}
}
