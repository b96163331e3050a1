/*
 * gr_eval.h — the evaluation protocol (PROTOCOL.md): leave-one-out targets, full-catalogue
 * ranking with and without the user's earlier items excluded, HR@K, NDCG@K, MRR, and per
 * action column RMSE (continuous, on the normalised [0, 1] scale) or log loss, normalised
 * entropy (log loss / entropy of the training base rate) and ROC AUC (binary), next to a
 * bias baseline (global mean + user bias + item bias).
 */
#ifndef GR_EVAL_H
#define GR_EVAL_H

#include "gr_dataset.h"
#include "gr_model.h"

#define GR_MAX_KS 8

typedef struct gr_metrics
{
	int			n_users;		/* users with a target in the split */
	int			n_ks;
	int			ks[GR_MAX_KS];
	/* seen items excluded (the headline numbers) */
	double		hr[GR_MAX_KS];
	double		ndcg[GR_MAX_KS];
	double		mrr;
	/* nothing excluded */
	double		hr_all[GR_MAX_KS];
	double		ndcg_all[GR_MAX_KS];
	double		mrr_all;
	bool		has_ranking;	/* the layout retrieves */
	/* actions (NaN where the layout predicts no action or the column has no targets) */
	int			n_action_targets[GR_MAX_ACTIONS];
	double		rmse[GR_MAX_ACTIONS];	/* continuous columns */
	double		logloss[GR_MAX_ACTIONS];	/* binary columns */
	double		ne[GR_MAX_ACTIONS]; /* binary: log loss / entropy of the training
									 * split's base rate */
	double		auc[GR_MAX_ACTIONS];	/* binary: ROC AUC of the predicted probability */
	double		baseline_rmse[GR_MAX_ACTIONS];	/* bias baseline, continuous columns */
	/* popularity baseline: items ranked by training-split count, seen items excluded */
	double		pop_hr[GR_MAX_KS];
	double		pop_ndcg[GR_MAX_KS];
} gr_metrics;

typedef struct gr_eval_options
{
	int			n_ks;
	int			ks[GR_MAX_KS];	/* default {10, 50} */
	int			batch_users;	/* default 128 */
	int			max_users;		/* 0 = all users with a target */
	bool		baseline;		/* compute the bias baseline for action columns */
} gr_eval_options;

/* Fill options with the protocol defaults. */
void		gr_eval_options_default(gr_eval_options *opt);

/* Evaluate a model on a split of a dataset built in the model's item and action space. */
gr_status	gr_evaluate(const gr_model *model, const gr_dataset *ds, gr_split split,
						const gr_eval_options *opt, gr_metrics *out, gr_error *err);

/* Peak bytes gr_evaluate allocates for a configuration and dataset sizes (options NULL:
 * the defaults), baselines included. */
size_t		gr_eval_bytes(const gr_model_config *cfg, int64_t n_users, int64_t max_user_len,
						  const gr_eval_options *opt);

/* HR@K contribution of a 1-based rank (0 = no rank). */
double		gr_metric_hr(int rank, int k);

/* NDCG@K contribution of a 1-based rank: 1 / log2(rank + 1) when rank <= K. */
double		gr_metric_ndcg(int rank, int k);

/* Reciprocal rank. */
double		gr_metric_mrr(int rank);

/* A predicted probability and its 0/1 label (AUC). */
typedef struct gr_auc_pair
{
	float		score;
	float		label;
} gr_auc_pair;

/* ROC AUC (ties count half) of n pairs, sorted in place with the polling sort; NaN with a
 * single class or when env asked to stop. */
double		gr_metric_auc(gr_auc_pair *pairs, size_t n, const gr_env *env);

/* Positive rate of action column k over the training split (NaN without targets). */
double		gr_train_base_rate(const gr_dataset *ds, int k);

/* Entropy in nats of a Bernoulli rate (NaN outside (0, 1)). */
double		gr_bernoulli_entropy(double p);

/* RMSE of the bias baseline on a split's targets for action column k (normalised scale). */
double		gr_bias_baseline_rmse(const gr_dataset *ds, gr_split split, int k);

/* HR@K and NDCG@K of the popularity ranking (training-split counts, ties by item id, the
 * user's earlier items excluded) on a split; fills out->pop_hr / out->pop_ndcg for out->ks. */
gr_status	gr_popularity_metrics(const gr_dataset *ds, gr_split split, gr_metrics *out,
								  gr_error *err);

#endif							/* GR_EVAL_H */
