/*
 * gr_baseline.c — the bias baseline for action columns: global mean + user bias + item bias,
 * fitted on the training split with the usual shrinkage (Koren 2008: 25 for items, 10 for
 * users). PROTOCOL.md asks for it beside every action RMSE. And the popularity baseline for
 * ranking, the floor any sequential model must clear.
 */
#include "gr_eval.h"
#include "gr_sort.h"

#include <math.h>
#include <stdlib.h>

#define ITEM_SHRINK 25.0
#define USER_SHRINK 10.0

/* RMSE of mu + b_u + b_i on the split's targets of action column k. */
double
gr_bias_baseline_rmse(const gr_dataset *ds, gr_split split, int k)
{
	const gr_env *env = ds->env;
	int			K = ds->n_actions;
	double	   *item_sum = gr_calloc(env, (size_t) ds->n_items + 1, sizeof(double));
	double	   *item_n = gr_calloc(env, (size_t) ds->n_items + 1, sizeof(double));
	double		mu = 0.0, n_all = 0.0, sq = 0.0;
	int			n_eval = 0;

	if (item_sum == NULL || item_n == NULL || k < 0 || k >= K)
	{
		gr_free(env, item_sum);
		gr_free(env, item_n);
		return NAN;
	}
	for (int u = 0; u < ds->n_users; u++)
		for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
		{
			float		y = ds->actions[(size_t) i * K + k];

			if (!isnan(y))
			{
				mu += y;
				n_all += 1.0;
			}
		}
	mu = n_all > 0 ? mu / n_all : 0.5;
	for (int u = 0; u < ds->n_users; u++)
		for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
		{
			float		y = ds->actions[(size_t) i * K + k];

			if (!isnan(y))
			{
				item_sum[ds->items[i]] += y - mu;
				item_n[ds->items[i]] += 1.0;
			}
		}
	for (int v = 0; v <= ds->n_items; v++)
		item_sum[v] /= ITEM_SHRINK + item_n[v];	/* now the item bias */
	for (int u = 0; u < ds->n_users; u++)
	{
		int			t = gr_dataset_target(ds, u, split);

		if (t < 0)
			continue;
		double		bu = 0.0, nu = 0.0;

		for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
		{
			float		y = ds->actions[(size_t) i * K + k];

			if (!isnan(y))
			{
				bu += y - mu - item_sum[ds->items[i]];
				nu += 1.0;
			}
		}
		bu /= USER_SHRINK + nu;
		size_t		ti = (size_t) ds->offsets[u] + t;
		float		y = ds->actions[ti * K + k];

		if (isnan(y))
			continue;
		double		p = fmin(1.0, fmax(0.0, mu + bu + item_sum[ds->items[ti]]));

		sq += (p - y) * (p - y);
		n_eval++;
	}
	gr_free(env, item_sum);
	gr_free(env, item_n);
	return n_eval > 0 ? sqrt(sq / n_eval) : NAN;
}

/* Whether item a ranks before item b: by training count (descending), then id (ascending). */
static inline bool
popularity_less(const void *ctx, const int32_t *a, const int32_t *b)
{
	const int64_t *count = ctx;

	if (count[*a] != count[*b])
		return count[*a] > count[*b];
	return *a < *b;
}

GR_DEFINE_SORT(sort_by_popularity, int32_t, popularity_less)

/* Popularity ranking metrics: rank = 1 + unseen items more popular than the target. */
gr_status
gr_popularity_metrics(const gr_dataset *ds, gr_split split, gr_metrics *out, gr_error *err)
{
	const gr_env *env = ds->env;
	int			V = ds->n_items;
	int64_t    *count = gr_calloc(env, (size_t) V + 1, sizeof(int64_t));
	int32_t    *by_rank = gr_alloc(env, sizeof(int32_t) * ((size_t) V + 1));
	int32_t    *position = gr_alloc(env, sizeof(int32_t) * ((size_t) V + 1));
	uint8_t    *seen = gr_calloc(env, (size_t) V + 1, 1);
	gr_status	st = GR_OK;
	int			n = 0;

	for (int j = 0; j < out->n_ks; j++)
		out->pop_hr[j] = out->pop_ndcg[j] = 0.0;
	if (!count || !by_rank || !position || !seen)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the popularity baseline");
		goto done;
	}
	for (int u = 0; u < ds->n_users; u++)
		for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
			count[ds->items[i]]++;
	for (int v = 1; v <= V; v++)
		by_rank[v - 1] = v;
	if (!sort_by_popularity(by_rank, (size_t) V, count, env))
	{
		st = gr_fail(err, GR_ERR_CANCELLED, "evaluation cancelled");
		goto done;
	}
	for (int r = 0; r < V; r++)
		position[by_rank[r]] = r;
	for (int u = 0; u < ds->n_users; u++)
	{
		int			t = gr_dataset_target(ds, u, split);
		const int32_t *items = ds->items + ds->offsets[u];

		if (t < 0 || items[t] <= 0)
			continue;
		int32_t		target = items[t];
		int			above = 0;

		/* seen items ranked above the target do not count */
		for (int i = 0; i < t; i++)
			if (items[i] > 0 && items[i] != target && !seen[items[i]])
			{
				seen[items[i]] = 1;
				above += position[items[i]] < position[target];
			}
		for (int i = 0; i < t; i++)
			if (items[i] > 0)
				seen[items[i]] = 0;
		int			rank = 1 + position[target] - above;

		for (int j = 0; j < out->n_ks; j++)
		{
			out->pop_hr[j] += gr_metric_hr(rank, out->ks[j]);
			out->pop_ndcg[j] += gr_metric_ndcg(rank, out->ks[j]);
		}
		n++;
	}
	for (int j = 0; j < out->n_ks; j++)
	{
		out->pop_hr[j] = n > 0 ? out->pop_hr[j] / n : NAN;
		out->pop_ndcg[j] = n > 0 ? out->pop_ndcg[j] / n : NAN;
	}
done:
	gr_free(env, count);
	gr_free(env, by_rank);
	gr_free(env, position);
	gr_free(env, seen);
	return st;
}
