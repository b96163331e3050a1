/*
 * test_ivf.c — the IVF retrieval index (gr_ivf.h) and indexed serving (gr_session_use_index).
 *
 * Structure: the lists partition the catalogue (offsets ascend to V, every column once,
 * columns ascending inside a list, the item table borrowed, not copied) and a rebuild with the
 * same seed is bit-identical. Exactness: with every list probed, search equals a brute-force
 * top-k (same order, same tie rule, exclusions honoured); with few probes every returned score
 * is the item's exact logit. Clustering: on data drawn around 32 centres, 4 probes of 32
 * lists find at least 95% of the exact top-10 (random centroids alone would find ~13%).
 * Serving: the fixture item model through gr_recommend with the index and every list probed
 * returns exactly the exact retrieval's items and scores; with one probe a subset with exact
 * scores. Flat blocks (gr_ivf_flat.c): a view of a flattened index searches exactly like the
 * index it was made from, and a block with a wrong tag, item count, width, size, magic, a
 * non-finite centroid, lists that do not cover the catalogue, a wrong longest list, a column
 * out of range, twice or out of order is refused. Errors: lists out of range, an index of
 * another model, a cancel during the build.
 *
 *   test_ivf      (run from the repository root)
 */
#include "gr_io.h"
#include "gr_ivf.h"
#include "gr_rng.h"
#include "gr_serve.h"
#include "unit.h"

#include <string.h>

#define V_TEST 3000
#define D_TEST 16
#define CENTRES 32

/* Items drawn around CENTRES random centres (cluster c: items with c = i % CENTRES). */
static void
clustered_items(float *x, int V, int d, float spread)
{
	for (int i = 0; i < V; i++)
		for (int j = 0; j < d; j++)
		{
			float		centre = 2.0f * gr_rng_uniform(5, GR_STREAM_TEST, 1,
													   (uint64_t) (i % CENTRES) * d + j) - 1.0f;
			float		noise = 2.0f * gr_rng_uniform(5, GR_STREAM_TEST, 2,
													  (uint64_t) i * d + j) - 1.0f;

			x[(size_t) i * d + j] = centre + spread * noise;
		}
}

/* Brute-force top k of q against every row (higher first, then the smaller column). */
static int
brute_topk(const float *x, int V, int d, const float *q, int k, const int32_t *excl, int n_excl,
		   int32_t *cols, float *vals)
{
	int			n = 0;

	for (int c = 0; c < V; c++)
	{
		bool		skip = false;

		for (int e = 0; e < n_excl; e++)
			skip |= excl[e] == c;
		if (skip)
			continue;
		float		s = 0;

		for (int j = 0; j < d; j++)
			s += q[j] * x[(size_t) c * d + j];
		/* insertion into a sorted array of at most k */
		int			pos = n < k ? n : k;

		if (n == k && !(s > vals[k - 1] || (s == vals[k - 1] && c < cols[k - 1])))
			continue;
		while (pos > 0 && (s > vals[pos - 1] || (s == vals[pos - 1] && c < cols[pos - 1])))
		{
			if (pos < k)
			{
				vals[pos] = vals[pos - 1];
				cols[pos] = cols[pos - 1];
			}
			pos--;
		}
		vals[pos] = s;
		cols[pos] = c;
		if (n < k)
			n++;
	}
	return n;
}

/* The lists partition the catalogue and hold copies of the rows; rebuilds are identical. */
static void
test_structure(gr_env *env, const float *x)
{
	gr_error	err = {0};
	gr_ivf	   *a = NULL, *b = NULL;

	CHECK_OK(gr_ivf_build(env, x, V_TEST, D_TEST, 40, 9, &a, &err), &err);
	CHECK_OK(gr_ivf_build(env, x, V_TEST, D_TEST, 40, 9, &b, &err), &err);
	if (a == NULL || b == NULL)
		return;
	CHECK(a->offsets[0] == 0 && a->offsets[a->lists] == V_TEST);
	uint8_t    *seen = calloc(V_TEST, 1);
	bool		ok = true;

	for (int l = 0; l < a->lists; l++)
	{
		ok &= a->offsets[l] <= a->offsets[l + 1];
		for (int r = a->offsets[l]; r < a->offsets[l + 1]; r++)
		{
			int32_t		c = a->cols[r];

			ok &= c >= 0 && c < V_TEST && !seen[c];
			if (c >= 0 && c < V_TEST)
				seen[c] = 1;
			ok &= r == a->offsets[l] || a->cols[r - 1] < c;
		}
	}
	CHECK_MSG(ok, "the lists are not a partition of the catalogue");
	CHECK(a->items == x);
	CHECK(memcmp(a->centroids, b->centroids, sizeof(float) * 40 * D_TEST) == 0);
	CHECK(memcmp(a->cols, b->cols, sizeof(int32_t) * V_TEST) == 0);
	CHECK(a->longest >= V_TEST / 40);
	CHECK(gr_ivf_bytes(a) >= sizeof(int32_t) * V_TEST && gr_ivf_bytes(a) < sizeof(float) * V_TEST * D_TEST);
	free(seen);
	gr_ivf_free(env, a);
	gr_ivf_free(env, b);
}

/* Every list probed is exact retrieval; few probes keep exact scores and find most items. */
static void
test_search(gr_env *env, const float *x)
{
	gr_error	err = {0};
	gr_ivf	   *ivf = NULL;
	gr_ivf_scratch sc = {0};
	int32_t		cols[50], want_cols[50], excl[3] = {4, 77, 1500};
	float		vals[50], want_vals[50], q[D_TEST];
	int			hits = 0, total = 0;
	bool		exact_all = true, scores_exact = true;

	CHECK_OK(gr_ivf_build(env, x, V_TEST, D_TEST, CENTRES, 3, &ivf, &err), &err);
	if (ivf == NULL)
		return;
	for (int t = 0; t < 40; t++)
	{
		/* queries near items, so that the top of the ranking lies in a few clusters */
		for (int j = 0; j < D_TEST; j++)
			q[j] = x[(size_t) (t * 71 % V_TEST) * D_TEST + j] +
				0.1f * (gr_rng_uniform(6, GR_STREAM_TEST, 3, (uint64_t) t * D_TEST + j) - 0.5f);
		int			n_excl = t % 2 ? 3 : 0;
		int			nw = brute_topk(x, V_TEST, D_TEST, q, 50, excl, n_excl, want_cols, want_vals);
		int			n = gr_ivf_search(env, ivf, &sc, q, ivf->lists, 50, excl, n_excl, cols, vals);

		exact_all &= n == nw;
		for (int i = 0; i < GR_MIN(n, nw); i++)
			exact_all &= cols[i] == want_cols[i] && fabsf(vals[i] - want_vals[i]) <=
				1e-4f * fmaxf(1.0f, fabsf(want_vals[i]));

		n = gr_ivf_search(env, ivf, &sc, q, 4, 10, excl, n_excl, cols, vals);
		for (int i = 0; i < n; i++)
		{
			float		s = 0;

			for (int j = 0; j < D_TEST; j++)
				s += q[j] * x[(size_t) cols[i] * D_TEST + j];
			scores_exact &= fabsf(s - vals[i]) <= 1e-4f * fmaxf(1.0f, fabsf(s));
			scores_exact &= i == 0 || vals[i - 1] >= vals[i];
			for (int e = 0; e < n_excl; e++)
				scores_exact &= cols[i] != excl[e];
			for (int w = 0; w < 10; w++)
				hits += cols[i] == want_cols[w];
		}
		total += 10;
	}
	CHECK_MSG(exact_all, "search with every list probed differs from brute force");
	CHECK_MSG(scores_exact, "a probed search returned a non-exact or unsorted score");
	CHECK_MSG(hits >= 0.95 * total, "4 of 32 probes found %d of the exact top-10's %d items",
			  hits, total);
	gr_ivf_scratch_release(env, &sc);
	gr_ivf_free(env, ivf);
}

/* Indexed serving of the fixture item model against exact serving. */
static void
test_serving(gr_env *env)
{
	gr_error	err = {0};
	gr_model   *m = NULL;
	gr_session *s = NULL;
	gr_ivf	   *ivf = NULL;

	CHECK_OK(gr_model_load_file(env, "test/fixtures/item.safetensors", &m, NULL, &err), &err);
	if (m == NULL)
		return;
	int			V = m->cfg.n_items, d = m->cfg.d_model;

	CHECK_OK(gr_session_create(m, &s, &err), &err);
	CHECK_OK(gr_ivf_build(env, m->w.item_emb + d, V, d, GR_MIN(8, V), 1, &ivf, &err), &err);
	if (s == NULL || ivf == NULL)
		return;
	int64_t		hist[6] = {3, 9, 14, 2, 30, 7};
	gr_history	h = {.items = hist,.n = 6};
	int64_t		want[20], got[20];
	float		want_s[20], got_s[20];
	int			nw = 0, ng = 0;
	int			k = GR_MIN(20, V - 6);

	CHECK_OK(gr_recommend(s, &h, k, true, want, want_s, &nw, &err), &err);
	CHECK_OK(gr_session_use_index(s, ivf, ivf->lists, &err), &err);
	CHECK_OK(gr_recommend(s, &h, k, true, got, got_s, &ng, &err), &err);
	CHECK(ng == nw);
	for (int i = 0; i < GR_MIN(ng, nw); i++)
		CHECK(got[i] == want[i] && fabsf(got_s[i] - want_s[i]) <= 1e-5f);

	CHECK_OK(gr_session_use_index(s, ivf, 1, &err), &err);
	CHECK_OK(gr_recommend(s, &h, k, true, got, got_s, &ng, &err), &err);
	CHECK(ng >= 1 && ng <= nw);
	bool		subset_ok = true;

	for (int i = 0; i < ng; i++)
	{
		bool		found = false;

		for (int c = 0; c < 6; c++)
			subset_ok &= got[i] != hist[c];
		/* the item's exact logit: gr_score's retrieval logit of the same history */
		float		logit = NAN;
		gr_scores	sc = {.logit = &logit};

		CHECK_OK(gr_score(s, &h, &got[i], 1, &sc, &err), &err);
		found = fabsf(logit - got_s[i]) <= 1e-5f * fmaxf(1.0f, fabsf(logit));
		subset_ok &= found;
	}
	CHECK_MSG(subset_ok, "one probe returned a seen item or an inexact score");

	CHECK_OK(gr_session_use_index(s, NULL, 0, &err), &err);
	CHECK_OK(gr_recommend(s, &h, k, true, got, got_s, &ng, &err), &err);
	CHECK(ng == nw && got[0] == want[0]);

	/* an index over another catalogue is refused */
	gr_ivf	   *other = NULL;
	float		tiny[4 * 64] = {0};

	if (d <= 64)
		CHECK_OK(gr_ivf_build(env, tiny, 4, d, 2, 1, &other, &err), &err);
	CHECK(other == NULL || gr_session_use_index(s, other, 1, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(gr_session_use_index(s, ivf, -1, &err) == GR_ERR_INVALID_ARGUMENT);
	gr_ivf_free(env, other);
	gr_session_free(s);
	gr_ivf_free(env, ivf);
	gr_model_free(m);
}

/* Always ask to stop. */
static bool
stop_now(void *user)
{
	(void) user;
	return true;
}

/* Arguments out of range and a cancelled build fail cleanly. */
static void
test_errors(gr_env *env, const float *x)
{
	gr_error	err = {0};
	gr_ivf	   *ivf = NULL;
	gr_env		cancel = *env;

	CHECK(gr_ivf_build(env, x, V_TEST, D_TEST, 0, 1, &ivf, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(gr_ivf_build(env, x, 10, D_TEST, 11, 1, &ivf, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(ivf == NULL);
	cancel.interrupted = stop_now;
	CHECK(gr_ivf_build(&cancel, x, V_TEST, D_TEST, 20, 1, &ivf, &err) == GR_ERR_CANCELLED);
	CHECK(ivf == NULL);
	CHECK(gr_ivf_default_lists(1000000) == 1000 && gr_ivf_default_lists(1) == 1);
}

/* Refuse a copy of block with one int32 at byte offset off replaced by v. */
static bool
view_refuses_patch(gr_env *env, const char *block, size_t bytes, size_t off, int32_t v,
				   const float *x)
{
	char	   *copy = aligned_alloc(64, bytes);
	gr_error	err = {0};
	gr_ivf	   *view = NULL;
	gr_status	st;

	memcpy(copy, block, bytes);
	memcpy(copy + off, &v, sizeof(v));
	st = gr_ivf_view(env, copy, bytes, 77, x, V_TEST, D_TEST, &view, &err);
	gr_ivf_free(env, view);
	free(copy);
	return st == GR_ERR_CORRUPT_MODEL && view == NULL;
}

/* A flattened index searches like the original; a damaged block is refused. */
static void
test_flat(gr_env *env, const float *x)
{
	gr_error	err = {0};
	gr_ivf	   *ivf = NULL, *view = NULL;
	gr_ivf_scratch sa = {0}, sb = {0};

	CHECK_OK(gr_ivf_build(env, x, V_TEST, D_TEST, 24, 4, &ivf, &err), &err);
	size_t		bytes = gr_ivf_flat_size(ivf);
	char	   *block = aligned_alloc(64, bytes);

	gr_ivf_flatten(ivf, 77, block);
	CHECK_OK(gr_ivf_view(env, block, bytes, 77, x, V_TEST, D_TEST, &view, &err), &err);
	CHECK(view->borrowed && view->lists == 24 && view->longest == ivf->longest);
	CHECK((const char *) view->cols > block && (const char *) view->cols < block + bytes);

	bool		same = true;

	for (int t = 0; t < 20; t++)
	{
		float		q[D_TEST];
		int32_t		ca[10], cb[10], excl[2] = {t, t + 100};
		float		va[10], vb[10];

		for (int j = 0; j < D_TEST; j++)
			q[j] = 2.0f * gr_rng_uniform(8, GR_STREAM_TEST, 3, (uint64_t) t * D_TEST + j) - 1.0f;
		int			na = gr_ivf_search(env, ivf, &sa, q, 3, 10, excl, 2, ca, va);
		int			nb = gr_ivf_search(env, view, &sb, q, 3, 10, excl, 2, cb, vb);

		same &= na == nb && na > 0 && memcmp(ca, cb, sizeof(int32_t) * na) == 0 &&
			memcmp(va, vb, sizeof(float) * na) == 0;
	}
	CHECK_MSG(same, "a view of the flat block searched differently from its index");
	gr_ivf_free(env, view);
	view = NULL;

	/* what the block is checked against */
	CHECK(gr_ivf_view(env, block, bytes, 78, x, V_TEST, D_TEST, &view, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK(gr_ivf_view(env, block, bytes, 77, x, V_TEST - 1, D_TEST, &view, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK(gr_ivf_view(env, block, bytes, 77, x, V_TEST, D_TEST + 1, &view, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK(gr_ivf_view(env, block, bytes - 64, 77, x, V_TEST, D_TEST, &view, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK(gr_ivf_view(env, block, 16, 77, x, V_TEST, D_TEST, &view, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK(view == NULL);

	/* damaged contents: the header is 64 bytes, then centroids, offsets and columns */
	size_t		cent = 64,
				offs = cent + ((sizeof(float) * 24 * D_TEST + 63) / 64) * 64,
				cols = offs + ((sizeof(int32_t) * 25 + 63) / 64) * 64;
	int32_t		nan_bits = 0x7fc00000;
	int32_t		first_len = ivf->offsets[1];

	CHECK(view_refuses_patch(env, block, bytes, 0, 0x12345678, x));	/* magic */
	CHECK(view_refuses_patch(env, block, bytes, 8, 25, x));	/* lists vs size */
	CHECK(view_refuses_patch(env, block, bytes, 20, ivf->longest + 1, x));	/* longest */
	CHECK(view_refuses_patch(env, block, bytes, cent + 4 * 5, nan_bits, x));
	CHECK(view_refuses_patch(env, block, bytes, offs, 1, x));	/* does not start at 0 */
	CHECK(view_refuses_patch(env, block, bytes, offs + 4 * 24, V_TEST - 1, x));	/* short */
	CHECK(view_refuses_patch(env, block, bytes, offs + 4, ivf->offsets[2] + 1, x));	/* order */
	CHECK(view_refuses_patch(env, block, bytes, cols, V_TEST, x));	/* out of range */
	CHECK(view_refuses_patch(env, block, bytes, cols, -1, x));
	CHECK(first_len >= 2 && view_refuses_patch(env, block, bytes, cols + 4, ivf->cols[0], x));
	CHECK(view_refuses_patch(env, block, bytes, cols + 4 * (size_t) first_len,
							 ivf->cols[first_len - 1], x));	/* a column twice */

	gr_ivf_scratch_release(env, &sa);
	gr_ivf_scratch_release(env, &sb);
	gr_ivf_free(env, view);
	gr_ivf_free(env, ivf);
	free(block);
}

/* Run the checks. */
int
main(void)
{
	gr_env		env;
	float	   *x = malloc(sizeof(float) * V_TEST * D_TEST);

	gr_env_default(&env);
	clustered_items(x, V_TEST, D_TEST, 0.15f);
	test_structure(&env, x);
	test_search(&env, x);
	test_serving(&env);
	test_flat(&env, x);
	test_errors(&env, x);
	free(x);
	return unit_finish("test_ivf");
}
