/*
 * test_lazy.c — the item table's lazy AdamW update (gr_train_lazy.c, ops->adamw_rows):
 *  - adamw_rows against a plain double loop on the listed rows, element for element equal to
 *    the dense adamw there, and leaving every other row (and its gradient) untouched;
 *  - for every layout and trunk with the sampled (uniform, popularity, per-user) and in-batch
 *    losses:
 *    the lazy trainer's gradient equals the dense trainer's, is zero outside the rows it
 *    lists (so no gradient is ever dropped), and those rows are distinct, ascending, in 1..V;
 *  - three steps of the lazy trainer against a plain reference of lazy AdamW (the rows of
 *    each step updated, the others frozen with their moments), with weight decay on; after
 *    the first step the touched rows equal the dense trainer's and untouched rows, which the
 *    dense trainer decays, are unchanged;
 *  - a compute without an update (gradient checks) leaves no stale rows in the next one;
 *  - the full softmax stays dense under auto and refuses lazy; a sampled-loss gr_train run
 *    (lazy by default) is reproducible and frees every allocation.
 */
#include "gr_rng.h"
#include "gr_synth.h"
#include "gr_train.h"
#include "unit.h"

#include <string.h>

enum
{
N_ITEMS = 60, USERS = 5, LEN = 11};

static gr_env env;

/* adamw_rows on a few rows against the dense op and a double loop. */
static void
test_adamw_rows_op(void)
{
	enum
	{
	V = 40, D = 6, N = V * D};
	const gr_ops *ops = gr_ops_cpu();
	float		p[N], g[N], m[N], v[N], p2[N], g2[N], m2[N], v2[N];
	int32_t		rows[] = {2, 5, 6, 17, 39};
	int			nr = (int) (sizeof(rows) / sizeof(rows[0]));
	float		lr = 0.01f, b1 = 0.9f, b2 = 0.98f, eps = 1e-8f, wd = 0.1f;
	int			t = 3;

	for (int i = 0; i < N; i++)
	{
		p[i] = 2.0f * gr_rng_uniform(5, GR_STREAM_TEST, 0, i) - 1.0f;
		g[i] = 2.0f * gr_rng_uniform(5, GR_STREAM_TEST, 1, i) - 1.0f;
		m[i] = 0.1f * (2.0f * gr_rng_uniform(5, GR_STREAM_TEST, 2, i) - 1.0f);
		v[i] = 0.01f * gr_rng_uniform(5, GR_STREAM_TEST, 3, i);
	}
	memcpy(p2, p, sizeof(p)), memcpy(g2, g, sizeof(g));
	memcpy(m2, m, sizeof(m)), memcpy(v2, v, sizeof(v));
	ops->adamw_rows(ops->ctx, p2, g2, m2, v2, rows, nr, D, lr, b1, b2, eps, wd, t);

	/* the dense op on copies: equal on the listed rows, bit for bit */
	float		pd[N], md[N], vd[N];

	memcpy(pd, p, sizeof(p)), memcpy(md, m, sizeof(m)), memcpy(vd, v, sizeof(v));
	ops->adamw(ops->ctx, pd, g, md, vd, N, lr, b1, b2, eps, wd, t);
	for (int r = 0, k = 0; r < V; r++)
	{
		bool		listed = k < nr && rows[k] == r;

		k += listed;
		for (int c = 0; c < D; c++)
		{
			int			i = r * D + c;

			if (listed)
			{
				double		mi = b1 * (double) m[i] + (1 - b1) * (double) g[i];
				double		vi = b2 * (double) v[i] + (1 - b2) * (double) g[i] * g[i];
				double		mh = mi / (1 - pow(b1, t)), vh = vi / (1 - pow(b2, t));
				double		pi = p[i] - lr * (mh / (sqrt(vh) + eps) + wd * p[i]);

				CHECK_CLOSE(p2[i], pi, 1e-6);
				CHECK_CLOSE(m2[i], mi, 1e-6);
				CHECK_CLOSE(v2[i], vi, 1e-6);
				CHECK(p2[i] == pd[i] && m2[i] == md[i] && v2[i] == vd[i]);
				CHECK(g2[i] == 0.0f);
			}
			else
				CHECK(p2[i] == p[i] && m2[i] == m[i] && v2[i] == v[i] && g2[i] == g[i]);
		}
	}
	/* no rows: nothing changes */
	ops->adamw_rows(ops->ctx, p2, g2, m2, v2, rows, 0, D, lr, b1, b2, eps, wd, t + 1);
	CHECK(p2[0] == p[0] && p2[2 * D] == pd[2 * D]);
}

/* negatives_per of the models make_model creates */
static int	model_negatives_per = GR_NEGATIVES_PER_BATCH;

/* A small model of a layout and trunk with an item loss; NULL when the pair is refused. */
static gr_model *
make_model(int layout, int trunk, int loss, int negatives, int sampler)
{
	gr_model_config cfg;
	gr_model   *m = NULL;
	gr_error	err = {0};

	gr_model_config_default(&cfg, layout, N_ITEMS, 1);
	cfg.trunk = trunk;
	cfg.item_loss = loss;
	cfg.negatives = negatives;
	cfg.sampler = sampler;
	cfg.negatives_per = model_negatives_per;
	cfg.d_model = 8;
	cfg.n_head = 2;
	cfg.n_layer = 1;
	cfg.max_len = 8;
	cfg.n_buckets = 4;
	cfg.head_hidden = 8;
	if (gr_model_create(&env, &cfg, NULL, &m, &err) != GR_OK)
		return NULL;
	CHECK_OK(gr_model_init_params(m, 11, &err), &err);
	return m;
}

/* Fill tb with USERS windows of histories keyed by stream (item ids 1..N_ITEMS). */
static void
make_batch(const gr_model *m, gr_tokens *tb, uint32_t stream)
{
	int32_t		items[USERS][LEN];
	float		acts[USERS][LEN];
	gr_error	err;

	gr_tokens_reset(tb);
	for (int u = 0; u < USERS; u++)
	{
		for (int i = 0; i < LEN; i++)
		{
			/* items 1..N_ITEMS/2 only, so that many rows stay untouched */
			items[u][i] = 1 + (int) (gr_rng_uniform(9, stream, u, i) * (N_ITEMS / 2));
			acts[u][i] = gr_rng_uniform(9, stream + 1000, u, i);
		}
		gr_seq_view seq = {.items = items[u],.actions = acts[u],.n = LEN - u,.n_actions = 1};
		int			start = GR_MAX(0, seq.n - m->layout->window_len(m->cfg.max_len));

		CHECK_OK(m->layout->add_window(tb, &seq, start, seq.n, false, &err), &err);
	}
}

/* Whether dense id r is among the n ascending rows. */
static bool
listed(const int32_t *rows, int n, int r)
{
	int			lo = 0, hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (rows[mid] == r)
			return true;
		if (rows[mid] < r)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/* Lazy against dense and against a plain lazy-AdamW reference for one model. */
static void
check_model(int layout, int trunk, int loss, int negatives, int sampler)
{
	gr_model   *m = make_model(layout, trunk, loss, negatives, sampler);

	if (m == NULL)
		return;
	gr_model   *md = make_model(layout, trunk, loss, negatives, sampler);
	const char *name = m->layout->name;
	int			d = m->cfg.d_model, V = m->cfg.n_items;
	size_t		P = m->n_params, off = (size_t) (m->w.item_emb - m->params);
	gr_train_config tc;
	gr_trainer *tl = NULL, *td = NULL;
	gr_tokens	tb;
	gr_error	err;
	gr_step_loss sl, sd;
	double		cdf[N_ITEMS];
	float	   *rp = malloc(sizeof(float) * P), *rm = calloc(P, sizeof(float));
	float	   *rv = calloc(P, sizeof(float)), *p0 = malloc(sizeof(float) * P);
	float	   *gl = malloc(sizeof(float) * P), *gd = malloc(sizeof(float) * P);
	float	   *pd = malloc(sizeof(float) * P), *pl = malloc(sizeof(float) * P);

	for (int c = 0; c < N_ITEMS; c++)
		cdf[c] = (c > 0 ? cdf[c - 1] : 0.0) + 1 + c % 4;
	gr_train_config_default(&tc);
	tc.dropout = 0.0f;
	tc.weight_decay = 0.2f;
	tc.lr = 0.01f;
	CHECK_OK(gr_trainer_create(m, &tc, 256, USERS, &tl, &err), &err);
	tc.item_update = GR_ITEM_UPDATE_DENSE;
	CHECK_OK(gr_trainer_create(md, &tc, 256, USERS, &td, &err), &err);
	CHECK_OK(gr_tokens_init(&tb, &env, 1, m->cfg.n_buckets, 256, USERS, 256, &err), &err);
	tl->popularity.cdf = td->popularity.cdf = cdf;

	int			nr = -1;

	CHECK_MSG(gr_trainer_touched_rows(td, &nr) == NULL && nr == 0, "%s: dense lists rows", name);
	gr_model_download_params(m, rp);
	memcpy(p0, rp, sizeof(float) * P);
	for (int step = 0; step < 3; step++)
	{
		make_batch(m, &tb, 40 + step);
		CHECK_OK(gr_trainer_compute(tl, &tb, step, &sl, &err), &err);
		const int32_t *rows = gr_trainer_touched_rows(tl, &nr);

		CHECK_MSG(rows != NULL && nr > 0 && nr < V, "%s: %d rows listed", name, nr);
		for (int i = 0; i < nr; i++)
			CHECK(rows[i] >= 1 && rows[i] <= V && (i == 0 || rows[i] > rows[i - 1]));
		m->ops->download(m->ops->ctx, gl, tl->grads, sizeof(float) * P);
		/* no gradient outside the listed rows */
		int			missed = 0;

		for (int r = 0; r <= V; r++)
			if (!listed(rows, nr, r))
				for (int c = 0; c < d; c++)
					missed += gl[off + (size_t) r * d + c] != 0.0f;
		CHECK_MSG(missed == 0, "%s/%s: %d gradient entries outside the %d listed rows",
				  name, gr_item_loss_name(loss), missed, nr);
		if (step == 0)
		{
			/* same gradient as the dense trainer; after the update, touched rows agree and
			 * untouched rows are where they were (dense decays them) */
			CHECK_OK(gr_trainer_compute(td, &tb, step, &sd, &err), &err);
			md->ops->download(md->ops->ctx, gd, td->grads, sizeof(float) * P);
			CHECK(sl.total == sd.total && memcmp(gl, gd, sizeof(float) * P) == 0);
			CHECK_OK(gr_trainer_apply(td, &err), &err);
			gr_model_download_params(md, pd);
		}
		/* the plain reference: AdamW on every element outside the item table and on the
		 * listed rows of it */
		float		c1 = 1.0f - powf(tc.beta1, (float) (step + 1));
		float		c2 = 1.0f - powf(tc.beta2, (float) (step + 1));

		for (size_t i = 0; i < P; i++)
		{
			bool		item = i >= off && i < off + (size_t) (V + 1) * d;

			if (item && !listed(rows, nr, (int) ((i - off) / d)))
				continue;
			float		g = gl[i];

			rm[i] = tc.beta1 * rm[i] + (1.0f - tc.beta1) * g;
			rv[i] = tc.beta2 * rv[i] + (1.0f - tc.beta2) * g * g;
			rp[i] -= tc.lr * ((rm[i] / c1) / (sqrtf(rv[i] / c2) + tc.eps) + tc.weight_decay * rp[i]);
		}
		CHECK_OK(gr_trainer_apply(tl, &err), &err);
		gr_model_download_params(m, pl);
		double		worst = 0.0;

		for (size_t i = 0; i < P; i++)
			worst = fmax(worst, fabs((double) pl[i] - rp[i]) / fmax(1.0, fabs(rp[i])));
		CHECK_MSG(worst <= 1e-6, "%s/%s step %d: lazy vs reference %.3g", name,
				  gr_item_loss_name(loss), step, worst);
		if (step == 0)
		{
			int			differ = 0, frozen = 0, decayed = 0;

			for (int r = 1; r <= V; r++)
				for (int c = 0; c < d; c++)
				{
					size_t		i = off + (size_t) r * d + c;

					if (listed(rows, nr, r))
						differ += pl[i] != pd[i];
					else
					{
						frozen += pl[i] == p0[i];
						decayed += pd[i] != p0[i];
					}
				}
			CHECK_MSG(differ == 0, "%s: %d touched entries differ from dense", name, differ);
			CHECK_MSG(frozen == (V - nr) * d, "%s: untouched rows moved", name);
			CHECK_MSG(decayed > 0, "%s: dense did not decay untouched rows", name);
			/* outside the item table the two trainers agree */
			CHECK(memcmp(pl, pd, sizeof(float) * off) == 0);
		}
	}
	/* a compute without its update, then another: no stale rows in the second gradient */
	make_batch(m, &tb, 90);
	CHECK_OK(gr_trainer_compute(tl, &tb, 7, &sl, &err), &err);
	make_batch(m, &tb, 91);
	CHECK_OK(gr_trainer_compute(tl, &tb, 8, &sl, &err), &err);
	m->ops->download(m->ops->ctx, gl, tl->grads, sizeof(float) * P);
	gr_model_download_params(m, pl);
	gr_model_upload_params(md, pl);
	CHECK_OK(gr_trainer_compute(td, &tb, 8, &sd, &err), &err);
	md->ops->download(md->ops->ctx, gd, td->grads, sizeof(float) * P);
	CHECK_MSG(memcmp(gl, gd, sizeof(float) * P) == 0, "%s: stale gradient rows", name);

	tl->popularity.cdf = td->popularity.cdf = NULL;
	free(rp), free(rm), free(rv), free(p0), free(gl), free(gd), free(pd), free(pl);
	gr_tokens_free(&tb);
	gr_trainer_free(tl);
	gr_trainer_free(td);
	gr_model_free(m);
	gr_model_free(md);
}

/* Every layout and trunk under the sampled and in-batch losses (and per-user negatives). */
static void
test_trainer_all_layouts(void)
{
	int			models = 0;

	for (int trunk = 0; trunk < GR_TRUNK_COUNT; trunk++)
		for (int l = 0; l < GR_LAYOUT_COUNT; l++)
		{
			gr_model   *probe = make_model(l, trunk, GR_LOSS_SAMPLED, 7, GR_SAMPLER_UNIFORM);

			if (probe == NULL)
				continue;
			gr_model_free(probe);
			models++;
			check_model(l, trunk, GR_LOSS_SAMPLED, 7, GR_SAMPLER_UNIFORM);
			check_model(l, trunk, GR_LOSS_SAMPLED, 13, GR_SAMPLER_POPULARITY);
			check_model(l, trunk, GR_LOSS_INFONCE, 0, GR_SAMPLER_UNIFORM);
			/* 3 per user: most of a sequence's set lies outside the batch's tokens */
			model_negatives_per = GR_NEGATIVES_PER_USER;
			check_model(l, trunk, GR_LOSS_SAMPLED, 3, GR_SAMPLER_UNIFORM);
			model_negatives_per = GR_NEGATIVES_PER_BATCH;
		}
	CHECK_MSG(models >= GR_LAYOUT_COUNT / 2, "only %d layouts took a sampled loss", models);
}

/* The full softmax: dense under auto, lazy refused. */
static void
test_full_is_dense(void)
{
	gr_model   *m = make_model(GR_LAYOUT_ITEM, 0, GR_LOSS_FULL, 0, GR_SAMPLER_UNIFORM);
	gr_train_config tc;
	gr_trainer *tr = NULL;
	gr_error	err;
	int			n = -1;

	gr_train_config_default(&tc);
	CHECK_OK(gr_trainer_create(m, &tc, 64, 4, &tr, &err), &err);
	CHECK(tr != NULL && gr_trainer_touched_rows(tr, &n) == NULL && n == 0);
	gr_trainer_free(tr);
	tr = NULL;
	tc.item_update = GR_ITEM_UPDATE_LAZY;
	CHECK(gr_trainer_create(m, &tc, 64, 4, &tr, &err) == GR_ERR_INVALID_ARGUMENT && tr == NULL);
	CHECK(strstr(err.message, "lazy") != NULL);
	tc.item_update = 7;
	CHECK(gr_train_config_validate(&tc, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(gr_item_update_by_name("lazy") == GR_ITEM_UPDATE_LAZY &&
		  gr_item_update_by_name("sparse") == -1 &&
		  strcmp(gr_item_update_name(GR_ITEM_UPDATE_AUTO), "auto") == 0 &&
		  gr_item_update_name(GR_ITEM_UPDATE_COUNT) == NULL);
	gr_model_free(m);
}

/* An allocator that counts live allocations. */
static void *
count_alloc(void *user, size_t bytes)
{
	void	   *p = malloc(bytes);

	*(long *) user += p != NULL;
	return p;
}

/* Free and count. */
static void
count_free(void *user, void *ptr)
{
	*(long *) user -= 1;
	free(ptr);
}

/* A sampled-loss gr_train run (lazy by default): reproducible, no leaks, different from the
 * dense run of the same seed. */
static void
test_train_run(void)
{
	long		live = 0;
	gr_env		cenv;
	gr_synth	g;
	gr_error	err;
	enum
	{
	U = 80, PER = 15};
	int64_t		u[U * 2 * PER], it[U * 2 * PER], ts[U * 2 * PER];
	size_t		n = 0;

	gr_env_default(&cenv);
	cenv.allocator = (gr_allocator) {count_alloc, count_free, &live};
	CHECK_OK(gr_synth_init(&g, U, 200, PER, 3, &err), &err);
	for (int id = 1; id <= U; id++)
	{
		gr_synth_user su;

		CHECK_OK(gr_synth_user_begin(&g, &cenv, id, &su, &err), &err);
		for (int j = 0; j < su.n && n < sizeof(u) / sizeof(u[0]); j++, n++)
		{
			float		act;

			gr_synth_user_step(&g, &su, j, &it[n], &act, &ts[n]);
			u[n] = id;
		}
		gr_synth_user_end(&su);
	}
	gr_raw_interactions raw = {.n = n,.user = u,.item = it,.time = ts};
	gr_dataset *ds = NULL;
	gr_model_config mc;
	gr_train_config tc;
	gr_train_result r1, r2, r3;
	gr_model   *m1 = NULL, *m2 = NULL, *m3 = NULL;

	CHECK_OK(gr_dataset_build(&cenv, &raw, NULL, &ds, &err), &err);
	gr_model_config_default(&mc, GR_LAYOUT_ITEM, 0, 0);
	mc.d_model = 16;
	mc.n_head = 2;
	mc.n_layer = 1;
	mc.max_len = 12;
	mc.item_loss = GR_LOSS_SAMPLED;
	mc.negatives = 16;
	gr_train_config_default(&tc);
	tc.epochs = 3;
	tc.batch_size = 16;
	CHECK_OK(gr_train(&cenv, &mc, &tc, ds, &m1, &r1, &err), &err);
	CHECK_OK(gr_train(&cenv, &mc, &tc, ds, &m2, &r2, &err), &err);
	CHECK(r1.final_train_loss == r2.final_train_loss && r1.test.ndcg[0] == r2.test.ndcg[0]);
	tc.item_update = GR_ITEM_UPDATE_DENSE;
	CHECK_OK(gr_train(&cenv, &mc, &tc, ds, &m3, &r3, &err), &err);
	CHECK(isfinite(r3.final_train_loss) && r3.final_train_loss != r1.final_train_loss);
	gr_model_free(m1);
	gr_model_free(m2);
	gr_model_free(m3);
	gr_dataset_free(ds);
	CHECK_MSG(live == 0, "%ld allocations leaked", live);
}

/* Largest | |row| - 1 | over the item table's nonzero rows, and the count of zero rows. */
static double
unit_row_error(const gr_model *m, const float *params, int *zero_rows)
{
	int			d = m->cfg.d_model;
	const float *E = params + (m->w.item_emb - m->params);
	double		worst = 0.0;

	*zero_rows = 0;
	for (int r = 0; r <= m->cfg.n_items; r++)
	{
		double		s = 0.0;

		for (int c = 0; c < d; c++)
			s += (double) E[(size_t) r * d + c] * E[(size_t) r * d + c];
		if (s == 0.0)
			(*zero_rows)++;
		else
			worst = fmax(worst, fabs(sqrt(s) - 1.0));
	}
	return worst;
}

/* The cosine similarity keeps every item row unit: from the trainer's start and after each
 * lazy or dense update, which agree when there is no weight decay. */
static void
test_cosine_unit_rows(void)
{
	gr_model   *m = make_model(GR_LAYOUT_ITEM, GR_TRUNK_GPT2, GR_LOSS_SAMPLED, 7,
							   GR_SAMPLER_UNIFORM);
	gr_model   *md = make_model(GR_LAYOUT_ITEM, GR_TRUNK_GPT2, GR_LOSS_SAMPLED, 7,
								GR_SAMPLER_UNIFORM);
	size_t		P = m->n_params;
	float	   *pl = malloc(sizeof(float) * P), *pd = malloc(sizeof(float) * P);
	gr_train_config tc;
	gr_trainer *tl = NULL, *td = NULL;
	gr_tokens	tb;
	gr_error	err;
	gr_step_loss sl;
	int			zeros;

	m->cfg.similarity = md->cfg.similarity = GR_SIMILARITY_COSINE;
	gr_model_download_params(m, pl);
	CHECK_MSG(unit_row_error(m, pl, &zeros) > 0.1, "the init's rows are unit already");
	gr_train_config_default(&tc);
	tc.dropout = 0.0f;
	tc.weight_decay = 0.0f;
	tc.lr = 0.05f;
	CHECK_OK(gr_trainer_create(m, &tc, 256, USERS, &tl, &err), &err);
	tc.item_update = GR_ITEM_UPDATE_DENSE;
	CHECK_OK(gr_trainer_create(md, &tc, 256, USERS, &td, &err), &err);
	CHECK_OK(gr_tokens_init(&tb, &env, 1, m->cfg.n_buckets, 256, USERS, 256, &err), &err);
	gr_model_download_params(m, pl);
	CHECK_MSG(unit_row_error(m, pl, &zeros) < 1e-6, "rows not unit at the trainer's start");
	for (int step = 0; step < 4; step++)
	{
		make_batch(m, &tb, 70 + step);
		CHECK_OK(gr_trainer_compute(tl, &tb, step, &sl, &err), &err);
		CHECK_OK(gr_trainer_apply(tl, &err), &err);
		CHECK_OK(gr_trainer_compute(td, &tb, step, &sl, &err), &err);
		CHECK_OK(gr_trainer_apply(td, &err), &err);
		gr_model_download_params(m, pl);
		gr_model_download_params(md, pd);
		CHECK_MSG(unit_row_error(m, pl, &zeros) < 1e-6, "lazy: rows off the sphere, step %d",
				  step);
		CHECK_MSG(unit_row_error(md, pd, &zeros) < 1e-6, "dense: rows off the sphere, step %d",
				  step);
		if (step == 0)
		{
			double		worst = 0.0;

			for (size_t i = 0; i < P; i++)
				worst = fmax(worst, fabs((double) pl[i] - pd[i]));
			CHECK_MSG(worst < 1e-6, "lazy and dense differ by %.3g after one step", worst);
		}
	}
	free(pl), free(pd);
	gr_tokens_free(&tb);
	gr_trainer_free(tl);
	gr_trainer_free(td);
	gr_model_free(m);
	gr_model_free(md);
}

/* Run the lazy-update tests. */
int
main(void)
{
	gr_env_default(&env);
	test_adamw_rows_op();
	test_trainer_all_layouts();
	test_full_is_dense();
	test_cosine_unit_rows();
	test_train_run();
	return unit_finish("test_lazy");
}
