/*
 * gr_ops_cpu_attn.c — multi-head softmax attention over packed sequences on the CPU.
 *
 * The mask is one of the predicates of gr_ops.h, evaluated per query as "keys [0, nk) plus,
 * for a candidate under the causal mask, the query itself"; the second value stream (v2) is
 * read at the strict keys [0, nk2), a prefix of those. No T x T mask is built. Work is split
 * by (sequence, head). Each task copies its head's keys and values into transposed scratch
 * ([d_head][T]) so the inner loops run over keys with unit stride and vectorise. The forward
 * pass saves the log-sum-exp per (token, head); the backward pass recomputes the
 * probabilities from it, so no score matrix is stored and memory is O(tokens * heads). A
 * query with no visible key gets output 0 and lse -inf, and no gradient. Should the scratch
 * not be available, a plain per-key loop computes the same thing.
 */
#include "gr_mathf.h"
#include "gr_ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Dot product of two vectors of length n. */
static inline float
dot(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* One (sequence, head) task: where its rows live and its scratch. */
typedef struct attn_task
{
	const float *Q, *K, *V;		/* first row of the head's columns; row stride ld */
	const float *V2;			/* the second value stream (row stride d), or NULL */
	int			ld;				/* 3d */
	int			ld2;			/* d */
	int			T;				/* tokens */
	int			n_hist;
	gr_attn_mask mask;
	int			dh;
	float		scale;
	float	   *Kt, *Vt, *V2t;	/* [dh][T] */
	float	   *s;				/* [T] scores / probabilities */
	float	   *dp;				/* [T] */
	float	   *dKt, *dVt, *dV2t;	/* [dh][T] (backward) */
} attn_task;

/* Copy the head's keys and values into transposed scratch. */
GR_HOT
static void
load_transposed(attn_task *t)
{
	for (int k = 0; k < t->T; k++)
	{
		const float *kr = t->K + (size_t) k * t->ld, *vr = t->V + (size_t) k * t->ld;

		for (int i = 0; i < t->dh; i++)
		{
			t->Kt[(size_t) i * t->T + k] = kr[i];
			t->Vt[(size_t) i * t->T + k] = vr[i];
		}
		if (t->V2)
		{
			const float *v2 = t->V2 + (size_t) k * t->ld2;

			for (int i = 0; i < t->dh; i++)
				t->V2t[(size_t) i * t->T + k] = v2[i];
		}
	}
}

/* Scaled scores of query q against keys [0, nk) into t->s. */
static void
scores(const attn_task *t, const float *q, int nk)
{
	float	   *s = t->s;

	for (int k = 0; k < nk; k++)
		s[k] = 0.0f;
	for (int i = 0; i < t->dh; i++)
	{
		const float *kt = t->Kt + (size_t) i * t->T;
		float		qi = q[i] * t->scale;

		for (int k = 0; k < nk; k++)
			s[k] += qi * kt[k];
	}
}

/* Forward of one query: o = softmax(scores) V (+ the strict keys' v2); returns the lse. */
static GR_HOT_INLINE float
attn_fwd_query(const attn_task *t, int q, float *o)
{
	bool		self;
	int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
	const float *qv = t->Q + (size_t) q * t->ld;
	float	   *s = t->s;
	float		m = -INFINITY, l = 0.0f, s_self = 0.0f, p_self = 0.0f;

	if (nk == 0 && !self)
	{
		memset(o, 0, sizeof(float) * t->dh);
		return -INFINITY;
	}
	scores(t, qv, nk);
	for (int k = 0; k < nk; k++)
		m = gr_maxf(m, s[k]);
	if (self)
	{
		s_self = dot(qv, t->K + (size_t) q * t->ld, t->dh) * t->scale;
		m = gr_maxf(m, s_self);
	}
	for (int k = 0; k < nk; k++)
	{
		s[k] = gr_expf(s[k] - m);
		l += s[k];
	}
	if (self)
	{
		p_self = gr_expf(s_self - m);
		l += p_self;
	}
	float		inv = 1.0f / l;

	for (int i = 0; i < t->dh; i++)
	{
		const float *vt = t->Vt + (size_t) i * t->T;
		float		acc = 0.0f;

		for (int k = 0; k < nk; k++)
			acc += s[k] * vt[k];
		if (self)
			acc += p_self * vt[q];
		if (t->V2)
		{
			const float *v2t = t->V2t + (size_t) i * t->T;

			for (int k = 0; k < nk2; k++)
				acc += s[k] * v2t[k];
		}
		o[i] = acc * inv;
	}
	return m + logf(l);
}

/* Backward of one query: accumulate dQ (written), dKt, dVt and dV2t from dO. */
static GR_HOT_INLINE void
attn_bwd_query(const attn_task *t, int q, const float *dov, const float *ov, float L,
			   float *dq)
{
	bool		self;
	int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
	const float *qv = t->Q + (size_t) q * t->ld;
	float	   *s = t->s, *dp = t->dp;
	float		D = dot(dov, ov, t->dh);
	int			T = t->T;

	if (nk == 0 && !self)
	{
		memset(dq, 0, sizeof(float) * t->dh);
		return;
	}
	/* probabilities and their upstream gradient over the visible prefix */
	scores(t, qv, nk);
	for (int k = 0; k < nk; k++)
	{
		s[k] = gr_expf(s[k] - L);
		dp[k] = 0.0f;
	}
	for (int i = 0; i < t->dh; i++)
	{
		const float *vt = t->Vt + (size_t) i * T;
		float		g = dov[i];

		for (int k = 0; k < nk; k++)
			dp[k] += g * vt[k];
		if (t->V2)
		{
			const float *v2t = t->V2t + (size_t) i * T;

			for (int k = 0; k < nk2; k++)
				dp[k] += g * v2t[k];
		}
	}
	/* dp becomes dS (scaled), s stays P */
	for (int k = 0; k < nk; k++)
		dp[k] = s[k] * (dp[k] - D) * t->scale;
	float		p_self = 0.0f, ds_self = 0.0f;

	if (self)
	{
		p_self = gr_expf(dot(qv, t->K + (size_t) q * t->ld, t->dh) * t->scale - L);
		ds_self = p_self * (dot(dov, t->V + (size_t) q * t->ld, t->dh) - D) * t->scale;
	}
	for (int i = 0; i < t->dh; i++)
	{
		const float *kt = t->Kt + (size_t) i * T;
		float	   *dkt = t->dKt + (size_t) i * T, *dvt = t->dVt + (size_t) i * T;
		float		qi = qv[i], gi = dov[i], acc = 0.0f;

		for (int k = 0; k < nk; k++)
		{
			acc += dp[k] * kt[k];
			dkt[k] += dp[k] * qi;
			dvt[k] += s[k] * gi;
		}
		if (self)
		{
			acc += ds_self * kt[q];
			dkt[q] += ds_self * qi;
			dvt[q] += p_self * gi;
		}
		if (t->V2)
		{
			float	   *dv2t = t->dV2t + (size_t) i * T;

			for (int k = 0; k < nk2; k++)
				dv2t[k] += s[k] * gi;
		}
		dq[i] = acc;
	}
}

/* Bind a task to sequence s, head h; scratch is assigned by the caller. */
static attn_task
make_task(const float *qkv, const float *v2, const gr_attn_seqs *seqs, gr_attn_mask mask,
		  int s, int h, int n_head, int d)
{
	attn_task	t;
	int			base = seqs->seq_off[s];

	t.dh = d / n_head;
	t.ld = 3 * d;
	t.ld2 = d;
	t.Q = qkv + (size_t) base * t.ld + h * t.dh;
	t.K = t.Q + d;
	t.V = t.Q + 2 * d;
	t.V2 = v2 ? v2 + (size_t) base * d + h * t.dh : NULL;
	t.T = seqs->seq_off[s + 1] - base;
	t.n_hist = seqs->n_hist[s];
	t.mask = mask;
	t.scale = 1.0f / sqrtf((float) t.dh);
	return t;
}

/* Point a task's scratch into one buffer of scratch_floats(T, dh, backward) floats. */
static void
assign_scratch(attn_task *t, float *buf, bool backward)
{
	size_t		plane = (size_t) t->dh * t->T;

	t->Kt = buf;
	t->Vt = buf + plane;
	t->V2t = buf + 2 * plane;
	t->s = buf + 3 * plane;
	t->dp = t->s + t->T;
	t->dKt = backward ? t->dp + t->T : NULL;
	t->dVt = backward ? t->dKt + plane : NULL;
	t->dV2t = backward ? t->dVt + plane : NULL;
}

/* Floats of scratch one task needs. */
static size_t
scratch_floats(int T, int dh, bool backward)
{
	return (size_t) dh * T * (backward ? 6 : 3) + 2 * (size_t) T;
}

/* Attention forward for one task without scratch: a plain loop per (query, key). */
GR_HOT
static void
attn_fwd_plain(const attn_task *t, float *out, float *lse, int base, int h, int n_head, int d)
{
	for (int q = 0; q < t->T; q++)
	{
		bool		self;
		int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
		const float *qv = t->Q + (size_t) q * t->ld;
		float	   *o = out + (size_t) (base + q) * d + h * t->dh;
		float		m = -INFINITY, l = 0.0f;

		memset(o, 0, sizeof(float) * t->dh);
		if (nk == 0 && !self)
		{
			lse[(size_t) (base + q) * n_head + h] = -INFINITY;
			continue;
		}
		for (int j = 0; j <= nk; j++)
		{
			int			k = j < nk ? j : q;

			if (j == nk && !self)
				break;
			float		sc = dot(qv, t->K + (size_t) k * t->ld, t->dh) * t->scale;

			m = gr_maxf(m, sc);
		}
		for (int j = 0; j <= nk; j++)
		{
			int			k = j < nk ? j : q;

			if (j == nk && !self)
				break;
			float		p = gr_expf(dot(qv, t->K + (size_t) k * t->ld, t->dh) * t->scale - m);
			const float *vk = t->V + (size_t) k * t->ld;

			l += p;
			for (int i = 0; i < t->dh; i++)
				o[i] += p * vk[i];
			if (t->V2 && j < nk2)
			{
				const float *v2k = t->V2 + (size_t) k * t->ld2;

				for (int i = 0; i < t->dh; i++)
					o[i] += p * v2k[i];
			}
		}
		for (int i = 0; i < t->dh; i++)
			o[i] /= l;
		lse[(size_t) (base + q) * n_head + h] = m + logf(l);
	}
}

/* Attention forward over all sequences and heads. */
GR_HOT
void
gr_cpu_attn_fwd(void *ctx, float *out, float *lse, const float *qkv, const float *v2,
				const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d)
{
	(void) ctx;
	int			n_tasks = seqs->n_seq * n_head;
	size_t		need = scratch_floats(seqs->max_tokens, d / n_head, false);

#pragma omp parallel
	{
		float	   *buf = malloc(sizeof(float) * need);

#pragma omp for schedule(dynamic, 1)
		for (int task = 0; task < n_tasks; task++)
		{
			int			s = task / n_head, h = task % n_head;
			int			base = seqs->seq_off[s];
			attn_task	t = make_task(qkv, v2, seqs, mask, s, h, n_head, d);

			if (buf == NULL)
			{
				attn_fwd_plain(&t, out, lse, base, h, n_head, d);
				continue;
			}
			assign_scratch(&t, buf, false);
			load_transposed(&t);
			for (int q = 0; q < t.T; q++)
				lse[(size_t) (base + q) * n_head + h] =
					attn_fwd_query(&t, q, out + (size_t) (base + q) * d + h * t.dh);
		}
		free(buf);
	}
}

/* Attention backward for one task without scratch: a plain loop per (query, key). */
GR_HOT
static void
attn_bwd_plain(const attn_task *t, float *dqkv, float *dv2, const float *dout,
			   const float *out, const float *lse, int base, int h, int n_head, int d)
{
	float	   *dQ = dqkv + (size_t) base * t->ld + h * t->dh;
	float	   *dK = dQ + d, *dV = dQ + 2 * d;
	float	   *dV2 = dv2 ? dv2 + (size_t) base * d + h * t->dh : NULL;

	for (int q = 0; q < t->T; q++)
	{
		bool		self;
		int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
		const float *qv = t->Q + (size_t) q * t->ld;
		const float *dov = dout + (size_t) (base + q) * d + h * t->dh;
		const float *ov = out + (size_t) (base + q) * d + h * t->dh;
		float		L = lse[(size_t) (base + q) * n_head + h];
		float		D = dot(dov, ov, t->dh);
		float	   *dq = dQ + (size_t) q * t->ld;

		for (int j = 0; j <= nk; j++)
		{
			int			k = j < nk ? j : q;

			if (j == nk && !self)
				break;
			const float *kv = t->K + (size_t) k * t->ld, *vv = t->V + (size_t) k * t->ld;
			bool		second = t->V2 && j < nk2;
			float		p = gr_expf(dot(qv, kv, t->dh) * t->scale - L);
			float		dpv = dot(dov, vv, t->dh) +
				(second ? dot(dov, t->V2 + (size_t) k * t->ld2, t->dh) : 0.0f);
			float		ds = p * (dpv - D) * t->scale;
			float	   *dk = dK + (size_t) k * t->ld, *dv = dV + (size_t) k * t->ld;

			for (int i = 0; i < t->dh; i++)
			{
				dq[i] += ds * kv[i];
				dk[i] += ds * qv[i];
				dv[i] += p * dov[i];
			}
			if (second)
				for (int i = 0; i < t->dh; i++)
					dV2[(size_t) k * t->ld2 + i] += p * dov[i];
		}
	}
}

/* Attention backward over all sequences and heads; dqkv and dv2 are overwritten. */
GR_HOT
void
gr_cpu_attn_bwd(void *ctx, float *dqkv, float *dv2, const float *dout, const float *qkv,
				const float *v2, const float *out, const float *lse, const gr_attn_seqs *seqs,
				gr_attn_mask mask, int n_head, int d)
{
	(void) ctx;
	int			n_tasks = seqs->n_seq * n_head;
	size_t		need = scratch_floats(seqs->max_tokens, d / n_head, true);

	if (v2 == NULL)
		dv2 = NULL;
#pragma omp parallel
	{
		float	   *buf = malloc(sizeof(float) * need);

#pragma omp for schedule(dynamic, 1)
		for (int task = 0; task < n_tasks; task++)
		{
			int			s = task / n_head, h = task % n_head;
			int			base = seqs->seq_off[s];
			attn_task	t = make_task(qkv, v2, seqs, mask, s, h, n_head, d);
			float	   *dQ = dqkv + (size_t) base * t.ld + h * t.dh;
			float	   *dV2 = dv2 ? dv2 + (size_t) base * d + h * t.dh : NULL;

			if (buf == NULL)
			{
				for (int r = 0; r < t.T; r++)
				{
					for (int part = 0; part < 3; part++)
						memset(dQ + (size_t) r * t.ld + part * d, 0, sizeof(float) * t.dh);
					if (dV2)
						memset(dV2 + (size_t) r * d, 0, sizeof(float) * t.dh);
				}
				attn_bwd_plain(&t, dqkv, dv2, dout, out, lse, base, h, n_head, d);
				continue;
			}
			assign_scratch(&t, buf, true);
			load_transposed(&t);
			memset(t.dKt, 0, sizeof(float) * 3 * (size_t) t.dh * t.T);
			for (int q = 0; q < t.T; q++)
				attn_bwd_query(&t, q, dout + (size_t) (base + q) * d + h * t.dh,
							   out + (size_t) (base + q) * d + h * t.dh,
							   lse[(size_t) (base + q) * n_head + h], dQ + (size_t) q * t.ld);
			for (int k = 0; k < t.T; k++)
				for (int i = 0; i < t.dh; i++)
				{
					dQ[(size_t) k * t.ld + d + i] = t.dKt[(size_t) i * t.T + k];
					dQ[(size_t) k * t.ld + 2 * d + i] = t.dVt[(size_t) i * t.T + k];
					if (dV2)
						dV2[(size_t) k * d + i] = t.dV2t[(size_t) i * t.T + k];
				}
		}
		free(buf);
	}
}
