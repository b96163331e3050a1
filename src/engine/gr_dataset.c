/*
 * gr_dataset.c — building CSR datasets from raw interactions (see gr_dataset.h).
 *
 * Building polls the environment's interrupt callback inside its sorts (gr_sort.h) and every
 * GR_DATASET_POLL_ROWS rows of its passes, so a cancel stops it within a fraction of a second
 * at any size; everything it allocated is freed then. Counts are 64-bit where rows can exceed
 * 2^31; users, items and one user's interactions are limited to INT32_MAX (a clear error).
 */
#include "gr_dataset.h"
#include "gr_sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows of a pass between two polls of the interrupt callback. */
#define GR_DATASET_POLL_ROWS ((size_t) 1 << 20)

typedef struct row_key
{
	int64_t		user;
	int64_t		time;
	size_t		index;			/* input position: the tiebreak that makes the sort stable */
} row_key;

/* Whether row a comes before row b: by (user, time, input position). */
static inline bool
row_key_less(const void *ctx, const row_key *a, const row_key *b)
{
	(void) ctx;
	if (a->user != b->user)
		return a->user < b->user;
	if (a->time != b->time)
		return a->time < b->time;
	return a->index < b->index;
}

/* Whether id a is below id b. */
static inline bool
i64_less(const void *ctx, const int64_t *a, const int64_t *b)
{
	(void) ctx;
	return *a < *b;
}

GR_DEFINE_SORT(sort_row_keys, row_key, row_key_less)
GR_DEFINE_SORT(sort_ids, int64_t, i64_less)

/* Poll the interrupt callback once every GR_DATASET_POLL_ROWS rows of a pass. */
static inline bool
pass_stopped(const gr_env *env, size_t row)
{
	return (row & (GR_DATASET_POLL_ROWS - 1)) == 0 && row > 0 && gr_should_stop(env);
}

/* The failure of a build that was asked to stop. */
static gr_status
build_cancelled(gr_error *err)
{
	return gr_fail(err, GR_ERR_CANCELLED, "dataset building cancelled");
}

/* Dense id of an external id in a sorted map (1-based), or 0. */
static int32_t
lookup_dense(const int64_t *ids, int n, int64_t id)
{
	int			lo = 0, hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ids[mid] == id)
			return mid + 1;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

/* Free a dataset. */
void
gr_dataset_free(gr_dataset *ds)
{
	if (ds == NULL)
		return;
	const gr_env *env = ds->env;

	gr_free(env, ds->user_ids);
	gr_free(env, ds->item_ids);
	gr_free(env, ds->offsets);
	gr_free(env, ds->items);
	gr_free(env, ds->actions);
	gr_free(env, ds->times);
	gr_free(env, ds);
}

/* Sorted distinct item ids of the raw rows into ds->item_ids (1-based). */
static gr_status
derive_items(gr_dataset *ds, const gr_raw_interactions *raw, gr_error *err)
{
	int64_t    *tmp = gr_alloc(ds->env, sizeof(int64_t) * raw->n);

	if (tmp == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory sorting %zu items", raw->n);
	memcpy(tmp, raw->item, sizeof(int64_t) * raw->n);
	if (!sort_ids(tmp, raw->n, NULL, ds->env))
	{
		gr_free(ds->env, tmp);
		return build_cancelled(err);
	}
	size_t		v = 0;

	for (size_t i = 0; i < raw->n; i++)
		if (i == 0 || tmp[i] != tmp[i - 1])
			tmp[v++] = tmp[i];
	if (v > 50000000)
	{
		gr_free(ds->env, tmp);
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "too many distinct items (%zu)", v);
	}
	ds->n_items = (int) v;
	ds->item_ids = gr_alloc(ds->env, sizeof(int64_t) * (v + 1));
	if (ds->item_ids == NULL)
	{
		gr_free(ds->env, tmp);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for %zu item ids", v);
	}
	ds->item_ids[0] = 0;
	memcpy(ds->item_ids + 1, tmp, sizeof(int64_t) * v);
	gr_free(ds->env, tmp);
	return GR_OK;
}

/* Min/max of every action column over the training split; fixes degenerate ranges. */
static void
derive_action_ranges(gr_dataset *ds, const double *raw_sorted)
{
	int			K = ds->n_actions;

	for (int k = 0; k < K; k++)
	{
		double		lo = INFINITY, hi = -INFINITY;

		for (int u = 0; u < ds->n_users; u++)
		{
			int			end = gr_dataset_train_end(ds, u);

			for (int64_t i = ds->offsets[u]; i < ds->offsets[u] + end; i++)
			{
				double		v = raw_sorted[(size_t) i * K + k];

				if (isnan(v))
					continue;
				lo = fmin(lo, v);
				hi = fmax(hi, v);
			}
		}
		if (ds->action_binary[k] || !isfinite(lo))
		{
			lo = 0.0;
			hi = 1.0;
		}
		if (!(hi > lo))
			hi = lo + 1.0;
		ds->action_min[k] = lo;
		ds->action_max[k] = hi;
	}
}

/* Bytes a built dataset of these sizes holds. */
size_t
gr_dataset_bytes(int64_t n_rows, int64_t n_users, int64_t n_items, int n_actions)
{
	size_t		n = (size_t) GR_MAX(n_rows, 0),
				u = (size_t) GR_MAX(n_users, 0),
				v = (size_t) GR_MAX(n_items, 0),
				k = (size_t) GR_MAX(n_actions, 0);

	return sizeof(gr_dataset) + u * sizeof(int64_t) + (u + 1) * sizeof(int64_t) +
		(v + 1) * sizeof(int64_t) + n * (sizeof(int32_t) + sizeof(int64_t) + k * sizeof(float));
}

/* Peak bytes of gr_dataset_build for n rows, its result included: the sort keys, the sorted
 * raw actions and (without a mapping) the copy of the item ids are live at once with the
 * dataset's arrays; users and items are at most n. */
size_t
gr_dataset_build_bytes(int64_t n_rows, int n_actions, bool mapped)
{
	size_t		n = (size_t) GR_MAX(n_rows, 0),
				k = (size_t) GR_MAX(n_actions, 0);

	return gr_dataset_bytes(n_rows, n_rows, n_rows, n_actions) + n * sizeof(row_key) +
		n * k * sizeof(double) + (mapped ? 0 : n * sizeof(int64_t));
}

/* Build a dataset: sort rows, map users and items, normalise actions. */
gr_status
gr_dataset_build(const gr_env *env, const gr_raw_interactions *raw,
				 const gr_dataset_mapping *mapping, gr_dataset **out, gr_error *err)
{
	gr_status	st = GR_OK;
	row_key    *keys = NULL;
	double	   *raw_sorted = NULL;
	int			K = raw->n_actions;

	*out = NULL;
	if (raw->n == 0)
		return gr_fail(err, GR_ERR_NO_DATA, "no interactions");
	if (K < 0 || K > GR_MAX_ACTIONS || (K > 0 && raw->actions == NULL))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "action columns must number 0..%d",
					   GR_MAX_ACTIONS);
	if (raw->n > (size_t) INT32_MAX * 8)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "too many interactions (%zu)", raw->n);
	gr_dataset *ds = gr_calloc(env, 1, sizeof(gr_dataset));

	if (ds == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a dataset");
	ds->env = env;
	ds->n_actions = K;
	ds->n_interactions = raw->n;
	for (int k = 0; k < K; k++)
		ds->action_binary[k] = raw->action_binary ? (raw->action_binary[k] != 0) : 0;

	keys = gr_alloc(env, sizeof(row_key) * raw->n);
	ds->items = gr_alloc(env, sizeof(int32_t) * raw->n);
	ds->times = gr_alloc(env, sizeof(int64_t) * raw->n);
	ds->actions = K > 0 ? gr_alloc(env, sizeof(float) * raw->n * K) : NULL;
	raw_sorted = K > 0 ? gr_alloc(env, sizeof(double) * raw->n * K) : NULL;
	if (!keys || !ds->items || !ds->times || (K > 0 && (!ds->actions || !raw_sorted)))
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for %zu interactions", raw->n);
		goto done;
	}
	for (size_t i = 0; i < raw->n; i++)
	{
		if (pass_stopped(env, i))
		{
			st = build_cancelled(err);
			goto done;
		}
		keys[i].user = raw->user[i];
		keys[i].time = raw->time ? raw->time[i] : 0;
		keys[i].index = i;
	}
	if (!sort_row_keys(keys, raw->n, NULL, env))
	{
		st = build_cancelled(err);
		goto done;
	}

	/* users and CSR offsets */
	int64_t		users_64 = 0,
				run = 0;

	for (size_t i = 0; i < raw->n; i++)
	{
		bool		new_user = i == 0 || keys[i].user != keys[i - 1].user;

		users_64 += new_user;
		run = new_user ? 1 : run + 1;
		if (run > INT32_MAX)
		{
			st = gr_fail(err, GR_ERR_INVALID_ARGUMENT, "user %lld has more than %d "
						 "interactions", (long long) keys[i].user, INT32_MAX);
			goto done;
		}
	}
	if (users_64 > INT32_MAX)
	{
		st = gr_fail(err, GR_ERR_INVALID_ARGUMENT, "too many users (%lld; at most %d)",
					 (long long) users_64, INT32_MAX);
		goto done;
	}

	int			n_users = (int) users_64;

	ds->n_users = n_users;
	ds->user_ids = gr_alloc(env, sizeof(int64_t) * (size_t) n_users);
	ds->offsets = gr_alloc(env, sizeof(int64_t) * ((size_t) n_users + 1));
	if (!ds->user_ids || !ds->offsets)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for %d users", n_users);
		goto done;
	}
	int			u = -1;

	for (size_t i = 0; i < raw->n; i++)
	{
		if (i == 0 || keys[i].user != keys[i - 1].user)
		{
			u++;
			ds->user_ids[u] = keys[i].user;
			ds->offsets[u] = (int64_t) i;
		}
	}
	ds->offsets[n_users] = (int64_t) raw->n;
	ds->max_user_len = 0;
	for (u = 0; u < n_users; u++)
		ds->max_user_len = GR_MAX(ds->max_user_len, gr_dataset_user_len(ds, u));

	/* items */
	if (mapping != NULL && mapping->item_ids != NULL)
	{
		ds->n_items = mapping->n_items;
		ds->item_ids = gr_alloc(env, sizeof(int64_t) * ((size_t) mapping->n_items + 1));
		if (ds->item_ids == NULL)
		{
			st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the item map");
			goto done;
		}
		ds->item_ids[0] = 0;
		memcpy(ds->item_ids + 1, mapping->item_ids, sizeof(int64_t) * mapping->n_items);
	}
	else if ((st = derive_items(ds, raw, err)) != GR_OK)
		goto done;
	for (size_t i = 0; i < raw->n; i++)
	{
		size_t		src = keys[i].index;

		if (pass_stopped(env, i))
		{
			st = build_cancelled(err);
			goto done;
		}
		ds->items[i] = lookup_dense(ds->item_ids + 1, ds->n_items, raw->item[src]);
		ds->times[i] = keys[i].time;
		for (int k = 0; k < K; k++)
			raw_sorted[i * K + k] = raw->actions[src * K + k];
	}

	/* actions: normalise to [0, 1] with the training split's range (or the mapping's) */
	if (K > 0)
	{
		if (mapping != NULL && mapping->action_min != NULL)
			for (int k = 0; k < K; k++)
			{
				ds->action_min[k] = mapping->action_min[k];
				ds->action_max[k] = mapping->action_max[k];
			}
		else
			derive_action_ranges(ds, raw_sorted);
		for (size_t i = 0; i < raw->n * K; i++)
		{
			int			k = (int) (i % K);

			if (pass_stopped(env, i))
			{
				st = build_cancelled(err);
				goto done;
			}
			double		v = raw_sorted[i];

			if (isnan(v))
				ds->actions[i] = NAN;
			else
			{
				double		t = (v - ds->action_min[k]) / (ds->action_max[k] - ds->action_min[k]);

				ds->actions[i] = (float) (t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t));
			}
		}
	}
done:
	gr_free(env, keys);
	gr_free(env, raw_sorted);
	if (st != GR_OK)
	{
		gr_dataset_free(ds);
		return st;
	}
	*out = ds;
	return GR_OK;
}

/* A view of user u's whole history. */
gr_seq_view
gr_dataset_user_seq(const gr_dataset *ds, int u)
{
	gr_seq_view v = {0};
	int64_t		off = ds->offsets[u];

	v.items = ds->items + off;
	v.actions = ds->actions ? ds->actions + (size_t) off * ds->n_actions : NULL;
	v.n = gr_dataset_user_len(ds, u);
	v.n_actions = ds->n_actions;
	v.times = ds->times ? ds->times + off : NULL;
	return v;
}

/* Training prefix end: M - 2 for users with M >= 3, else all of it. */
int
gr_dataset_train_end(const gr_dataset *ds, int u)
{
	int			m = gr_dataset_user_len(ds, u);

	return m >= 3 ? m - 2 : m;
}

/* Target index of a split: M - 2 (validation) or M - 1 (test), 0-based. */
int
gr_dataset_target(const gr_dataset *ds, int u, gr_split split)
{
	int			m = gr_dataset_user_len(ds, u);

	if (m < 3)
		return -1;
	return split == GR_SPLIT_VALID ? m - 2 : m - 1;
}
