/*
 * cpu_retrieval.c — top-k retrieval latency over a large catalogue in the engine: an item
 * model with V items (random GPT-2 init, d 64, 2 layers), one session, gr_recommend of k
 * items for a history of 50 interactions drawn per call, seen items excluded; prints p50,
 * p99 and mean in milliseconds.
 *
 *   cpu_retrieval [--items V] [--k K] [--iters N] [--threads T] [--d D]
 */
#include "gr_rng.h"
#include "gr_serve.h"
#include "bench_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Time gr_recommend and print the latency quantiles. */
int
main(int argc, char **argv)
{
	int			V = 1000000, k = 100, iters = 200, threads = 2, d = 64;
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
		else
		{
			fprintf(stderr, "cpu_retrieval: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	gr_env_default(&env);
	gr_ops_cpu_set_threads(threads);
	gr_model_config_default(&mc, GR_LAYOUT_ITEM, V, 0);
	mc.d_model = d;
	if (gr_model_create(&env, &mc, NULL, &m, &err) != GR_OK ||
		gr_model_init_params(m, 7, &err) != GR_OK ||
		gr_session_create(m, &s, &err) != GR_OK)
	{
		fprintf(stderr, "cpu_retrieval: %s\n", err.message);
		return 1;
	}
	double	   *lat = malloc(sizeof(double) * iters);
	int64_t		hist[50], items[4096];
	float		scores[4096];
	int			n_out = 0;

	for (int it = -3; it < iters; it++)
	{
		for (int j = 0; j < 50; j++)
			hist[j] = m->item_ids[1 + (int) (gr_rng_uniform(3, GR_STREAM_TEST, (uint32_t) (it + 3),
																  j) * V) % V];
		gr_history h = {.items = hist,.actions = NULL,.n = 50};
		double		t0 = bench_now_us();

		if (gr_recommend(s, &h, k, true, items, scores, &n_out, &err) != GR_OK)
		{
			fprintf(stderr, "cpu_retrieval: %s\n", err.message);
			return 1;
		}
		if (it >= 0)
			lat[it] = (bench_now_us() - t0) * 1e-3;
	}
	double		mean = 0;

	for (int i = 0; i < iters; i++)
		mean += lat[i] / iters;
	printf("top-%d of %d items (d %d, %d threads, %s): p50 %.2f ms, p99 %.2f ms, mean %.2f ms "
		   "over %d calls (%d returned)\n", k, V, d, threads, gr_blas_name(),
		   bench_quantile(lat, iters, 0.5), bench_quantile(lat, iters, 0.99), mean, iters, n_out);
	free(lat);
	gr_session_free(s);
	gr_model_free(m);
	return 0;
}
