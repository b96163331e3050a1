/*
 * test_tasks.c — several action tasks at once: one continuous (MSE) and one binary (log loss)
 * column with per-task loss weights.
 *  - the metrics on hand-computed cases: ROC AUC (with ties, one class), the training base
 *    rate and its entropy;
 *  - per-task weights scale exactly their task's gradient (the gradient with weights (1, w)
 *    is the sum of the single-task gradients, and the reported total is the weighted sum),
 *    and a directional finite difference of the weighted loss;
 *  - a training run on a table with both columns reports RMSE for the continuous column and
 *    log loss, NE (against the training rate) and AUC for the binary one, and learns the
 *    binary task (AUC well above 0.5);
 *  - bad task weights: a count that does not match the columns, negative or non-finite ones,
 *    and the options parser's task_weights.
 */
#include "gr_synth.h"
#include "gr_train.h"
#include "gr_train_options.h"
#include "gr_rng.h"
#include "unit.h"

#include <string.h>

static gr_env env;

/* The synthetic generator's rows with a second, binary column: rating >= 3.5. */
static gr_dataset *
two_task_dataset(int users, int items, int per_user)
{
	gr_synth	g;
	gr_error	err;
	size_t		cap = (size_t) users * (per_user + per_user / 2 + 1), n = 0;
	int64_t    *u = malloc(sizeof(int64_t) * cap), *it = malloc(sizeof(int64_t) * cap);
	int64_t    *t = malloc(sizeof(int64_t) * cap);
	double	   *a = malloc(sizeof(double) * cap * 2);
	static const uint8_t binary[2] = {0, 1};
	gr_dataset *ds = NULL;

	CHECK_OK(gr_synth_init(&g, users, items, per_user, 11, &err), &err);
	for (int id = 1; id <= users; id++)
	{
		gr_synth_user su;

		CHECK_OK(gr_synth_user_begin(&g, &env, id, &su, &err), &err);
		for (int j = 0; j < su.n && n < cap; j++, n++)
		{
			float		act;

			gr_synth_user_step(&g, &su, j, &it[n], &act, &t[n]);
			u[n] = id;
			a[2 * n] = act;
			a[2 * n + 1] = act >= 3.5f ? 1.0 : 0.0;
		}
		gr_synth_user_end(&su);
	}
	gr_raw_interactions raw = {.n = n,.user = u,.item = it,.time = t,.actions = a,
	.n_actions = 2,.action_binary = binary};

	CHECK_OK(gr_dataset_build(&env, &raw, NULL, &ds, &err), &err);
	free(u);
	free(it);
	free(t);
	free(a);
	return ds;
}

/* AUC, base rate and entropy on hand-computed cases. */
static void
test_metrics(void)
{
	/* sklearn's example: y = 0 0 1 1, s = .1 .4 .35 .8 -> 0.75 */
	gr_auc_pair p[4] = {{0.1f, 0}, {0.4f, 0}, {0.35f, 1}, {0.8f, 1}};

	CHECK(fabs(gr_metric_auc(p, 4, &env) - 0.75) < 1e-12);
	/* a tie between a positive and a negative counts half */
	gr_auc_pair q[3] = {{0.5f, 1}, {0.5f, 0}, {0.9f, 1}};

	CHECK(fabs(gr_metric_auc(q, 3, &env) - 0.75) < 1e-12);
	gr_auc_pair r[2] = {{0.2f, 1}, {0.7f, 1}};

	CHECK(isnan(gr_metric_auc(r, 2, &env)));
	gr_auc_pair s[2] = {{0.9f, 0}, {0.1f, 1}};

	CHECK(fabs(gr_metric_auc(s, 2, &env)) < 1e-12);
	CHECK(fabs(gr_bernoulli_entropy(0.5) - log(2.0)) < 1e-12);
	CHECK(isnan(gr_bernoulli_entropy(0.0)) && isnan(gr_bernoulli_entropy(1.0)));

	gr_dataset *ds = two_task_dataset(40, 30, 10);
	double		pos = 0, n = 0;

	for (int u = 0; u < ds->n_users; u++)
		for (int i = 0; i < gr_dataset_train_end(ds, u); i++)
		{
			pos += ds->actions[(size_t) (ds->offsets[u] + i) * 2 + 1];
			n++;
		}
	CHECK(fabs(gr_train_base_rate(ds, 1) - pos / n) < 1e-12 && pos > 0 && pos < n);
	CHECK(isnan(gr_train_base_rate(ds, 2)));
	gr_dataset_free(ds);
}

/* Gradient and loss of one batch with the given weights. */
static void
batch_grad(gr_trainer *tr, const gr_tokens *tb, float w_item, int n_w, const float *w,
		   float *grad, gr_step_loss *sl)
{
	gr_error	err;

	tr->cfg.w_item = w_item;
	tr->cfg.n_task_weights = n_w;
	for (int k = 0; k < n_w; k++)
		tr->cfg.task_weights[k] = w[k];
	CHECK_OK(gr_trainer_compute(tr, tb, 0, sl, &err), &err);
	tr->model->ops->download(tr->model->ops->ctx, grad, tr->grads,
							 sizeof(float) * tr->model->n_params);
}

/* Per-task weights scale their task's gradient and loss, and nothing else. */
static void
test_task_weights(void)
{
	gr_dataset *ds = two_task_dataset(30, 30, 10);
	gr_model_config mc;
	gr_train_config tc;
	gr_model   *m;
	gr_trainer *tr;
	gr_tokens	tb;
	gr_error	err;
	gr_step_loss l1, l2, l12, lw;

	gr_model_config_default(&mc, GR_LAYOUT_LAC, ds->n_items, 2);
	mc.d_model = 16;
	mc.n_head = 2;
	mc.n_layer = 1;
	mc.max_len = 8;
	mc.head_hidden = 8;
	for (int k = 0; k < 2; k++)
	{
		mc.action_min[k] = ds->action_min[k];
		mc.action_max[k] = ds->action_max[k];
		mc.action_binary[k] = ds->action_binary[k];
	}
	CHECK(mc.action_binary[1] && !mc.action_binary[0]);
	CHECK_OK(gr_model_create(&env, &mc, ds->item_ids + 1, &m, &err), &err);
	CHECK_OK(gr_model_init_params(m, 5, &err), &err);
	gr_train_config_default(&tc);
	tc.dropout = 0.0f;
	CHECK_OK(gr_trainer_create(m, &tc, 256, 8, &tr, &err), &err);
	CHECK_OK(gr_tokens_init(&tb, &env, 2, mc.n_buckets, 256, 8, 256, &err), &err);
	for (int u = 0; u < 8; u++)
	{
		bool		added;

		CHECK_OK(gr_add_train_window(m, ds, u, &tb, &added, &err), &err);
	}
	size_t		P = m->n_params;
	float	   *g1 = malloc(sizeof(float) * P), *g2 = malloc(sizeof(float) * P);
	float	   *g12 = malloc(sizeof(float) * P), *gw = malloc(sizeof(float) * P);
	static const float w10[2] = {1, 0}, w01[2] = {0, 1}, w1q[2] = {1, 0.25f};

	batch_grad(tr, &tb, 0.0f, 2, w10, g1, &l1);
	batch_grad(tr, &tb, 0.0f, 2, w01, g2, &l2);
	batch_grad(tr, &tb, 0.0f, 2, w1q, g12, &l12);
	batch_grad(tr, &tb, 0.0f, 0, NULL, gw, &lw);
	CHECK(fabs(l1.total - l1.action[0]) < 1e-9 && fabs(l2.total - l2.action[1]) < 1e-9);
	CHECK(fabs(l12.total - (l12.action[0] + 0.25 * l12.action[1])) < 1e-9);
	CHECK(fabs(lw.total - (lw.action[0] + lw.action[1])) < 1e-9);
	CHECK(l1.action[1] > 0 && l2.action[0] > 0);	/* both losses are reported either way */
	double		worst = 0, scale = 0, diff_unweighted = 0;

	for (size_t i = 0; i < P; i++)
	{
		worst = fmax(worst, fabs(g12[i] - (g1[i] + 0.25f * g2[i])));
		diff_unweighted = fmax(diff_unweighted, fabs(gw[i] - (g1[i] + g2[i])));
		scale = fmax(scale, fabs(g12[i]));
	}
	CHECK_MSG(worst <= 1e-5 * fmax(scale, 1.0) && diff_unweighted <= 1e-5 * fmax(scale, 1.0),
			  "weighted gradient off the sum of task gradients by %g (scale %g)", worst, scale);
	CHECK(scale > 1e-4);

	/* directional finite difference of the weighted loss */
	float	   *theta = malloc(sizeof(float) * P), *work = malloc(sizeof(float) * P);
	double		analytic = 0, lp, lm;
	float		eps = 1e-3f;

	gr_model_download_params(m, theta);
	for (size_t i = 0; i < P; i++)
		analytic += (double) g12[i] * (2.0 * gr_rng_uniform(3, GR_STREAM_TEST, 0, i) - 1.0);
	for (int s = 0; s < 2; s++)
	{
		for (size_t i = 0; i < P; i++)
			work[i] = theta[i] + (s ? -eps : eps) * (float) (2.0 * gr_rng_uniform(3, GR_STREAM_TEST, 0, i) - 1.0);
		gr_model_upload_params(m, work);
		batch_grad(tr, &tb, 0.0f, 2, w1q, gw, s ? &l2 : &l1);
	}
	lp = l1.total;
	lm = l2.total;
	double		numeric = (lp - lm) / (2.0 * eps);

	CHECK_MSG(fabs(numeric - analytic) <= 2e-2 * fabs(analytic) + 2e-3,
			  "weighted loss: analytic %.6g numeric %.6g", analytic, numeric);
	gr_model_upload_params(m, theta);
	free(theta);
	free(work);
	free(g1);
	free(g2);
	free(g12);
	free(gw);
	gr_tokens_free(&tb);
	gr_trainer_free(tr);
	gr_model_free(m);
	gr_dataset_free(ds);
}

/* A run on both columns reports each task's metrics and learns the binary task. */
static void
test_two_task_training(void)
{
	gr_dataset *ds = two_task_dataset(300, 100, 30);
	gr_model_config mc;
	gr_train_config tc;
	gr_model   *m = NULL;
	gr_train_result r;
	gr_error	err;

	gr_model_config_default(&mc, GR_LAYOUT_LAC, 0, 0);
	mc.d_model = 16;
	mc.n_head = 2;
	mc.n_layer = 1;
	mc.max_len = 20;
	mc.head_hidden = 16;
	gr_train_config_default(&tc);
	tc.epochs = 6;
	tc.batch_size = 32;
	tc.lr = 3e-3f;
	tc.n_task_weights = 2;
	tc.task_weights[0] = 1.0f;
	tc.task_weights[1] = 0.5f;
	CHECK_OK(gr_train(&env, &mc, &tc, ds, &m, &r, &err), &err);
	const gr_metrics *t = &r.test;

	CHECK(t->n_action_targets[0] == 300 && t->n_action_targets[1] == 300);
	CHECK(isfinite(t->rmse[0]) && isnan(t->logloss[0]) && isnan(t->auc[0]) && isnan(t->ne[0]));
	CHECK(isnan(t->rmse[1]) && isfinite(t->logloss[1]) && isfinite(t->ne[1]));
	double		h = gr_bernoulli_entropy(gr_train_base_rate(ds, 1));

	CHECK(fabs(t->ne[1] - t->logloss[1] / h) < 1e-9);
	CHECK_MSG(t->auc[1] > 0.6 && t->auc[1] <= 1.0, "binary task AUC %.4f", t->auc[1]);
	CHECK_MSG(t->ne[1] < 1.0, "binary task NE %.4f (1 = the training rate)", t->ne[1]);
	printf("two tasks: rmse %.4f (baseline %.4f), logloss %.4f, NE %.4f, AUC %.4f\n",
		   t->rmse[0], t->baseline_rmse[0], t->logloss[1], t->ne[1], t->auc[1]);
	gr_model_free(m);

	/* one weight for two columns is refused before anything is built */
	tc.n_task_weights = 1;
	CHECK(gr_train(&env, &mc, &tc, ds, &m, &r, &err) == GR_ERR_INVALID_ARGUMENT && m == NULL);
	tc.n_task_weights = 2;
	tc.task_weights[1] = -1.0f;
	CHECK(gr_train(&env, &mc, &tc, ds, &m, &r, &err) == GR_ERR_INVALID_ARGUMENT);
	tc.task_weights[1] = NAN;
	CHECK(gr_train_config_validate(&tc, &err) == GR_ERR_INVALID_ARGUMENT);
	gr_dataset_free(ds);
}

/* The options parser's task_weights. */
static void
test_task_weight_options(void)
{
	gr_model_config mc;
	gr_train_config tc;
	gr_train_option_names names;
	gr_error	err;
	static const char *bad[] = {
		"{\"task_weights\": []}", "{\"task_weights\": [1, \"x\"]}", "{\"task_weights\": [-1]}",
		"{\"task_weights\": 2}", "{\"task_weights\": [1,1,1,1,1,1,1,1,1]}",
		"{\"task_weights\": [1e7]}",
	};

	gr_model_config_default(&mc, GR_LAYOUT_LAC, 1, 1);
	gr_train_config_default(&tc);
	const char *ok = "{\"task_weights\": [1, 0.5, 2], \"binary_actions\": [\"click\"]}";

	CHECK_OK(gr_train_options_from_json(&env, ok, strlen(ok), &mc, &tc, &names, &err), &err);
	CHECK(tc.n_task_weights == 3 && tc.task_weights[1] == 0.5f && tc.task_weights[2] == 2.0f);
	CHECK(names.n == 1);
	gr_train_option_names_free(&env, &names);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		gr_train_config t2;

		gr_train_config_default(&t2);
		CHECK_MSG(gr_train_options_from_json(&env, bad[i], strlen(bad[i]), &mc, &t2, &names,
											 &err) == GR_ERR_INVALID_ARGUMENT &&
				  t2.n_task_weights == 0, "accepted %s", bad[i]);
	}
	CHECK(strstr(gr_train_option_keys(), "task_weights") != NULL);
}

/* Run the several-task tests. */
int
main(void)
{
	gr_env_default(&env);
	test_metrics();
	test_task_weight_options();
	test_task_weights();
	test_two_task_training();
	return unit_finish("test_tasks");
}
