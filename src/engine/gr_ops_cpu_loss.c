/*
 * gr_ops_cpu_loss.c — losses, the AdamW update, and ranking/top-k over the catalogue on the CPU.
 */
#include "gr_mathf.h"
#include "gr_ops_cpu.h"

#include <math.h>
#include <string.h>

/* Softmax cross-entropy per row, turning logits into their scaled gradient in place. */
GR_HOT
void
gr_cpu_softmax_xent(void *ctx, float *logits, int ld, const int32_t *target, int rows,
					int cols, float *loss, float grad_scale)
{
	(void) ctx;
#pragma omp parallel for schedule(static)
	for (int r = 0; r < rows; r++)
	{
		float	   *x = logits + (size_t) r * ld;
		int			t = target[r];

		if (t < 0 || t >= cols)
		{
			memset(x, 0, (size_t) cols * sizeof(float));
			loss[r] = 0.0f;
			continue;
		}
		float		m = gr_max_array(x, cols);
		float		s = 0.0f;

		for (int c = 0; c < cols; c++)
		{
			x[c] = gr_expf(x[c] - m);
			s += x[c];
		}
		float		xt = x[t];

		loss[r] = -logf(xt / s);
		float		inv = grad_scale / s;

		for (int c = 0; c < cols; c++)
			x[c] *= inv;
		x[t] -= grad_scale;
	}
}

/* Sampled softmax cross-entropy per row over shared candidates, gradients in place. */
void
gr_cpu_sampled_xent(void *ctx, float *neg, int ld, float *pos, const int32_t *target,
					const int32_t *cand, const float *logq, int rows, int n_cand,
					float inv_temp, float *loss, float grad_scale)
{
	(void) ctx;
#pragma omp parallel for schedule(static)
	for (int r = 0; r < rows; r++)
	{
		float	   *x = neg + (size_t) r * ld;
		int			t = target[r];

		if (t < 0)
		{
			memset(x, 0, (size_t) n_cand * sizeof(float));
			pos[r] = 0.0f;
			loss[r] = 0.0f;
			continue;
		}
		float		z0 = inv_temp * pos[r], m = z0;

		for (int c = 0; c < n_cand; c++)
		{
			bool		in = cand[c] >= 0 && cand[c] != t;

			x[c] = in ? inv_temp * x[c] - logq[c] : -INFINITY;
			m = fmaxf(m, x[c]);
		}
		float		s = gr_expf(z0 - m);

		for (int c = 0; c < n_cand; c++)
		{
			x[c] = x[c] == -INFINITY ? 0.0f : gr_expf(x[c] - m);
			s += x[c];
		}
		float		inv = grad_scale * inv_temp / s;

		loss[r] = logf(s) - (z0 - m);
		for (int c = 0; c < n_cand; c++)
			x[c] *= inv;
		pos[r] = inv * gr_expf(z0 - m) - grad_scale * inv_temp;
	}
}

/* Per-element action losses (MSE or BCE with logits) with missing targets skipped. */
GR_HOT
void
gr_cpu_action_loss(void *ctx, const float *pred, const float *target, int rows, int k,
				   const float *col_scale, uint32_t binary_mask, float *loss, float *grad)
{
	(void) ctx;
	for (int r = 0; r < rows; r++)
		for (int j = 0; j < k; j++)
		{
			size_t		i = (size_t) r * k + j;
			float		y = target[i], z = pred[i];

			if (isnan(y))
			{
				loss[i] = 0.0f;
				grad[i] = 0.0f;
			}
			else if (binary_mask & (1u << j))
			{
				/* softplus(z) - y z, computed stably */
				loss[i] = fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))) - y * z;
				grad[i] = col_scale[j] * (1.0f / (1.0f + expf(-z)) - y);
			}
			else
			{
				loss[i] = (z - y) * (z - y);
				grad[i] = col_scale[j] * 2.0f * (z - y);
			}
		}
}

/* One AdamW step with bias correction and decoupled weight decay. */
GR_HOT
void
gr_cpu_adamw(void *ctx, float *param, const float *grad, float *m, float *v, size_t n,
			 float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
	(void) ctx;
	float		c1 = 1.0f - powf(beta1, (float) t);
	float		c2 = 1.0f - powf(beta2, (float) t);

#pragma omp parallel for if (n > 65536) schedule(static)
	for (size_t i = 0; i < n; i++)
	{
		float		g = grad[i];
		float		mi = beta1 * m[i] + (1.0f - beta1) * g;
		float		vi = beta2 * v[i] + (1.0f - beta2) * g * g;

		m[i] = mi;
		v[i] = vi;
		param[i] -= lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + weight_decay * param[i]);
	}
}

/* AdamW on the listed rows of a [*, cols] table (the update above, element for element),
 * then zero their gradient. */
GR_HOT
void
gr_cpu_adamw_rows(void *ctx, float *param, float *grad, float *m, float *v,
				  const int32_t *rows, int n_rows, int cols, float lr, float beta1, float beta2,
				  float eps, float weight_decay, int t)
{
	(void) ctx;
	float		c1 = 1.0f - powf(beta1, (float) t);
	float		c2 = 1.0f - powf(beta2, (float) t);

#pragma omp parallel for if ((size_t) n_rows * cols > 65536) schedule(static)
	for (int r = 0; r < n_rows; r++)
	{
		size_t		o = (size_t) rows[r] * cols;
		float	   *pr = param + o, *gr = grad + o, *mr = m + o, *vr = v + o;

		for (int i = 0; i < cols; i++)
		{
			float		g = gr[i];
			float		mi = beta1 * mr[i] + (1.0f - beta1) * g;
			float		vi = beta2 * vr[i] + (1.0f - beta2) * g * g;

			mr[i] = mi;
			vr[i] = vi;
			pr[i] -= lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + weight_decay * pr[i]);
			gr[i] = 0.0f;
		}
	}
}

/* Rank of each row's target column, with and without the excluded columns. */
GR_HOT
void
gr_cpu_rank_targets(void *ctx, const float *scores, int ld, const int32_t *target,
					const int32_t *excl_off, const int32_t *excl, int rows, int cols,
					int32_t *rank_all, int32_t *rank_excl)
{
	(void) ctx;
#pragma omp parallel for schedule(static)
	for (int r = 0; r < rows; r++)
	{
		const float *x = scores + (size_t) r * ld;
		int			t = target[r];

		if (t < 0 || t >= cols)
		{
			rank_all[r] = rank_excl[r] = 0;
			continue;
		}
		float		st = x[t];
		int			above = 0, above_excluded = 0;

		if (isnan(st))
		{
			/* a target without a score ranks last */
			rank_all[r] = rank_excl[r] = cols;
			continue;
		}

		for (int c = 0; c < cols; c++)
			above += x[c] > st;
		if (excl != NULL)
			for (int j = excl_off[r]; j < excl_off[r + 1]; j++)
			{
				int			c = excl[j];

				if (c >= 0 && c < cols && c != t && x[c] > st)
					above_excluded++;
			}
		rank_all[r] = 1 + above;
		rank_excl[r] = 1 + above - above_excluded;
	}
}

/*
 * Top-k order, shared with the CUDA backend: higher score first, equal scores (-0.0 equal to
 * +0.0, as float comparison has it) by lower column; NaN scores are never returned. The heap
 * keeps the k best with the worst at its root.
 */
static inline bool
topk_worse(float va, int32_t ca, float vb, int32_t cb)
{
	return va < vb || (va == vb && ca > cb);
}

/* Swap two heap slots. */
static inline void
heap_swap(float *val, int32_t *idx, int i, int j)
{
	float		tv = val[i];
	int32_t		ti = idx[i];

	val[i] = val[j];
	idx[i] = idx[j];
	val[j] = tv;
	idx[j] = ti;
}

/* Sift the worst entry of a k-heap down from slot i. */
static void
heap_sift_down(float *val, int32_t *idx, int n, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1, r = l + 1, s = i;

		if (l < n && topk_worse(val[l], idx[l], val[s], idx[s]))
			s = l;
		if (r < n && topk_worse(val[r], idx[r], val[s], idx[s]))
			s = r;
		if (s == i)
			return;
		heap_swap(val, idx, i, s);
		i = s;
	}
}

/* Top k columns of each row, best first (the order above), skipping the sorted excluded
 * columns. */
void
gr_cpu_topk(void *ctx, const float *scores, int ld, const int32_t *excl_off,
			const int32_t *excl, int rows, int cols, int k, int32_t *out_idx, float *out_val)
{
	(void) ctx;
	for (int r = 0; r < rows; r++)
	{
		const float *x = scores + (size_t) r * ld;
		float	   *hv = out_val + (size_t) r * k;
		int32_t    *hi = out_idx + (size_t) r * k;
		int			n = 0;
		int			e = excl ? excl_off[r] : 0, e_end = excl ? excl_off[r + 1] : 0;

		for (int c = 0; c < cols; c++)
		{
			while (e < e_end && excl[e] < c)
				e++;
			if (e < e_end && excl[e] == c)
				continue;
			float		s = x[c];

			if (isnan(s))
				continue;
			if (n < k)
			{
				/* insert and sift up */
				int			i = n++;

				hv[i] = s;
				hi[i] = c;
				while (i > 0 && topk_worse(hv[i], hi[i], hv[(i - 1) / 2], hi[(i - 1) / 2]))
				{
					heap_swap(hv, hi, i, (i - 1) / 2);
					i = (i - 1) / 2;
				}
			}
			else if (s > hv[0])
			{
				/* columns arrive in ascending order, so an equal score never displaces */
				hv[0] = s;
				hi[0] = c;
				heap_sift_down(hv, hi, n, 0);
			}
		}
		/* heap sort into best-first order: repeatedly move the worst to the end */
		for (int m = n; m > 1; m--)
		{
			heap_swap(hv, hi, 0, m - 1);
			heap_sift_down(hv, hi, m - 1, 0);
		}
		for (int i = n; i < k; i++)
		{
			hv[i] = -INFINITY;
			hi[i] = -1;
		}
	}
}
