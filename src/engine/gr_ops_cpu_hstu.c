/*
 * gr_ops_cpu_hstu.c — HSTU pointwise attention over packed sequences on the CPU
 * (LAYOUTS.md §2.3; the op is specified in gr_ops.h, the biases in gr_hstu.h).
 *
 * Work is split by (sequence, head), as for softmax attention. A query's visible keys are
 * those of the mask predicate (gr_cpu_visible_keys): the prefix [0, nk) and, for a candidate
 * under the causal mask, the query itself; the second value stream is read at the strict
 * prefix [0, nk2). Each task copies its head's keys and values into transposed scratch
 * ([d_head][T]) so that the loops over a query's keys have unit stride and vectorise: the
 * scores of the prefix in one row buffer (dot products, then the two bias gathers), A =
 * SiLU(S) / n in place, the output from the value rows; the query's own key (a candidate) is
 * one scalar term. Nothing T x T is stored: the backward pass recomputes S per query. Without
 * scratch memory a plain per-(query, key) loop computes the same thing. Since there
 * is no softmax, a key's weight does not depend on the other keys, so the backward of one
 * (query, key) pair is local: dA = dO.(v [+ v2]), dS = dA SiLU'(S) / n, then dq, dk, dv, dv2
 * and the two bias tables. The bias gradients are summed per thread in double and added to
 * the caller's tables once per thread, in a critical section.
 */
#include "gr_mathf.h"
#include "gr_ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One (sequence, head) task. */
typedef struct hstu_task
{
	const float *Q, *K, *V;		/* the head's columns of the sequence's first row; stride ld */
	const float *V2;			/* second value stream (row stride d), or NULL */
	const int32_t *pos;			/* the sequence's position ids */
	const int64_t *tq, *tk;		/* the sequence's query and key times */
	const gr_hstu_rab *rab;
	int			ld, d, dh, T, n_hist;
	gr_attn_mask mask;
	float		alpha, inv_n;
} hstu_task;

/* Bind a task to sequence s, head h. */
static hstu_task
make_task(const float *qkv, int ld, const float *v2, const gr_hstu_rab *rab,
		  const gr_attn_seqs *seqs, gr_attn_mask mask, int s, int h, int n_head, int d,
		  float alpha, float inv_n)
{
	hstu_task	t;
	int			base = seqs->seq_off[s];

	t.dh = d / n_head;
	t.ld = ld;
	t.d = d;
	t.Q = qkv + (size_t) base * ld + h * t.dh;
	t.K = t.Q + d;
	t.V = t.Q + 2 * d;
	t.V2 = v2 ? v2 + (size_t) base * d + h * t.dh : NULL;
	t.pos = rab->pos + base;
	t.tq = rab->tq + base;
	t.tk = rab->tk + base;
	t.rab = rab;
	t.T = seqs->seq_off[s + 1] - base;
	t.n_hist = seqs->n_hist[s];
	t.mask = mask;
	t.alpha = alpha;
	t.inv_n = inv_n;
	return t;
}

/* Dot product of two vectors of length n. */
static GR_HOT_INLINE float
dot(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* The score of query q against key k, with both biases. */
static GR_HOT_INLINE float
score(const hstu_task *t, int q, int k)
{
	const gr_hstu_rab *r = t->rab;

	return t->alpha * dot(t->Q + (size_t) q * t->ld, t->K + (size_t) k * t->ld, t->dh) +
		r->w_pos[gr_hstu_pos_index(t->pos[q], t->pos[k], r->n_pos)] +
		r->w_time[gr_hstu_time_bucket(t->tq[q] - t->tk[k])];
}

/* σ(z). */
static GR_HOT_INLINE float
sigmoid(float z)
{
	return 1.0f / (1.0f + gr_expf(-z));
}

/* Key j of query q's visible list: the prefix, then the query itself when self. */
static GR_HOT_INLINE int
key_at(int j, int nk, int q)
{
	return j < nk ? j : q;
}

/* A task's scratch: transposed keys and values, per-query rows, and bias indices. */
typedef struct hstu_scratch
{
	float	   *Kt, *Vt, *V2t;	/* [dh][T] */
	float	   *s, *a, *ds;		/* [T] scores, weights, score gradients of one query */
	int32_t    *ip, *it;		/* [T] bias indices of one query's keys */
	float	   *dKt, *dVt, *dV2t;	/* [dh][T] (backward) */
} hstu_scratch;

/* Floats (ints counted as floats) of scratch one task of T tokens needs. */
static size_t
scratch_floats(int T, int dh, bool backward)
{
	return (size_t) dh * T * (backward ? 6 : 3) + 5 * (size_t) T;
}

/* Point the scratch into buf and copy the head's keys and values in, transposed. */
GR_HOT
static void
load_scratch(const hstu_task *t, hstu_scratch *x, float *buf, bool backward)
{
	size_t		plane = (size_t) t->dh * t->T;

	x->Kt = buf;
	x->Vt = buf + plane;
	x->V2t = buf + 2 * plane;
	x->s = buf + 3 * plane;
	x->a = x->s + t->T;
	x->ds = x->a + t->T;
	x->ip = (int32_t *) (x->ds + t->T);
	x->it = x->ip + t->T;
	x->dKt = backward ? (float *) (x->it + t->T) : NULL;
	x->dVt = backward ? x->dKt + plane : NULL;
	x->dV2t = backward ? x->dVt + plane : NULL;
	for (int k = 0; k < t->T; k++)
	{
		const float *kr = t->K + (size_t) k * t->ld, *vr = t->V + (size_t) k * t->ld;

		for (int i = 0; i < t->dh; i++)
		{
			x->Kt[(size_t) i * t->T + k] = kr[i];
			x->Vt[(size_t) i * t->T + k] = vr[i];
		}
		if (t->V2)
			for (int i = 0; i < t->dh; i++)
				x->V2t[(size_t) i * t->T + k] = t->V2[(size_t) k * t->d + i];
	}
	if (backward)
		memset(x->dKt, 0, sizeof(float) * 3 * plane);
}

/* Scores of query q against the prefix [0, nk) into x->s, with their bias indices. */
static GR_HOT_INLINE void
prefix_scores(const hstu_task *t, hstu_scratch *x, int q, int nk)
{
	const gr_hstu_rab *r = t->rab;
	const float *qv = t->Q + (size_t) q * t->ld;
	float	   *s = x->s;

	for (int k = 0; k < nk; k++)
		s[k] = 0.0f;
	for (int i = 0; i < t->dh; i++)
	{
		const float *kt = x->Kt + (size_t) i * t->T;
		float		qi = t->alpha * qv[i];

		for (int k = 0; k < nk; k++)
			s[k] += qi * kt[k];
	}
	for (int k = 0; k < nk; k++)
	{
		x->ip[k] = gr_hstu_pos_index(t->pos[q], t->pos[k], r->n_pos);
		x->it[k] = gr_hstu_time_bucket(t->tq[q] - t->tk[k]);
		s[k] += r->w_pos[x->ip[k]] + r->w_time[x->it[k]];
	}
}

/* Forward of one query with scratch: its output row o. */
static GR_HOT_INLINE void
fwd_query(const hstu_task *t, hstu_scratch *x, int q, float *o)
{
	bool		self;
	int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
	float	   *s = x->s, a_self = 0.0f;

	prefix_scores(t, x, q, nk);
	for (int k = 0; k < nk; k++)
		s[k] = s[k] * sigmoid(s[k]) * t->inv_n;
	if (self)
	{
		float		sc = score(t, q, q);

		a_self = sc * sigmoid(sc) * t->inv_n;
	}
	for (int i = 0; i < t->dh; i++)
	{
		const float *vt = x->Vt + (size_t) i * t->T;
		float		acc = 0.0f;

		for (int k = 0; k < nk; k++)
			acc += s[k] * vt[k];
		if (self)
			acc += a_self * vt[q];
		if (t->V2)
		{
			const float *v2t = x->V2t + (size_t) i * t->T;

			for (int k = 0; k < nk2; k++)
				acc += s[k] * v2t[k];
		}
		o[i] = acc;
	}
}

/* Backward of one query with scratch: dq written; dKt, dVt, dV2t and the bias sums
 * (g_pos / g_time, or atomically into the tables when NULL) accumulate. */
static GR_HOT_INLINE void
bwd_query(const hstu_task *t, hstu_scratch *x, int q, const float *dov, float *dq,
		  double *g_pos, double *g_time, float *d_w_pos, float *d_w_time)
{
	bool		self;
	int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
	const float *qv = t->Q + (size_t) q * t->ld;
	float	   *s = x->s, *a = x->a, *ds = x->ds;
	int			T = t->T;

	prefix_scores(t, x, q, nk);
	for (int k = 0; k < nk; k++)
		ds[k] = 0.0f;
	for (int i = 0; i < t->dh; i++)
	{
		const float *vt = x->Vt + (size_t) i * T;
		float		g = dov[i];

		for (int k = 0; k < nk; k++)
			ds[k] += g * vt[k];
		if (t->V2)
		{
			const float *v2t = x->V2t + (size_t) i * T;

			for (int k = 0; k < nk2; k++)
				ds[k] += g * v2t[k];
		}
	}
	/* ds: dA -> dS; a: the weights */
	for (int k = 0; k < nk; k++)
	{
		float		sg = sigmoid(s[k]);

		a[k] = s[k] * sg * t->inv_n;
		ds[k] *= sg * (1.0f + s[k] * (1.0f - sg)) * t->inv_n;
	}
	float		a_self = 0.0f, ds_self = 0.0f;
	int			ip_self = 0, it_self = 0;

	if (self)
	{
		float		sc = score(t, q, q), sg = sigmoid(sc);

		a_self = sc * sg * t->inv_n;
		ds_self = dot(dov, t->V + (size_t) q * t->ld, t->dh) * sg * (1.0f + sc * (1.0f - sg)) *
			t->inv_n;
		ip_self = gr_hstu_pos_index(t->pos[q], t->pos[q], t->rab->n_pos);
		it_self = gr_hstu_time_bucket(t->tq[q] - t->tk[q]);
	}
	for (int i = 0; i < t->dh; i++)
	{
		const float *kt = x->Kt + (size_t) i * T;
		float	   *dkt = x->dKt + (size_t) i * T, *dvt = x->dVt + (size_t) i * T;
		float		qi = t->alpha * qv[i], gi = dov[i], acc = 0.0f;

		for (int k = 0; k < nk; k++)
		{
			acc += ds[k] * kt[k];
			dkt[k] += ds[k] * qi;
			dvt[k] += a[k] * gi;
		}
		if (self)
		{
			acc += ds_self * kt[q];
			dkt[q] += ds_self * qi;
			dvt[q] += a_self * gi;
		}
		if (t->V2)
		{
			float	   *dv2t = x->dV2t + (size_t) i * T;

			for (int k = 0; k < nk2; k++)
				dv2t[k] += a[k] * gi;
		}
		dq[i] = t->alpha * acc;
	}
	for (int k = 0; k < nk + (self ? 1 : 0); k++)
	{
		int			ip = k < nk ? x->ip[k] : ip_self, it = k < nk ? x->it[k] : it_self;
		float		g = k < nk ? ds[k] : ds_self;

		if (g_pos)
		{
			g_pos[ip] += g;
			g_time[it] += g;
		}
		else
		{
#pragma omp atomic
			d_w_pos[ip] += g;
#pragma omp atomic
			d_w_time[it] += g;
		}
	}
}

/* Forward of one task without scratch: a plain loop per (query, key). */
GR_HOT
static void
hstu_fwd_plain(const hstu_task *t, float *out)
{
	for (int q = 0; q < t->T; q++)
	{
		bool		self;
		int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
		float	   *o = out + (size_t) q * t->d;

		memset(o, 0, sizeof(float) * t->dh);
		for (int j = 0; j < nk + (self ? 1 : 0); j++)
		{
			int			k = key_at(j, nk, q);
			float		sc = score(t, q, k);
			float		a = sc * sigmoid(sc) * t->inv_n;
			const float *v = t->V + (size_t) k * t->ld;

			for (int i = 0; i < t->dh; i++)
				o[i] += a * v[i];
			if (t->V2 && j < nk2)
			{
				const float *v2 = t->V2 + (size_t) k * t->d;

				for (int i = 0; i < t->dh; i++)
					o[i] += a * v2[i];
			}
		}
	}
}

/* HSTU attention forward over all sequences and heads. */
GR_HOT
void
gr_cpu_hstu_attn_fwd(void *ctx, float *out, const float *qkv, int ld, const float *v2,
					 const gr_hstu_rab *rab, const gr_attn_seqs *seqs, gr_attn_mask mask,
					 int n_head, int d, float alpha, float inv_n)
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
			hstu_task	t = make_task(qkv, ld, v2, rab, seqs, mask, s, h, n_head, d, alpha,
									  inv_n);
			float	   *o = out + (size_t) seqs->seq_off[s] * d + h * t.dh;
			hstu_scratch x;

			if (buf == NULL)
			{
				hstu_fwd_plain(&t, o);
				continue;
			}
			load_scratch(&t, &x, buf, false);
			for (int q = 0; q < t.T; q++)
				fwd_query(&t, &x, q, o + (size_t) q * d);
		}
		free(buf);
	}
}

/* Backward of one task without scratch into its rows of dqkv / dv2 (zeroed here) and the
 * bias gradients: the task's double sums g_pos / g_time, or (when NULL) atomically. */
GR_HOT
static void
hstu_bwd_plain(const hstu_task *t, float *dq0, float *dv2_0, const float *dout, double *g_pos,
			  double *g_time, float *d_w_pos, float *d_w_time)
{
	const gr_hstu_rab *r = t->rab;

	for (int q = 0; q < t->T; q++)
	{
		for (int part = 0; part < 3; part++)
			memset(dq0 + (size_t) q * t->ld + part * t->d, 0, sizeof(float) * t->dh);
		if (dv2_0)
			memset(dv2_0 + (size_t) q * t->d, 0, sizeof(float) * t->dh);
	}
	for (int q = 0; q < t->T; q++)
	{
		bool		self;
		int			nk2, nk = gr_cpu_visible_keys(q, t->n_hist, t->mask, &self, &nk2);
		const float *qv = t->Q + (size_t) q * t->ld, *dov = dout + (size_t) q * t->d;
		float	   *dq = dq0 + (size_t) q * t->ld;

		for (int j = 0; j < nk + (self ? 1 : 0); j++)
		{
			int			k = key_at(j, nk, q);
			bool		second = t->V2 && j < nk2;
			const float *kv = t->K + (size_t) k * t->ld, *vv = t->V + (size_t) k * t->ld;
			int			ip = gr_hstu_pos_index(t->pos[q], t->pos[k], r->n_pos);
			int			it = gr_hstu_time_bucket(t->tq[q] - t->tk[k]);
			float		sc = t->alpha * dot(qv, kv, t->dh) + r->w_pos[ip] + r->w_time[it];
			float		sg = sigmoid(sc);
			float		a = sc * sg * t->inv_n;
			float		da = dot(dov, vv, t->dh) +
				(second ? dot(dov, t->V2 + (size_t) k * t->d, t->dh) : 0.0f);
			float		ds = da * sg * (1.0f + sc * (1.0f - sg)) * t->inv_n;
			float	   *dk = dq0 + (size_t) k * t->ld + t->d, *dv = dk + t->d;

			for (int i = 0; i < t->dh; i++)
			{
				dq[i] += t->alpha * ds * kv[i];
				dk[i] += t->alpha * ds * qv[i];
				dv[i] += a * dov[i];
			}
			if (second)
			{
				float	   *dv2 = dv2_0 + (size_t) k * t->d;

				for (int i = 0; i < t->dh; i++)
					dv2[i] += a * dov[i];
			}
			if (g_pos)
			{
				g_pos[ip] += ds;
				g_time[it] += ds;
			}
			else
			{
#pragma omp atomic
				d_w_pos[ip] += ds;
#pragma omp atomic
				d_w_time[it] += ds;
			}
		}
	}
}

/* HSTU attention backward over all sequences and heads. The bias gradients of each task
 * are summed in its own row of doubles and reduced in task order, so the result does not
 * depend on the thread schedule; without that buffer, atomics (same sums, any order). */
GR_HOT
void
gr_cpu_hstu_attn_bwd(void *ctx, float *dqkv, float *dv2, float *d_w_pos, float *d_w_time,
					 const float *dout, const float *qkv, int ld, const float *v2,
					 const gr_hstu_rab *rab, const gr_attn_seqs *seqs, gr_attn_mask mask,
					 int n_head, int d, float alpha, float inv_n)
{
	(void) ctx;
	int			n_tasks = seqs->n_seq * n_head, n_pos = rab->n_pos;
	size_t		row = (size_t) n_pos + GR_HSTU_TIME_BUCKETS;
	double	   *g = calloc((size_t) n_tasks * row, sizeof(double));

	if (v2 == NULL)
		dv2 = NULL;
	size_t		need = scratch_floats(seqs->max_tokens, d / n_head, true);

#pragma omp parallel
	{
		float	   *buf = malloc(sizeof(float) * need);

#pragma omp for schedule(dynamic, 1)
		for (int task = 0; task < n_tasks; task++)
		{
			int			s = task / n_head, h = task % n_head, base = seqs->seq_off[s];
			hstu_task	t = make_task(qkv, ld, v2, rab, seqs, mask, s, h, n_head, d, alpha,
									  inv_n);
			double	   *gp = g ? g + (size_t) task * row : NULL, *gt = gp ? gp + n_pos : NULL;
			float	   *dq0 = dqkv + (size_t) base * ld + h * t.dh;
			float	   *dv2_0 = dv2 ? dv2 + (size_t) base * d + h * t.dh : NULL;
			const float *dout0 = dout + (size_t) base * d + h * t.dh;
			hstu_scratch x;

			if (buf == NULL)
			{
				hstu_bwd_plain(&t, dq0, dv2_0, dout0, gp, gt, d_w_pos, d_w_time);
				continue;
			}
			load_scratch(&t, &x, buf, true);
			for (int q = 0; q < t.T; q++)
				bwd_query(&t, &x, q, dout0 + (size_t) q * d, dq0 + (size_t) q * ld, gp, gt,
						  d_w_pos, d_w_time);
			for (int k = 0; k < t.T; k++)
				for (int i = 0; i < t.dh; i++)
				{
					dq0[(size_t) k * ld + d + i] = x.dKt[(size_t) i * t.T + k];
					dq0[(size_t) k * ld + 2 * d + i] = x.dVt[(size_t) i * t.T + k];
					if (dv2_0)
						dv2_0[(size_t) k * d + i] = x.dV2t[(size_t) i * t.T + k];
				}
		}
		free(buf);
	}
	if (g == NULL)
		return;
	for (size_t i = 0; i < row; i++)
	{
		double		sum = 0.0;

		for (int task = 0; task < n_tasks; task++)
			sum += g[(size_t) task * row + i];
		if (i < (size_t) n_pos)
			d_w_pos[i] += (float) sum;
		else
			d_w_time[i - n_pos] += (float) sum;
	}
	free(g);
}
