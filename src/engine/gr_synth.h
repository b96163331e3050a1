/*
 * gr_synth.h — a deterministic synthetic interaction log (the data behind the SQL function
 * genrec_synthetic and `genrec synth`), so the engine has an embedded data set that needs no
 * download.
 *
 * The generative model (every number below is a constant of the model; a change to it changes
 * the data for every seed, and genrec_synthetic is declared IMMUTABLE, so it needs a new
 * function or a new parameter):
 *
 * Items 1..I. Popularity is Zipf-like: a popularity draw over m ranked items picks rank
 * k = floor((m + 1)^u) for u uniform in [0, 1), so P(k) = log((k + 1) / k) / log(m + 1)
 * (exponent about 1); lower ranks, and so lower item ids, are more popular. Item i belongs to
 * cluster (genre) (i - 1) mod C, with C = clamp(floor(sqrt(I)), 1, 100), so every cluster has
 * popular and rare items; inside a cluster, items rank by id. Item i has a quality q_i, the
 * mean of two uniforms (triangular on [0, 1]).
 *
 * Users 1..U. User u has min(3, C) distinct preferred clusters, a rating bias b_u uniform in
 * [-0.3, 0.3], a start time uniform in the 30 days from 2024-01-01 00:00:00 UTC, and
 * n_u = N - N/2 + uniform{0 .. 2(N/2)} interactions (N = interactions per user; mean N; at
 * most GR_SYNTH_MAX_PER_USER).
 *
 * Interaction j of user u:
 *  - cluster: the user is "in" one preferred cluster (the first at j = 0). After an action
 *    of 3 or more the user stays with probability 0.8, after a lower one with 0.3; otherwise
 *    the user moves to one of the other preferred clusters, uniformly. So the next item is
 *    predictable from the recent items, and the actions tell how likely a genre change is.
 *    (Exploration and the redraws below lower the observed rates: with 1,000 items and 40
 *    interactions per user, consecutive items share a cluster 0.6 of the time after a
 *    rating of 3 or more and 0.2 after a lower one; test/sql/synthetic.sql checks it.)
 *  - item: with probability 0.1 an exploration item from the global popularity draw, else a
 *    popularity draw inside the current cluster. Items the user has already had are drawn
 *    again (up to 8 draws in all), so a log is mostly free of repeats, like a ratings log.
 *  - action: a rating in [1, 5] with one decimal. Its expectation is
 *    e = 3 + 2.4 (q_i - 0.5) + b_u + 0.3 (item in a preferred cluster) - 0.3 (otherwise),
 *    and its residual follows an AR(1) process over the user's sequence:
 *    a_j = clamp(round1(e_j + 0.7 (a_{j-1} - e_{j-1}) + 0.45 z_j), 1, 5), z_j ~ N(0, 1)
 *    (the first residual is drawn from the stationary law, sd 0.45 / sqrt(1 - 0.49)). A model
 *    that sees the previous action predicts the next one better than item and user biases
 *    can, which is what action-conditioned layouts (LAC) exploit.
 *  - time: the user's start time, then gaps of 60 s plus an exponential with mean 3540 s,
 *    in whole seconds, so times strictly increase per user.
 *
 * Every draw is the engine's counter-based Philox keyed by (seed, stream) and counted by
 * (step, user or item), so a row depends only on the arguments: the output does not depend on
 * the order of evaluation, the platform's random() or the caller, and a user's rows do not
 * depend on how many users are generated. gr_synth.c is compiled without floating-point
 * reassociation or contraction (see the Makefile), so every build produces the same bits.
 */
#ifndef GR_SYNTH_H
#define GR_SYNTH_H

#include "gr_common.h"

#define GR_SYNTH_MAX_USERS		10000000
#define GR_SYNTH_MAX_ITEMS		100000000
#define GR_SYNTH_MAX_PER_USER	100000
#define GR_SYNTH_MAX_ROWS		INT64_C(1000000000)
#define GR_SYNTH_MAX_PREFS		3
#define GR_SYNTH_EPOCH			INT64_C(1704067200) /* 2024-01-01 00:00:00 UTC, Unix s */

/* The generator's parameters for one call. */
typedef struct gr_synth
{
	uint64_t	seed;
	int64_t		n_users;
	int64_t		n_items;
	int			per_user;		/* N, the mean interactions per user */
	int			n_clusters;
	int			n_prefs;
} gr_synth;

/* One user's state while their interactions are generated. */
typedef struct gr_synth_user
{
	const gr_env *env;
	int64_t		id;
	int			n;				/* interactions of this user */
	double		bias;
	int64_t		time;			/* Unix seconds of the latest interaction */
	int			prefs[GR_SYNTH_MAX_PREFS];
	int			cur;			/* index into prefs of the current cluster */
	double		prev_action;
	double		prev_expect;
	int64_t    *seen;			/* open-addressing set of items, 0 = empty */
	uint32_t	seen_mask;
} gr_synth_user;

/*
 * Check the arguments (users in 1..GR_SYNTH_MAX_USERS, items in 1..GR_SYNTH_MAX_ITEMS,
 * per_user in 1..GR_SYNTH_MAX_PER_USER, users * per_user at most GR_SYNTH_MAX_ROWS) and fill
 * the generator. Messages name the argument ("users must be between 1 and ..., got ...").
 */
gr_status	gr_synth_init(gr_synth *m, int64_t users, int64_t items, int64_t per_user,
						  uint64_t seed, gr_error *err);

/* Draw user id's parameters; the seen set is allocated through env. */
gr_status	gr_synth_user_begin(const gr_synth *m, const gr_env *env, int64_t id,
								gr_synth_user *u, gr_error *err);

/* Generate interaction j (0, 1, ... in order) of a user: item, action, Unix time in s. */
void		gr_synth_user_step(const gr_synth *m, gr_synth_user *u, int j, int64_t *item,
							   float *action, int64_t *time);

/* Release a user's seen set. */
void		gr_synth_user_end(gr_synth_user *u);

#endif							/* GR_SYNTH_H */
