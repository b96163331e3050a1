/*
 * serve_engine.c — the engine side of bench/sql_bench.sh: gr_score called directly in a loop
 * on a saved model, one history and one candidate list (the same ones the SQL side scores),
 * timed per call; prints "p50_us p99_us mean_us calls".
 *
 *   serve_engine --model M.safetensors --input F [--iters N] [--threads T]
 *
 * F holds three lines of space-separated numbers: the history's item ids (oldest first),
 * its first action column ("nan" = missing), and the candidate item ids.
 */
#include "gr_io.h"
#include "gr_serve.h"
#include "bench_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_VALUES 100000

/* Parse one line of numbers into out (at most MAX_VALUES); returns the count or -1. */
static int
read_line(FILE *f, double *out)
{
	static char line[4 * 1024 * 1024];
	char	   *p,
			   *end;
	int			n = 0;

	if (fgets(line, sizeof(line), f) == NULL)
		return -1;
	for (p = line;; p = end)
	{
		double		v = strtod(p, &end);

		if (end == p)
			break;
		if (n == MAX_VALUES)
			return -1;
		out[n++] = v;
	}
	return n;
}

/* Time gr_score on the input and print the latency quantiles. */
int
main(int argc, char **argv)
{
	const char *model_path = NULL,
			   *input_path = NULL;
	int			iters = 5000,
				threads = 1;
	gr_env		env;
	gr_error	err = {0};
	gr_model   *m;
	gr_session *s;
	FILE	   *f;
	double	   *items_d = malloc(sizeof(double) * MAX_VALUES),
			   *acts_d = malloc(sizeof(double) * MAX_VALUES),
			   *cands_d = malloc(sizeof(double) * MAX_VALUES);
	int			n_hist,
				n_acts,
				n_cands;

	for (int i = 1; i < argc; i++)
	{
		if (!strcmp(argv[i], "--model") && i + 1 < argc)
			model_path = argv[++i];
		else if (!strcmp(argv[i], "--input") && i + 1 < argc)
			input_path = argv[++i];
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else
		{
			fprintf(stderr, "usage: serve_engine --model M --input F [--iters N] [--threads T]\n");
			return 2;
		}
	}
	if (model_path == NULL || input_path == NULL || iters < 10)
	{
		fprintf(stderr, "serve_engine: --model and --input are required (--iters >= 10)\n");
		return 2;
	}
	if ((f = fopen(input_path, "r")) == NULL)
	{
		fprintf(stderr, "serve_engine: cannot read %s\n", input_path);
		return 1;
	}
	n_hist = read_line(f, items_d);
	n_acts = read_line(f, acts_d);
	n_cands = read_line(f, cands_d);
	fclose(f);
	if (n_hist < 0 || n_acts != n_hist || n_cands < 1)
	{
		fprintf(stderr, "serve_engine: %s needs three lines: items, actions, candidates\n",
				input_path);
		return 1;
	}
	gr_env_default(&env);
	gr_ops_cpu_set_threads(threads);
	if (gr_model_load_file(&env, model_path, &m, NULL, &err) != GR_OK ||
		gr_session_create(m, &s, &err) != GR_OK)
	{
		fprintf(stderr, "serve_engine: %s\n", err.message);
		return 1;
	}

	int			K = m->cfg.n_actions;
	int64_t    *items = malloc(sizeof(int64_t) * (n_hist + 1));
	double	   *acts = malloc(sizeof(double) * (n_hist + 1) * (K > 0 ? K : 1));
	int64_t    *cands = malloc(sizeof(int64_t) * n_cands);
	float	   *out_a = malloc(sizeof(float) * n_cands * (K > 0 ? K : 1));
	float	   *out_l = malloc(sizeof(float) * n_cands);
	uint8_t    *known = malloc(n_cands);
	double	   *t = malloc(sizeof(double) * iters);
	double		sum = 0;

	for (int i = 0; i < n_hist; i++)
	{
		items[i] = (int64_t) items_d[i];
		for (int k = 0; k < K; k++)
			acts[i * K + k] = k == 0 ? acts_d[i] : NAN;
	}
	for (int c = 0; c < n_cands; c++)
		cands[c] = (int64_t) cands_d[c];

	gr_history	h = {.items = items,.actions = K > 0 ? acts : NULL,.n = n_hist};
	gr_scores	sc = {.action = out_a,.logit = out_l,.known = known};

	for (int i = 0; i < iters / 10 + 10; i++)	/* warm-up */
		if (gr_score(s, &h, cands, n_cands, &sc, &err) != GR_OK)
		{
			fprintf(stderr, "serve_engine: %s\n", err.message);
			return 1;
		}
	for (int i = 0; i < iters; i++)
	{
		double		t0 = bench_now_us();

		gr_score(s, &h, cands, n_cands, &sc, &err);
		t[i] = bench_now_us() - t0;
		sum += t[i];
	}
	qsort(t, iters, sizeof(double), bench_cmp_double);
	printf("%.1f %.1f %.1f %d\n", t[iters / 2], t[(int) (0.99 * (iters - 1) + 0.5)],
		   sum / iters, iters);
	gr_session_free(s);
	gr_model_free(m);
	free(items);
	free(acts);
	free(cands);
	free(out_a);
	free(out_l);
	free(known);
	free(t);
	free(items_d);
	free(acts_d);
	free(cands_d);
	return 0;
}
