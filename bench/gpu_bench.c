/*
 * gpu_bench.c — the engine's side of the GPU benchmark (bench/gpu_bench.py is PyTorch's):
 *
 *   peak        TFLOP/s of a large square GEMM through the backend (the "measured peak")
 *   train       tokens/s of full optimiser steps (forward, backward, AdamW) per layout at a
 *               small (d=64, 2 layers, 2 heads, len 50, 128 users) and a large (d=768,
 *               12 layers, 12 heads, len 1024, 8 users) size, on synthetic histories over a
 *               20,000-item catalogue; achieved TFLOP/s counted as in LAYOUTS.md §7
 *               (per layer 24 T d^2 + 2 T^2 d forward, training 3x forward) plus the tied
 *               item head (2 R d V forward, 3x for training), and the fraction of the peak
 *   score       latency of gr_score: 1,000 candidates after a history of 1,024 (LAC, large)
 *   topk        top-100 over 1M scores (the op alone) and gr_recommend over a 1M-item
 *               catalogue (small model: trunk, GEMV and top-k)
 *
 *   gpu_bench [--device cuda|cpu] [--math tf32|fp32|bf16] [--module PATH]
 *             [--sizes tiny,small,large] [--layouts item,int,lac,pc] [--steps N]
 *             [--skip-serving] [--peak-n N] [--json FILE]
 *
 * Timings are medians of repeated runs after warm-up, each ended by the backend's check()
 * (which waits for the device). Prints a table; --json writes the numbers.
 */
#include "gr_device.h"
#include "gr_layout.h"
#include "gr_rng.h"
#include "gr_serve.h"
#include "gr_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_size
{
	const char *name;
	int			d, layers, heads, len, users;
} bench_size;

static const bench_size sizes[] = {
	{"tiny", 32, 1, 2, 16, 8},
	{"small", 64, 2, 2, 50, 128},
	{"large", 768, 12, 12, 1024, 8},
};

#define N_ITEMS 20000

/* Wall-clock seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Median of n doubles (sorts them). */
static double
median(double *x, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && x[j - 1] > x[j]; j--)
		{
			double		t = x[j];

			x[j] = x[j - 1];
			x[j - 1] = t;
		}
	return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Uniform in [0, 1) from a counter. */
static float
u01(uint64_t *ctr)
{
	return gr_rng_uniform(12345, GR_STREAM_TEST, 1, (*ctr)++);
}

/* Stop on a failed engine call. */
static void
must(gr_status st, const gr_error *err, const char *what)
{
	if (st != GR_OK)
	{
		fprintf(stderr, "gpu_bench: %s: %s\n", what, err->message);
		exit(1);
	}
}

/* TFLOP/s of an n x n x n GEMM through the backend (median of 10 after 3 warm-ups). */
static double
measure_peak(const gr_ops *ops, int n)
{
	size_t		nn = (size_t) n * n;
	float	   *h = malloc(sizeof(float) * nn);
	uint64_t	ctr = 0;
	gr_error	err;
	double		t[10];

	for (size_t i = 0; i < nn; i++)
		h[i] = u01(&ctr) - 0.5f;	/* random data, never zeros */
	float	   *a = ops->alloc(ops->ctx, 4 * nn), *b = ops->alloc(ops->ctx, 4 * nn);
	float	   *c = ops->alloc(ops->ctx, 4 * nn);

	if (!a || !b || !c)
	{
		fprintf(stderr, "gpu_bench: out of memory for the peak GEMM\n");
		exit(1);
	}
	ops->upload(ops->ctx, a, h, 4 * nn);
	ops->upload(ops->ctx, b, h, 4 * nn);
	for (int i = 0; i < 13; i++)
	{
		double		t0 = now();

		ops->gemm(ops->ctx, false, true, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
		must(ops->check(ops->ctx, &err), &err, "peak GEMM");
		if (i >= 3)
			t[i - 3] = now() - t0;
	}
	ops->free(ops->ctx, a), ops->free(ops->ctx, b), ops->free(ops->ctx, c);
	free(h);
	return 2.0 * n * (double) n * n / median(t, 10) / 1e12;
}

/* A model of a layout and size (random init). */
static gr_model *
make_model(const gr_env *env, int layout, const bench_size *sz, int V, int max_len)
{
	gr_model_config cfg;
	gr_model   *m;
	gr_error	err;
	const gr_layout *lay = gr_layout_by_id(layout);

	gr_model_config_default(&cfg, layout, V, gr_layout_needs_actions(lay) ? 1 : 0);
	cfg.d_model = sz->d;
	cfg.n_layer = sz->layers;
	cfg.n_head = sz->heads;
	cfg.max_len = max_len;
	must(gr_model_create(env, &cfg, NULL, &m, &err), &err, "model");
	must(gr_model_init_params(m, 7, &err), &err, "init");
	return m;
}

typedef struct train_result
{
	const char *size;
	const char *layout;
	int			tokens;
	double		step_ms, tokens_per_s, tflops;
} train_result;

/* Tokens/s of full training steps for one layout and size. */
static train_result
bench_train(const gr_env *env, int layout, const bench_size *sz, int steps)
{
	const gr_layout *lay = gr_layout_by_id(layout);
	gr_model   *m = make_model(env, layout, sz, N_ITEMS, sz->len);
	gr_train_config tcfg;
	gr_trainer *tr;
	gr_tokens	tb;
	gr_error	err;
	int			B = sz->users, cap = B * m->n_positions, wl = lay->window_len(sz->len);
	int32_t    *items = malloc(sizeof(int32_t) * wl);
	float	   *act = malloc(sizeof(float) * wl);
	uint64_t	ctr = 99;
	double		flops = 0.0, t[64];
	int			d = sz->d;
	train_result r = {sz->name, lay->name, 0, 0, 0, 0};

	gr_train_config_default(&tcfg);
	tcfg.dropout = 0.2f;
	must(gr_trainer_create(m, &tcfg, cap, B, &tr, &err), &err, "trainer");
	must(gr_tokens_init(&tb, env, m->cfg.n_actions, m->cfg.n_buckets, cap, B, cap, &err), &err,
		 "tokens");
	for (int u = 0; u < B; u++)
	{
		gr_seq_view sv = {items, gr_layout_needs_actions(lay) ? act : NULL, wl, m->cfg.n_actions};
		int			before = tb.n_tokens;

		for (int i = 0; i < wl; i++)
		{
			items[i] = 1 + (int) (u01(&ctr) * (N_ITEMS - 1));
			act[i] = u01(&ctr);
		}
		must(lay->add_window(&tb, &sv, 0, wl, false, &err), &err, "add_window");
		double		T = tb.n_tokens - before;

		flops += 3.0 * sz->layers * (24.0 * T * d * d + 2.0 * T * T * d);
	}
	flops += 3.0 * 2.0 * tb.n_item_rows * (double) d * N_ITEMS;
	r.tokens = tb.n_tokens;
	if (steps > 64)
		steps = 64;
	for (int i = 0; i < steps + 3; i++)
	{
		gr_step_loss loss;
		double		t0 = now();

		must(gr_trainer_compute(tr, &tb, (uint32_t) i, &loss, &err), &err, "train step");
		must(gr_trainer_apply(tr, &err), &err, "optimiser step");
		must(m->ops->check(m->ops->ctx, &err), &err, "check");
		if (i >= 3)
			t[i - 3] = now() - t0;
	}
	double		s = median(t, steps);

	r.step_ms = s * 1e3;
	r.tokens_per_s = tb.n_tokens / s;
	r.tflops = flops / s / 1e12;
	gr_tokens_free(&tb);
	gr_trainer_free(tr);
	gr_model_free(m);
	free(items), free(act);
	return r;
}

/* Median latency (ms) of scoring n_cands candidates after a history of n_hist (LAC). */
static double
bench_score(const gr_env *env, const bench_size *sz, int n_hist, int n_cands)
{
	gr_model   *m = make_model(env, GR_LAYOUT_LAC, sz, N_ITEMS, n_hist + 1);
	gr_session *s;
	gr_error	err;
	int64_t    *hi = malloc(sizeof(int64_t) * n_hist), *cands = malloc(sizeof(int64_t) * n_cands);
	double	   *ha = malloc(sizeof(double) * n_hist);
	float	   *acts = malloc(sizeof(float) * n_cands), *logit = malloc(sizeof(float) * n_cands);
	uint64_t	ctr = 5;
	double		t[20];

	for (int i = 0; i < n_hist; i++)
	{
		hi[i] = 1 + (int64_t) (u01(&ctr) * (N_ITEMS - 1));
		ha[i] = u01(&ctr);
	}
	for (int c = 0; c < n_cands; c++)
		cands[c] = 1 + (int64_t) (u01(&ctr) * (N_ITEMS - 1));
	gr_history h = {hi, ha, n_hist};
	gr_scores	out = {acts, logit, NULL};

	must(gr_session_create(m, &s, &err), &err, "session");
	for (int i = 0; i < 23; i++)
	{
		double		t0 = now();

		must(gr_score(s, &h, cands, n_cands, &out, &err), &err, "score");
		if (i >= 3)
			t[i - 3] = now() - t0;
	}
	gr_session_free(s);
	gr_model_free(m);
	free(hi), free(cands), free(ha), free(acts), free(logit);
	return median(t, 20) * 1e3;
}

/* Median latency (ms) of top-100 over 1M scores: the op alone. */
static double
bench_topk_op(const gr_ops *ops, int n, int k)
{
	float	   *h = malloc(sizeof(float) * n);
	uint64_t	ctr = 17;
	gr_error	err;
	double		t[50];
	int32_t		off[2] = {0, 0};

	for (int i = 0; i < n; i++)
		h[i] = u01(&ctr) * 20.0f - 10.0f;
	float	   *x = ops->alloc(ops->ctx, 4 * (size_t) n), *ov = ops->alloc(ops->ctx, 4 * (size_t) k);
	int32_t    *oi = ops->alloc(ops->ctx, 4 * (size_t) k), *eo = ops->alloc(ops->ctx, 8);

	ops->upload(ops->ctx, x, h, 4 * (size_t) n);
	ops->upload(ops->ctx, eo, off, 8);
	for (int i = 0; i < 55; i++)
	{
		double		t0 = now();

		ops->topk(ops->ctx, x, n, eo, NULL, 1, n, k, oi, ov);
		must(ops->check(ops->ctx, &err), &err, "topk");
		if (i >= 5)
			t[i - 5] = now() - t0;
	}
	ops->free(ops->ctx, x), ops->free(ops->ctx, ov), ops->free(ops->ctx, oi);
	ops->free(ops->ctx, eo);
	free(h);
	return median(t, 50) * 1e3;
}

/* Median latency (ms) of gr_recommend (k=100) over a catalogue of V items (small model). */
static double
bench_recommend(const gr_env *env, int V)
{
	const bench_size *sz = &sizes[1];
	gr_model   *m = make_model(env, GR_LAYOUT_ITEM, sz, V, sz->len);
	gr_session *s;
	gr_error	err;
	int64_t		hi[50], items[100];
	float		sc[100];
	uint64_t	ctr = 3;
	double		t[20];
	int			n;

	for (int i = 0; i < 50; i++)
		hi[i] = 1 + (int64_t) (u01(&ctr) * (V - 1));
	gr_history h = {hi, NULL, 50};

	must(gr_session_create(m, &s, &err), &err, "session");
	for (int i = 0; i < 23; i++)
	{
		double		t0 = now();

		must(gr_recommend(s, &h, 100, true, items, sc, &n, &err), &err, "recommend");
		if (i >= 3)
			t[i - 3] = now() - t0;
	}
	gr_session_free(s);
	gr_model_free(m);
	return median(t, 20) * 1e3;
}

int
main(int argc, char **argv)
{
	const char *device = "cuda", *math = NULL, *module = NULL, *json = NULL;
	const char *size_list = "small,large", *layout_list = "item,int,lac,pc";
	int			steps = 20, peak_n = 0;
	bool		serving = true;
	char		dir[GR_DEVICE_PATH_LEN], notice[GR_DEVICE_NOTICE_LEN];
	gr_device	dev;
	gr_error	err;
	gr_env		env;
	train_result res[16];
	int			n_res = 0;

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--device") == 0 && v)
			device = argv[++i];
		else if (strcmp(a, "--math") == 0 && v)
			math = argv[++i];
		else if (strcmp(a, "--module") == 0 && v)
			module = argv[++i];
		else if (strcmp(a, "--sizes") == 0 && v)
			size_list = argv[++i];
		else if (strcmp(a, "--layouts") == 0 && v)
			layout_list = argv[++i];
		else if (strcmp(a, "--steps") == 0 && v)
			steps = atoi(argv[++i]);
		else if (strcmp(a, "--peak-n") == 0 && v)
			peak_n = atoi(argv[++i]);
		else if (strcmp(a, "--json") == 0 && v)
			json = argv[++i];
		else if (strcmp(a, "--skip-serving") == 0)
			serving = false;
		else
		{
			fprintf(stderr, "usage: gpu_bench [--device cuda|cpu] [--math M] [--module PATH] "
					"[--sizes tiny,small,large] [--layouts item,int,lac,pc] [--steps N] "
					"[--skip-serving] [--peak-n N] [--json FILE]\n");
			return 2;
		}
	}
	if (steps < 1)
		steps = 1;
	if (!gr_device_exe_dir(dir, sizeof(dir)))
		snprintf(dir, sizeof(dir), "build");
	/* the module sits in build/, one level above build/gpu/ */
	strncat(dir, "/..", sizeof(dir) - strlen(dir) - 1);
	if (gr_device_open(device, math, module, dir, &dev, notice, &err) != GR_OK)
	{
		fprintf(stderr, "gpu_bench: %s\n", err.message);
		return 2;
	}
	if (notice[0])
		fprintf(stderr, "gpu_bench: %s\n", notice);
	gr_env_default(&env);
	env.ops = dev.ops;
	printf("device: %s\n", dev.ops->name);

	double		peak = measure_peak(dev.ops, peak_n > 0 ? peak_n :
									dev.kind == GR_DEVICE_CUDA ? 8192 : 1024);

	printf("peak (GEMM): %.1f TFLOP/s\n", peak);
	for (int si = 0; si < 3; si++)
	{
		if (!strstr(size_list, sizes[si].name))
			continue;
		for (int l = 0; l < GR_LAYOUT_COUNT; l++)
		{
			const gr_layout *lay = gr_layout_by_id(l);

			if (!strstr(layout_list, lay->name) || n_res == 16)
				continue;
			res[n_res] = bench_train(&env, l, &sizes[si], steps);
			printf("train %-5s %-4s %7d tokens/step %9.2f ms/step %12.0f tokens/s %7.2f TFLOP/s "
				   "(%.0f%% of peak)\n", res[n_res].size, res[n_res].layout, res[n_res].tokens,
				   res[n_res].step_ms, res[n_res].tokens_per_s, res[n_res].tflops,
				   100.0 * res[n_res].tflops / peak);
			fflush(stdout);
			n_res++;
		}
	}
	double		score_ms = NAN, topk_ms = NAN, rec_ms = NAN;

	if (serving)
	{
		score_ms = bench_score(&env, dev.kind == GR_DEVICE_CUDA ? &sizes[2] : &sizes[1], 1024,
							   1000);
		printf("score: 1000 candidates, history 1024 (LAC %s): %.2f ms\n",
			   dev.kind == GR_DEVICE_CUDA ? "large" : "small", score_ms);
		topk_ms = bench_topk_op(dev.ops, 1000000, 100);
		printf("topk op: top-100 of 1M scores: %.3f ms\n", topk_ms);
		rec_ms = bench_recommend(&env, 1000000);
		printf("recommend: top-100 over 1M items (small model): %.2f ms\n", rec_ms);
	}
	if (json)
	{
		FILE	   *f = fopen(json, "w");

		if (f == NULL)
		{
			perror(json);
			return 1;
		}
		fprintf(f, "{\"device\": \"%s\", \"math\": \"%s\", \"peak_tflops\": %.3f, \"train\": [",
				dev.ops->name, gr_math_mode_name(dev.math), peak);
		for (int i = 0; i < n_res; i++)
			fprintf(f, "%s{\"size\": \"%s\", \"layout\": \"%s\", \"tokens_per_step\": %d, "
					"\"step_ms\": %.4f, \"tokens_per_s\": %.1f, \"tflops\": %.4f, "
					"\"frac_peak\": %.4f}", i ? ", " : "", res[i].size, res[i].layout,
					res[i].tokens, res[i].step_ms, res[i].tokens_per_s, res[i].tflops,
					res[i].tflops / peak);
		fprintf(f, "], \"score_ms\": %s%.4f%s, \"topk_1m_ms\": %s%.4f%s, "
				"\"recommend_1m_ms\": %s%.4f%s}\n",
				isnan(score_ms) ? "\"" : "", score_ms, isnan(score_ms) ? "\"" : "",
				isnan(topk_ms) ? "\"" : "", topk_ms, isnan(topk_ms) ? "\"" : "",
				isnan(rec_ms) ? "\"" : "", rec_ms, isnan(rec_ms) ? "\"" : "");
		fclose(f);
	}
	gr_device_close(&dev);
	return 0;
}
