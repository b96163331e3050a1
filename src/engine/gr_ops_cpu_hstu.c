/*
 * gr_ops_cpu_hstu.c — HSTU pointwise attention over packed sequences on the CPU
 * (LAYOUTS.md §2.3; the op is specified in gr_ops.h, the biases in gr_hstu.h).
 *
 * Work is split by (sequence, head), as for softmax attention. A query's visible keys are
 * those of the mask predicate (gr_cpu_visible_keys): the prefix [0, nk) and, for a candidate
 * under the causal mask, the query itself; the second value stream is read at the strict
 * prefix [0, nk2). Per query the scores of its keys are made in one row buffer (dot products,
 * then the two bias gathers), A = SiLU(S) / n in place, and the output accumulated from the
 * value rows. Nothing T x T is stored: the backward pass recomputes S per query. Since there
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

/* Forward of one task: every query's output row. */
GR_HOT
static void
hstu_fwd_task(const hstu_task *t, float *out)
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

#pragma omp parallel for schedule(dynamic, 1)
	for (int task = 0; task < n_tasks; task++)
	{
		int			s = task / n_head, h = task % n_head;
		hstu_task	t = make_task(qkv, ld, v2, rab, seqs, mask, s, h, n_head, d, alpha, inv_n);

		hstu_fwd_task(&t, out + (size_t) seqs->seq_off[s] * d + h * t.dh);
	}
}

/* Backward of one task into its rows of dqkv / dv2 (zeroed here) and the bias gradients:
 * the thread's double sums g_pos / g_time, or (when NULL) atomically into the tables. */
GR_HOT
static void
hstu_bwd_task(const hstu_task *t, float *dq0, float *dv2_0, const float *dout, double *g_pos,
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
#pragma omp parallel for schedule(dynamic, 1)
	for (int task = 0; task < n_tasks; task++)
	{
		int			s = task / n_head, h = task % n_head, base = seqs->seq_off[s];
		hstu_task	t = make_task(qkv, ld, v2, rab, seqs, mask, s, h, n_head, d, alpha, inv_n);
		double	   *gt = g ? g + (size_t) task * row : NULL;

		hstu_bwd_task(&t, dqkv + (size_t) base * ld + h * t.dh,
					  dv2 ? dv2 + (size_t) base * d + h * t.dh : NULL,
					  dout + (size_t) base * d + h * t.dh, gt, gt ? gt + n_pos : NULL, d_w_pos,
					  d_w_time);
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
