/*
 * gr_ivf.h — an inverted-file (IVF) index over a model's item embeddings, for approximate
 * top-k retrieval over large catalogues (LAYOUTS.md §6.1).
 *
 * Exact retrieval scores every item: a scan of V x d floats per query (256 MB at 10^6 items
 * and d 64), memory-bound at tens of milliseconds. The index partitions the items into
 * `lists` clusters by k-means on their embeddings (squared L2, Lloyd's iterations on a sample,
 * then every item assigned to its nearest centroid) and stores each cluster's rows
 * contiguously. A query ranks the centroids by inner product with the query state, scans the
 * rows of the best `probes` lists and keeps the k best by the exact logit <h, E[i]>: the
 * scores it returns are exact, only items in unprobed lists can be missed. probes = lists
 * scans everything and returns exactly the exact retrieval's items.
 *
 * The index is derived data: gr_ivf_build is deterministic for (embeddings, lists, seed),
 * so every process that builds it from the same model gets the same index. It holds the
 * centroids [lists x d], the list offsets [lists + 1] and the dense column of each item in
 * list order [V] (4 bytes an item), and reads the rows from the item table it was built over,
 * which it borrows: the caller keeps that table alive and unchanged (in the server, the
 * model's shared memory segment, so the rows are never copied per backend).
 */
#ifndef GR_IVF_H
#define GR_IVF_H

#include "gr_common.h"

#define GR_IVF_MAX_LISTS 65536
#define GR_IVF_ITERATIONS 12		/* Lloyd's iterations on the training sample */
#define GR_IVF_SAMPLE_PER_LIST 64	/* training points per list (at most V) */
#define GR_IVF_GATHER_ROWS 256		/* rows a search gathers and scores at once */

typedef struct gr_ivf
{
	int			lists;
	int			d;
	int			n_items;		/* V */
	int			longest;		/* rows of the longest list */
	float	   *centroids;		/* [lists * d] */
	int32_t    *offsets;		/* [lists + 1]: list l holds rows offsets[l] .. offsets[l+1] */
	int32_t    *cols;			/* [V] dense column (item dense id - 1) of each row */
	const float *items;			/* [V * d] the item table (borrowed), column c at c * d */
	double		build_ms;		/* wall time of gr_ivf_build */
	bool		borrowed;		/* the arrays belong to a flat block (gr_ivf_view) */
} gr_ivf;

/* The list count used when none is given: about sqrt(V), at least 1. */
int			gr_ivf_default_lists(int n_items);

/*
 * Build an index over V item rows of d floats (items[c * d ..] is dense column c; the index
 * keeps the pointer). lists must be in 1..min(V, GR_IVF_MAX_LISTS). Polls env's interrupt callback between iterations and
 * row blocks (GR_ERR_CANCELLED); memory through env.
 */
gr_status	gr_ivf_build(const gr_env *env, const float *items, int n_items, int d, int lists,
						 uint64_t seed, gr_ivf **out, gr_error *err);

/*
 * The index as one flat block (gr_ivf_flat.c), to share between processes: its size, a copy
 * of an index into dst (64-byte aligned, gr_ivf_flat_size bytes) tagged with the caller's
 * tag, and a view of such a block over the item table items [V x d]. The view checks the
 * whole block (header against tag, V and d; lists a permutation of the columns; finite
 * centroids) and fails with GR_ERR_CORRUPT_MODEL otherwise; its arrays point into the
 * block, which the caller keeps mapped and unchanged while the view lives.
 */
size_t		gr_ivf_flat_size(const gr_ivf *ivf);
void		gr_ivf_flatten(const gr_ivf *ivf, uint64_t tag, void *dst);
gr_status	gr_ivf_view(const gr_env *env, const void *block, size_t bytes, uint64_t tag,
						const float *items, int n_items, int d, gr_ivf **out, gr_error *err);

/* Free an index (a view: only the view); NULL is ignored. */
void		gr_ivf_free(const gr_env *env, gr_ivf *ivf);

/* Bytes an index holds beyond the item table (for reporting). */
size_t		gr_ivf_bytes(const gr_ivf *ivf);

/* Scratch for searches of up to k results; one per thread. */
typedef struct gr_ivf_scratch
{
	int			cap_rows;		/* entries each buffer holds */
	int			d;				/* row width block is sized for */
	float	   *block;			/* [GR_IVF_GATHER_ROWS * d] gathered rows */
	float	   *scores;			/* [cap_rows] */
	int32_t    *probe;			/* [lists] */
	float	   *probe_val;		/* [lists] */
} gr_ivf_scratch;

/*
 * The k best columns for query q [d] among the rows of the probes lists whose centroids have
 * the largest inner product with q, best first (ties: the smaller column first), skipping the
 * n_excl columns of excl (sorted ascending). Fills out_cols/out_vals [k] and returns how many
 * were found (fewer than k when the probed lists hold fewer candidates), or -1 when out of
 * memory for the scratch. probes is clamped to 1..lists.
 */
int			gr_ivf_search(const gr_env *env, const gr_ivf *ivf, gr_ivf_scratch *sc,
						  const float *q, int probes, int k, const int32_t *excl, int n_excl,
						  int32_t *out_cols, float *out_vals);

/* Free a scratch's buffers (the struct itself is the caller's). */
void		gr_ivf_scratch_release(const gr_env *env, gr_ivf_scratch *sc);

#endif							/* GR_IVF_H */
