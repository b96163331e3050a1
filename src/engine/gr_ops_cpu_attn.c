/*
 * gr_ops_cpu_attn.c — multi-head softmax attention over packed sequences on the CPU.
 *
 * The mask is the block-causal predicate of gr_ops.h, evaluated per query as "keys
 * [0, visible) plus, for candidates, the query itself"; no T x T mask is built. The forward
 * pass runs an online softmax per query and saves the log-sum-exp per (token, head); the
 * backward pass recomputes the probabilities from it, so no score matrix is ever stored and
 * memory is O(tokens * heads), not O(tokens^2).
 */
#include "gr_ops_cpu.h"

#include <math.h>
#include <string.h>

/* Number of keys in [0, visible) for query q, and whether q also sees itself apart. */
static inline int
visible_prefix(int q, int n_hist, bool *self_extra)
{
	if (q < n_hist)
	{
		*self_extra = false;
		return q + 1;
	}
	*self_extra = true;
	return n_hist;
}

/* Dot product of two vectors of length n. */
static inline float
dot(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Fold key k (score sc, value vk) into a running softmax (max m, sum l, output o). */
static inline void
online_softmax_step(float sc, const float *vk, int dh, float *m, float *l, float *o)
{
	if (sc > *m)
	{
		float		r = expf(*m - sc);	/* 0 when m is still -inf */

		*l *= r;
		for (int i = 0; i < dh; i++)
			o[i] *= r;
		*m = sc;
	}
	float		p = expf(sc - *m);

	*l += p;
	for (int i = 0; i < dh; i++)
		o[i] += p * vk[i];
}

/* Attention forward for one (sequence, head), one pass per query with an online softmax. */
static void
attn_fwd_one(float *out, float *lse, const float *qkv, int base, int T, int n_hist, int h,
			 int n_head, int d)
{
	int			dh = d / n_head;
	int			ld = 3 * d;
	float		scale = 1.0f / sqrtf((float) dh);
	const float *Q = qkv + (size_t) base * ld + h * dh;
	const float *K = Q + d;
	const float *V = Q + 2 * d;

	for (int q = 0; q < T; q++)
	{
		bool		self_extra;
		int			nk = visible_prefix(q, n_hist, &self_extra);
		const float *qv = Q + (size_t) q * ld;
		float	   *o = out + (size_t) (base + q) * d + h * dh;
		float		m = -INFINITY, l = 0.0f;

		memset(o, 0, (size_t) dh * sizeof(float));
		for (int k = 0; k < nk; k++)
			online_softmax_step(dot(qv, K + (size_t) k * ld, dh) * scale, V + (size_t) k * ld,
								dh, &m, &l, o);
		if (self_extra)
			online_softmax_step(dot(qv, K + (size_t) q * ld, dh) * scale, V + (size_t) q * ld,
								dh, &m, &l, o);
		float		inv = 1.0f / l;

		for (int i = 0; i < dh; i++)
			o[i] *= inv;
		lse[(size_t) (base + q) * n_head + h] = m + logf(l);
	}
}

/* Attention forward over all sequences and heads. */
void
gr_cpu_attn_fwd(void *ctx, float *out, float *lse, const float *qkv, const gr_attn_seqs *seqs,
				int n_head, int d)
{
	(void) ctx;
	int			n_tasks = seqs->n_seq * n_head;

#pragma omp parallel for schedule(dynamic, 1)
	for (int task = 0; task < n_tasks; task++)
	{
		int			s = task / n_head, h = task % n_head;
		int			base = seqs->seq_off[s];

		attn_fwd_one(out, lse, qkv, base, seqs->seq_off[s + 1] - base, seqs->n_hist[s], h,
					 n_head, d);
	}
}

/* Attention backward for one (sequence, head); writes its slice of dqkv. */
static void
attn_bwd_one(float *dqkv, const float *dout, const float *qkv, const float *out,
			 const float *lse, int base, int T, int n_hist, int h, int n_head, int d)
{
	int			dh = d / n_head;
	int			ld = 3 * d;
	float		scale = 1.0f / sqrtf((float) dh);
	const float *Q = qkv + (size_t) base * ld + h * dh;
	const float *K = Q + d;
	const float *V = Q + 2 * d;
	float	   *dQ = dqkv + (size_t) base * ld + h * dh;
	float	   *dK = dQ + d;
	float	   *dV = dQ + 2 * d;

	for (int t = 0; t < T; t++)
	{
		memset(dQ + (size_t) t * ld, 0, (size_t) dh * sizeof(float));
		memset(dK + (size_t) t * ld, 0, (size_t) dh * sizeof(float));
		memset(dV + (size_t) t * ld, 0, (size_t) dh * sizeof(float));
	}
	for (int q = 0; q < T; q++)
	{
		bool		self_extra;
		int			nk = visible_prefix(q, n_hist, &self_extra);
		const float *qv = Q + (size_t) q * ld;
		const float *dov = dout + (size_t) (base + q) * d + h * dh;
		const float *ov = out + (size_t) (base + q) * d + h * dh;
		float		L = lse[(size_t) (base + q) * n_head + h];
		float		D = dot(dov, ov, dh);
		float	   *dq = dQ + (size_t) q * ld;

		for (int j = 0; j <= nk; j++)
		{
			int			k;

			if (j < nk)
				k = j;
			else if (self_extra)
				k = q;
			else
				break;
			const float *kv = K + (size_t) k * ld;
			const float *vv = V + (size_t) k * ld;
			float		p = expf(dot(qv, kv, dh) * scale - L);
			float		dp = dot(dov, vv, dh);
			float		ds = p * (dp - D) * scale;
			float	   *dk = dK + (size_t) k * ld;
			float	   *dv = dV + (size_t) k * ld;

			for (int i = 0; i < dh; i++)
			{
				dq[i] += ds * kv[i];
				dk[i] += ds * qv[i];
				dv[i] += p * dov[i];
			}
		}
	}
}

/* Attention backward over all sequences and heads. */
void
gr_cpu_attn_bwd(void *ctx, float *dqkv, const float *dout, const float *qkv, const float *out,
				const float *lse, const gr_attn_seqs *seqs, int n_head, int d)
{
	(void) ctx;
	int			n_tasks = seqs->n_seq * n_head;

#pragma omp parallel for schedule(dynamic, 1)
	for (int task = 0; task < n_tasks; task++)
	{
		int			s = task / n_head, h = task % n_head;
		int			base = seqs->seq_off[s];
		int			T = seqs->seq_off[s + 1] - base;

		attn_bwd_one(dqkv, dout, qkv, out, lse, base, T, seqs->n_hist[s], h, n_head, d);
	}
}
