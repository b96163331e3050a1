/*
 * gr_baseline.c — the bias baseline for action columns: global mean + user bias + item bias,
 * fitted on the training split with the usual shrinkage (Koren 2008: 25 for items, 10 for
 * users). PROTOCOL.md asks for it beside every action RMSE.
 */
#include "gr_eval.h"

#include <math.h>

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
