/*
 * test_synth.c — the synthetic generator: argument checks, the first rows of a fixed seed
 * (the same as genrec_synthetic's pg_regress output), determinism, ranges and prefix
 * stability.
 */
#include "gr_synth.h"
#include "unit.h"

#include <string.h>

/* Generate every row of a generator into arrays of at least cap rows; returns the count. */
static int64_t
generate(const gr_synth *m, const gr_env *env, int64_t *user, int64_t *item, float *action,
		 int64_t *time, int64_t cap)
{
	gr_error	err = {0};
	int64_t		n = 0;

	for (int64_t id = 1; id <= m->n_users; id++)
	{
		gr_synth_user u;

		CHECK_OK(gr_synth_user_begin(m, env, id, &u, &err), &err);
		for (int j = 0; j < u.n && n < cap; j++, n++)
		{
			user[n] = id;
			gr_synth_user_step(m, &u, j, &item[n], &action[n], &time[n]);
		}
		gr_synth_user_end(&u);
	}
	return n;
}

/* Check the arguments' ranges and their messages. */
static void
test_arguments(void)
{
	gr_synth	m;
	gr_error	err = {0};

	CHECK(gr_synth_init(&m, 0, 10, 5, 1, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(strcmp(err.message, "users must be between 1 and 10000000, got 0") == 0);
	CHECK(gr_synth_init(&m, 10, 0, 5, 1, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(gr_synth_init(&m, 10, 10, 100001, 1, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(gr_synth_init(&m, 10000000, 10, 101, 1, &err) == GR_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.message, "at most 1000000000") != NULL);
	CHECK(gr_synth_init(&m, 1, 1, 1, 0, &err) == GR_OK);
	CHECK(m.n_clusters == 1 && m.n_prefs == 1);
	CHECK(gr_synth_init(&m, 5, 1000, 40, 7, &err) == GR_OK);
	CHECK(m.n_clusters == 31 && m.n_prefs == 3);
}

/* The rows of genrec_synthetic(3, 100, 6, 42), as expected/synthetic.out shows them. */
static void
test_fixed_rows(const gr_env *env)
{
	static const int64_t want_item[] = {49, 23, 5, 2, 92, 69, 29, 79, 9, 59, 2, 36, 86, 45};
	static const float want_action[] = {2.6f, 4.0f, 2.9f, 2.7f, 2.5f, 3.9f, 4.0f, 3.6f, 4.0f,
	4.1f, 1.2f, 2.4f, 2.5f, 2.6f};
	int64_t		user[32], item[32], time[32];
	float		action[32];
	gr_synth	m;
	gr_error	err = {0};

	CHECK_OK(gr_synth_init(&m, 3, 100, 6, 42, &err), &err);
	CHECK(generate(&m, env, user, item, action, time, 32) == 14);
	for (int i = 0; i < 14; i++)
	{
		CHECK_MSG(item[i] == want_item[i], "row %d item %lld", i, (long long) item[i]);
		CHECK_MSG(action[i] == want_action[i], "row %d action %g", i, (double) action[i]);
	}
	CHECK(time[0] == INT64_C(1704264776));	/* 2024-01-03 06:52:56+00 */
	CHECK(time[13] == INT64_C(1706611151)); /* 2024-01-30 10:39:11+00 */
}

/* Same arguments give the same rows; ranges hold; a user's rows do not depend on U. */
static void
test_properties(const gr_env *env)
{
	enum
	{
		CAP = 4000
	};
	static int64_t u1[CAP], i1[CAP], t1[CAP], u2[CAP], i2[CAP], t2[CAP];
	static float a1[CAP], a2[CAP];
	gr_synth	m;
	gr_error	err = {0};
	int64_t		n1, n2, off = 0;

	CHECK_OK(gr_synth_init(&m, 100, 300, 15, 99, &err), &err);
	n1 = generate(&m, env, u1, i1, a1, t1, CAP);
	n2 = generate(&m, env, u2, i2, a2, t2, CAP);
	CHECK(n1 == n2 && n1 > 100 * 7 && n1 < 100 * 23);
	CHECK(memcmp(i1, i2, sizeof(int64_t) * n1) == 0 && memcmp(a1, a2, sizeof(float) * n1) == 0 &&
		  memcmp(t1, t2, sizeof(int64_t) * n1) == 0);
	for (int64_t r = 0; r < n1; r++)
	{
		CHECK(i1[r] >= 1 && i1[r] <= 300);
		CHECK(a1[r] >= 1.0f && a1[r] <= 5.0f);
		if (r > 0 && u1[r] == u1[r - 1])
			CHECK(t1[r] > t1[r - 1]);
	}
	/* user 5 alone, from a generator of 5 users */
	CHECK_OK(gr_synth_init(&m, 5, 300, 15, 99, &err), &err);
	n2 = generate(&m, env, u2, i2, a2, t2, CAP);
	while (off < n1 && u1[off] != 5)
		off++;
	for (int64_t r = 0, k = off; r < n2; r++)
		if (u2[r] == 5)
		{
			CHECK(i2[r] == i1[k] && a2[r] == a1[k] && t2[r] == t1[k]);
			k++;
		}
	/* another seed gives other rows */
	CHECK_OK(gr_synth_init(&m, 100, 300, 15, 100, &err), &err);
	n2 = generate(&m, env, u2, i2, a2, t2, CAP);
	CHECK(n1 != n2 || memcmp(i1, i2, sizeof(int64_t) * n1) != 0);
}

int
main(void)
{
	gr_env		env;

	gr_env_default(&env);
	test_arguments();
	test_fixed_rows(&env);
	test_properties(&env);
	return unit_finish("test_synth");
}
