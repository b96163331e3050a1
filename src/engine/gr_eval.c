/*
 * gr_eval.c — leave-one-out evaluation over a dataset split (see gr_eval.h).
 */
#include "gr_eval.h"
#include "gr_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Protocol defaults: K in {10, 50}, 128 users per batch, all users, baseline on. */
void
gr_eval_options_default(gr_eval_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->n_ks = 2;
	opt->ks[0] = 10;
	opt->ks[1] = 50;
	opt->batch_users = 128;
	opt->max_users = 0;
	opt->baseline = true;
}

/* HR@K of one rank. */
double
gr_metric_hr(int rank, int k)
{
	return (rank >= 1 && rank <= k) ? 1.0 : 0.0;
}

/* NDCG@K of one rank (one relevant item). */
double
gr_metric_ndcg(int rank, int k)
{
	return (rank >= 1 && rank <= k) ? 1.0 / log2((double) rank + 1.0) : 0.0;
}

/* Reciprocal rank. */
double
gr_metric_mrr(int rank)
{
	return rank >= 1 ? 1.0 / (double) rank : 0.0;
}

/* Order int32 ascending. */
static int
cmp_i32(const void *pa, const void *pb)
{
	int32_t		a = *(const int32_t *) pa, b = *(const int32_t *) pb;

	return a < b ? -1 : (a > b);
}

/* Append the sorted distinct columns of items[0..t) (excluding the target's) to excl. */
static int
build_exclusions(const gr_seq_view *seq, int t, int32_t *excl)
{
	int			n = 0;
	int32_t		target_col = seq->items[t] - 1;

	for (int i = 0; i < t; i++)
		if (seq->items[i] > 0 && seq->items[i] - 1 != target_col)
			excl[n++] = seq->items[i] - 1;
	qsort(excl, n, sizeof(int32_t), cmp_i32);
	int			m = 0;

	for (int i = 0; i < n; i++)
		if (m == 0 || excl[i] != excl[m - 1])
			excl[m++] = excl[i];
	return m;
}

/* Per-batch host state of an evaluation. */
typedef struct eval_state
{
	gr_tokens	tb;
	gr_acts    *acts;
	int32_t    *excl_off;		/* host [batch + 1] */
	int32_t    *excl;			/* host [batch * max_user_len] */
	int32_t    *rank_all, *rank_excl;	/* host [batch] */
	int32_t    *dev_rank;		/* backend [2 * batch] */
	float	   *pred;			/* host [batch * K] */
} eval_state;

/* Release an evaluation's buffers. */
static void
eval_state_free(const gr_model *m, eval_state *s)
{
	gr_tokens_free(&s->tb);
	gr_acts_free(s->acts);
	gr_free(m->env, s->excl_off);
	gr_free(m->env, s->excl);
	gr_free(m->env, s->rank_all);
	gr_free(m->env, s->rank_excl);
	gr_free(m->env, s->pred);
	if (s->dev_rank)
		m->ops->free(m->ops->ctx, s->dev_rank);
}

/* Accumulators of one evaluation. */
typedef struct eval_sums
{
	double		hr[GR_MAX_KS], ndcg[GR_MAX_KS], mrr;
	double		hr_all[GR_MAX_KS], ndcg_all[GR_MAX_KS], mrr_all;
	int			n_ranked;
	double		sq[GR_MAX_ACTIONS], ll[GR_MAX_ACTIONS], pos[GR_MAX_ACTIONS];
	int			n_act[GR_MAX_ACTIONS];
	gr_auc_pair *pairs;			/* [n_users * K]: binary column k's pairs at k * n_users */
	int			n_users;
} eval_sums;

/* Run one batch of users through the model and accumulate metrics. */
static gr_status
eval_batch(const gr_model *m, const gr_dataset *ds, eval_state *s, const int *users,
		   const int *targets, int n, const gr_eval_options *opt, eval_sums *acc, gr_error *err)
{
	const gr_ops *ops = m->ops;
	gr_acts    *a = s->acts;
	int			W = m->layout->window_len(m->cfg.max_len);
	int			V = m->cfg.n_items, K = m->cfg.n_actions;

	gr_tokens_reset(&s->tb);
	s->excl_off[0] = 0;
	for (int i = 0; i < n; i++)
	{
		gr_seq_view seq = gr_dataset_user_seq(ds, users[i]);
		int			t = targets[i];
		int			before = s->tb.n_item_rows;

		GR_TRY(m->layout->add_window(&s->tb, &seq, GR_MAX(0, t + 1 - W), t + 1, true, err));
		/* one exclusion list per item row of this window (at most one) */
		for (int r = before; r < s->tb.n_item_rows; r++)
			s->excl_off[r + 1] = s->excl_off[r] +
				build_exclusions(&seq, t, s->excl + s->excl_off[r]);
	}
	GR_TRY(gr_model_forward(m, a, &s->tb, NULL, err));

	int			R = s->tb.n_item_rows;

	if (R > 0)
	{
		ops->upload(ops->ctx, a->excl_off, s->excl_off, sizeof(int32_t) * (R + 1));
		ops->upload(ops->ctx, a->excl, s->excl, sizeof(int32_t) * (size_t) s->excl_off[R]);
		for (int r0 = 0; r0 < R; r0 += a->logit_rows)
		{
			int			c = GR_MIN(a->logit_rows, R - r0);

			gr_model_item_logits(m, a, r0, c);
			ops->rank_targets(ops->ctx, a->logits, V, a->item_row_col + r0, a->excl_off + r0,
							  a->excl, c, V, s->dev_rank + r0, s->dev_rank + s->acts->cap_rows + r0);
		}
		ops->download(ops->ctx, s->rank_all, s->dev_rank, sizeof(int32_t) * R);
		ops->download(ops->ctx, s->rank_excl, s->dev_rank + s->acts->cap_rows,
					  sizeof(int32_t) * R);
		for (int r = 0; r < R; r++)
		{
			if (s->tb.item_row_target[r] <= 0)
				continue;		/* target item unknown to the model: not rankable */
			for (int j = 0; j < opt->n_ks; j++)
			{
				acc->hr[j] += gr_metric_hr(s->rank_excl[r], opt->ks[j]);
				acc->ndcg[j] += gr_metric_ndcg(s->rank_excl[r], opt->ks[j]);
				acc->hr_all[j] += gr_metric_hr(s->rank_all[r], opt->ks[j]);
				acc->ndcg_all[j] += gr_metric_ndcg(s->rank_all[r], opt->ks[j]);
			}
			acc->mrr += gr_metric_mrr(s->rank_excl[r]);
			acc->mrr_all += gr_metric_mrr(s->rank_all[r]);
			acc->n_ranked++;
		}
	}
	if (gr_layout_has_action_head(m->layout) && s->tb.n_act_rows > 0)
	{
		int			A = s->tb.n_act_rows;

		ops->download(ops->ctx, s->pred, a->act_pred, sizeof(float) * (size_t) A * K);
		for (int r = 0; r < A; r++)
			for (int k = 0; k < K; k++)
			{
				float		y = s->tb.act_row_target[(size_t) r * K + k];
				float		z = s->pred[(size_t) r * K + k];

				if (isnan(y))
					continue;
				acc->n_act[k]++;
				if (m->cfg.action_binary[k])
				{
					double		p = 1.0 / (1.0 + exp(-(double) z));

					p = fmin(fmax(p, 1e-7), 1.0 - 1e-7);
					acc->ll[k] -= y * log(p) + (1.0 - y) * log(1.0 - p);
					acc->pos[k] += y;
					if (acc->pairs && acc->n_act[k] <= acc->n_users)
						acc->pairs[(size_t) k * acc->n_users + acc->n_act[k] - 1] =
							(gr_auc_pair) {.score = (float) p,.label = y};
				}
				else
					acc->sq[k] += ((double) z - y) * ((double) z - y);
			}
	}
	return ops->check(ops->ctx, err);
}

/*
 * Users per evaluation batch and the batch's exclusion capacity: a user's exclusion list holds
 * its distinct earlier items, at most min(max_user_len, V), and a batch's lists are indexed by
 * int32 offsets, so very long histories shrink the batch instead of overflowing them.
 */
static int
eval_batch_users(int batch_users, int64_t max_user_len, int n_items, int *cap_excl)
{
	int64_t		per_user = GR_MAX(GR_MIN(max_user_len, (int64_t) n_items), (int64_t) 1);
	int64_t		b = GR_MIN((int64_t) batch_users,
						   GR_MAX((int64_t) 1, (int64_t) (INT32_MAX - 1) / per_user));

	*cap_excl = (int) (b * per_user);
	return (int) b;
}

/* Whether a configuration has a binary action column (AUC pairs are kept for those). */
static bool
any_binary(const gr_model_config *cfg)
{
	for (int k = 0; k < cfg->n_actions; k++)
		if (cfg->action_binary[k])
			return true;
	return false;
}

/* Peak bytes of gr_evaluate for a configuration and dataset sizes, baselines included. */
size_t
gr_eval_bytes(const gr_model_config *cfg, int64_t n_users, int64_t max_user_len,
			  const gr_eval_options *opt_in)
{
	gr_eval_options opt;
	const gr_layout *layout = gr_layout_by_id(cfg->layout);
	int			cap_excl,
				B,
				K = cfg->n_actions;
	size_t		v1 = (size_t) cfg->n_items + 1,
				bytes,
				baseline;

	if (opt_in)
		opt = *opt_in;
	else
		gr_eval_options_default(&opt);
	if (layout == NULL || opt.batch_users < 1)
		return 0;
	B = eval_batch_users(opt.batch_users, max_user_len, cfg->n_items, &cap_excl);

	int			cap_tokens = B * layout->positions(cfg->max_len);

	bytes = 2 * sizeof(int) * (size_t) GR_MAX(n_users, 0) +
		gr_tokens_bytes(K, cap_tokens, B, B) +
		gr_acts_bytes(cfg, cap_tokens, B, B, cap_excl, false) +
		sizeof(int32_t) * ((size_t) B + 1 + (size_t) cap_excl + 1 + 2 * (size_t) B) +
		sizeof(float) * (size_t) B * (size_t) (K > 0 ? K : 1) + sizeof(int32_t) * 2 * (size_t) B +
		(any_binary(cfg) ? sizeof(gr_auc_pair) * (size_t) GR_MAX(n_users, 0) * (size_t) K : 0);
	/* popularity: counts, ranks, positions, seen flags; the bias baseline: two sums per item */
	baseline = opt.baseline ? GR_MAX(v1 * (sizeof(int64_t) + 2 * sizeof(int32_t) + 1),
									 K > 0 ? 2 * v1 * sizeof(double) : 0) : 0;
	return bytes + baseline;
}

/* Evaluate a split: rank every target against the full catalogue and score its actions. */
gr_status
gr_evaluate(const gr_model *m, const gr_dataset *ds, gr_split split,
			const gr_eval_options *opt_in, gr_metrics *out, gr_error *err)
{
	gr_eval_options opt;
	eval_state	s;
	eval_sums	acc;
	gr_status	st = GR_OK;
	int		   *users = NULL, *targets = NULL;
	int			n = 0, K = m->cfg.n_actions;

	if (opt_in)
		opt = *opt_in;
	else
		gr_eval_options_default(&opt);
	if (opt.n_ks < 1 || opt.n_ks > GR_MAX_KS || opt.batch_users < 1)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "invalid evaluation options");
	if (ds->n_items != m->cfg.n_items || ds->n_actions != K)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "dataset (%d items, %d actions) is not in the model's space (%d, %d)",
					   ds->n_items, ds->n_actions, m->cfg.n_items, K);
	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	memset(&acc, 0, sizeof(acc));
	out->n_ks = opt.n_ks;
	memcpy(out->ks, opt.ks, sizeof(opt.ks));

	users = gr_alloc(m->env, sizeof(int) * (size_t) ds->n_users);
	targets = gr_alloc(m->env, sizeof(int) * (size_t) ds->n_users);
	if (!users || !targets)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory listing evaluation users");
		goto done;
	}
	for (int u = 0; u < ds->n_users; u++)
	{
		int			t = gr_dataset_target(ds, u, split);

		if (t < 0 || (opt.max_users > 0 && n >= opt.max_users))
			continue;
		users[n] = u;
		targets[n++] = t;
	}

	int			cap_excl;
	int			B = eval_batch_users(opt.batch_users, ds->max_user_len, m->cfg.n_items, &cap_excl);
	int			cap_tokens = B * m->n_positions;

	if ((st = gr_tokens_init(&s.tb, m->env, K, m->cfg.n_buckets, cap_tokens, B, B, err)) != GR_OK ||
		(st = gr_acts_create(m, cap_tokens, B, B, cap_excl, false, &s.acts, err)) != GR_OK)
		goto done;
	s.excl_off = gr_alloc(m->env, sizeof(int32_t) * (B + 1));
	s.excl = gr_alloc(m->env, sizeof(int32_t) * ((size_t) cap_excl + 1));
	s.rank_all = gr_alloc(m->env, sizeof(int32_t) * B);
	s.rank_excl = gr_alloc(m->env, sizeof(int32_t) * B);
	s.pred = gr_alloc(m->env, sizeof(float) * B * (K > 0 ? K : 1));
	s.dev_rank = m->ops->alloc(m->ops->ctx, sizeof(int32_t) * 2 * B);
	acc.n_users = n;
	if (any_binary(&m->cfg) && gr_layout_has_action_head(m->layout) &&
		(acc.pairs = gr_alloc(m->env, sizeof(gr_auc_pair) * (size_t) GR_MAX(n, 1) * K)) == NULL)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for AUC pairs");
		goto done;
	}
	if (!s.excl_off || !s.excl || !s.rank_all || !s.rank_excl || !s.pred || !s.dev_rank)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for evaluation buffers");
		goto done;
	}
	for (int i = 0; i < n; i += B)
	{
		if (gr_should_stop(m->env))
		{
			st = gr_fail(err, GR_ERR_CANCELLED, "evaluation cancelled");
			goto done;
		}
		if ((st = eval_batch(m, ds, &s, users + i, targets + i, GR_MIN(B, n - i), &opt, &acc,
							 err)) != GR_OK)
			goto done;
	}

	out->n_users = n;
	out->has_ranking = acc.n_ranked > 0;
	for (int j = 0; j < opt.n_ks; j++)
	{
		double		c = acc.n_ranked > 0 ? acc.n_ranked : NAN;

		out->hr[j] = acc.hr[j] / c;
		out->ndcg[j] = acc.ndcg[j] / c;
		out->hr_all[j] = acc.hr_all[j] / c;
		out->ndcg_all[j] = acc.ndcg_all[j] / c;
	}
	out->mrr = acc.n_ranked > 0 ? acc.mrr / acc.n_ranked : NAN;
	out->mrr_all = acc.n_ranked > 0 ? acc.mrr_all / acc.n_ranked : NAN;
	for (int j = 0; j < opt.n_ks; j++)
		out->pop_hr[j] = out->pop_ndcg[j] = NAN;
	if (opt.baseline && (st = gr_popularity_metrics(ds, split, out, err)) != GR_OK)
		goto done;
	for (int k = 0; k < GR_MAX_ACTIONS; k++)
	{
		out->rmse[k] = out->logloss[k] = out->ne[k] = out->auc[k] = out->baseline_rmse[k] = NAN;
		if (k >= K)
			continue;
		out->n_action_targets[k] = acc.n_act[k];
		if (acc.n_act[k] == 0)
			continue;
		if (m->cfg.action_binary[k])
		{
			double		h = gr_bernoulli_entropy(gr_train_base_rate(ds, k));

			out->logloss[k] = acc.ll[k] / acc.n_act[k];
			out->ne[k] = out->logloss[k] / h;
			if (acc.pairs)
			{
				out->auc[k] = gr_metric_auc(acc.pairs + (size_t) k * n,
											(size_t) GR_MIN(acc.n_act[k], n), m->env);
				if (gr_should_stop(m->env))
				{
					st = gr_fail(err, GR_ERR_CANCELLED, "evaluation cancelled");
					goto done;
				}
			}
		}
		else
		{
			out->rmse[k] = sqrt(acc.sq[k] / acc.n_act[k]);
			if (opt.baseline)
				out->baseline_rmse[k] = gr_bias_baseline_rmse(ds, split, k);
		}
	}
done:
	gr_free(m->env, acc.pairs);
	eval_state_free(m, &s);
	gr_free(m->env, users);
	gr_free(m->env, targets);
	return st;
}
