/*
 * cpu_retrieval.c — top-k retrieval latency over a large catalogue in the engine: an item
 * model with V items (random GPT-2 init, d 64, 2 layers), or a trained model file (--model),
 * one session, gr_recommend of k items for a history of 50 interactions per call, seen
 * items excluded: items drawn uniformly from the catalogue, or (--data) the last 50
 * interactions of the file's users in turn (a TSV of user, item, ... with each user's rows
 * contiguous and in time order, as `genrec synth` prints them); prints p50, p99 and mean in milliseconds of exact retrieval and, with
 * --probes, of retrieval through an IVF index (gr_ivf.h, --lists lists, default about
 * sqrt(V)) for each probe count, with its recall@k against exact retrieval on the same
 * histories (mean and minimum over the calls) and the index's build time and size.
 *
 *   cpu_retrieval [--items V] [--k K] [--iters N] [--threads T] [--d D] [--model FILE]
 *                 [--data TSV] [--lists L] [--probes P1,P2,...]
 *
 * It also prints how many distinct items the exact top-k lists hold together: when the
 * queries are alike (random histories of an untrained model) every list is the same and a
 * recall figure says little.
 */
#include "gr_io.h"
#include "gr_rng.h"
#include "gr_serve.h"
#include "bench_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Histories read from --data: users' last HIST_LEN items, back to back. */
#define HIST_LEN 50
static int64_t *data_hist = NULL;
static int	data_users = 0;

/* Read the last HIST_LEN items of every user with at least HIST_LEN rows in a TSV. */
static bool
read_histories(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[512];
	long long	cur = -1;
	int64_t		ring[HIST_LEN];
	int			n = 0, cap = 0;

	if (f == NULL)
		return false;
	for (bool more = true; more;)
	{
		long long	u = -2, item = 0;

		more = fgets(line, sizeof(line), f) != NULL;
		if (more && sscanf(line, "%lld %lld", &u, &item) != 2)
			continue;
		if (u != cur)
		{
			if (n >= HIST_LEN)
			{
				if (data_users == cap)
				{
					cap = cap ? 2 * cap : 1024;
					data_hist = realloc(data_hist, sizeof(int64_t) * HIST_LEN * cap);
				}
				for (int j = 0; j < HIST_LEN; j++)
					data_hist[(size_t) data_users * HIST_LEN + j] = ring[(n + j) % HIST_LEN];
				data_users++;
			}
			cur = u;
			n = 0;
		}
		ring[n++ % HIST_LEN] = item;
	}
	fclose(f);
	return data_users > 0;
}

/* The history of 50 items of call it. */
static void
draw_history(const gr_model *m, int it, int64_t *hist)
{
	int			V = m->cfg.n_items;

	if (data_users > 0)
	{
		/* users spread over the file: call it takes user (it * 7919) mod users */
		memcpy(hist, data_hist + (size_t) (((long) (it + 3) * 7919) % data_users) * HIST_LEN,
			   sizeof(int64_t) * HIST_LEN);
		return;
	}
	for (int j = 0; j < 50; j++)
		hist[j] = m->item_ids[1 + (int) (gr_rng_uniform(3, GR_STREAM_TEST, (uint32_t) (it + 3),
														   j) * V) % V];
}

/* Time iters calls of gr_recommend (3 warm-up calls first); results of call i go to
 * items[i * k ..] when items is not NULL. */
static int
time_calls(gr_session *s, int k, int iters, double *lat, int64_t *items, gr_error *err)
{
	int64_t		hist[50], out[4096];
	float		scores[4096];
	int			n_out = 0;

	for (int it = -3; it < iters; it++)
	{
		draw_history(s->model, it, hist);
		gr_history h = {.items = hist,.actions = NULL,.n = 50};
		double		t0 = bench_now_us();

		if (gr_recommend(s, &h, k, true, out, scores, &n_out, err) != GR_OK)
			return -1;
		if (it < 0)
			continue;
		lat[it] = (bench_now_us() - t0) * 1e-3;
		if (items != NULL)
		{
			for (int i = 0; i < k; i++)
				items[(size_t) it * k + i] = i < n_out ? out[i] : -1;
		}
	}
	return n_out;
}

/* Print one latency line. */
static void
print_line(const char *what, const double *lat, int iters, double recall, double recall_min)
{
	double		mean = 0;

	for (int i = 0; i < iters; i++)
		mean += lat[i] / iters;
	printf("| %s | %.2f | %.2f | %.2f | %.4f | %.4f |\n", what, bench_quantile((double *) lat,
			iters, 0.5), bench_quantile((double *) lat, iters, 0.99), mean, recall, recall_min);
}

/* Recall of got against want per call (both [iters * k]); mean and minimum. */
static void
recall_of(const int64_t *want, const int64_t *got, int iters, int k, double *mean, double *min)
{
	*mean = 0;
	*min = 1;
	for (int it = 0; it < iters; it++)
	{
		int			hit = 0, n = 0;

		for (int i = 0; i < k; i++)
		{
			if (want[(size_t) it * k + i] < 0)
				continue;
			n++;
			for (int j = 0; j < k; j++)
				hit += got[(size_t) it * k + j] == want[(size_t) it * k + i];
		}
		double		r = n > 0 ? (double) hit / n : 1;

		*mean += r / iters;
		*min = r < *min ? r : *min;
	}
}

/* Order int64 values ascending. */
static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a, y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* Distinct non-negative values of an array (sorts a copy). */
static int
count_distinct(const int64_t *v, size_t n)
{
	int64_t    *c = malloc(sizeof(int64_t) * n);
	int			d = 0;

	memcpy(c, v, sizeof(int64_t) * n);
	qsort(c, n, sizeof(int64_t), cmp_i64);
	for (size_t i = 0; i < n; i++)
		d += c[i] >= 0 && (i == 0 || c[i] != c[i - 1]);
	free(c);
	return d;
}

/* Time exact and indexed retrieval and print the latency quantiles and recall. */
int
main(int argc, char **argv)
{
	int			V = 1000000, k = 100, iters = 200, threads = 2, d = 64, lists = 0;
	const char *model_path = NULL, *probes_arg = NULL;
	gr_env		env;
	gr_error	err = {0};
	gr_model_config mc;
	gr_model   *m = NULL;
	gr_session *s = NULL;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--items") == 0)
			V = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--k") == 0)
			k = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--iters") == 0)
			iters = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--d") == 0)
			d = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--model") == 0)
			model_path = argv[i + 1];
		else if (strcmp(argv[i], "--data") == 0)
		{
			if (!read_histories(argv[i + 1]))
			{
				fprintf(stderr, "cpu_retrieval: no user with %d rows in %s\n", HIST_LEN,
						argv[i + 1]);
				return 2;
			}
		}
		else if (strcmp(argv[i], "--lists") == 0)
			lists = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--probes") == 0)
			probes_arg = argv[i + 1];
		else
		{
			fprintf(stderr, "cpu_retrieval: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (k < 1 || k > 4096 || iters < 1)
	{
		fprintf(stderr, "cpu_retrieval: k must be in 1..4096 and iters positive\n");
		return 2;
	}
	gr_env_default(&env);
	gr_ops_cpu_set_threads(threads);
	gr_status	st;

	if (model_path != NULL)
		st = gr_model_load_file(&env, model_path, &m, NULL, &err);
	else
	{
		gr_model_config_default(&mc, GR_LAYOUT_ITEM, V, 0);
		mc.d_model = d;
		st = gr_model_create(&env, &mc, NULL, &m, &err);
		if (st == GR_OK)
			st = gr_model_init_params(m, 7, &err);
	}
	if (st != GR_OK || gr_session_create(m, &s, &err) != GR_OK)
	{
		fprintf(stderr, "cpu_retrieval: %s\n", err.message);
		return 1;
	}
	V = m->cfg.n_items;
	d = m->cfg.d_model;
	double	   *lat = malloc(sizeof(double) * iters);
	int64_t    *want = malloc(sizeof(int64_t) * (size_t) iters * k);
	int64_t    *got = malloc(sizeof(int64_t) * (size_t) iters * k);

	printf("top-%d of %d items (%s, d %d, %d threads, %s), %d calls each\n\n", k, V,
		   model_path ? model_path : "random init", d, threads, gr_blas_name(), iters);
	printf("| retrieval | p50 ms | p99 ms | mean ms | recall@%d mean | min |\n|---|---:|---:|---:|---:|---:|\n", k);
	if (time_calls(s, k, iters, lat, want, &err) < 0)
	{
		fprintf(stderr, "cpu_retrieval: %s\n", err.message);
		return 1;
	}
	print_line("exact", lat, iters, 1, 1);
	if (probes_arg != NULL)
	{
		gr_ivf	   *ivf = NULL;

		if (lists <= 0)
			lists = gr_ivf_default_lists(V);
		if (gr_ivf_build(&env, m->w.item_emb + d, V, d, lists, 1, &ivf, &err) != GR_OK ||
			gr_session_use_index(s, ivf, 1, &err) != GR_OK)
		{
			fprintf(stderr, "cpu_retrieval: %s\n", err.message);
			return 1;
		}
		for (const char *p = probes_arg; *p != '\0';)
		{
			int			probes = atoi(p);
			char		what[64];
			double		rm, rmin;

			gr_session_use_index(s, ivf, probes, &err);
			if (time_calls(s, k, iters, lat, got, &err) < 0)
			{
				fprintf(stderr, "cpu_retrieval: %s\n", err.message);
				return 1;
			}
			recall_of(want, got, iters, k, &rm, &rmin);
			snprintf(what, sizeof(what), "IVF %d lists, %d probes", lists, probes);
			print_line(what, lat, iters, rm, rmin);
			while (*p != '\0' && *p != ',')
				p++;
			if (*p == ',')
				p++;
		}
		printf("\nindex: %d lists (longest %d rows), built in %.0f ms, %.1f MB\n", lists,
			   ivf->longest, ivf->build_ms, gr_ivf_bytes(ivf) / 1048576.0);
		gr_session_use_index(s, NULL, 0, &err);
		gr_ivf_free(&env, ivf);
	}
	printf("\nhistories: %s; the exact top-%d lists of the %d calls hold %d distinct items\n",
		   data_users > 0 ? "users of --data" : "uniform random items", k, iters,
		   count_distinct(want, (size_t) iters * k));
	free(lat);
	free(want);
	free(got);
	gr_session_free(s);
	gr_model_free(m);
	return 0;
}
