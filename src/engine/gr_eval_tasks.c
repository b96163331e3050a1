/*
 * gr_eval_tasks.c — per-task metrics of binary action columns beside gr_eval.c: the training
 * split's base rate (NE divides the log loss by its entropy, the standard definition of
 * normalised entropy: a model no better than predicting the training rate scores 1) and the
 * ROC AUC of the predicted probabilities (the Mann-Whitney statistic, ties counted half),
 * sorted with the engine's polling sort.
 */
#include "gr_eval.h"
#include "gr_sort.h"

#include <math.h>

/* Order (score, label) pairs by score. */
static inline bool
pair_less(const void *ctx, const gr_auc_pair *a, const gr_auc_pair *b)
{
	(void) ctx;
	return a->score < b->score;
}

GR_DEFINE_SORT(sort_pairs, gr_auc_pair, pair_less)

/* Positive rate of action column k over the training split (NaN without targets). */
double
gr_train_base_rate(const gr_dataset *ds, int k)
{
	int			K = ds->n_actions;
	double		pos = 0.0,
				n = 0.0;

	if (k < 0 || k >= K)
		return NAN;
	for (int u = 0; u < ds->n_users; u++)
		for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + gr_dataset_train_end(ds, u); i++)
		{
			float		y = ds->actions[(size_t) i * K + k];

			if (!isnan(y))
			{
				pos += y;
				n += 1.0;
			}
		}
	return n > 0 ? pos / n : NAN;
}

/* Entropy (nats) of a Bernoulli rate; NaN at 0, 1 or NaN. */
double
gr_bernoulli_entropy(double p)
{
	if (!(p > 0.0 && p < 1.0))
		return NAN;
	return -(p * log(p) + (1.0 - p) * log(1.0 - p));
}

/* ROC AUC of n pairs (sorted in place); NaN with one class only, or when cancelled. */
double
gr_metric_auc(gr_auc_pair *pairs, size_t n, const gr_env *env)
{
	double		pos = 0.0,
				rank_sum = 0.0;

	if (!sort_pairs(pairs, n, NULL, env))
		return NAN;
	for (size_t i = 0; i < n;)
	{
		size_t		j = i;
		double		npos = 0.0;

		while (j < n && pairs[j].score == pairs[i].score)
			npos += pairs[j++].label > 0.5f;
		/* 1-based ranks i+1 .. j share their average */
		rank_sum += npos * ((double) (i + 1) + (double) j) / 2.0;
		pos += npos;
		i = j;
	}
	double		neg = (double) n - pos;

	if (pos == 0.0 || neg == 0.0)
		return NAN;
	return (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg);
}
