/*
 * gr_ivf.c — the IVF index over item embeddings (see gr_ivf.h).
 *
 * Build, in named phases: draw a training sample (a seeded partial Fisher-Yates shuffle of
 * the item columns), seed the centroids with the first `lists` sampled rows, run Lloyd's
 * iterations on the sample (assignment by the largest x.c - |c|^2 / 2, which is the nearest
 * centroid in L2, as one GEMM per block of rows; an empty list is reseeded with a sampled row
 * drawn for it), assign every item, and list the columns list by list (a counting sort, so
 * inside a list columns stay ascending).
 *
 * Search: score the centroids against the query, take the probes best lists (a partial
 * selection), gather each list's rows from the item table in blocks of GR_IVF_GATHER_ROWS
 * (columns ascend, so the reads move forward through the table) and score each block with
 * one GEMM, and keep the k best in a
 * min-heap ordered like gr_cpu_topk (higher score first, then the smaller column), so with
 * every list probed the result equals exact retrieval's.
 */
#include "gr_ivf.h"
#include "gr_ops_cpu.h"
#include "gr_rng.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define IVF_BLOCK_SCORES (1 << 22)	/* floats of one assignment block's score matrix */

/* About sqrt(V) lists: ~sqrt(V) rows each, so ranking lists and scanning one cost alike. */
int
gr_ivf_default_lists(int n_items)
{
	int			l = (int) lround(sqrt((double) GR_MAX(n_items, 1)));

	return GR_MAX(1, GR_MIN(l, GR_IVF_MAX_LISTS));
}

/* Wall-clock milliseconds. */
static double
ivf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Assign n rows of x [n x d] to their nearest centroid; labels[i] gets the list. */
static gr_status
assign_rows(const gr_env *env, const float *x, int n, int d, const float *cent,
			const float *half_norm, int lists, int32_t *labels, float *block, gr_error *err)
{
	int			rows_per_block = GR_MAX(1, GR_MIN(4096, IVF_BLOCK_SCORES / lists));

	for (int r0 = 0; r0 < n; r0 += rows_per_block)
	{
		int			nb = GR_MIN(rows_per_block, n - r0);

		if (gr_should_stop(env))
			return gr_fail(err, GR_ERR_CANCELLED, "building the retrieval index was cancelled");
		gr_blas_sgemm(false, true, nb, lists, d, 1.0f, x + (size_t) r0 * d, d, cent, d, 0.0f,
					  block, lists);
		for (int i = 0; i < nb; i++)
		{
			const float *s = block + (size_t) i * lists;
			int			best = 0;
			float		bv = s[0] - half_norm[0];

			for (int l = 1; l < lists; l++)
			{
				float		v = s[l] - half_norm[l];

				if (v > bv)
				{
					bv = v;
					best = l;
				}
			}
			labels[r0 + i] = best;
		}
	}
	return GR_OK;
}

/* |c|^2 / 2 of every centroid. */
static void
centroid_half_norms(const float *cent, int lists, int d, float *out)
{
	for (int l = 0; l < lists; l++)
	{
		double		s = 0;

		for (int j = 0; j < d; j++)
			s += (double) cent[(size_t) l * d + j] * cent[(size_t) l * d + j];
		out[l] = (float) (0.5 * s);
	}
}

/* Move each centroid to the mean of its rows; reseed empty lists with a drawn sample row. */
static void
update_centroids(const float *x, int n, int d, const int32_t *labels, int lists, float *cent,
				 double *sums, int32_t *counts, uint64_t seed, int iteration)
{
	memset(sums, 0, sizeof(double) * (size_t) lists * d);
	memset(counts, 0, sizeof(int32_t) * (size_t) lists);
	for (int i = 0; i < n; i++)
	{
		double	   *s = sums + (size_t) labels[i] * d;

		counts[labels[i]]++;
		for (int j = 0; j < d; j++)
			s[j] += x[(size_t) i * d + j];
	}
	for (int l = 0; l < lists; l++)
	{
		if (counts[l] == 0)
		{
			int			pick = (int) (gr_rng_uniform(seed, GR_STREAM_IVF + 1, (uint32_t) iteration,
													 (uint64_t) l) * n) % n;

			memcpy(cent + (size_t) l * d, x + (size_t) pick * d, sizeof(float) * d);
			continue;
		}
		for (int j = 0; j < d; j++)
			cent[(size_t) l * d + j] = (float) (sums[(size_t) l * d + j] / counts[l]);
	}
}

/* Draw n_s distinct columns of V (a partial Fisher-Yates shuffle) into sample. */
static gr_status
draw_sample(const gr_env *env, int V, int n_s, uint64_t seed, int32_t *sample, gr_error *err)
{
	int32_t    *perm = gr_alloc(env, sizeof(int32_t) * (size_t) V);

	if (perm == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the index's sample");
	for (int i = 0; i < V; i++)
		perm[i] = i;
	for (int i = 0; i < n_s; i++)
	{
		int			j = i + (int) (gr_rng_uniform(seed, GR_STREAM_IVF, 0, (uint64_t) i) *
								   (V - i)) % (V - i);
		int32_t		t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
		sample[i] = perm[i];
	}
	gr_free(env, perm);
	return GR_OK;
}

/* List the columns list by list (counting sort by label; columns ascend inside a list). */
static gr_status
layout_lists(const gr_env *env, gr_ivf *ivf, const int32_t *labels, gr_error *err)
{
	int			V = ivf->n_items, L = ivf->lists;
	int32_t    *next = gr_alloc(env, sizeof(int32_t) * (size_t) L);

	if (next == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the index's lists");
	memset(ivf->offsets, 0, sizeof(int32_t) * ((size_t) L + 1));
	for (int c = 0; c < V; c++)
		ivf->offsets[labels[c] + 1]++;
	for (int l = 0; l < L; l++)
		ivf->offsets[l + 1] += ivf->offsets[l];
	memcpy(next, ivf->offsets, sizeof(int32_t) * (size_t) L);
	ivf->longest = 0;
	for (int l = 0; l < L; l++)
		ivf->longest = GR_MAX(ivf->longest, ivf->offsets[l + 1] - ivf->offsets[l]);
	for (int c = 0; c < V; c++)
	{
		int32_t		r = next[labels[c]]++;

		ivf->cols[r] = c;
	}
	gr_free(env, next);
	return GR_OK;
}

/* Cluster a sample of the rows into the index's centroids (Lloyd's iterations). */
static gr_status
train_centroids(const gr_env *env, gr_ivf *ivf, const float *items, uint64_t seed,
				float *block, float *half_norm, gr_error *err)
{
	int			V = ivf->n_items, d = ivf->d, L = ivf->lists;
	int			n_s = (int) GR_MIN((int64_t) V, (int64_t) L * GR_IVF_SAMPLE_PER_LIST);
	int32_t    *sample = gr_alloc(env, sizeof(int32_t) * (size_t) n_s);
	int32_t    *labels = gr_alloc(env, sizeof(int32_t) * (size_t) n_s);
	int32_t    *counts = gr_alloc(env, sizeof(int32_t) * (size_t) L);
	float	   *x = gr_alloc(env, sizeof(float) * (size_t) n_s * d);
	double	   *sums = gr_alloc(env, sizeof(double) * (size_t) L * d);
	gr_status	st = GR_OK;

	if (sample == NULL || labels == NULL || counts == NULL || x == NULL || sums == NULL)
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the index's k-means");
	if (st == GR_OK)
		st = draw_sample(env, V, n_s, seed, sample, err);
	if (st == GR_OK)
	{
		for (int i = 0; i < n_s; i++)
			memcpy(x + (size_t) i * d, items + (size_t) sample[i] * d, sizeof(float) * d);
		/* the sample is a random permutation's prefix, so its first L rows are a random seed */
		memcpy(ivf->centroids, x, sizeof(float) * (size_t) L * d);
	}
	for (int it = 0; st == GR_OK && it < GR_IVF_ITERATIONS; it++)
	{
		centroid_half_norms(ivf->centroids, L, d, half_norm);
		st = assign_rows(env, x, n_s, d, ivf->centroids, half_norm, L, labels, block, err);
		if (st == GR_OK)
			update_centroids(x, n_s, d, labels, L, ivf->centroids, sums, counts, seed, it);
	}
	gr_free(env, sample);
	gr_free(env, labels);
	gr_free(env, counts);
	gr_free(env, x);
	gr_free(env, sums);
	return st;
}

/* Build an index over the item rows: k-means on a sample, then every item into its list. */
gr_status
gr_ivf_build(const gr_env *env, const float *items, int n_items, int d, int lists,
			 uint64_t seed, gr_ivf **out, gr_error *err)
{
	double		t0 = ivf_now_ms();

	*out = NULL;
	if (n_items < 1 || d < 1 || lists < 1 || lists > GR_MIN(n_items, GR_IVF_MAX_LISTS))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "an index of %d lists over %d items: the "
					   "lists must be in 1..%d", lists, n_items,
					   GR_MIN(n_items, GR_IVF_MAX_LISTS));

	gr_ivf	   *ivf = gr_calloc(env, 1, sizeof(gr_ivf));
	int			block_rows = GR_MAX(1, GR_MIN(4096, IVF_BLOCK_SCORES / lists));
	float	   *block = gr_alloc(env, sizeof(float) * (size_t) block_rows * lists);
	float	   *half_norm = gr_alloc(env, sizeof(float) * (size_t) lists);
	int32_t    *labels = gr_alloc(env, sizeof(int32_t) * (size_t) n_items);
	gr_status	st = GR_OK;

	if (ivf != NULL)
	{
		ivf->lists = lists;
		ivf->d = d;
		ivf->n_items = n_items;
		ivf->centroids = gr_alloc(env, sizeof(float) * (size_t) lists * d);
		ivf->offsets = gr_alloc(env, sizeof(int32_t) * ((size_t) lists + 1));
		ivf->cols = gr_alloc(env, sizeof(int32_t) * (size_t) n_items);
		ivf->items = items;
	}
	if (ivf == NULL || block == NULL || half_norm == NULL || labels == NULL ||
		ivf->centroids == NULL || ivf->offsets == NULL || ivf->cols == NULL)
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a retrieval index of %d "
					 "items", n_items);
	if (st == GR_OK)
		st = train_centroids(env, ivf, items, seed, block, half_norm, err);
	if (st == GR_OK)
	{
		centroid_half_norms(ivf->centroids, lists, d, half_norm);
		st = assign_rows(env, items, n_items, d, ivf->centroids, half_norm, lists, labels,
						 block, err);
	}
	if (st == GR_OK)
		st = layout_lists(env, ivf, labels, err);
	gr_free(env, block);
	gr_free(env, half_norm);
	gr_free(env, labels);
	if (st != GR_OK)
	{
		gr_ivf_free(env, ivf);
		return st;
	}
	ivf->build_ms = ivf_now_ms() - t0;
	*out = ivf;
	return GR_OK;
}

/* Whether entry (va, ca) ranks below (vb, cb): a lower score, or an equal one and a larger
 * column (gr_cpu_topk's order). */
static inline bool
ivf_worse(float va, int32_t ca, float vb, int32_t cb)
{
	return va < vb || (va == vb && ca > cb);
}

/* Exchange heap entries i and j. */
static inline void
ivf_swap(float *val, int32_t *col, int i, int j)
{
	float		tv = val[i];
	int32_t		tc = col[i];

	val[i] = val[j];
	col[i] = col[j];
	val[j] = tv;
	col[j] = tc;
}

/* Restore the min-heap (worst entry at the root) below slot i. */
static void
ivf_sift_down(float *val, int32_t *col, int n, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1, r = l + 1, s = i;

		if (l < n && ivf_worse(val[l], col[l], val[s], col[s]))
			s = l;
		if (r < n && ivf_worse(val[r], col[r], val[s], col[s]))
			s = r;
		if (s == i)
			return;
		ivf_swap(val, col, i, s);
		i = s;
	}
}

/* Offer one entry to a heap of at most k; returns the new size. */
static int
ivf_offer(float *val, int32_t *col, int n, int k, float v, int32_t c)
{
	if (n < k)
	{
		int			i = n++;

		val[i] = v;
		col[i] = c;
		while (i > 0 && ivf_worse(val[i], col[i], val[(i - 1) / 2], col[(i - 1) / 2]))
		{
			ivf_swap(val, col, i, (i - 1) / 2);
			i = (i - 1) / 2;
		}
	}
	else if (ivf_worse(val[0], col[0], v, c))
	{
		val[0] = v;
		col[0] = c;
		ivf_sift_down(val, col, n, 0);
	}
	return n;
}

/* Whether column c is in the sorted exclusion list. */
static bool
ivf_excluded(const int32_t *excl, int n_excl, int32_t c)
{
	int			lo = 0, hi = n_excl;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (excl[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n_excl && excl[lo] == c;
}

/* Grow a scratch to hold the centroid scores and one gathered block of rows. */
static bool
scratch_reserve(const gr_env *env, const gr_ivf *ivf, gr_ivf_scratch *sc)
{
	int			need = GR_MAX(GR_IVF_GATHER_ROWS, ivf->lists);

	if (sc->cap_rows >= need && sc->d == ivf->d)
		return true;
	gr_ivf_scratch_release(env, sc);
	sc->d = ivf->d;
	sc->block = gr_alloc(env, sizeof(float) * GR_IVF_GATHER_ROWS * (size_t) ivf->d);
	sc->scores = gr_alloc(env, sizeof(float) * (size_t) need);
	sc->probe = gr_alloc(env, sizeof(int32_t) * (size_t) need);
	sc->probe_val = gr_alloc(env, sizeof(float) * (size_t) need);
	if (sc->block == NULL || sc->scores == NULL || sc->probe == NULL || sc->probe_val == NULL)
	{
		gr_ivf_scratch_release(env, sc);
		return false;
	}
	sc->cap_rows = need;
	return true;
}

/* Free a scratch's buffers. */
void
gr_ivf_scratch_release(const gr_env *env, gr_ivf_scratch *sc)
{
	gr_free(env, sc->block);
	gr_free(env, sc->scores);
	gr_free(env, sc->probe);
	gr_free(env, sc->probe_val);
	memset(sc, 0, sizeof(*sc));
}

/* The k best columns in the probes lists nearest the query, best first. */
int
gr_ivf_search(const gr_env *env, const gr_ivf *ivf, gr_ivf_scratch *sc, const float *q,
			  int probes, int k, const int32_t *excl, int n_excl, int32_t *out_cols,
			  float *out_vals)
{
	int			d = ivf->d, L = ivf->lists, n = 0, np = 0;

	if (k < 1)
		return 0;
	if (!scratch_reserve(env, ivf, sc))
		return -1;
	probes = GR_MAX(1, GR_MIN(probes, L));

	/* rank the lists: the probes largest <q, c> in a heap (lists as columns) */
	gr_blas_sgemm(false, true, 1, L, d, 1.0f, q, d, ivf->centroids, d, 0.0f, sc->scores, L);
	for (int l = 0; l < L; l++)
		np = ivf_offer(sc->probe_val, sc->probe, np, probes, sc->scores[l], l);

	/* scan each probed list's rows, gathered in blocks, and keep the k best */
	for (int p = 0; p < np; p++)
	{
		int			l = sc->probe[p];

		for (int r0 = ivf->offsets[l]; r0 < ivf->offsets[l + 1]; r0 += GR_IVF_GATHER_ROWS)
		{
			int			nr = GR_MIN(GR_IVF_GATHER_ROWS, ivf->offsets[l + 1] - r0);

			for (int i = 0; i < nr; i++)
				memcpy(sc->block + (size_t) i * d, ivf->items + (size_t) ivf->cols[r0 + i] * d,
					   sizeof(float) * d);
			gr_blas_sgemm(false, true, 1, nr, d, 1.0f, q, d, sc->block, d, 0.0f, sc->scores, nr);
			for (int i = 0; i < nr; i++)
			{
				int32_t		c = ivf->cols[r0 + i];
				float		v = sc->scores[i];

				if (isnan(v) || (n == k && !ivf_worse(out_vals[0], out_cols[0], v, c)))
					continue;
				if (n_excl > 0 && ivf_excluded(excl, n_excl, c))
					continue;
				n = ivf_offer(out_vals, out_cols, n, k, v, c);
			}
		}
	}
	/* heap sort into best-first order */
	for (int m = n; m > 1; m--)
	{
		ivf_swap(out_vals, out_cols, 0, m - 1);
		ivf_sift_down(out_vals, out_cols, m - 1, 0);
	}
	return n;
}

/* Free the parts of an index under construction. */
void
gr_ivf_free(const gr_env *env, gr_ivf *ivf)
{
	if (ivf == NULL)
		return;
	if (!ivf->borrowed)
	{
		gr_free(env, ivf->centroids);
		gr_free(env, ivf->offsets);
		gr_free(env, ivf->cols);
	}
	gr_free(env, ivf);
}

/* Bytes an index holds. */
size_t
gr_ivf_bytes(const gr_ivf *ivf)
{
	if (ivf == NULL)
		return 0;
	return sizeof(*ivf) + sizeof(float) * (size_t) ivf->lists * ivf->d +
		sizeof(int32_t) * ((size_t) ivf->lists + 1) + sizeof(int32_t) * (size_t) ivf->n_items;
}
