/*
 * gr_train.c — optimiser steps and the training protocol (see gr_train.h).
 */
#include "gr_train.h"
#include "gr_train_lazy.h"
#include "gr_rng.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds. */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Protocol defaults. */
void
gr_train_config_default(gr_train_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->epochs = 200;
	cfg->batch_size = 128;
	cfg->lr = 1e-3f;
	cfg->beta1 = 0.9f;
	cfg->beta2 = 0.98f;
	cfg->eps = 1e-8f;
	cfg->weight_decay = 0.0f;
	cfg->dropout = 0.2f;
	cfg->w_item = 1.0f;
	cfg->w_action = 1.0f;
	cfg->n_task_weights = 0;
	for (int k = 0; k < GR_MAX_ACTIONS; k++)
		cfg->task_weights[k] = 1.0f;
	cfg->patience = 20;
	cfg->warmup_steps = 0;
	cfg->seed = 42;
	cfg->eval_max_users = 0;
}

/* Check that a step's per-user negatives (S for each of cap_seq sequences) stay within
 * GR_MAX_NEGATIVE_DRAWS. */
static gr_status
check_negative_draws(const gr_model_config *m, int cap_seq, gr_error *err)
{
	if (m->item_loss == GR_LOSS_SAMPLED && m->negatives_per == GR_NEGATIVES_PER_USER &&
		(int64_t) m->negatives * cap_seq > GR_MAX_NEGATIVE_DRAWS)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "negatives_per user draws negatives x batch = %d x %d candidates a step, "
					   "more than %d", m->negatives, cap_seq, GR_MAX_NEGATIVE_DRAWS);
	return GR_OK;
}

/* Check the training options' ranges. */
gr_status
gr_train_config_validate(const gr_train_config *c, gr_error *err)
{
	if (c->epochs < 1 || c->epochs > 100000)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "epochs must be in 1..100000, got %d",
					   c->epochs);
	if (c->batch_size < 1 || c->batch_size > 65536)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "batch_size must be in 1..65536, got %d",
					   c->batch_size);
	if (!(c->lr > 0.0f) || !(c->lr < 10.0f))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "lr must be in (0, 10)");
	if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "betas must be in [0, 1)");
	if (!(c->eps > 0.0f) || !(c->weight_decay >= 0.0f) || c->weight_decay > 10.0f)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "eps must be positive, weight_decay in [0, 10]");
	if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "dropout must be in [0, 1)");
	if (!(c->w_item >= 0.0f) || !(c->w_action >= 0.0f) || !isfinite(c->w_item) ||
		!isfinite(c->w_action) || c->w_item + c->w_action <= 0.0f)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "loss weights must be non-negative and not both zero");
	if (c->n_task_weights < 0 || c->n_task_weights > GR_MAX_ACTIONS)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "at most %d task weights", GR_MAX_ACTIONS);
	for (int k = 0; k < c->n_task_weights; k++)
		if (!(c->task_weights[k] >= 0.0f) || !isfinite(c->task_weights[k]))
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "task weights must be finite and non-negative");
	if (c->item_update < 0 || c->item_update >= GR_ITEM_UPDATE_COUNT)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "item_update must be auto, dense or lazy");
	if (c->patience < 1 || c->warmup_steps < 0 || c->eval_max_users < 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "patience must be positive; warmup_steps and eval_max_users non-negative");
	return GR_OK;
}

/* Scale every item row to unit length (the cosine similarity's constraint, gr_model.h). */
static void
unit_item_rows(gr_model *m)
{
	if (m->cfg.similarity == GR_SIMILARITY_COSINE)
		m->ops->l2norm_rows(m->ops->ctx, m->w.item_emb, NULL, NULL, m->cfg.n_items + 1,
							m->cfg.d_model);
}

/* Create gradients, moments and a workspace. */
gr_status
gr_trainer_create(gr_model *model, const gr_train_config *cfg, int cap_tokens, int cap_seq,
				  gr_trainer **out, gr_error *err)
{
	const gr_ops *ops = model->ops;
	size_t		bytes = model->n_params * sizeof(float);

	*out = NULL;
	GR_TRY(gr_train_config_validate(cfg, err));
	GR_TRY(check_negative_draws(&model->cfg, cap_seq, err));
	gr_trainer *tr = gr_calloc(model->env, 1, sizeof(gr_trainer));

	if (tr == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a trainer");
	tr->model = model;
	tr->cfg = *cfg;
	tr->grads = ops->alloc(ops->ctx, bytes);
	tr->adam_m = ops->alloc(ops->ctx, bytes);
	tr->adam_v = ops->alloc(ops->ctx, bytes);
	if (!tr->grads || !tr->adam_m || !tr->adam_v)
	{
		gr_trainer_free(tr);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for optimiser state (%zu MB)",
					   3 * bytes >> 20);
	}
	ops->zero(ops->ctx, tr->adam_m, bytes);
	ops->zero(ops->ctx, tr->adam_v, bytes);
	gr_weights_bind(model, tr->grads, &tr->g);
	gr_status	st = gr_acts_create(model, cap_tokens, cap_seq, cap_tokens, 0, true, &tr->acts, err);

	if (st == GR_OK)
		st = gr_lazy_create(tr, cap_tokens, cap_seq, err);
	if (st != GR_OK)
	{
		gr_trainer_free(tr);
		return st;
	}
	/* training starts on the sphere, from a fresh init or a loaded model */
	unit_item_rows(model);
	*out = tr;
	return GR_OK;
}

/* Free a trainer. */
void
gr_trainer_free(gr_trainer *tr)
{
	if (tr == NULL)
		return;
	const gr_ops *ops = tr->model->ops;

	if (tr->grads)
		ops->free(ops->ctx, tr->grads);
	if (tr->adam_m)
		ops->free(ops->ctx, tr->adam_m);
	if (tr->adam_v)
		ops->free(ops->ctx, tr->adam_v);
	gr_acts_free(tr->acts);
	gr_lazy_free(tr);
	gr_free(tr->model->env, tr->item_cdf);
	gr_free(tr->model->env, tr);
}

/* Cumulative training-target counts per item for the sampled losses. */
gr_status
gr_trainer_count_items(gr_trainer *tr, const gr_dataset *ds, gr_error *err)
{
	const gr_model *m = tr->model;
	int			V = m->cfg.n_items;

	if (m->cfg.item_loss == GR_LOSS_FULL)
		return GR_OK;
	if (ds->n_items != V)
		return gr_fail(err, GR_ERR_INTERNAL, "dataset of %d items, model %d", ds->n_items, V);
	double	   *cdf = gr_calloc(m->env, (size_t) V, sizeof(double));

	if (cdf == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for item counts");
	for (int u = 0; u < ds->n_users; u++)
		for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
			if (ds->items[i] > 0 && ds->items[i] <= V)
				cdf[ds->items[i] - 1] += 1.0;
	for (int c = 1; c < V; c++)
		cdf[c] += cdf[c - 1];
	gr_free(m->env, tr->item_cdf);
	tr->item_cdf = cdf;
	tr->popularity.cdf = cdf;
	return GR_OK;
}

/* Forward and backward of one batch into fresh gradients. */
gr_status
gr_trainer_compute(gr_trainer *tr, const gr_tokens *tb, uint32_t step, gr_step_loss *out,
				   gr_error *err)
{
	gr_model   *m = tr->model;
	gr_pass		pass = {
		.popularity = tr->popularity.cdf != NULL ? &tr->popularity : NULL,
		.dropout = tr->cfg.dropout,.seed = tr->cfg.seed,.step = step,
		.w_item = tr->cfg.w_item,.w_action = tr->cfg.w_action,
		.w_task = tr->cfg.n_task_weights > 0 ? tr->cfg.task_weights : NULL,
	};

	memset(out, 0, sizeof(*out));
	gr_lazy_zero_grads(tr);
	GR_TRY(gr_model_forward(m, tr->acts, tb, &pass, err));
	GR_TRY(gr_lazy_collect(tr, tb, &pass, err));
	GR_TRY(gr_model_backward(m, tr->acts, &tr->g, &pass, out, err));
	if (!isfinite(out->total))
		return gr_fail(err, GR_ERR_NUMERIC, "training diverged: loss is %g at step %u",
					   out->total, step);
	return GR_OK;
}

/* One AdamW update (linear warm-up of the learning rate when configured). */
gr_status
gr_trainer_apply(gr_trainer *tr, gr_error *err)
{
	gr_model   *m = tr->model;
	const gr_ops *ops = m->ops;
	const gr_train_config *c = &tr->cfg;
	float		lr = c->lr;

	tr->t++;
	if (c->warmup_steps > 0 && tr->t <= c->warmup_steps)
		lr *= (float) tr->t / (float) c->warmup_steps;
	if (tr->lazy)
		gr_lazy_adamw(tr, lr);		/* renormalises the rows it updated */
	else
	{
		ops->adamw(ops->ctx, m->params, tr->grads, tr->adam_m, tr->adam_v, m->n_params, lr,
				   c->beta1, c->beta2, c->eps, c->weight_decay, tr->t);
		unit_item_rows(m);
	}
	return ops->check(ops->ctx, err);
}

/* Append user u's most recent training window. */
gr_status
gr_add_train_window(const gr_model *m, const gr_dataset *ds, int u, gr_tokens *tb,
					bool *added, gr_error *err)
{
	gr_seq_view seq = gr_dataset_user_seq(ds, u);
	int			end = gr_dataset_train_end(ds, u);
	int			start = GR_MAX(0, end - m->layout->window_len(m->cfg.max_len));
	int			rows_before = tb->n_item_rows + tb->n_act_rows;
	int			tokens_before = tb->n_tokens;

	*added = false;
	if (end - start < 1)
		return GR_OK;
	GR_TRY(m->layout->add_window(tb, &seq, start, end, false, err));
	if (tb->n_item_rows + tb->n_act_rows == rows_before)
	{
		/* no targets: drop the sequence again */
		tb->n_tokens = tokens_before;
		tb->n_seq--;
		return GR_OK;
	}
	*added = true;
	return GR_OK;
}

/*
 * Start the action head near the bias baseline (gr_baseline.c): each output bias at the
 * training mean (logit of the rate for binary) and, for continuous columns, the user offset
 * at W_u = [I, -diag(mean), 0, 0], the user's shrunk mean offset over the visible history
 * (the weight of the latest action starts at 0). The item bias starts at 0 and is learned
 * alongside the tied item embedding: preset to the baseline's item residuals it takes from
 * the first step the per-item signal the action loss otherwise teaches that embedding, which
 * retrieval shares (measured, test/quality/ml100k.sh at seed 42: INT NDCG@10 .0664 preset,
 * .0722 from 0; RMSE .2542 and .2572 against the baseline's .2612; bench/RESULTS.md).
 */
static gr_status
init_action_bias(gr_model *m, const gr_dataset *ds, gr_error *err)
{
	int			K = m->cfg.n_actions;
	float		bias[GR_MAX_ACTIONS];
	float		user_w[GR_MAX_ACTIONS * GR_USER_FEATURES * GR_MAX_ACTIONS] = {0};

	(void) err;
	if (!gr_layout_has_action_head(m->layout))
		return GR_OK;
	for (int k = 0; k < K; k++)
	{
		double		s = 0.0;
		size_t		n = 0;

		for (int u = 0; u < ds->n_users; u++)
			for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
			{
				float		y = ds->actions[(size_t) i * K + k];

				if (!isnan(y))
				{
					s += y;
					n++;
				}
			}
		double		mean = n > 0 ? s / n : 0.5;

		if (m->cfg.action_binary[k])
		{
			mean = fmin(fmax(mean, 1e-4), 1.0 - 1e-4);
			bias[k] = (float) log(mean / (1.0 - mean));
			continue;
		}
		bias[k] = (float) mean;
		user_w[k * GR_USER_FEATURES * K + k] = 1.0f;
		user_w[k * GR_USER_FEATURES * K + K + k] = (float) -mean;
	}
	m->ops->upload(m->ops->ctx, m->w.head_out_b, bias, sizeof(float) * K);
	if (m->w.head_user_w != NULL)
		m->ops->upload(m->ops->ctx, m->w.head_user_w, user_w, sizeof(float) * GR_USER_FEATURES * K * K);
	return GR_OK;
}

/* Shuffle users with a counter-based draw keyed by (seed, epoch). */
static void
shuffle_users(int *users, int n, uint64_t seed, int epoch)
{
	for (int i = n - 1; i > 0; i--)
	{
		gr_philox4	r = gr_rng_words(seed, GR_STREAM_SHUFFLE + (uint32_t) epoch, 0, (uint64_t) i);
		int			j = (int) (((uint64_t) r.v[0] * (uint64_t) (i + 1)) >> 32);
		int			t = users[i];

		users[i] = users[j];
		users[j] = t;
	}
}

/* State of one training run, released in one place. */
typedef struct train_run
{
	gr_model   *model;
	gr_trainer *trainer;
	gr_tokens	tb;
	int		   *users;
	float	   *best;
} train_run;

/* Release whatever a training run holds (the model too unless handed out). */
static void
train_run_free(const gr_env *env, train_run *r, bool keep_model)
{
	gr_trainer_free(r->trainer);
	gr_tokens_free(&r->tb);
	gr_free(env, r->users);
	gr_free(env, r->best);
	if (!keep_model)
		gr_model_free(r->model);
}

/* One epoch over all training users in shuffled batches. */
static gr_status
train_epoch(const gr_env *env, train_run *r, const gr_dataset *ds, int n_users, int epoch,
			gr_train_result *res, double *loss_sum, double *item_sum, double *act_sum,
			int *n_steps, gr_error *err)
{
	gr_trainer *tr = r->trainer;
	int			B = tr->cfg.batch_size;

	shuffle_users(r->users, n_users, tr->cfg.seed, epoch);
	for (int i = 0; i < n_users; i += B)
	{
		if (gr_should_stop(env))
			return gr_fail(err, GR_ERR_CANCELLED, "training cancelled");
		gr_tokens_reset(&r->tb);
		int64_t		inter = 0;

		for (int j = i; j < GR_MIN(n_users, i + B); j++)
		{
			bool		added;
			int			end = gr_dataset_train_end(ds, r->users[j]);

			GR_TRY(gr_add_train_window(r->model, ds, r->users[j], &r->tb, &added, err));
			if (added)
				inter += GR_MIN(end, r->model->layout->window_len(r->model->cfg.max_len));
		}
		if (r->tb.n_seq == 0)
			continue;
		gr_step_loss sl;

		GR_TRY(gr_trainer_compute(tr, &r->tb, (uint32_t) res->steps, &sl, err));
		GR_TRY(gr_trainer_apply(tr, err));
		res->steps++;
		if (env->step_done)
			env->step_done(env->callback_user, res->steps);
		res->train_tokens += r->tb.n_tokens;
		res->train_interactions += inter;
		*loss_sum += sl.total;
		*item_sum += sl.item;
		for (int k = 0; k < r->model->cfg.n_actions; k++)
			*act_sum += sl.action[k];
		(*n_steps)++;
	}
	return GR_OK;
}

/* Add to a byte total, saturating at SIZE_MAX. */
static size_t
add_bytes(size_t a, size_t b)
{
	size_t		sum;

	return __builtin_add_overflow(a, b, &sum) ? SIZE_MAX : sum;
}

/* Multiply byte counts, saturating at SIZE_MAX. */
static size_t
mul_bytes(size_t a, size_t b)
{
	size_t		product;

	return gr_mul_size(a, b, &product) ? product : SIZE_MAX;
}

/* What gr_train allocates for a configuration and dataset sizes (see gr_train.h). */
gr_status
gr_train_memory_estimate(const gr_model_config *mcfg_in, const gr_train_config *tcfg,
						 const gr_train_sizes *sizes, gr_train_memory *out, gr_error *err)
{
	gr_model_config mcfg = *mcfg_in;
	gr_eval_options eopt;
	const gr_layout *layout;
	size_t		params,
				param_bytes,
				tensors,
				users = (size_t) GR_MAX(sizes->n_users, 0);

	memset(out, 0, sizeof(*out));
	if (sizes->n_items < 1 || sizes->n_items > INT32_MAX)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "a catalogue of %lld items",
					   (long long) sizes->n_items);
	mcfg.n_items = (int) sizes->n_items;
	GR_TRY(gr_model_config_validate(&mcfg, err));
	GR_TRY(gr_train_config_validate(tcfg, err));
	GR_TRY(check_negative_draws(&mcfg, tcfg->batch_size, err));
	layout = gr_layout_by_id(mcfg.layout);

	int			B = tcfg->batch_size;
	int			cap_tokens = B * layout->positions(mcfg.max_len);

	params = gr_model_config_param_count(&mcfg);
	param_bytes = mul_bytes(params, sizeof(float));
	tensors = gr_model_config_tensor_floats(&mcfg);
	/* the model: struct, tensor table (at most 14 + 24 per layer), item ids, weights; and the
	 * best-epoch copy of the weights */
	out->parameters = add_bytes(sizeof(gr_model) +
								sizeof(gr_tensor) * (14 + (size_t) GR_MAX_LAYER_TENSORS *
													 (size_t) mcfg.n_layer) +
								sizeof(int64_t) * ((size_t) mcfg.n_items + 1),
								mul_bytes(param_bytes, 2));
	out->gradients = param_bytes;
	out->optimiser = add_bytes(mul_bytes(param_bytes, 2), sizeof(gr_trainer));
	if (mcfg.item_loss != GR_LOSS_FULL)
		out->optimiser = add_bytes(out->optimiser, mul_bytes((size_t) mcfg.n_items,
															 sizeof(double)));
	out->optimiser = add_bytes(out->optimiser, gr_lazy_bytes(&mcfg, tcfg, cap_tokens, B));
	out->activations = add_bytes(gr_acts_bytes(&mcfg, cap_tokens, B, cap_tokens, 0, true),
								 gr_tokens_bytes(mcfg.n_actions, cap_tokens, B, cap_tokens));
	gr_eval_options_default(&eopt);
	out->evaluation = gr_eval_bytes(&mcfg, sizes->n_users, sizes->max_user_len, &eopt);
	out->dataset = add_bytes(gr_dataset_bytes(sizes->n_interactions, sizes->n_users,
											  sizes->n_items, mcfg.n_actions),
							 mul_bytes(users, sizeof(int)));
	out->total = add_bytes(add_bytes(add_bytes(out->parameters, out->gradients),
									 add_bytes(out->optimiser, out->activations)),
						   add_bytes(out->evaluation, out->dataset));
	out->weights_file = add_bytes(mul_bytes(tensors, sizeof(float)),
								  mul_bytes((size_t) mcfg.n_items, sizeof(int64_t)));
	return GR_OK;
}

/*
 * The validation score the best epoch maximises (and patience counts against):
 *   log NDCG@10 - mean over action columns of log(RMSE) (continuous) or log(log loss)
 * over the heads the layout has. Each head's term is scale-free, so a 1% better NDCG@10 is
 * worth a 1% worse action error: an item-only layout orders epochs by NDCG@10 as before, an
 * actions-only one (l4, l5, l7) by its action error, and a layout with both heads keeps one
 * consistent snapshot (the trunk is shared, so an action head from one epoch cannot be paired
 * with the item head and trunk of another) that is good for both. Choosing on NDCG@10 alone
 * stopped runs whose action head was still improving and kept epochs whose action head was
 * worse than the bias baseline (issue 9).
 */
static double
valid_score(const gr_model *m, const gr_metrics *vm)
{
	double		sum = 0.0, score = 0.0;
	int			n = 0;

	if (gr_layout_has_item_head(m->layout))
		score = log(fmax(vm->ndcg[0], 1e-12));
	if (!gr_layout_has_action_head(m->layout))
		return score;
	for (int k = 0; k < m->cfg.n_actions; k++)
	{
		double		v = m->cfg.action_binary[k] ? vm->logloss[k] : vm->rmse[k];

		if (!isnan(v))
		{
			sum += log(fmax(v, 1e-12));
			n++;
		}
	}
	if (n > 0)
		return score - sum / n;
	return gr_layout_has_item_head(m->layout) ? score : NAN;
}

/* The whole protocol: epochs, validation, early stopping, best weights, test metrics. */
gr_status
gr_train(const gr_env *env, const gr_model_config *mcfg_in, const gr_train_config *tcfg,
		 const gr_dataset *ds, gr_model **out, gr_train_result *res, gr_error *err)
{
	gr_model_config mcfg = *mcfg_in;
	train_run	r;
	gr_status	st;
	gr_eval_options eopt;
	double		best_score = -INFINITY;
	int			n_users = 0, since_best = 0;

	*out = NULL;
	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	GR_TRY(gr_train_config_validate(tcfg, err));
	if (tcfg->n_task_weights > 0 && tcfg->n_task_weights != ds->n_actions)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "%d task weights for %d action columns",
					   tcfg->n_task_weights, ds->n_actions);
	mcfg.n_items = ds->n_items;
	mcfg.n_actions = ds->n_actions;
	for (int k = 0; k < ds->n_actions; k++)
	{
		mcfg.action_min[k] = ds->action_min[k];
		mcfg.action_max[k] = ds->action_max[k];
		mcfg.action_binary[k] = ds->action_binary[k];
	}
	if (env->n_threads > 0 && (env->ops == NULL || env->ops->device == GR_DEVICE_CPU))
		gr_ops_cpu_set_threads(env->n_threads);
	GR_TRY(gr_model_create(env, &mcfg, ds->item_ids + 1, &r.model, err));
	gr_model   *m = r.model;
	int			B = tcfg->batch_size;
	int			cap_tokens = B * m->n_positions;

	if ((st = gr_model_init_params(m, tcfg->seed, err)) != GR_OK)
		goto fail;
	if ((st = init_action_bias(m, ds, err)) != GR_OK)
		goto fail;
	if ((st = gr_trainer_create(m, tcfg, cap_tokens, B, &r.trainer, err)) != GR_OK ||
		(st = gr_trainer_count_items(r.trainer, ds, err)) != GR_OK ||
		(st = gr_tokens_init(&r.tb, env, mcfg.n_actions, mcfg.n_buckets, cap_tokens, B,
							 cap_tokens, err)) != GR_OK)
		goto fail;
	r.users = gr_alloc(env, sizeof(int) * (size_t) ds->n_users);
	r.best = gr_alloc(env, sizeof(float) * m->n_params);
	if (!r.users || !r.best)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for training state");
		goto fail;
	}
	for (int u = 0; u < ds->n_users; u++)
		if (gr_dataset_train_end(ds, u) >= 2 || (gr_layout_has_action_head(m->layout) && gr_dataset_train_end(ds, u) >= 1))
			r.users[n_users++] = u;
	if (n_users == 0)
	{
		st = gr_fail(err, GR_ERR_NO_DATA, "no user has enough interactions to train on");
		goto fail;
	}
	gr_model_download_params(m, r.best);
	gr_eval_options_default(&eopt);
	eopt.max_users = tcfg->eval_max_users;
	eopt.baseline = false;

	for (int epoch = 1; epoch <= tcfg->epochs; epoch++)
	{
		double		t0 = now_seconds(), loss = 0, item = 0, act = 0;
		int			steps = 0;
		gr_metrics	vm;

		if ((st = train_epoch(env, &r, ds, n_users, epoch, res, &loss, &item, &act, &steps, err)) != GR_OK)
			goto fail;
		double		t1 = now_seconds();

		res->train_seconds += t1 - t0;
		if ((st = gr_evaluate(m, ds, GR_SPLIT_VALID, &eopt, &vm, err)) != GR_OK)
			goto fail;
		res->eval_seconds += now_seconds() - t1;
		res->epochs_run = epoch;
		res->final_train_loss = steps > 0 ? loss / steps : NAN;

		double		score = valid_score(m, &vm);
		bool		improved = score > best_score;

		if (improved)
		{
			best_score = score;
			res->best_epoch = epoch;
			res->valid = vm;
			since_best = 0;
			gr_model_download_params(m, r.best);
		}
		else
			since_best++;
		if (env->progress)
		{
			gr_progress p = {
				.epoch = epoch,.epochs = tcfg->epochs,.step = res->steps,
				.train_loss = res->final_train_loss,
				.train_item_loss = steps > 0 ? item / steps : NAN,
				.train_action_loss = steps > 0 ? act / steps : NAN,
				.valid_hr10 = vm.hr[0],.valid_ndcg10 = vm.ndcg[0],
				.valid_rmse = mcfg.n_actions > 0 && gr_layout_has_action_head(m->layout) ? vm.rmse[0] : NAN,
				.valid_action = mcfg.n_actions > 0 && gr_layout_has_action_head(m->layout) ?
				(mcfg.action_binary[0] ? vm.logloss[0] : vm.rmse[0]) : NAN,
				.valid_action_logloss = mcfg.n_actions > 0 && mcfg.action_binary[0],
				.seconds = t1 - t0,.improved = improved,
			};

			env->progress(env->callback_user, &p);
		}
		if (since_best >= tcfg->patience)
			break;
	}
	gr_model_upload_params(m, r.best);
	eopt.max_users = 0;
	eopt.baseline = true;
	if ((st = gr_evaluate(m, ds, GR_SPLIT_TEST, &eopt, &res->test, err)) != GR_OK)
		goto fail;
	if ((st = m->ops->check(m->ops->ctx, err)) != GR_OK)
		goto fail;
	train_run_free(env, &r, true);
	*out = m;
	return GR_OK;
fail:
	train_run_free(env, &r, false);
	return st;
}
