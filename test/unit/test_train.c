/*
 * test_train.c — the training protocol end to end on the synthetic generator's data:
 *  - a short run succeeds, beats the popularity ranking and frees every allocation;
 *  - a cancel at any point (the interrupt callback turning true at its k-th poll) returns
 *    GR_ERR_CANCELLED, hands out no model and frees every allocation;
 *  - training is reproducible from its seed;
 *  - bad options are rejected with GR_ERR_INVALID_ARGUMENT.
 */
#include "gr_synth.h"
#include "gr_train.h"
#include "unit.h"

#include <string.h>

/* An allocator that counts live allocations. */
typedef struct counting
{
	long		live;
	long		total;
} counting;

/* Allocate and count. */
static void *
count_alloc(void *user, size_t bytes)
{
	counting   *c = user;
	void	   *p = malloc(bytes);

	if (p)
	{
		c->live++;
		c->total++;
	}
	return p;
}

/* Free and count. */
static void
count_free(void *user, void *ptr)
{
	counting   *c = user;

	c->live--;
	free(ptr);
}

/* Interrupt state: stop at the stop_at-th poll (0 = never). */
typedef struct interrupt_state
{
	long		polls;
	long		stop_at;
} interrupt_state;

/* Report "stop" from the stop_at-th poll on. */
static bool
interrupt_after(void *user)
{
	interrupt_state *s = user;

	s->polls++;
	return s->stop_at > 0 && s->polls >= s->stop_at;
}

/* Build a dataset of the synthetic generator's rows. */
static gr_dataset *
synthetic_dataset(const gr_env *env, int users, int items, int per_user)
{
	gr_synth	g;
	gr_error	err;
	size_t		cap = (size_t) users * (per_user + per_user / 2 + 1), n = 0;
	int64_t    *u = malloc(sizeof(int64_t) * cap), *it = malloc(sizeof(int64_t) * cap);
	int64_t    *t = malloc(sizeof(int64_t) * cap);
	double	   *a = malloc(sizeof(double) * cap);
	gr_dataset *ds = NULL;

	CHECK_OK(gr_synth_init(&g, users, items, per_user, 7, &err), &err);
	for (int id = 1; id <= users; id++)
	{
		gr_synth_user su;

		CHECK_OK(gr_synth_user_begin(&g, env, id, &su, &err), &err);
		for (int j = 0; j < su.n && n < cap; j++, n++)
		{
			float		act;

			gr_synth_user_step(&g, &su, j, &it[n], &act, &t[n]);
			u[n] = id;
			a[n] = act;
		}
		gr_synth_user_end(&su);
	}
	gr_raw_interactions raw = {.n = n,.user = u,.item = it,.time = t,.actions = a,.n_actions = 1};

	CHECK_OK(gr_dataset_build(env, &raw, NULL, &ds, &err), &err);
	free(u);
	free(it);
	free(t);
	free(a);
	return ds;
}

/* A small model configuration and fast training options. */
static void
small_config(gr_model_config *mc, gr_train_config *tc, int epochs)
{
	gr_model_config_default(mc, GR_LAYOUT_LAC, 0, 0);
	mc->d_model = 16;
	mc->n_head = 2;
	mc->n_layer = 1;
	mc->max_len = 20;
	mc->head_hidden = 16;
	gr_train_config_default(tc);
	tc->epochs = epochs;
	tc->batch_size = 32;
	tc->lr = 3e-3f;
	tc->patience = epochs;
}

/* A short run of a layout trains, beats popularity and leaks nothing. */
static void
test_train_runs(int layout)
{
	counting	c = {0};
	gr_env		env;
	gr_model_config mc;
	gr_train_config tc;
	gr_model   *m = NULL, *m2 = NULL;
	gr_train_result r, r2;
	gr_error	err;

	gr_env_default(&env);
	env.allocator = (gr_allocator) {count_alloc, count_free, &c};
	gr_dataset *ds = synthetic_dataset(&env, 300, 120, 30);

	small_config(&mc, &tc, 8);
	mc.layout = layout;
	CHECK_OK(gr_train(&env, &mc, &tc, ds, &m, &r, &err), &err);
	CHECK(m != NULL && r.epochs_run == 8 && r.best_epoch >= 1 && r.steps == 8 * 10);
	CHECK_MSG(r.test.ndcg[0] > r.test.pop_ndcg[0], "%s: NDCG@10 %.4f vs popularity %.4f",
			  gr_layout_by_id(layout)->name, r.test.ndcg[0], r.test.pop_ndcg[0]);
	CHECK_MSG(isfinite(r.test.rmse[0]) && r.test.rmse[0] < 0.5, "%s: RMSE %.4f",
			  gr_layout_by_id(layout)->name, r.test.rmse[0]);
	/* the same seed gives the same model and metrics */
	CHECK_OK(gr_train(&env, &mc, &tc, ds, &m2, &r2, &err), &err);
	CHECK(r2.test.ndcg[0] == r.test.ndcg[0] && r2.final_train_loss == r.final_train_loss);
	gr_model_free(m);
	gr_model_free(m2);
	gr_dataset_free(ds);
	CHECK_MSG(c.live == 0, "%ld allocations leaked of %ld", c.live, c.total);
}

/* Run a short training that stops at poll stop_at (0 = never); returns its status. */
static gr_status
run_with_stop(long stop_at, long *polls, long *leaked, gr_model **out)
{
	counting	c = {0};
	interrupt_state st = {0, stop_at};
	gr_env		env;
	gr_model_config mc;
	gr_train_config tc;
	gr_train_result r;
	gr_error	err = {0};

	gr_env_default(&env);
	env.allocator = (gr_allocator) {count_alloc, count_free, &c};
	gr_dataset *ds = synthetic_dataset(&env, 120, 60, 20);

	env.interrupted = interrupt_after;
	env.callback_user = &st;
	small_config(&mc, &tc, 2);
	gr_status	s = gr_train(&env, &mc, &tc, ds, out, &r, &err);

	gr_model_free(*out);
	gr_dataset_free(ds);
	*polls = st.polls;
	*leaked = c.live;
	return s;
}

/* A cancel at any poll unwinds with GR_ERR_CANCELLED and frees everything. */
static void
test_cancel_anywhere(void)
{
	long		total, polls, leaked;
	gr_model   *m;

	/* count the polls of a whole run, then stop at first, middle and last poll */
	CHECK(run_with_stop(0, &total, &leaked, &m) == GR_OK && m != NULL && leaked == 0);
	CHECK_MSG(total > 20, "only %ld polls in a run", total);
	for (long stop = 1; stop <= total; stop += (stop < 8 ? 1 : total / 7))
	{
		gr_status	s = run_with_stop(stop, &polls, &leaked, &m);

		CHECK_MSG(s == GR_ERR_CANCELLED, "stop at poll %ld of %ld: status %s", stop, total,
				  gr_status_name(s));
		CHECK(m == NULL);
		CHECK(polls == stop);	/* it stopped at the first "yes" */
		CHECK_MSG(leaked == 0, "stop at poll %ld: %ld allocations leaked", stop, leaked);
	}
	CHECK(run_with_stop(total, &polls, &leaked, &m) == GR_ERR_CANCELLED && leaked == 0);
}

/* Bad training options are rejected before any work. */
static void
test_bad_options(void)
{
	gr_env		env;
	gr_model_config mc;
	gr_train_config tc;
	gr_model   *m;
	gr_train_result r;
	gr_error	err;

	gr_env_default(&env);
	gr_dataset *ds = synthetic_dataset(&env, 20, 30, 10);

	small_config(&mc, &tc, 1);
	tc.lr = -1.0f;
	CHECK(gr_train(&env, &mc, &tc, ds, &m, &r, &err) == GR_ERR_INVALID_ARGUMENT && m == NULL);
	small_config(&mc, &tc, 1);
	tc.dropout = 1.0f;
	CHECK(gr_train(&env, &mc, &tc, ds, &m, &r, &err) == GR_ERR_INVALID_ARGUMENT);
	small_config(&mc, &tc, 1);
	mc.n_head = 3;
	CHECK(gr_train(&env, &mc, &tc, ds, &m, &r, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.message, "n_head") != NULL);
	gr_dataset_free(ds);
}

/* Run the training tests. */
int
main(void)
{
	test_train_runs(GR_LAYOUT_LAC);
	test_train_runs(GR_LAYOUT_ATTNLFA);
	test_train_runs(GR_LAYOUT_ATTNMVP);
	test_cancel_anywhere();
	test_bad_options();
	return unit_finish("test_train");
}
