/*
 * test_cuda_hstu.c — HSTU pointwise attention (gr_ops.h hstu_attn_fwd / hstu_attn_bwd) on the
 * CUDA backend against the CPU backend, which test/unit/test_ops.c checks against a double
 * reference and finite differences.
 *
 * Each case packs several sequences with candidates (and a length-1 and a candidate-only one)
 * into rows of stride ld = 4d whose u columns (the fourth block) hold NaN on input: reading
 * them poisons the result. Both masks, with and without the second value stream, head sizes
 * below, at and above a warp and not a multiple of it, a position table that fits shared
 * memory and one that does not, times with gaps across the buckets of both signs. Outputs are
 * poisoned with NaN before the op (an element it fails to write fails); the u columns of
 * dqkv must keep their bytes, dv2 must stay untouched without v2, and the bias gradients are
 * prefilled (they accumulate). Errors are ||gpu - cpu|| / ||cpu|| <= 1e-5 per output.
 *
 *   test_cuda_hstu [--module PATH] [--seed N]
 *
 * The module defaults to $GENREC_CUDA_MODULE, else build/genrec_cuda.so; make cuda-emu-check
 * runs it on the CPU emulation. Exit 0 when every check passed, 1 on a failure, 2 when no CUDA
 * backend could be opened.
 */
#include "gr_device.h"
#include "gr_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOL 1e-5
#define MAX_SEQ 8

static const gr_ops *C, *G;
static uint64_t seed, draw;
static int	checks, failures;

/* Uniform float in [lo, hi), a fresh draw each call. */
static float
urand(float lo, float hi)
{
	return lo + (hi - lo) * gr_rng_uniform(seed, GR_STREAM_TEST, 1, draw++);
}

/* Uniform int in [lo, hi]. */
static int
irand(int lo, int hi)
{
	int			v = lo + (int) (urand(0.0f, 1.0f) * (float) (hi - lo + 1));

	return v > hi ? hi : v;
}

/* A backend copy of host bytes (NULL host: uninitialised). */
static void *
put(const gr_ops *o, const void *host, size_t bytes)
{
	void	   *p = o->alloc(o->ctx, bytes ? bytes : 4);

	if (p == NULL)
	{
		fprintf(stderr, "test_cuda_hstu: %s: out of memory\n", o->name);
		exit(1);
	}
	if (host && bytes)
		o->upload(o->ctx, p, host, bytes);
	return p;
}

/* A host copy of backend bytes. */
static void *
get(const gr_ops *o, const void *dev, size_t bytes)
{
	void	   *x = malloc(bytes ? bytes : 4);

	o->download(o->ctx, x, dev, bytes);
	return x;
}

/* Record one check. */
static void
record(const char *what, const char *part, bool ok, double err)
{
	checks++;
	failures += !ok;
	printf("%-4s hstu %-40s %-10s err %.3e tol %.0e\n", ok ? "ok" : "FAIL", what, part, err,
		   TOL);
}

/* ||gpu - cpu|| / ||cpu|| over the elements where keep is NULL or true; NaN fails. */
static void
expect_close(const char *what, const char *part, const float *g, const float *c, size_t n,
			 const bool *keep)
{
	double		num = 0, den = 0;
	bool		finite = true;

	for (size_t i = 0; i < n; i++)
	{
		if (keep && !keep[i])
			continue;
		if (!isfinite(g[i]) || !isfinite(c[i]))
		{
			if (finite)
				printf("     first non-finite element %zu: gpu %g cpu %g\n", i, g[i], c[i]);
			finite = false;
			continue;
		}
		num += ((double) g[i] - c[i]) * ((double) g[i] - c[i]);
		den += (double) c[i] * c[i];
	}
	double		err = finite ? (den > 0 ? sqrt(num / den) : sqrt(num)) : NAN;

	record(what, part, finite && err <= TOL, err);
}

/* The bytes of gpu equal to those of want where keep is false (untouched elements). */
static void
expect_untouched(const char *what, const char *part, const float *g, const float *want,
				 size_t n, const bool *keep)
{
	size_t		bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += (keep == NULL || !keep[i]) && memcmp(&g[i], &want[i], sizeof(float)) != 0;
	record(what, part, bad == 0, (double) bad);
}

/* One case: n_seq sequences of len[s] tokens, hist[s] of them history. */
static void
hstu_case(const char *what, int n_seq, const int *len, const int *hist, int n_head, int d,
		  int n_pos, gr_attn_mask mask, bool with_v2)
{
	int32_t		off[MAX_SEQ + 1], nh[MAX_SEQ];
	int			N, ld = 4 * d, mx = 0;

	off[0] = 0;
	for (int s = 0; s < n_seq; s++)
	{
		off[s + 1] = off[s] + len[s];
		nh[s] = hist[s];
		mx = len[s] > mx ? len[s] : mx;
	}
	N = off[n_seq];
	size_t		nq = (size_t) N * ld, no = (size_t) N * d;
	float	   *qkv = malloc(4 * nq), *v2 = malloc(4 * no), *dout = malloc(4 * no);
	float	   *wp = malloc(4 * n_pos), *wt = malloc(4 * GR_HSTU_TIME_BUCKETS);
	float	   *dwp0 = malloc(4 * n_pos), *dwt0 = malloc(4 * GR_HSTU_TIME_BUCKETS);
	float	   *nan = malloc(4 * nq), *dq0 = malloc(4 * nq);
	int32_t    *pos = malloc(4 * (size_t) N);
	int64_t    *tq = malloc(8 * (size_t) N), *tk = malloc(8 * (size_t) N);
	bool	   *qkv_cols = malloc(nq);

	for (size_t i = 0; i < nq; i++)
	{
		qkv_cols[i] = (int) (i % ld) < 3 * d;
		qkv[i] = qkv_cols[i] ? urand(-1, 1) : NAN;	/* u: never read */
		dq0[i] = qkv_cols[i] ? NAN : urand(-5, 5);	/* u of dqkv: never written */
		nan[i] = NAN;
	}
	for (size_t i = 0; i < no; i++)
	{
		v2[i] = urand(-1, 1);
		dout[i] = urand(-1, 1);
	}
	for (int i = 0; i < n_pos; i++)
	{
		wp[i] = urand(-1, 1);
		dwp0[i] = urand(-1, 1);
	}
	for (int i = 0; i < GR_HSTU_TIME_BUCKETS; i++)
	{
		wt[i] = urand(-1, 1);
		dwt0[i] = urand(-1, 1);
	}
	for (int s = 0; s < n_seq; s++)
	{
		int64_t		t = INT64_C(1600000000000000);

		for (int i = off[s]; i < off[s + 1]; i++)
		{
			int			local = i - off[s];

			/* log-uniform increments up to 1e10 (some 0); queries off by up to 1e6 */
			t += urand(0, 1) < 0.1f ? 0 : (int64_t) exp(urand(0, 1) * log(1e10));
			tk[i] = t;
			tq[i] = t + (int64_t) ((urand(0, 1) < 0.3f ? -1 : 1) * exp(urand(0, 1) * log(1e6)));
			/* HSTU's positions: history in order, candidates at the first candidate slot */
			pos[i] = (local < nh[s] ? local : nh[s]) + irand(-2, 2);
		}
	}

	const gr_ops *be[2] = {C, G};
	float	   *res[2][5];

	for (int b = 0; b < 2; b++)
	{
		const gr_ops *o = be[b];
		float	   *x = put(o, qkv, 4 * nq), *xv2 = with_v2 ? put(o, v2, 4 * no) : NULL;
		float	   *xo = put(o, nan, 4 * no), *xdo = put(o, dout, 4 * no);
		float	   *xdq = put(o, dq0, 4 * nq), *xdv2 = put(o, with_v2 ? nan : v2, 4 * no);
		float	   *xwp = put(o, wp, 4 * n_pos), *xwt = put(o, wt, 4 * GR_HSTU_TIME_BUCKETS);
		float	   *xdwp = put(o, dwp0, 4 * n_pos);
		float	   *xdwt = put(o, dwt0, 4 * GR_HSTU_TIME_BUCKETS);
		int32_t    *xpos = put(o, pos, 4 * (size_t) N), *xoff = put(o, off, 4 * (n_seq + 1));
		int32_t    *xnh = put(o, nh, 4 * n_seq);
		int64_t    *xtq = put(o, tq, 8 * (size_t) N), *xtk = put(o, tk, 8 * (size_t) N);
		gr_hstu_rab rab = {xwp, xwt, n_pos, xpos, xtq, xtk};
		gr_attn_seqs sq = {n_seq, mx, off, nh, xoff, xnh};
		gr_error	err;
		float		alpha = 1.0f / sqrtf((float) (d / n_head)), inv_n = 1.0f / (float) mx;

		o->hstu_attn_fwd(o->ctx, xo, x, ld, xv2, &rab, &sq, mask, n_head, d, alpha, inv_n);
		o->hstu_attn_bwd(o->ctx, xdq, xdv2, xdwp, xdwt, xdo, x, ld, xv2, &rab, &sq, mask,
						 n_head, d, alpha, inv_n);
		if (o->check(o->ctx, &err) != GR_OK)
		{
			printf("FAIL hstu %s: %s backend error: %s\n", what, o->name, err.message);
			failures++;
		}
		res[b][0] = get(o, xo, 4 * no);
		res[b][1] = get(o, xdq, 4 * nq);
		res[b][2] = get(o, xdv2, 4 * no);
		res[b][3] = get(o, xdwp, 4 * n_pos);
		res[b][4] = get(o, xdwt, 4 * GR_HSTU_TIME_BUCKETS);
		void	   *bufs[] = {x, xv2, xo, xdo, xdq, xdv2, xwp, xwt, xdwp, xdwt, xpos, xoff, xnh,
		xtq, xtk};

		for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
			if (bufs[i])
				o->free(o->ctx, bufs[i]);
	}
	expect_close(what, "out", res[1][0], res[0][0], no, NULL);
	expect_close(what, "dqkv", res[1][1], res[0][1], nq, qkv_cols);
	expect_untouched(what, "dqkv u", res[1][1], dq0, nq, qkv_cols);
	if (with_v2)
		expect_close(what, "dv2", res[1][2], res[0][2], no, NULL);
	else
		expect_untouched(what, "dv2 unused", res[1][2], v2, no, NULL);
	expect_close(what, "d_w_pos", res[1][3], res[0][3], n_pos, NULL);
	expect_close(what, "d_w_time", res[1][4], res[0][4], GR_HSTU_TIME_BUCKETS, NULL);
	/* the accumulated tables moved (a case whose gradients vanish would check nothing) */
	record(what, "grad moved", memcmp(res[0][4], dwt0, 4 * GR_HSTU_TIME_BUCKETS) != 0, 0);
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 5; i++)
			free(res[b][i]);
	free(qkv), free(v2), free(dout), free(wp), free(wt), free(dwp0), free(dwt0), free(nan);
	free(dq0), free(pos), free(tq), free(tk), free(qkv_cols);
}

/* Every mask and value-stream combination over training and scoring batches. */
static void
run_cases(void)
{
	static const gr_attn_mask masks[2] = {GR_MASK_CAUSAL, GR_MASK_STRICT};

	for (int m = 0; m < 2; m++)
		for (int v = 0; v < 2; v++)
		{
			gr_attn_mask mask = masks[m];
			bool		wv = v == 1;
			char		w[80];
			const char *mn = mask == GR_MASK_CAUSAL ? "causal" : "strict";
			int			H0 = irand(20, 70);
			/* history + candidates crossing 32-key chunks, full history, length 1,
			 * candidates only, short history + candidates */
			int			len[5] = {H0 + irand(30, 60), irand(33, 90), 1, irand(2, 9), 1 + 5};
			int			hist[5] = {H0, len[1], 1, 0, 1};

			snprintf(w, sizeof(w), "%s%s dh16 x4", mn, wv ? " + v2" : "");
			hstu_case(w, 5, len, hist, 4, 64, 64, mask, wv);
			snprintf(w, sizeof(w), "%s%s dh32 x2", mn, wv ? " + v2" : "");
			hstu_case(w, 5, len, hist, 2, 64, 128, mask, wv);
			snprintf(w, sizeof(w), "%s%s dh50 x1, n_pos 20000", mn, wv ? " + v2" : "");
			hstu_case(w, 5, len, hist, 1, 50, 20000, mask, wv);
			snprintf(w, sizeof(w), "%s%s dh128 x2", mn, wv ? " + v2" : "");
			hstu_case(w, 3, len, hist, 2, 256, 200, mask, wv);
		}
}

int
main(int argc, char **argv)
{
	const char *module = NULL;
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];

	seed = ((uint64_t) time(NULL) << 20) ^ (uint64_t) getpid();
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--module") == 0 && i + 1 < argc)
			module = argv[++i];
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else
		{
			fprintf(stderr, "usage: test_cuda_hstu [--module PATH] [--seed N]\n");
			return 2;
		}
	}
	if (gr_device_open("cuda", "fp32", module, "build", &dev, notice, &err) != GR_OK)
	{
		fprintf(stderr, "test_cuda_hstu: cannot open the CUDA backend: %s\n", err.message);
		return 2;
	}
	C = gr_ops_cpu();
	G = dev.ops;
	printf("== %s, seed %llu\n", G->name, (unsigned long long) seed);
	run_cases();
	gr_device_close(&dev);
	printf("test_cuda_hstu: %d passed, %d failed\n", checks - failures, failures);
	return failures == 0 ? 0 : 1;
}
