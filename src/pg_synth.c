/*
 * pg_synth.c — genrec_synthetic(): a deterministic synthetic interaction log.
 *
 * The generative model (every number below is a constant of the model; a change to it changes
 * the data for every seed and needs a new function or a new parameter, since the function is
 * declared IMMUTABLE):
 *
 * Items 1..I. Popularity is Zipf-like: a popularity draw over m ranked items picks rank
 * k = floor((m + 1)^u) for u uniform in [0, 1), so P(k) = log((k + 1) / k) / log(m + 1)
 * (exponent about 1); lower ranks, and so lower item ids, are more popular. Item i belongs to
 * cluster (genre) (i - 1) mod C, with C = clamp(floor(sqrt(I)), 1, 100), so every cluster has
 * popular and rare items; inside a cluster, items rank by id. Item i has a quality q_i, the
 * mean of two uniforms (triangular on [0, 1]).
 *
 * Users 1..U. User u has min(3, C) distinct preferred clusters, a rating bias b_u uniform in
 * [-0.3, 0.3], a start time uniform in the 30 days from 2024-01-01 00:00:00+00, and
 * n_u = N - N/2 + uniform{0 .. 2(N/2)} interactions (N = interactions_per_user; mean N; at
 * most 100,000, the longest genrec_history).
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
 * Rows come out ordered by user, then time (materialize mode: a tuplestore, which spills to
 * disk past work_mem; interrupts are checked per user and every 1,024 rows). Every draw is the engine's counter-based Philox
 * keyed by (seed, stream) and counted by (step, user or item), so a row depends only on the
 * arguments: the function is deterministic and its output does not depend on the order of
 * evaluation, the platform's random(), or the session (timestamps are absolute instants).
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_rng.h"
#pragma GCC diagnostic pop
#include "pg_history.h"

#define SYN_MAX_USERS		10000000
#define SYN_MAX_ITEMS		100000000
#define SYN_MAX_ROWS		INT64CONST(1000000000)
#define SYN_MAX_CLUSTERS	100
#define SYN_MAX_PREFS		3
#define SYN_MAX_DRAWS		8

/* 2024-01-01 00:00:00+00 as a TimestampTz: 8766 days after the PostgreSQL epoch. */
#define SYN_EPOCH			(INT64CONST(757382400) * USECS_PER_SEC)

/* Philox streams of the generator (the engine's own streams stay below 0x40000). */
#define SYN_S_USER			0x40000		/* step 0: count, bias, start; step 1: clusters */
#define SYN_S_ITEM			0x40001		/* item quality */
#define SYN_S_STEP			0x40002		/* cluster move, time gap */
#define SYN_S_NOISE			0x40003		/* action noise */
#define SYN_S_DRAW			0x40010		/* + draw number: exploration and item draws */

typedef struct SynModel
{
	uint64		seed;
	int64		n_items;
	int			n_clusters;
	int			n_prefs;
} SynModel;

typedef struct SynUser
{
	int64		id;
	int			n;				/* interactions */
	double		bias;
	TimestampTz time;
	int			prefs[SYN_MAX_PREFS];
	int			cur;			/* index into prefs of the current cluster */
	double		prev_action;
	double		prev_expect;
	int64	   *seen;			/* open-addressing set of items, 0 = empty */
	uint32		seen_mask;
} SynUser;

PG_FUNCTION_INFO_V1(genrec_synthetic);

/* Map a word to a uniform double in [0, 1). */
static inline double
syn_unit(uint32 w)
{
	return (double) w * (1.0 / 4294967296.0);
}

/* Map two words to a uniform double in [0, 1) with 53 bits. */
static inline double
syn_unit53(uint32 w0, uint32 w1)
{
	return ((double) (w0 >> 5) * 67108864.0 + (double) (w1 >> 6)) *
		(1.0 / 9007199254740992.0);
}

/* Map a word to a uniform integer in [0, n). */
static inline int64
syn_below(uint32 w, int64 n)
{
	return (int64) (((uint64) w * (uint64) n) >> 32);
}

/* Draw a Zipf-like rank in [1, m]: floor((m + 1)^u). */
static int64
syn_zipf(uint32 w0, uint32 w1, int64 m)
{
	int64		k = (int64) exp(syn_unit53(w0, w1) * log((double) m + 1.0));

	return Min(Max(k, 1), m);
}

/* Return the cluster of an item. */
static inline int
syn_cluster(const SynModel *m, int64 item)
{
	return (int) ((item - 1) % m->n_clusters);
}

/* Return the quality of an item in [0, 1]. */
static double
syn_quality(const SynModel *m, int64 item)
{
	gr_philox4	r = gr_rng_words(m->seed, SYN_S_ITEM, 0, (uint64) item);

	return 0.5 * (syn_unit(r.v[0]) + syn_unit(r.v[1]));
}

/* Draw an item of cluster c by popularity. */
static int64
syn_cluster_item(const SynModel *m, int c, uint32 w0, uint32 w1)
{
	int64		size = m->n_items / m->n_clusters + (c < m->n_items % m->n_clusters ? 1 : 0);

	return c + 1 + (syn_zipf(w0, w1, size) - 1) * m->n_clusters;
}

/* Add an item to the user's seen set; return false if it was there already. */
static bool
syn_seen_add(SynUser *u, int64 item)
{
	uint32		h = (uint32) (((uint64) item * UINT64CONST(0x9E3779B97F4A7C15)) >> 32);

	for (;; h++)
	{
		int64	   *slot = &u->seen[h & u->seen_mask];

		if (*slot == item)
			return false;
		if (*slot == 0)
		{
			*slot = item;
			return true;
		}
	}
}

/* Whether the user's seen set holds an item. */
static bool
syn_seen_has(const SynUser *u, int64 item)
{
	uint32		h = (uint32) (((uint64) item * UINT64CONST(0x9E3779B97F4A7C15)) >> 32);

	for (;; h++)
	{
		int64		slot = u->seen[h & u->seen_mask];

		if (slot == item)
			return true;
		if (slot == 0)
			return false;
	}
}

/* Draw user id's parameters; the seen set is allocated in the current memory context. */
static void
syn_user_begin(const SynModel *m, int64 id, int per_user, SynUser *u)
{
	gr_philox4	r = gr_rng_words(m->seed, SYN_S_USER, 0, (uint64) id);
	gr_philox4	c = gr_rng_words(m->seed, SYN_S_USER, 1, (uint64) id);
	int			half = per_user / 2;
	uint32		cap = 16;

	u->id = id;
	u->n = per_user - half + (int) syn_below(r.v[0], 2 * (int64) half + 1);
	u->n = Min(u->n, GENREC_HISTORY_MAX_LEN);
	u->bias = 0.6 * (syn_unit(r.v[1]) - 0.5);
	u->time = SYN_EPOCH + syn_below(r.v[2], 30 * SECS_PER_DAY) * USECS_PER_SEC;
	for (int k = 0; k < m->n_prefs; k++)
	{
		int			p = (int) syn_below(c.v[k], m->n_clusters);
		bool		taken;

		do
		{
			taken = false;
			for (int j = 0; j < k; j++)
				taken |= (u->prefs[j] == p);
			if (taken)
				p = (p + 1) % m->n_clusters;
		} while (taken);
		u->prefs[k] = p;
	}
	u->cur = 0;
	u->prev_action = 0;
	u->prev_expect = 0;
	while (cap < 2 * (uint32) u->n)
		cap <<= 1;
	u->seen = palloc0(sizeof(int64) * cap);
	u->seen_mask = cap - 1;
}

/* Generate interaction j of a user: its item, action and time. */
static void
syn_user_step(const SynModel *m, SynUser *u, int j, int64 *item, float4 *action,
			  TimestampTz *time)
{
	gr_philox4	s = gr_rng_words(m->seed, SYN_S_STEP, (uint32) j, (uint64) u->id);
	gr_philox4	z = gr_rng_words(m->seed, SYN_S_NOISE, (uint32) j, (uint64) u->id);
	double		noise = (syn_unit(z.v[0]) + syn_unit(z.v[1]) + syn_unit(z.v[2]) +
						 syn_unit(z.v[3]) - 2.0) * sqrt(3.0);
	bool		liked = false;
	double		expect;
	double		a;
	int64		it = 0;

	if (j > 0)
	{
		double		stay = u->prev_action >= 3.0 ? 0.8 : 0.3;

		if (m->n_prefs > 1 && syn_unit(s.v[0]) >= stay)
			u->cur = (u->cur + 1 + (int) syn_below(s.v[1], m->n_prefs - 1)) % m->n_prefs;
		u->time += (60 + (int64) floor(-3540.0 * log(1.0 - syn_unit(s.v[2])))) *
			USECS_PER_SEC;
	}

	for (int d = 0; d < SYN_MAX_DRAWS; d++)
	{
		gr_philox4	r = gr_rng_words(m->seed, SYN_S_DRAW + d, (uint32) j, (uint64) u->id);

		if (syn_unit(r.v[0]) < 0.1)
			it = syn_zipf(r.v[1], r.v[2], m->n_items);
		else
			it = syn_cluster_item(m, u->prefs[u->cur], r.v[1], r.v[2]);
		if (!syn_seen_has(u, it))
			break;
	}
	syn_seen_add(u, it);

	for (int k = 0; k < m->n_prefs; k++)
		liked |= (u->prefs[k] == syn_cluster(m, it));
	expect = 3.0 + 2.4 * (syn_quality(m, it) - 0.5) + u->bias + (liked ? 0.3 : -0.3);
	if (j > 0)
		a = expect + 0.7 * (u->prev_action - u->prev_expect) + 0.45 * noise;
	else
		a = expect + 0.45 / sqrt(1.0 - 0.49) * noise;
	a = rint(a * 10.0) / 10.0;
	a = Min(Max(a, 1.0), 5.0);

	u->prev_action = a;
	u->prev_expect = expect;
	*item = it;
	*action = (float4) a;
	*time = u->time;
}

/* Reject an argument outside [1, max]. */
static void
syn_check_arg(const char *name, int64 value, int64 max)
{
	if (value < 1 || value > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_synthetic: %s must be between 1 and " INT64_FORMAT
						", got " INT64_FORMAT, name, max, value)));
}

/* Return the synthetic log for (users, items, interactions_per_user, seed) as a table. */
Datum
genrec_synthetic(PG_FUNCTION_ARGS)
{
	int32		n_users = PG_GETARG_INT32(0);
	int32		n_items = PG_GETARG_INT32(1);
	int32		per_user = PG_GETARG_INT32(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext usercxt;
	MemoryContext oldcxt;
	SynModel	m;

	syn_check_arg("users", n_users, SYN_MAX_USERS);
	syn_check_arg("items", n_items, SYN_MAX_ITEMS);
	syn_check_arg("interactions_per_user", per_user, GENREC_HISTORY_MAX_LEN);
	if ((int64) n_users * per_user > SYN_MAX_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_synthetic: users * interactions_per_user must be at most "
						INT64_FORMAT ", got " INT64_FORMAT,
						SYN_MAX_ROWS, (int64) n_users * per_user)));

	m.seed = (uint64) PG_GETARG_INT64(3);
	m.n_items = n_items;
	m.n_clusters = Min(Max((int) floor(sqrt((double) n_items)), 1), SYN_MAX_CLUSTERS);
	m.n_prefs = Min(SYN_MAX_PREFS, m.n_clusters);

	InitMaterializedSRF(fcinfo, 0);
	usercxt = AllocSetContextCreate(CurrentMemoryContext, "genrec_synthetic user",
									ALLOCSET_DEFAULT_SIZES);

	for (int64 id = 1; id <= n_users; id++)
	{
		SynUser		u;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(usercxt);
		oldcxt = MemoryContextSwitchTo(usercxt);
		syn_user_begin(&m, id, per_user, &u);
		for (int j = 0; j < u.n; j++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};
			int64		item;
			float4		action;
			TimestampTz time;

			if ((j & 1023) == 1023)
				CHECK_FOR_INTERRUPTS();
			syn_user_step(&m, &u, j, &item, &action, &time);
			values[0] = Int64GetDatum(id);
			values[1] = Int64GetDatum(item);
			values[2] = Float4GetDatum(action);
			values[3] = TimestampTzGetDatum(time);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		MemoryContextSwitchTo(oldcxt);
	}
	MemoryContextDelete(usercxt);
	return (Datum) 0;
}
