/*
 * gr_dataset.h — interaction datasets in CSR form and the leave-one-out protocol.
 *
 * Users are sorted by external id; each user's interactions are sorted by time with ties kept
 * in input order (a stable sort), items are mapped to dense ids 1..V in ascending external id
 * order, and every action column is normalised to [0, 1] with the min/max of the training
 * split (PROTOCOL.md); validation and test values outside that range are clamped to it. For a user with M >= 3 interactions, interaction M is the test target,
 * M-1 the validation target and 1..M-2 train; shorter users are training-only.
 */
#ifndef GR_DATASET_H
#define GR_DATASET_H

#include "gr_layout.h"

/* Interactions as the caller has them: parallel arrays of n rows. */
typedef struct gr_raw_interactions
{
	size_t		n;
	const int64_t *user;
	const int64_t *item;
	const int64_t *time;		/* NULL: input order is time order */
	const double *actions;		/* [n * n_actions] raw values, NaN = missing; may be NULL */
	int			n_actions;
	const uint8_t *action_binary;	/* [n_actions] 1 = binary column; NULL = all continuous */
} gr_raw_interactions;

/* Optional fixed mapping, to build a dataset in a trained model's item and action space. */
typedef struct gr_dataset_mapping
{
	const int64_t *item_ids;	/* ascending external ids of dense ids 1..n_items */
	int			n_items;
	const double *action_min;	/* [n_actions] */
	const double *action_max;
} gr_dataset_mapping;

typedef struct gr_dataset
{
	const gr_env *env;
	int			n_users;
	int			n_items;		/* V */
	int			n_actions;		/* K */
	size_t		n_interactions;
	int			max_user_len;
	int64_t    *user_ids;		/* [n_users], ascending */
	int64_t    *item_ids;		/* [n_items + 1], [0] = 0, ascending from 1 */
	int64_t    *offsets;		/* [n_users + 1] */
	int32_t    *items;			/* [nnz] dense ids (0 = not in the mapping) */
	float	   *actions;		/* [nnz * K] normalised, NaN = missing */
	int64_t    *times;			/* [nnz] */
	double		action_min[GR_MAX_ACTIONS];
	double		action_max[GR_MAX_ACTIONS];
	uint8_t		action_binary[GR_MAX_ACTIONS];
} gr_dataset;

typedef enum gr_split
{
	GR_SPLIT_VALID = 0,			/* target M-1 given 1..M-2 */
	GR_SPLIT_TEST = 1			/* target M given 1..M-1 */
} gr_split;

/* Build a dataset from raw rows; mapping may be NULL (derive items and ranges). Polls
 * env->interrupted (GR_ERR_CANCELLED); more than INT32_MAX users, or interactions of one
 * user, is GR_ERR_INVALID_ARGUMENT. */
gr_status	gr_dataset_build(const gr_env *env, const gr_raw_interactions *raw,
							 const gr_dataset_mapping *mapping, gr_dataset **out,
							 gr_error *err);

/* Bytes a built dataset of these sizes holds. */
size_t		gr_dataset_bytes(int64_t n_rows, int64_t n_users, int64_t n_items, int n_actions);

/* Peak bytes gr_dataset_build allocates for n_rows rows (the dataset included); mapped: built
 * with a mapping's item ids. */
size_t		gr_dataset_build_bytes(int64_t n_rows, int n_actions, bool mapped);

/* Free a dataset; NULL is ignored. */
void		gr_dataset_free(gr_dataset *ds);

/* Interactions of user u. */
static inline int
gr_dataset_user_len(const gr_dataset *ds, int u)
{
	return (int) (ds->offsets[u + 1] - ds->offsets[u]);
}

/* View of user u's whole history. */
gr_seq_view gr_dataset_user_seq(const gr_dataset *ds, int u);

/* End (exclusive) of user u's training prefix. */
int			gr_dataset_train_end(const gr_dataset *ds, int u);

/* Index of user u's target for a split, or -1 when the user has none. */
int			gr_dataset_target(const gr_dataset *ds, int u, gr_split split);

#endif							/* GR_DATASET_H */
