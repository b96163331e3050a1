/*
 * cpu_retrieval_int8.c — a feasibility measurement for approximate retrieval over a large
 * catalogue (issue 10), outside the engine: top-k by an int8 scan of the item table with an
 * exact fp32 re-rank, against the exact fp32 scan, on a synthetic table.
 *
 *   cpu_retrieval_int8 [--items V] [--d D] [--k K] [--rerank R] [--iters N] [--seed S]
 *
 * The table is V x d Gaussian rows (not trained embeddings: their clustering and popularity
 * may make recall harder or easier); each query a Gaussian vector. Exact: one fp32 dot per
 * row and a partial selection (min-heap of k). Approximate: each row quantised symmetrically
 * to int8 with its own scale (max |x| / 127), the query too; an integer dot per row (64 MB
 * instead of 256 MB at 10^6 x 64), the best R rows by approximate score kept in a min-heap,
 * their exact fp32 scores recomputed and the best k of them returned. Single thread. Prints
 * p50/p99 of both in process CPU time per query (on a shared machine the wall clock
 * mostly measures the other processes; memory stalls still count) and recall@k of the approximate top-k against the exact one
 * (mean, min over queries).
 */
#include "gr_rng.h"
#include "bench_stats.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

typedef struct heap
{
	int			n, cap;
	float	   *val;
	int32_t    *idx;
} heap;

/* Push (v, i) into a min-heap of at most cap entries, keeping the cap largest. */
static inline void
heap_push(heap *h, float v, int32_t i)
{
	int			c;

	if (h->n == h->cap)
	{
		if (!(v > h->val[0]))
			return;
		c = 0;					/* replace the root and sift down */
		for (;;)
		{
			int			l = 2 * c + 1, r = l + 1, s = c;
			float		sv = v;

			if (l < h->n && h->val[l] < sv)
				s = l, sv = h->val[l];
			if (r < h->n && h->val[r] < sv)
				s = r;
			if (s == c)
				break;
			h->val[c] = h->val[s];
			h->idx[c] = h->idx[s];
			c = s;
		}
		h->val[c] = v;
		h->idx[c] = i;
		return;
	}
	c = h->n++;
	while (c > 0 && h->val[(c - 1) / 2] > v)
	{
		h->val[c] = h->val[(c - 1) / 2];
		h->idx[c] = h->idx[(c - 1) / 2];
		c = (c - 1) / 2;
	}
	h->val[c] = v;
	h->idx[c] = i;
}

/* Exact top-k: fp32 dots of every row. */
HOT
static void
exact_topk(const float *E, int V, int d, const float *q, heap *h)
{
	h->n = 0;
	for (int r = 0; r < V; r++)
	{
		const float *e = E + (size_t) r * d;
		float		s = 0.0f;

#pragma omp simd reduction(+:s)
		for (int c = 0; c < d; c++)
			s += e[c] * q[c];
		heap_push(h, s, r);
	}
}

/* Approximate candidates: integer dots of the int8 table, the best R kept. */
HOT
static void
int8_candidates(const int8_t *Q, const float *scale, int V, int d, const int8_t *qq, heap *h)
{
	h->n = 0;
	for (int r = 0; r < V; r++)
	{
		const int8_t *e = Q + (size_t) r * d;
		int32_t		s = 0;

#pragma omp simd reduction(+:s)
		for (int c = 0; c < d; c++)
			s += (int32_t) e[c] * (int32_t) qq[c];
		heap_push(h, (float) s * scale[r], r);
	}
}

/* Quantise n floats symmetrically to int8; returns the scale. */
static float
quantise(const float *x, int n, int8_t *out)
{
	float		mx = 0.0f;

	for (int i = 0; i < n; i++)
		mx = fmaxf(mx, fabsf(x[i]));
	float		s = mx > 0.0f ? mx / 127.0f : 1.0f;

	for (int i = 0; i < n; i++)
		out[i] = (int8_t) lrintf(x[i] / s);
	return s;
}

/* Standard normal from two uniforms (Box-Muller). */
static float
normal(uint64_t seed, uint32_t a, uint64_t b)
{
	double		u = gr_rng_uniform(seed, GR_STREAM_TEST, a, 2 * b);
	double		v = gr_rng_uniform(seed, GR_STREAM_TEST, a, 2 * b + 1);

	return (float) (sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

/* Build the tables, time both retrievals and print latency and recall. */
int
main(int argc, char **argv)
{
	int			V = 1000000, d = 64, k = 100, R = 400, iters = 100;
	uint64_t	seed = 5;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--items") == 0)
			V = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--d") == 0)
			d = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--k") == 0)
			k = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--rerank") == 0)
			R = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--iters") == 0)
			iters = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seed") == 0)
			seed = strtoull(argv[i + 1], NULL, 10);
		else
		{
			fprintf(stderr, "cpu_retrieval_int8: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (R < k)
		R = k;
	float	   *E = malloc(sizeof(float) * (size_t) V * d), *scale = malloc(sizeof(float) * V);
	int8_t	   *Q = malloc((size_t) V * d);
	float	   *q = malloc(sizeof(float) * d);
	int8_t	   *qq = malloc(d);
	heap		he = {0, k, malloc(sizeof(float) * k), malloc(sizeof(int32_t) * k)};
	heap		hc = {0, R, malloc(sizeof(float) * R), malloc(sizeof(int32_t) * R)};
	heap		hr = {0, k, malloc(sizeof(float) * k), malloc(sizeof(int32_t) * k)};
	double	   *t_exact = malloc(sizeof(double) * iters), *t_int8 = malloc(sizeof(double) * iters);
	double		rec_sum = 0.0, rec_min = 1.0;
	char	   *in_exact = calloc((size_t) V, 1);

	for (int r = 0; r < V; r++)
	{
		for (int c = 0; c < d; c++)
			E[(size_t) r * d + c] = normal(seed, 1, (uint64_t) r * d + c);
		scale[r] = quantise(E + (size_t) r * d, d, Q + (size_t) r * d);
	}
	for (int it = -2; it < iters; it++)
	{
		for (int c = 0; c < d; c++)
			q[c] = normal(seed, 2, (uint64_t) (it + 2) * d + c);
		double		t0 = bench_cpu_us();

		exact_topk(E, V, d, q, &he);
		double		t1 = bench_cpu_us();
		float		sq = quantise(q, d, qq);

		int8_candidates(Q, scale, V, d, qq, &hc);
		hr.n = 0;
		for (int j = 0; j < hc.n; j++)
		{
			const float *e = E + (size_t) hc.idx[j] * d;
			float		s = 0.0f;

			for (int c = 0; c < d; c++)
				s += e[c] * q[c];
			heap_push(&hr, s, hc.idx[j]);
		}
		double		t2 = bench_cpu_us();

		(void) sq;
		if (it < 0)
			continue;
		t_exact[it] = (t1 - t0) * 1e-3;
		t_int8[it] = (t2 - t1) * 1e-3;
		int			hit = 0;

		for (int j = 0; j < he.n; j++)
			in_exact[he.idx[j]] = 1;
		for (int j = 0; j < hr.n; j++)
			hit += in_exact[hr.idx[j]];
		for (int j = 0; j < he.n; j++)
			in_exact[he.idx[j]] = 0;
		double		rec = (double) hit / he.n;

		rec_sum += rec;
		rec_min = fmin(rec_min, rec);
	}
	printf("V %d d %d k %d (process CPU time per query): exact fp32 scan p50 %.2f ms p99 %.2f ms; int8 scan + fp32 "
		   "re-rank of %d: p50 %.2f ms p99 %.2f ms, recall@%d mean %.4f min %.4f "
		   "(%d queries, 1 thread)\n", V, d, k, bench_quantile(t_exact, iters, 0.5),
		   bench_quantile(t_exact, iters, 0.99), R, bench_quantile(t_int8, iters, 0.5),
		   bench_quantile(t_int8, iters, 0.99), k, rec_sum / iters, rec_min, iters);
	free(E), free(scale), free(Q), free(q), free(qq), free(t_exact), free(t_int8);
	free(he.val), free(he.idx), free(hc.val), free(hc.idx), free(hr.val), free(hr.idx);
	free(in_exact);
	return 0;
}
