/*
 * gr_synth.c — the synthetic interaction log (see gr_synth.h for the generative model).
 *
 * Compiled without -fassociative-math and FMA contraction (Makefile), so the doubles below
 * are evaluated exactly as written and the rows are the same bits in every build.
 */
#include "gr_synth.h"
#include "gr_rng.h"

#include <math.h>
#include <string.h>

#define SYN_MAX_CLUSTERS	100
#define SYN_MAX_DRAWS		8
#define SYN_SECS_PER_DAY	86400

/* Philox streams of the generator (the engine's own streams stay below 0x40000). */
#define SYN_S_USER			0x40000		/* step 0: count, bias, start; step 1: clusters */
#define SYN_S_ITEM			0x40001		/* item quality */
#define SYN_S_STEP			0x40002		/* cluster move, time gap */
#define SYN_S_NOISE			0x40003		/* action noise */
#define SYN_S_DRAW			0x40010		/* + draw number: exploration and item draws */

/* Map a word to a uniform double in [0, 1). */
static inline double
syn_unit(uint32_t w)
{
	return (double) w * (1.0 / 4294967296.0);
}

/* Map two words to a uniform double in [0, 1) with 53 bits. */
static inline double
syn_unit53(uint32_t w0, uint32_t w1)
{
	return ((double) (w0 >> 5) * 67108864.0 + (double) (w1 >> 6)) *
		(1.0 / 9007199254740992.0);
}

/* Map a word to a uniform integer in [0, n). */
static inline int64_t
syn_below(uint32_t w, int64_t n)
{
	return (int64_t) (((uint64_t) w * (uint64_t) n) >> 32);
}

/* Draw a Zipf-like rank in [1, m]: floor((m + 1)^u). */
static int64_t
syn_zipf(uint32_t w0, uint32_t w1, int64_t m)
{
	int64_t		k = (int64_t) exp(syn_unit53(w0, w1) * log((double) m + 1.0));

	return GR_MIN(GR_MAX(k, 1), m);
}

/* Return the cluster of an item. */
static inline int
syn_cluster(const gr_synth *m, int64_t item)
{
	return (int) ((item - 1) % m->n_clusters);
}

/* Return the quality of an item in [0, 1]. */
static double
syn_quality(const gr_synth *m, int64_t item)
{
	gr_philox4	r = gr_rng_words(m->seed, SYN_S_ITEM, 0, (uint64_t) item);

	return 0.5 * (syn_unit(r.v[0]) + syn_unit(r.v[1]));
}

/* Draw an item of cluster c by popularity. */
static int64_t
syn_cluster_item(const gr_synth *m, int c, uint32_t w0, uint32_t w1)
{
	int64_t		size = m->n_items / m->n_clusters + (c < m->n_items % m->n_clusters ? 1 : 0);

	return c + 1 + (syn_zipf(w0, w1, size) - 1) * m->n_clusters;
}

/* Add an item to the user's seen set; return false if it was there already. */
static bool
syn_seen_add(gr_synth_user *u, int64_t item)
{
	uint32_t	h = (uint32_t) (((uint64_t) item * UINT64_C(0x9E3779B97F4A7C15)) >> 32);

	for (;; h++)
	{
		int64_t    *slot = &u->seen[h & u->seen_mask];

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
syn_seen_has(const gr_synth_user *u, int64_t item)
{
	uint32_t	h = (uint32_t) (((uint64_t) item * UINT64_C(0x9E3779B97F4A7C15)) >> 32);

	for (;; h++)
	{
		int64_t		slot = u->seen[h & u->seen_mask];

		if (slot == item)
			return true;
		if (slot == 0)
			return false;
	}
}

/* Check one argument against [1, max]. */
static gr_status
syn_check_arg(const char *name, int64_t value, int64_t max, gr_error *err)
{
	if (value < 1 || value > max)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "%s must be between 1 and %lld, got %lld", name, (long long) max,
					   (long long) value);
	return GR_OK;
}

/* Check the arguments and fill the generator. */
gr_status
gr_synth_init(gr_synth *m, int64_t users, int64_t items, int64_t per_user, uint64_t seed,
			  gr_error *err)
{
	memset(m, 0, sizeof(*m));
	GR_TRY(syn_check_arg("users", users, GR_SYNTH_MAX_USERS, err));
	GR_TRY(syn_check_arg("items", items, GR_SYNTH_MAX_ITEMS, err));
	GR_TRY(syn_check_arg("interactions_per_user", per_user, GR_SYNTH_MAX_PER_USER, err));
	if (users * per_user > GR_SYNTH_MAX_ROWS)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "users * interactions_per_user must be at most %lld, got %lld",
					   (long long) GR_SYNTH_MAX_ROWS, (long long) (users * per_user));
	m->seed = seed;
	m->n_users = users;
	m->n_items = items;
	m->per_user = (int) per_user;
	m->n_clusters = GR_MIN(GR_MAX((int) floor(sqrt((double) items)), 1), SYN_MAX_CLUSTERS);
	m->n_prefs = GR_MIN(GR_SYNTH_MAX_PREFS, m->n_clusters);
	return GR_OK;
}

/* Draw user id's parameters and allocate its seen set. */
gr_status
gr_synth_user_begin(const gr_synth *m, const gr_env *env, int64_t id, gr_synth_user *u,
					gr_error *err)
{
	gr_philox4	r = gr_rng_words(m->seed, SYN_S_USER, 0, (uint64_t) id);
	gr_philox4	c = gr_rng_words(m->seed, SYN_S_USER, 1, (uint64_t) id);
	int			half = m->per_user / 2;
	uint32_t	cap = 16;

	memset(u, 0, sizeof(*u));
	u->env = env;
	u->id = id;
	u->n = m->per_user - half + (int) syn_below(r.v[0], 2 * (int64_t) half + 1);
	u->n = GR_MIN(u->n, GR_SYNTH_MAX_PER_USER);
	u->bias = 0.6 * (syn_unit(r.v[1]) - 0.5);
	u->time = GR_SYNTH_EPOCH + syn_below(r.v[2], 30 * SYN_SECS_PER_DAY);
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
	while (cap < 2 * (uint32_t) u->n)
		cap <<= 1;
	u->seen = gr_calloc(env, cap, sizeof(int64_t));
	if (u->seen == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a synthetic user");
	u->seen_mask = cap - 1;
	return GR_OK;
}

/* Generate interaction j of a user: its item, action and time. */
void
gr_synth_user_step(const gr_synth *m, gr_synth_user *u, int j, int64_t *item, float *action,
				   int64_t *time)
{
	gr_philox4	s = gr_rng_words(m->seed, SYN_S_STEP, (uint32_t) j, (uint64_t) u->id);
	gr_philox4	z = gr_rng_words(m->seed, SYN_S_NOISE, (uint32_t) j, (uint64_t) u->id);
	double		noise = (syn_unit(z.v[0]) + syn_unit(z.v[1]) + syn_unit(z.v[2]) +
						 syn_unit(z.v[3]) - 2.0) * sqrt(3.0);
	bool		liked = false;
	double		expect;
	double		a;
	int64_t		it = 0;

	if (j > 0)
	{
		double		stay = u->prev_action >= 3.0 ? 0.8 : 0.3;

		if (m->n_prefs > 1 && syn_unit(s.v[0]) >= stay)
			u->cur = (u->cur + 1 + (int) syn_below(s.v[1], m->n_prefs - 1)) % m->n_prefs;
		u->time += 60 + (int64_t) floor(-3540.0 * log(1.0 - syn_unit(s.v[2])));
	}

	for (int d = 0; d < SYN_MAX_DRAWS; d++)
	{
		gr_philox4	r = gr_rng_words(m->seed, SYN_S_DRAW + d, (uint32_t) j, (uint64_t) u->id);

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
	a = GR_MIN(GR_MAX(a, 1.0), 5.0);

	u->prev_action = a;
	u->prev_expect = expect;
	*item = it;
	*action = (float) a;
	*time = u->time;
}

/* Release a user's seen set. */
void
gr_synth_user_end(gr_synth_user *u)
{
	if (u->seen)
		gr_free(u->env, u->seen);
	u->seen = NULL;
}
