/*
 * gr_cuda_loss.cu — full-catalogue softmax cross-entropy (chunked, in place), action losses,
 * AdamW (dense, and lazy on listed rows), target ranks and top-k selection over the catalogue.
 *
 * Softmax cross-entropy splits each row into chunks so that a few rows over a large
 * catalogue still fill the device: pass 1 stores an online (max, sum of exp) per chunk, pass 2
 * combines a row's chunks and writes the gradient in place (and the loss, from the block that
 * holds the target).
 *
 * Top-k is a radix select, not a sort: four 8-bit histogram passes over order-preserving keys
 * of the scores (spread over many blocks per row) find the k-th largest key; a counting pass
 * and a collecting pass take the k winners, and one block per row sorts just those k with a
 * bitonic sort in shared memory. Excluded columns are subtracted from each histogram (their
 * list is short) and skipped when collecting. k above 4096 takes a host path.
 *
 * The order is the CPU's (gr_ops_cpu_loss.c), so results never depend on scheduling: value
 * descending, equal values (-0.0 equal to +0.0) by ascending column, NaN scores skipped. Of
 * the columns tied at the threshold, the ones with the lowest column numbers are taken: each
 * chunk's tied columns are counted first, and the collecting pass ranks a tied column by the
 * count before its chunk plus a block-wide prefix count within it.
 *
 * Every kernel loops over the rows and chunks its grid does not cover (grid-stride).
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

/* Pass 1: (max, sum exp) of each chunk of each row; block (chunks, rows), grid-stride. */
static __global__ void
xent_partial_kernel(float *part, const float *logits, int ld, int rows, int cols, int chunk,
					int nch)
{
	GR_SHARED(float, sm, [XE_THREADS / 32]);
	GR_SHARED(float, ss, [XE_THREADS / 32]);

	for (int r = blockIdx.y; r < rows; r += gridDim.y)
		for (int ch = blockIdx.x; ch < nch; ch += gridDim.x)
		{
			int			c0 = ch * chunk, c1 = min(cols, c0 + chunk);
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
			__syncthreads();	/* the previous item's partials were read */
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
				part[((size_t) r * nch + ch) * 2] = m;
				part[((size_t) r * nch + ch) * 2 + 1] = s;
			}
		}
}

/* Pass 2: combine a row's chunks, write the scaled gradient in place and the loss. */
static __global__ void
xent_grad_kernel(float *logits, int ld, const int32_t *target, int rows, int cols, int chunk,
				 int nch, const float *part, float *loss, float grad_scale)
{
	GR_SHARED(float, row_m, [1]);
	GR_SHARED(float, row_s, [1]);

	for (int r = blockIdx.y; r < rows; r += gridDim.y)
		for (int ch = blockIdx.x; ch < nch; ch += gridDim.x)
		{
			int			c0 = ch * chunk, c1 = min(cols, c0 + chunk);
			int			t = target[r];
			float	   *x = logits + (size_t) r * ld;

			if (t < 0 || t >= cols)
			{
				/* uniform over the block */
				for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
					x[c] = 0.0f;
				if (ch == 0 && threadIdx.x == 0)
					loss[r] = 0.0f;
				continue;
			}
			__syncthreads();	/* the previous item's row_m and row_s were read */
			if (threadIdx.x == 0)
			{
				float		m = -INFINITY, s = 0.0f;

				for (int i = 0; i < nch; i++)
					lse_merge(&m, &s, part[((size_t) r * nch + i) * 2],
							  part[((size_t) r * nch + i) * 2 + 1]);
				row_m[0] = m;
				row_s[0] = s;
			}
			__syncthreads();
			float		m = row_m[0], inv = grad_scale / row_s[0];

			for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
			{
				float		v = x[c];
				float		g = expf(v - m) * inv;

				if (c == t)
				{
					loss[r] = logf(row_s[0]) - (v - m);
					g -= grad_scale;
				}
				x[c] = g;
			}
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
	dim3		grid(gr_cuda_dim(nch, c->grid_cap), gr_cuda_dim(rows, c->grid_yz_cap));

	if (!GR_LAUNCH(c, xent_partial_kernel, grid, XE_THREADS, 0, part, logits, ld, rows, cols,
				   chunk, nch))
		return;
	(void) GR_LAUNCH(c, xent_grad_kernel, grid, XE_THREADS, 0, logits, ld, target, rows, cols,
					 chunk, nch, part, loss, grad_scale);
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
	(void) GR_LAUNCH(c, action_loss_kernel, gr_cuda_blocks(c, (size_t) rows * k, 256), 256, 0,
					 pred, target, rows, k, sc, binary_mask, loss, grad);
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
	(void) GR_LAUNCH(c, adamw_kernel, gr_cuda_blocks(c, n, 256), 256, 0, param, grad, m, v, n, lr,
					 beta1, beta2, eps, weight_decay, c1, c2);
}

/* AdamW on listed rows of a [*, cols] table, then their gradient zeroed: one block-stride
 * walk over n_rows * cols elements. */
static __global__ void
adamw_rows_kernel(float *param, float *grad, float *m, float *v, const int32_t *rows,
				  int n_rows, int cols, float lr, float beta1, float beta2, float eps, float wd,
				  float c1, float c2)
{
	size_t		n = (size_t) n_rows * cols;

	for (size_t e = (size_t) blockIdx.x * blockDim.x + threadIdx.x; e < n;
		 e += (size_t) gridDim.x * blockDim.x)
	{
		size_t		i = (size_t) rows[e / cols] * cols + e % cols;
		float		g = grad[i];
		float		mi = beta1 * m[i] + (1.0f - beta1) * g;
		float		vi = beta2 * v[i] + (1.0f - beta2) * g * g;
		float		p = param[i];

		m[i] = mi;
		v[i] = vi;
		param[i] = p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd * p);
		grad[i] = 0.0f;
	}
}

/* Lazy AdamW on the listed rows of a table (gr_ops.h adamw_rows). */
void
gr_cuda_adamw_rows(void *ctx, float *param, float *grad, float *m, float *v,
				   const int32_t *rows, int n_rows, int cols, float lr, float beta1,
				   float beta2, float eps, float weight_decay, int t)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	float		c1 = 1.0f - powf(beta1, (float) t);
	float		c2 = 1.0f - powf(beta2, (float) t);
	size_t		n = (size_t) (n_rows > 0 ? n_rows : 0) * (size_t) (cols > 0 ? cols : 0);

	if (n == 0 || GR_CUDA_PENDING(c))
		return;
	(void) GR_LAUNCH(c, adamw_rows_kernel, gr_cuda_blocks(c, n, 256), 256, 0, param, grad, m,
					 v, rows, n_rows, cols, lr, beta1, beta2, eps, weight_decay, c1, c2);
}

/* Sum an int over a block of TK_THREADS threads; every thread gets the sum. */
static __device__ int
block_sum_int(int v, int *red)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	__syncthreads();			/* red is free again */
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = v;
	__syncthreads();
	int			s = 0;

	for (int w = 0; w < TK_THREADS / 32; w++)
		s += red[w];
	return s;
}

/* Ranks of the targets: a block per row, grid-stride. */
static __global__ void
rank_kernel(const float *scores, int ld, const int32_t *target, const int32_t *excl_off,
			const int32_t *excl, int rows, int cols, int32_t *rank_all, int32_t *rank_excl)
{
	GR_SHARED(int, red, [TK_THREADS / 32]);

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
	(void) GR_LAUNCH(c, rank_kernel, gr_cuda_dim(rows, c->grid_cap), TK_THREADS, 0, scores, ld,
					 target, excl_off, excl, rows, cols, rank_all, rank_excl);
}

/* Per-row state of the radix select. */
typedef struct topk_state
{
	unsigned	prefix;			/* the threshold key's digits found so far */
	int			k_rem;			/* how many of the keys equal to the threshold to take */
	int			take_all;		/* fewer valid columns than k: take them all */
	int			n_taken;		/* collect: slots filled */
	int			hist[256];
} topk_state;

/* Order-preserving key of a float (larger float, larger key; -0 and +0 the same key). */
static __device__ __forceinline__ unsigned
fkey(float x)
{
	unsigned	u = __float_as_uint(x);

	if (u == 0x80000000u)
		u = 0u;					/* -0.0 ties with +0.0, as float comparison (and the CPU) has it */
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

/* Reset the per-row state; a block per row, grid-stride. */
static __global__ void
topk_init_kernel(topk_state *st, int rows, int k)
{
	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		topk_state *s = st + r;

		for (int i = threadIdx.x; i < 256; i += blockDim.x)
			s->hist[i] = 0;
		if (threadIdx.x == 0)
		{
			s->prefix = 0;
			s->k_rem = k;
			s->take_all = 0;
			s->n_taken = 0;
		}
	}
}

/* Histogram of digit `pass` of the keys matching the prefix; block (chunks, rows). */
static __global__ void
topk_hist_kernel(topk_state *st, const float *scores, int ld, int rows, int cols, int nch,
				 int pass)
{
	GR_SHARED(int, h, [256]);
	int			shift = 24 - 8 * pass;
	unsigned	hi_mask = pass == 0 ? 0u : ~0u << (32 - 8 * pass);

	for (int r = blockIdx.y; r < rows; r += gridDim.y)
	{
		topk_state *s = st + r;
		const float *x = scores + (size_t) r * ld;

		if (s->take_all)
			continue;			/* uniform over the block */
		__syncthreads();		/* the previous row's histogram was flushed */
		for (int i = threadIdx.x; i < 256; i += blockDim.x)
			h[i] = 0;
		__syncthreads();
		unsigned	prefix = s->prefix;

		for (int ch = blockIdx.x; ch < nch; ch += gridDim.x)
		{
			int			c0 = ch * TK_CHUNK, c1 = min(cols, c0 + TK_CHUNK);

			for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
			{
				float		v = x[c];

				if (isnan(v))
					continue;
				unsigned	key = fkey(v);

				if ((key & hi_mask) == prefix)
					atomicAdd(&h[(key >> shift) & 255u], 1);
			}
		}
		__syncthreads();
		for (int i = threadIdx.x; i < 256; i += blockDim.x)
			if (h[i] != 0)
				atomicAdd(&s->hist[i], h[i]);
	}
}

/* Remove excluded columns from the histogram and pick the digit; a block per row. */
static __global__ void
topk_select_kernel(topk_state *st, const float *scores, int ld, const int32_t *excl_off,
				   const int32_t *excl, int rows, int cols, int k, int pass)
{
	int			shift = 24 - 8 * pass;
	unsigned	hi_mask = pass == 0 ? 0u : ~0u << (32 - 8 * pass);

	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		topk_state *s = st + r;
		const float *x = scores + (size_t) r * ld;

		if (s->take_all)
			continue;
		if (excl != NULL)
			for (int j = excl_off[r] + threadIdx.x; j < excl_off[r + 1]; j += blockDim.x)
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
}

/* Whether column c of row x has a score (not NaN); its key goes to *key. */
static __device__ __forceinline__ bool
topk_valid(const float *x, int c, int cols, unsigned *key)
{
	if (c >= cols)
		return false;
	float		v = x[c];

	if (isnan(v))
		return false;
	*key = fkey(v);
	return true;
}

/* Count the columns of each chunk whose key equals the threshold; block (chunks, rows). */
static __global__ void
topk_eqcount_kernel(const topk_state *st, const float *scores, int ld,
					const int32_t *excl_off, const int32_t *excl, int rows, int cols, int nch,
					int *eq_count)
{
	GR_SHARED(int, red, [TK_THREADS / 32]);

	for (int r = blockIdx.y; r < rows; r += gridDim.y)
	{
		const topk_state *s = st + r;
		const float *x = scores + (size_t) r * ld;
		int			lo = excl ? excl_off[r] : 0, hi = excl ? excl_off[r + 1] : 0;

		if (s->take_all)
			continue;			/* uniform over the block */
		for (int ch = blockIdx.x; ch < nch; ch += gridDim.x)
		{
			int			c0 = ch * TK_CHUNK, c1 = min(cols, c0 + TK_CHUNK), n = 0;
			unsigned	key;

			for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x)
				n += topk_valid(x, c, cols, &key) && key == s->prefix &&
					!(hi > lo && is_excluded(excl, lo, hi, c));
			n = block_sum_int(n, red);
			if (threadIdx.x == 0)
				eq_count[(size_t) r * nch + ch] = n;
		}
	}
}

/*
 * Collect the winners: every key above the threshold, and of the keys equal to it the k_rem
 * with the lowest columns (the CPU's rule), found by counting in column order: the chunks
 * before this one (eq_count), then a block-wide prefix count over each 256-column tile.
 */
static __global__ void
topk_collect_kernel(topk_state *st, const float *scores, int ld, const int32_t *excl_off,
					const int32_t *excl, int rows, int cols, int nch, int k,
					const int *eq_count, float *cand_val, int32_t *cand_idx)
{
	GR_SHARED(int, red, [TK_THREADS / 32]);
	GR_SHARED(int, warp_eq, [TK_THREADS / 32]);
	int			lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	for (int r = blockIdx.y; r < rows; r += gridDim.y)
	{
		topk_state *s = st + r;
		const float *x = scores + (size_t) r * ld;
		int			lo = excl ? excl_off[r] : 0, hi = excl ? excl_off[r + 1] : 0;
		unsigned	thr = s->prefix;
		bool		all = s->take_all != 0;
		int			k_rem = s->k_rem;
		float	   *cv = cand_val + (size_t) r * k;
		int32_t    *ci = cand_idx + (size_t) r * k;

		for (int ch = blockIdx.x; ch < nch; ch += gridDim.x)
		{
			int			c0 = ch * TK_CHUNK, c1 = min(cols, c0 + TK_CHUNK);
			int			before = 0;	/* threshold-equal columns before this tile */

			if (!all)
			{
				for (int j = threadIdx.x; j < ch; j += blockDim.x)
					before += eq_count[(size_t) r * nch + j];
				before = block_sum_int(before, red);
			}
			for (int t0 = c0; t0 < c1; t0 += TK_THREADS)
			{
				int			c = t0 + threadIdx.x;
				unsigned	key = 0;
				bool		valid = c < c1 && topk_valid(x, c, cols, &key) &&
					!(hi > lo && (all || key >= thr) && is_excluded(excl, lo, hi, c));
				bool		take = valid && (all || key > thr);
				bool		eq = valid && !all && key == thr;

				if (!all)
				{
					/* rank of this column among the tile's threshold-equal columns */
					unsigned	ballot = __ballot_sync(0xffffffffu, eq);
					int			in_warp = __popc(ballot & ((1u << lane) - 1u));

					__syncthreads();	/* warp_eq is free again */
					if (lane == 0)
						warp_eq[warp] = __popc(ballot);
					__syncthreads();
					int			in_tile = 0, tile_total = 0;

					for (int w = 0; w < TK_THREADS / 32; w++)
					{
						in_tile += w < warp ? warp_eq[w] : 0;
						tile_total += warp_eq[w];
					}
					take |= eq && before + in_tile + in_warp < k_rem;
					before += tile_total;
				}
				if (take)
				{
					int			slot = atomicAdd(&s->n_taken, 1);

					if (slot < k)
					{
						cv[slot] = x[c];
						ci[slot] = c;
					}
				}
			}
		}
	}
}

/* Sort each row's winners (value descending, column ascending) and write the outputs. */
static __global__ void
topk_sort_kernel(const topk_state *st, const float *cand_val, const int32_t *cand_idx,
				 int rows, int k, int pow2, int32_t *out_idx, float *out_val)
{
	GR_DYN_SMEM(float, sm);
	float	   *sv = sm;
	int32_t    *si = (int32_t *) (sm + pow2);

	for (int r = blockIdx.x; r < rows; r += gridDim.x)
	{
		int			n = min(st[r].n_taken, k);

		__syncthreads();		/* the previous row's outputs were written */
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
			!gr_cuda_synced(c, cudaStreamSynchronize(c->stream), "topk (synchronize)"))
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
			!gr_cuda_synced(c, cudaStreamSynchronize(c->stream), "topk (synchronize)"))
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
			!gr_cuda_synced(c, cudaStreamSynchronize(c->stream), "topk (synchronize)"))
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
	int			nch = (cols + TK_CHUNK - 1) / TK_CHUNK;
	int			pow2 = 1;
	size_t		st_bytes, eq_bytes, bytes;
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
	eq_bytes = ((sizeof(int) * (size_t) rows * nch) + 255) & ~(size_t) 255;
	bytes = st_bytes + eq_bytes + (size_t) rows * k * (sizeof(float) + sizeof(int32_t)) + 256;
	scratch = (char *) gr_cuda_scratch(c, bytes);
	if (scratch == NULL)
		return;
	topk_state *st = (topk_state *) scratch;
	int		   *eq = (int *) (scratch + st_bytes);
	float	   *cv = (float *) (scratch + st_bytes + eq_bytes);
	int32_t    *ci = (int32_t *) (cv + (size_t) rows * k);
	unsigned	row_blocks = gr_cuda_dim(rows, c->grid_cap);
	dim3		grid(gr_cuda_dim(nch, c->grid_cap), gr_cuda_dim(rows, c->grid_yz_cap));

	if (!GR_LAUNCH(c, topk_init_kernel, row_blocks, 256, 0, st, rows, k))
		return;
	for (int pass = 0; pass < 4; pass++)
		if (!GR_LAUNCH(c, topk_hist_kernel, grid, TK_THREADS, 0, st, scores, ld, rows, cols, nch,
					   pass) ||
			!GR_LAUNCH(c, topk_select_kernel, row_blocks, TK_THREADS, 0, st, scores, ld, excl_off,
					   excl, rows, cols, k, pass))
			return;
	if (!GR_LAUNCH(c, topk_eqcount_kernel, grid, TK_THREADS, 0, st, scores, ld, excl_off, excl,
				   rows, cols, nch, eq) ||
		!GR_LAUNCH(c, topk_collect_kernel, grid, TK_THREADS, 0, st, scores, ld, excl_off, excl,
				   rows, cols, nch, k, eq, cv, ci))
		return;
	(void) GR_LAUNCH(c, topk_sort_kernel, row_blocks, 512, (size_t) pow2 * 8, st, cv, ci, rows, k,
					 pow2, out_idx, out_val);
}
