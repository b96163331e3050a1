/*
 * test_leakcheck.c — gr_leakage_check, the P3 perturbation test behind genrec_leakage_check:
 * on random models of every layout it finds no change of a prediction from its own label
 * nor from a later interaction, while its positive control sees later predictions move;
 * with the test-only injected leak (each action row's token carrying its own target) it
 * fails for every layout whose action rows read a token with an action slot.
 */
#include "gr_leakage.h"
#include "gr_synth.h"
#include "gr_model.h"
#include "unit.h"

#include <string.h>

static gr_env env;

/* The synthetic generator's rows as a dataset (one action). */
static gr_dataset *
synthetic_dataset(int users, int items, int per_user)
{
	gr_synth	g;
	gr_error	err;
	size_t		cap = (size_t) users * (per_user + per_user / 2 + 1), n = 0;
	int64_t    *u = malloc(sizeof(int64_t) * cap), *it = malloc(sizeof(int64_t) * cap);
	int64_t    *t = malloc(sizeof(int64_t) * cap);
	double	   *a = malloc(sizeof(double) * cap);
	gr_dataset *ds = NULL;

	CHECK_OK(gr_synth_init(&g, users, items, per_user, 3, &err), &err);
	for (int id = 1; id <= users; id++)
	{
		gr_synth_user su;

		CHECK_OK(gr_synth_user_begin(&g, &env, id, &su, &err), &err);
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

	CHECK_OK(gr_dataset_build(&env, &raw, NULL, &ds, &err), &err);
	free(u);
	free(it);
	free(t);
	free(a);
	return ds;
}

/* A random model of a layout in the dataset's space, weights scaled up so paths show. */
static gr_model *
make_model(int layout, const gr_dataset *ds)
{
	gr_model_config cfg;
	gr_model   *m = NULL;
	gr_error	err;

	gr_model_config_default(&cfg, layout, ds->n_items, 1);
	cfg.d_model = 16;
	cfg.n_head = 2;
	cfg.n_layer = 2;
	cfg.max_len = 8;
	cfg.n_buckets = 4;
	cfg.head_hidden = 8;
	cfg.action_min[0] = ds->action_min[0];
	cfg.action_max[0] = ds->action_max[0];
	CHECK_OK(gr_model_create(&env, &cfg, ds->item_ids + 1, &m, &err), &err);
	CHECK_OK(gr_model_init_params(m, 17, &err), &err);
	float	   *host = malloc(sizeof(float) * m->n_params);

	gr_model_download_params(m, host);
	for (size_t i = 0; i < m->n_params; i++)
		host[i] *= 3.0f;
	gr_model_upload_params(m, host);
	free(host);
	return m;
}

/* Whether the injected leak can reach a prediction: an action row reads a token whose action
 * slot is added to its input. */
static bool
leak_injectable(const gr_model *m)
{
	int32_t		items[4] = {1, 2, 3, 4};
	float		acts[4] = {0.1f, 0.2f, 0.3f, 0.4f};
	gr_seq_view seq = {.items = items,.actions = acts,.n = 4,.n_actions = 1};
	gr_tokens	tb;
	gr_error	err;
	bool		any = false;

	CHECK_OK(gr_tokens_init(&tb, &env, 1, 4, 32, 2, 32, &err), &err);
	CHECK_OK(m->layout->add_window(&tb, &seq, 0, 4, false, &err), &err);
	for (int r = 0; r < tb.n_act_rows; r++)
		any |= tb.has_action[tb.act_row_tok[r]] != 0;
	gr_tokens_free(&tb);
	/* a token's own slot reaches its own state only when φ(a) joins the token's input (an
	 * action stream is read strict-causally: attnlfa, attnmvp) */
	return any && gr_layout_has_action_head(m->layout) &&
		m->layout->action_input == GR_ACTION_INPUT_TOKEN;
}

/* Every layout passes; the injected leak is found wherever it can be injected. */
static void
test_every_layout(void)
{
	gr_dataset *ds = synthetic_dataset(20, 40, 12);
	gr_error	err;

	for (int id = 0; id < GR_LAYOUT_COUNT; id++)
	{
		gr_model   *m = make_model(id, ds);
		gr_leakage_result r, leak;

		CHECK_OK(gr_leakage_check(m, ds, 6, false, &r, &err), &err);
		CHECK_MSG(r.n_users == 6 && r.n_perturbations > 6, "%s: %d users", m->layout->name,
				  r.n_users);
		CHECK_MSG(r.own_change <= GR_LEAKAGE_TOLERANCE && r.future_change <= GR_LEAKAGE_TOLERANCE,
				  "%s: own %g future %g", m->layout->name, r.own_change, r.future_change);
		CHECK_MSG(r.later_change > 1e-3, "%s: perturbations never reach a later prediction (%g)",
				  m->layout->name, r.later_change);
		CHECK_OK(gr_leakage_check(m, ds, 6, true, &leak, &err), &err);
		if (leak_injectable(m))
			CHECK_MSG(leak.own_change > 1e-3, "%s: the injected leak went unnoticed (%g)",
					  m->layout->name, leak.own_change);
		else
			CHECK_MSG(leak.own_change == r.own_change, "%s: nothing to inject, yet a change",
					  m->layout->name);
		CHECK(leak.future_change <= GR_LEAKAGE_TOLERANCE);
		printf("  %-5s own %.3g future %.3g later %.3g; injected leak: own %.3g\n",
			   m->layout->name, r.own_change, r.future_change, r.later_change, leak.own_change);
		gr_model_free(m);
	}
	gr_model   *m = make_model(GR_LAYOUT_LAC, ds);
	gr_leakage_result r;

	CHECK(gr_leakage_check(m, ds, 0, false, &r, &err) == GR_ERR_INVALID_ARGUMENT);
	gr_model_free(m);
	gr_dataset_free(ds);
}

/* Run the leakage-check tests. */
int
main(void)
{
	gr_env_default(&env);
	test_every_layout();
	return unit_finish("test_leakcheck");
}
