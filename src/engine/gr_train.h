/*
 * gr_train.h — training: one optimiser step on a token batch (gr_trainer) and the whole
 * protocol run (gr_train): one window per user per epoch, shuffled users, AdamW, validation
 * NDCG@10 after every epoch (the mean action RMSE / log loss for layouts without an item
 * head), early stopping with patience, best weights restored, test metrics at the best
 * epoch.
 */
#ifndef GR_TRAIN_H
#define GR_TRAIN_H

#include "gr_eval.h"
#include "gr_forward.h"

typedef struct gr_train_config
{
	int			epochs;
	int			batch_size;		/* users per step */
	float		lr;
	float		beta1;
	float		beta2;
	float		eps;
	float		weight_decay;
	float		dropout;
	float		w_item;			/* weight of the next-item loss */
	float		w_action;		/* weight of every action column's loss */
	int			n_task_weights; /* 0: every column weighs 1; else = the action columns */
	float		task_weights[GR_MAX_ACTIONS];	/* per column, times w_action */
	int			patience;		/* epochs without a better validation score before stopping */
	int			warmup_steps;	/* linear learning-rate warm-up */
	uint64_t	seed;
	int			eval_max_users; /* validation users per epoch (0 = all) */
	int			item_update;	/* gr_item_update: how AdamW updates the item table */
} gr_train_config;

/*
 * How the optimiser updates the item table (gr_train_lazy.c). Dense: every row every step,
 * as for every other tensor. Lazy ("lazy AdamW", as TensorFlow Addons' LazyAdam and PyTorch's
 * SparseAdam): only the rows a step touches (its token items, item targets, PC couplers and
 * sampled negatives) get AdamW's update and their moments; other rows, their moments and
 * their weight decay wait until a step touches them. Auto: lazy for the sampled and in-batch
 * losses (a step touches a few thousand rows of a catalogue that may hold millions), dense
 * for the full softmax (every row has a gradient every step). Lazy with the full softmax is
 * refused.
 */
typedef enum gr_item_update
{
	GR_ITEM_UPDATE_AUTO = 0,
	GR_ITEM_UPDATE_DENSE = 1,
	GR_ITEM_UPDATE_LAZY = 2,
	GR_ITEM_UPDATE_COUNT
} gr_item_update;

/* "auto", "dense", "lazy"; NULL out of range. */
const char *gr_item_update_name(int mode);

/* The mode of a name, or -1. */
int			gr_item_update_by_name(const char *name);

typedef struct gr_lazy_rows gr_lazy_rows;

/* The protocol defaults (PROTOCOL.md): AdamW 1e-3, betas (0.9, 0.98), batch 128,
 * dropout 0.2, patience 20. */
void		gr_train_config_default(gr_train_config *cfg);

/* Check training options. */
gr_status	gr_train_config_validate(const gr_train_config *cfg, gr_error *err);

typedef struct gr_trainer
{
	gr_model   *model;
	gr_train_config cfg;
	float	   *grads, *adam_m, *adam_v;	/* backend, laid out like the parameters */
	gr_weights	g;
	gr_acts    *acts;
	int			t;				/* optimiser steps taken */
	double	   *item_cdf;		/* [V] training-target counts, cumulative (sampled losses) */
	gr_item_popularity popularity;	/* over item_cdf, or uniform while it is NULL */
	gr_lazy_rows *lazy;			/* the item table's lazy update, NULL when dense */
} gr_trainer;

/* Create optimiser state and a workspace for batches up to the given capacities. */
gr_status	gr_trainer_create(gr_model *model, const gr_train_config *cfg, int cap_tokens,
							  int cap_seq, gr_trainer **out, gr_error *err);

/* Count how often each item occurs in the training split of ds (gr_dataset_train_end: the
 * validation and test targets left out) for the sampled losses' popularity negatives and
 * log-Q corrections; without it they are uniform. A no-op for the full softmax. */
gr_status	gr_trainer_count_items(gr_trainer *tr, const gr_dataset *ds, gr_error *err);

/* The rows of the item table (1..V) the last gr_trainer_compute touched, ascending, for a
 * lazy trainer; NULL and 0 for a dense one. Its gradient is zero outside them. */
const int32_t *gr_trainer_touched_rows(const gr_trainer *tr, int *n_rows);

/* Free a trainer (not its model); NULL is ignored. */
void		gr_trainer_free(gr_trainer *tr);

/* Zero the gradients, run forward and backward on a batch; step keys the dropout masks. */
gr_status	gr_trainer_compute(gr_trainer *tr, const gr_tokens *tb, uint32_t step,
							   gr_step_loss *out, gr_error *err);

/* Apply one AdamW update with the current gradients. */
gr_status	gr_trainer_apply(gr_trainer *tr, gr_error *err);

typedef struct gr_train_result
{
	int			epochs_run;
	int			best_epoch;		/* 1-based */
	int64_t		steps;
	double		train_seconds;	/* optimiser work only, evaluation excluded */
	double		eval_seconds;
	int64_t		train_tokens;
	int64_t		train_interactions;
	double		final_train_loss;
	gr_metrics	valid;			/* at the best epoch */
	gr_metrics	test;			/* at the best epoch */
} gr_train_result;

/* The sizes a training run's memory depends on: those of the built dataset (or bounds). */
typedef struct gr_train_sizes
{
	int64_t		n_interactions;
	int64_t		n_users;
	int64_t		n_items;
	int64_t		max_user_len;
} gr_train_sizes;

/* What a training run allocates at its peak, by part, in bytes. */
typedef struct gr_train_memory
{
	size_t		parameters;		/* the model (weights, tensor table, item ids), best-epoch copy */
	size_t		gradients;
	size_t		optimiser;		/* AdamW's two moments */
	size_t		activations;	/* the training workspace and its token batch */
	size_t		evaluation;		/* the evaluation workspace, batches and baselines */
	size_t		dataset;		/* the built dataset and the list of training users */
	size_t		total;
	size_t		weights_file;	/* the saved model's tensor bytes (its JSON header excluded) */
} gr_train_memory;

/*
 * Compute what gr_train would allocate for mcfg (its layout, architecture and n_actions; the
 * catalogue is sizes->n_items) and tcfg on a dataset of the given sizes, without allocating:
 * every part is the sum of the allocations the engine makes for it (each held from the start
 * of training to its end, so their sum is the peak). GR_ERR_INVALID_ARGUMENT for a
 * configuration gr_train would refuse.
 */
gr_status	gr_train_memory_estimate(const gr_model_config *mcfg, const gr_train_config *tcfg,
									 const gr_train_sizes *sizes, gr_train_memory *out,
									 gr_error *err);

/*
 * Train a model on a dataset with the protocol. mcfg gives the architecture and layout;
 * n_items and the action columns are taken from the dataset. On success *out is a new model
 * holding the best validation weights.
 */
gr_status	gr_train(const gr_env *env, const gr_model_config *mcfg,
					 const gr_train_config *tcfg, const gr_dataset *ds, gr_model **out,
					 gr_train_result *result, gr_error *err);

/* Append the most recent training window of user u to a token batch; false if it has no
 * targets. */
gr_status	gr_add_train_window(const gr_model *model, const gr_dataset *ds, int u,
								gr_tokens *tb, bool *added, gr_error *err);

#endif							/* GR_TRAIN_H */
