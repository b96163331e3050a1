/*
 * test_limits.c — resource limits of the engine, checked before allocating:
 *  - the training memory estimate (gr_train_memory_estimate) bounds the bytes a run really
 *    allocates at its peak, and is within 1% of it, for every layout;
 *  - its counts are 64-bit (datasets past 2^31 rows give sizes that did not wrap), and a
 *    dataset of more rows than the engine takes is refused before anything is read;
 *  - dataset building polls for interrupts inside its sort and passes, and a cancel frees
 *    everything;
 *  - the engine's sort (gr_sort.h) sorts, also down its heapsort path, and stops when asked;
 *  - evaluation batches whose exclusion lists would pass 2^31 entries shrink instead of
 *    overflowing.
 */
#include "gr_ops_cpu.h"
#include "gr_sort.h"
#include "gr_synth.h"
#include "gr_train.h"
#include "unit.h"

#include <string.h>

/* An allocator that tracks live and peak bytes (each block remembers its size). */
typedef struct peak_allocator
{
	size_t		live;
	size_t		peak;
	long		blocks;
} peak_allocator;

/* Allocate with a 16-byte size prefix and track the bytes. */
static void *
peak_alloc(void *user, size_t bytes)
{
	peak_allocator *c = user;
	size_t	   *p = malloc(bytes + 16);

	if (p == NULL)
		return NULL;
	p[0] = bytes;
	c->live += bytes;
	c->blocks++;
	if (c->live > c->peak)
		c->peak = c->live;
	return (char *) p + 16;
}

/* Free a tracked block. */
static void
peak_free(void *user, void *ptr)
{
	peak_allocator *c = user;
	size_t	   *p = (size_t *) ((char *) ptr - 16);

	c->live -= p[0];
	c->blocks--;
	free(p);
}

/* An environment whose host and CPU backend memory both go through a peak allocator. */
static void
peak_env(gr_env *env, gr_ops *ops, peak_allocator *c)
{
	memset(c, 0, sizeof(*c));
	gr_env_default(env);
	env->allocator = (gr_allocator) {peak_alloc, peak_free, c};
	gr_ops_cpu_bind(ops, &env->allocator);
	env->ops = ops;
}

/* Build a dataset of the synthetic generator's rows (K = 1). */
static gr_dataset *
synthetic_dataset(const gr_env *env, int users, int items, int per_user)
{
	gr_synth	g;
	gr_error	err;
	size_t		cap = (size_t) users * (per_user + per_user / 2 + 1), n = 0;
	int64_t    *u = malloc(sizeof(int64_t) * cap), *it = malloc(sizeof(int64_t) * cap);
	int64_t    *t = malloc(sizeof(int64_t) * cap);
	double	   *a = malloc(sizeof(double) * cap);
	gr_dataset *ds = NULL;

	CHECK_OK(gr_synth_init(&g, users, items, per_user, 7, &err), &err);
	for (int id = 1; id <= users; id++)
	{
		gr_synth_user su;

		CHECK_OK(gr_synth_user_begin(&g, env, id, &su, &err), &err);
		for (int j = 0; j < su.n && n < cap; j++, n++)
		{
			float		act;

			gr_synth_user_step(&g, &su, j, &it[n], &act, &t[n]);
			u[n] = id;
			a[n] = act;
		}
		gr_synth_user_end(&su);
	}
	gr_raw_interactions raw = {.n = n,.user = u,.item = it,.time = t,.actions = a,.n_actions = 1};

	CHECK_OK(gr_dataset_build(env, &raw, NULL, &ds, &err), &err);
	free(u);
	free(it);
	free(t);
	free(a);
	return ds;
}

/* The sizes of a built dataset. */
static gr_train_sizes
dataset_sizes(const gr_dataset *ds)
{
	gr_train_sizes s = {
		.n_interactions = (int64_t) ds->n_interactions,.n_users = ds->n_users,
		.n_items = ds->n_items,.max_user_len = ds->max_user_len,
	};

	return s;
}

/* The estimate bounds the real peak of a training run, within 1%, for every layout. */
static void
test_estimate_bounds_peak(void)
{
	static const int layouts[] = {GR_LAYOUT_ITEM, GR_LAYOUT_INT, GR_LAYOUT_LAC, GR_LAYOUT_PC,
	GR_LAYOUT_ATTNLFA, GR_LAYOUT_ATTNMVP};

	for (int i = 0; i < (int) (sizeof(layouts) / sizeof(layouts[0])); i++)
	{
		peak_allocator c;
		gr_env		env;
		gr_ops		ops;
		gr_model_config mc;
		gr_train_config tc;
		gr_train_memory mem;
		gr_train_result res;
		gr_model   *m = NULL;
		gr_error	err = {0};

		peak_env(&env, &ops, &c);
		gr_dataset *ds = synthetic_dataset(&env, 150 + 50 * i, 150, 20);

		if (ds == NULL)
			continue;
		gr_model_config_default(&mc, layouts[i], 0, ds->n_actions);
		mc.d_model = 16 * (i + 1);
		mc.n_layer = 1 + i % 2;
		mc.max_len = 12 + 4 * i;
		mc.head_hidden = 8;
		gr_train_config_default(&tc);
		tc.epochs = 1;
		tc.batch_size = 24 + 8 * i;

		gr_train_sizes sz = dataset_sizes(ds);

		CHECK_OK(gr_train_memory_estimate(&mc, &tc, &sz, &mem, &err), &err);
		CHECK(mem.total == mem.parameters + mem.gradients + mem.optimiser + mem.activations +
			  mem.evaluation + mem.dataset);
		c.peak = c.live;		/* the dataset is live: the estimate counts it */
		CHECK_OK(gr_train(&env, &mc, &tc, ds, &m, &res, &err), &err);
		CHECK_MSG(c.peak <= mem.total, "layout %d: peak %zu bytes above the estimate %zu",
				  layouts[i], c.peak, mem.total);
		CHECK_MSG(c.peak >= mem.total - mem.total / 100, "layout %d: estimate %zu bytes is "
				  "more than 1%% above the peak %zu", layouts[i], mem.total, c.peak);
		if (m != NULL)
		{
			size_t		data = 0;

			for (int t = 0; t < m->n_tensors; t++)
				data += m->tensors[t].numel * sizeof(float);
			data += (size_t) m->cfg.n_items * sizeof(int64_t);
			CHECK(mem.weights_file == data);
			CHECK(mem.gradients == m->n_params * sizeof(float));
		}
		gr_model_free(m);
		gr_dataset_free(ds);
		CHECK(c.live == 0 && c.blocks == 0);
	}
}

/* Sizes past 2^31 rows do not wrap, and the parts grow with them. */
static void
test_estimate_is_64_bit(void)
{
	gr_model_config mc;
	gr_train_config tc;
	gr_train_memory small,
				big;
	gr_error	err = {0};
	gr_train_sizes s = {.n_interactions = 1000,.n_users = 10,.n_items = 100,.max_user_len = 100};
	gr_train_sizes b = {.n_interactions = 5000000000LL,.n_users = 3000000000LL,
	.n_items = 40000000,.max_user_len = 4000000000LL};

	gr_model_config_default(&mc, GR_LAYOUT_LAC, 0, 2);
	gr_train_config_default(&tc);
	CHECK_OK(gr_train_memory_estimate(&mc, &tc, &s, &small, &err), &err);
	CHECK_OK(gr_train_memory_estimate(&mc, &tc, &b, &big, &err), &err);
	/* items, times and two actions per row: 5e9 * 20 bytes at least */
	CHECK_MSG(big.dataset >= (size_t) 5000000000LL * 20, "dataset %zu", big.dataset);
	CHECK(big.parameters > small.parameters && big.evaluation > small.evaluation);
	CHECK(big.total >= big.dataset && big.total > (size_t) 1 << 36);
	/* the item embedding alone: 4e7 x 64 floats */
	CHECK(big.weights_file >= (size_t) 40000000 * 64 * 4);
	b.n_items = 3000000000LL;
	CHECK(gr_train_memory_estimate(&mc, &tc, &b, &big, &err) == GR_ERR_INVALID_ARGUMENT);
	/* more rows than the dataset takes: refused before anything is read or allocated */
	gr_raw_interactions raw = {.n = (size_t) INT32_MAX * 8 + 1};
	gr_dataset *ds = (gr_dataset *) &raw;
	gr_env		env;

	gr_env_default(&env);
	CHECK(gr_dataset_build(&env, &raw, NULL, &ds, &err) == GR_ERR_INVALID_ARGUMENT && ds == NULL);
	CHECK_MSG(strstr(err.message, "too many interactions") != NULL, "%s", err.message);
	mc.n_head = 3;
	CHECK(gr_train_memory_estimate(&mc, &tc, &s, &small, &err) == GR_ERR_INVALID_ARGUMENT);
}

/* Interrupt state: stop at the stop_at-th poll (0 = never). */
typedef struct interrupt_state
{
	long		polls;
	long		stop_at;
} interrupt_state;

/* Report "stop" from the stop_at-th poll on. */
static bool
interrupt_after(void *user)
{
	interrupt_state *s = user;

	s->polls++;
	return s->stop_at > 0 && s->polls >= s->stop_at;
}

/* Build a dataset of n rows over many users and items, stopping at poll stop_at. */
static gr_status
build_with_stop(size_t n, long stop_at, long *polls, size_t *leaked)
{
	peak_allocator c;
	gr_env		env;
	gr_ops		ops;
	interrupt_state st = {0, stop_at};
	int64_t    *u = malloc(sizeof(int64_t) * n),
			   *it = malloc(sizeof(int64_t) * n),
			   *t = malloc(sizeof(int64_t) * n);
	double	   *a = malloc(sizeof(double) * n);
	gr_dataset *ds = NULL;
	gr_error	err = {0};
	uint64_t	x = 88172645463325252ULL;

	for (size_t i = 0; i < n; i++)
	{
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		u[i] = (int64_t) (x % 50000);
		it[i] = (int64_t) ((x >> 20) % 20000);
		t[i] = (int64_t) (x >> 40);
		a[i] = (double) (x % 5);
	}
	peak_env(&env, &ops, &c);
	env.interrupted = interrupt_after;
	env.callback_user = &st;

	gr_raw_interactions raw = {.n = n,.user = u,.item = it,.time = t,.actions = a,.n_actions = 1};
	gr_status	s = gr_dataset_build(&env, &raw, NULL, &ds, &err);

	if (s == GR_OK)
	{
		bool		sorted = true;

		CHECK(ds->n_interactions == n && ds->n_users <= 50000);
		for (int v = 2; v <= ds->n_items; v++)
			sorted &= ds->item_ids[v] > ds->item_ids[v - 1];
		for (int w = 0; w < ds->n_users; w++)
			for (int64_t i = ds->offsets[w] + 1; i < ds->offsets[w + 1]; i++)
				sorted &= ds->times[i] >= ds->times[i - 1];
		CHECK(sorted);
		CHECK(c.peak <= gr_dataset_build_bytes((int64_t) n, 1, false));
	}
	else
		CHECK(ds == NULL && strstr(err.message, "cancelled") != NULL);
	gr_dataset_free(ds);
	*polls = st.polls;
	*leaked = c.live;
	free(u);
	free(it);
	free(t);
	free(a);
	return s;
}

/* Building a dataset of millions of rows polls often, and a cancel anywhere frees it all. */
static void
test_build_polls(void)
{
	size_t		n = 1500000,
				leaked;
	long		total,
				polls;

	CHECK(build_with_stop(n, 0, &total, &leaked) == GR_OK && leaked == 0);
	/* a sort of n keys does about n log2(n) / 2^20 polls; the passes one per 2^20 rows */
	CHECK_MSG(total >= 20, "only %ld polls building %zu rows", total, n);
	for (long stop = 1; stop <= total; stop += GR_MAX(1, total / 4))
	{
		CHECK_MSG(build_with_stop(n, stop, &polls, &leaked) == GR_ERR_CANCELLED,
				  "stop at poll %ld of %ld", stop, total);
		CHECK(polls == stop && leaked == 0);
	}
}

/* Whether a is below b. */
static inline bool
int_less(const void *ctx, const int *a, const int *b)
{
	(void) ctx;
	return *a < *b;
}

GR_DEFINE_SORT(sort_ints, int, int_less)

/* Order ints for qsort. */
static int
cmp_int(const void *a, const void *b)
{
	int			x = *(const int *) a, y = *(const int *) b;

	return x < y ? -1 : (x > y);
}

/* The sort against qsort on shapes that break naive quicksorts, and its heapsort path. */
static void
test_sort(void)
{
	static const size_t sizes[] = {0, 1, 2, 3, 16, 17, 100, 1000, 65537};
	uint64_t	x = 12345;

	for (int shape = 0; shape < 6; shape++)
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
			for (int heap = 0; heap < 2; heap++)
			{
				size_t		n = sizes[si];
				int		   *a = malloc(sizeof(int) * (n + 1)),
						   *b = malloc(sizeof(int) * (n + 1));
				bool		ok;

				for (size_t i = 0; i < n; i++)
				{
					x = x * 6364136223846793005ULL + 1442695040888963407ULL;
					a[i] = shape == 0 ? (int) (x >> 33) : shape == 1 ? (int) i :
						shape == 2 ? (int) (n - i) : shape == 3 ? 7 :
						shape == 4 ? (int) ((x >> 33) % 3) : (int) (i % 2 ? i : n - i);
					b[i] = a[i];
				}
				if (heap)
				{
					sort_ints_state st = {.ctx = NULL,.env = NULL};

					ok = sort_ints_intro(&st, a, n, 0);
				}
				else
					ok = sort_ints(a, n, NULL, NULL);
				qsort(b, n, sizeof(int), cmp_int);
				CHECK(ok);
				CHECK_MSG(n == 0 || memcmp(a, b, sizeof(int) * n) == 0,
						  "shape %d, %zu elements, heap %d", shape, n, heap);
				free(a);
				free(b);
			}

	/* a stop request ends a large sort */
	{
		size_t		n = 4000000;
		int		   *a = malloc(sizeof(int) * n);
		interrupt_state st = {0, 3};
		gr_env		env;

		gr_env_default(&env);
		env.interrupted = interrupt_after;
		env.callback_user = &st;
		for (size_t i = 0; i < n; i++)
		{
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			a[i] = (int) (x >> 33);
		}
		CHECK(!sort_ints(a, n, NULL, &env) && st.polls == 3);
		free(a);
	}
}

/* One user with 40,000 interactions in an evaluation batch of 65,536 users: the exclusion
 * capacity (batch x history) passes 2^31, so the batch shrinks to fit instead. */
static void
test_eval_long_history(void)
{
	enum
	{
		LONG_USER = 40000,
		ROWS = LONG_USER + 10
	};
	gr_env		env;
	gr_model_config mc;
	gr_model   *m = NULL;
	gr_dataset *ds = NULL;
	gr_eval_options opt;
	gr_metrics	mt;
	gr_error	err = {0};
	int64_t    *u = malloc(sizeof(int64_t) * ROWS),
			   *it = malloc(sizeof(int64_t) * ROWS);

	gr_env_default(&env);
	for (int i = 0; i < ROWS; i++)
	{
		u[i] = i < LONG_USER ? 1 : 2 + (i - LONG_USER) / 5;
		it[i] = 1 + (i * 7) % 50;
	}
	gr_raw_interactions raw = {.n = ROWS,.user = u,.item = it};

	CHECK_OK(gr_dataset_build(&env, &raw, NULL, &ds, &err), &err);
	gr_model_config_default(&mc, GR_LAYOUT_ITEM, ds ? ds->n_items : 1, 0);
	mc.d_model = 4;
	mc.n_head = 1;
	mc.n_layer = 1;
	mc.max_len = 4;
	CHECK_OK(gr_model_create(&env, &mc, ds ? ds->item_ids + 1 : NULL, &m, &err), &err);
	if (m != NULL && ds != NULL)
	{
		CHECK_OK(gr_model_init_params(m, 1, &err), &err);
		gr_eval_options_default(&opt);
		opt.batch_users = 65536;
		opt.baseline = false;
		CHECK_OK(gr_evaluate(m, ds, GR_SPLIT_TEST, &opt, &mt, &err), &err);
		CHECK(mt.n_users == 3 && isfinite(mt.hr[0]));
		CHECK(gr_eval_bytes(&mc, ds->n_users, ds->max_user_len, &opt) > 0);
	}
	gr_model_free(m);
	gr_dataset_free(ds);
	free(u);
	free(it);
}

/* Run the limit tests. */
int
main(void)
{
	test_estimate_bounds_peak();
	test_estimate_is_64_bit();
	test_sort();
	test_build_polls();
	test_eval_long_history();
	return unit_finish("test_limits");
}
