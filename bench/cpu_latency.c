/*
 * cpu_latency.c — serving latency of the engine for one user: one-pass scoring of C candidates
 * (gr_score) and top-k retrieval over the catalogue (gr_recommend), as p50/p99 over many
 * calls, on a saved model and a real history.
 *
 *   build/bench/cpu_latency --model M.safetensors --data u.data [--history 50]
 *       [--candidates 100] [--k 10] [--iters 2000] [--threads 1] [--json]
 *
 * The data file is whitespace-separated "user item action time" (MovieLens-100K u.data);
 * the history is the most recent --history interactions of the first user who has that many,
 * and the candidates are the catalogue's first --candidates item ids.
 */
#include "gr_io.h"
#include "gr_serve.h"
#include "bench_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct row
{
	long		user, item, time;
	double		action;
} row;

/* Order rows by (user, time, input order). */
static int
cmp_row(const void *a, const void *b)
{
	const row  *x = a, *y = b;

	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	return x->time < y->time ? -1 : (x->time > y->time);
}

/* Read "user item action time" rows; returns the count. */
static size_t
read_rows(const char *path, row **out)
{
	FILE	   *f = fopen(path, "r");
	size_t		cap = 1 << 16, n = 0;
	row		   *r = malloc(sizeof(row) * cap);

	if (f == NULL || r == NULL)
	{
		fprintf(stderr, "cpu_latency: cannot read %s\n", path);
		exit(1);
	}
	while (fscanf(f, "%ld %ld %lf %ld", &r[n].user, &r[n].item, &r[n].action, &r[n].time) == 4)
		if (++n == cap)
			r = realloc(r, sizeof(row) * (cap *= 2));
	fclose(f);
	qsort(r, n, sizeof(row), cmp_row);
	*out = r;
	return n;
}

/* Run and time the scoring and retrieval loops. */
int
main(int argc, char **argv)
{
	const char *model_path = NULL, *data_path = NULL;
	int			hist_len = 50, n_cands = 100, k = 10, iters = 2000, threads = 1;
	bool		json = false;
	gr_env		env;
	gr_error	err = {0};
	gr_model   *m;
	gr_session *s;

	for (int i = 1; i < argc; i++)
	{
		if (!strcmp(argv[i], "--model") && i + 1 < argc)
			model_path = argv[++i];
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			data_path = argv[++i];
		else if (!strcmp(argv[i], "--history") && i + 1 < argc)
			hist_len = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--candidates") && i + 1 < argc)
			n_cands = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--k") && i + 1 < argc)
			k = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else
		{
			fprintf(stderr, "usage: cpu_latency --model M --data F [--history N] "
					"[--candidates C] [--k K] [--iters N] [--threads T] [--json]\n");
			return 2;
		}
	}
	if (model_path == NULL || data_path == NULL || hist_len < 1 || n_cands < 1 || iters < 10)
	{
		fprintf(stderr, "cpu_latency: --model and --data are required\n");
		return 2;
	}
	gr_env_default(&env);
	gr_ops_cpu_set_threads(threads);
	if (gr_model_load_file(&env, model_path, &m, NULL, &err) != GR_OK ||
		gr_session_create(m, &s, &err) != GR_OK)
	{
		fprintf(stderr, "cpu_latency: %s\n", err.message);
		return 1;
	}

	/* the most recent hist_len interactions of the first user who has that many */
	row		   *rows;
	size_t		n = read_rows(data_path, &rows), start = 0, end = 0;

	for (size_t i = 0; i < n; i = end)
	{
		for (end = i; end < n && rows[end].user == rows[i].user; end++)
			;
		if (end - i >= (size_t) hist_len)
		{
			start = end - hist_len;
			break;
		}
	}
	if (end - start != (size_t) hist_len)
	{
		fprintf(stderr, "cpu_latency: no user has %d interactions\n", hist_len);
		return 1;
	}
	int			K = m->cfg.n_actions;
	int64_t    *items = malloc(sizeof(int64_t) * hist_len);
	double	   *acts = malloc(sizeof(double) * hist_len * (K > 0 ? K : 1));
	int64_t    *cands = malloc(sizeof(int64_t) * n_cands);
	float	   *out_a = malloc(sizeof(float) * n_cands * (K > 0 ? K : 1));
	float	   *out_l = malloc(sizeof(float) * n_cands);
	int64_t    *rec = malloc(sizeof(int64_t) * k);
	float	   *rec_s = malloc(sizeof(float) * k);
	double	   *t_score = malloc(sizeof(double) * iters), *t_rec = malloc(sizeof(double) * iters);

	for (int i = 0; i < hist_len; i++)
	{
		items[i] = rows[start + i].item;
		for (int j = 0; j < K; j++)
			acts[i * K + j] = rows[start + i].action;
	}
	for (int c = 0; c < n_cands; c++)
		cands[c] = m->item_ids[1 + c % m->cfg.n_items];

	gr_history	h = {.items = items,.actions = acts,.n = hist_len};
	gr_scores	sc = {.action = out_a,.logit = out_l};
	int			n_rec;

	for (int i = 0; i < iters / 10; i++)	/* warm-up */
		if (gr_score(s, &h, cands, n_cands, &sc, &err) != GR_OK ||
			gr_recommend(s, &h, k, true, rec, rec_s, &n_rec, &err) != GR_OK)
		{
			fprintf(stderr, "cpu_latency: %s\n", err.message);
			return 1;
		}
	for (int i = 0; i < iters; i++)
	{
		double		t0 = bench_now_us();

		gr_score(s, &h, cands, n_cands, &sc, &err);
		double		t1 = bench_now_us();

		gr_recommend(s, &h, k, true, rec, rec_s, &n_rec, &err);
		t_score[i] = t1 - t0;
		t_rec[i] = bench_now_us() - t1;
	}
	double		s50 = bench_quantile(t_score, iters, 0.5), s99 = bench_quantile(t_score, iters, 0.99);
	double		r50 = bench_quantile(t_rec, iters, 0.5), r99 = bench_quantile(t_rec, iters, 0.99);

	if (json)
		printf("{\"layout\": \"%s\", \"history\": %d, \"candidates\": %d, \"k\": %d, "
			   "\"threads\": %d, \"iters\": %d, \"score_p50_us\": %.1f, \"score_p99_us\": %.1f, "
			   "\"recommend_p50_us\": %.1f, \"recommend_p99_us\": %.1f}\n",
			   m->layout->name, hist_len, n_cands, k, threads, iters, s50, s99, r50, r99);
	else
		printf("%s: score %d candidates (history %d): p50 %.1f us, p99 %.1f us; "
			   "top-%d retrieval over %d items: p50 %.1f us, p99 %.1f us (%d threads)\n",
			   m->layout->name, n_cands, hist_len, s50, s99, k, m->cfg.n_items, r50, r99, threads);
	gr_session_free(s);
	gr_model_free(m);
	free(rows);
	free(items);
	free(acts);
	free(cands);
	free(out_a);
	free(out_l);
	free(rec);
	free(rec_s);
	free(t_score);
	free(t_rec);
	return 0;
}
