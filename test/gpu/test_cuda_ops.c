/*
 * test_cuda_ops.c — every engine op on the CUDA backend against the CPU backend, then whole
 * training steps (gradient parity), an optimiser step, and scoring / retrieval parity through
 * the engine's own APIs.
 *
 * Inputs are fresh random numbers on every run (Philox keyed by a seed printed at the start;
 * --seed repeats a run). Every GPU output is poisoned with NaN before the op runs, so an element
 * the op fails to write fails the check; NaN never passes. Errors are ||gpu - cpu|| / ||cpu||
 * per output: GEMMs within 1e-5 (fp32), 1e-3 (tf32), 1e-2 (bf16); every other op runs in fp32
 * in all modes and must stay within 1e-5; whole steps compound GEMM error through the network,
 * so gradients and scores get 1e-4 / 1e-2 / 5e-2. Integer outputs (ranks, top-k indices,
 * dropout masks) must match exactly.
 *
 *   test_cuda_ops [--math fp32|tf32|bf16|all] [--module PATH] [--seed N] [--only GROUP]
 *                 [--probe]
 *
 * GROUP is one of gemm, pointwise, layernorm, embedding, contention, attention, softmax_xent, sampled,
 * action_loss, adamw, adamw_rows, rank_targets, topk, model.
 *
 * The module defaults to $GENREC_CUDA_MODULE, else build/genrec_cuda.so; pointing it at
 * build/genrec_cuda_emu.so runs the same checks on the CPU emulation (no GPU needed).
 * Prints one line per check and a short table last; exits 0 when everything passed,
 * 1 on a failed check, 2 when no CUDA backend could be opened. --probe only opens the
 * backend and prints its name (or why it cannot be opened).
 */
#include "gr_device.h"
#include "gr_layout.h"
#include "gr_rng.h"
#include "gr_serve.h"
#include "gr_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROWS 512

typedef struct result_row
{
	char		op[32];
	char		mode[8];
	int			checks;
	int			failures;
	double		worst;			/* largest error / tolerance */
} result_row;

typedef struct harness
{
	const gr_ops *cpu;
	const gr_ops *gpu;
	gr_math_mode math;
	uint64_t	seed;
	uint64_t	draw;
	int			checks;
	int			failures;
	int			n_rows;
	result_row	rows[MAX_ROWS];
	const char *op;				/* current op, for the table */
	bool		ops_done;		/* the mode-independent ops were checked */
	const char *only;			/* --only GROUP, or NULL for every check */
} harness;

/* ---- random inputs and buffers ---- */

/* Uniform float in [lo, hi), never the same draw twice in a run. */
static float
urand(harness *h, float lo, float hi)
{
	return lo + (hi - lo) * gr_rng_uniform(h->seed, GR_STREAM_TEST, 0, h->draw++);
}

/* Uniform int in [lo, hi]. */
static int
irand(harness *h, int lo, int hi)
{
	int			v = lo + (int) (urand(h, 0.0f, 1.0f) * (float) (hi - lo + 1));

	return v > hi ? hi : v;
}

/* A host array of n random floats in [lo, hi). */
static float *
rand_floats(harness *h, size_t n, float lo, float hi)
{
	float	   *x = malloc(sizeof(float) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
		x[i] = urand(h, lo, hi);
	return x;
}

/* Backend buffer holding a copy of host bytes. */
static void *
put(const gr_ops *ops, const void *host, size_t bytes)
{
	void	   *p = ops->alloc(ops->ctx, bytes ? bytes : 4);

	if (p == NULL)
	{
		fprintf(stderr, "test_cuda_ops: %s: out of memory for %zu bytes\n", ops->name, bytes);
		exit(1);
	}
	if (host != NULL && bytes > 0)
		ops->upload(ops->ctx, p, host, bytes);
	return p;
}

/* Backend buffer of n floats filled with NaN (an unwritten output then fails). */
static float *
poisoned(const gr_ops *ops, size_t n)
{
	float	   *nan = malloc(sizeof(float) * (n ? n : 1));
	float	   *p;

	for (size_t i = 0; i < n; i++)
		nan[i] = NAN;
	p = put(ops, nan, sizeof(float) * n);
	free(nan);
	return p;
}

/* Backend buffer of n int32 filled with a value no op writes. */
static int32_t *
poisoned_ints(const gr_ops *ops, size_t n)
{
	int32_t    *x = malloc(sizeof(int32_t) * (n ? n : 1));
	int32_t    *p;

	for (size_t i = 0; i < n; i++)
		x[i] = -777777;
	p = put(ops, x, sizeof(int32_t) * n);
	free(x);
	return p;
}

/* Copy a backend buffer to a new host array. */
static void *
get(const gr_ops *ops, const void *dev, size_t bytes)
{
	void	   *x = malloc(bytes ? bytes : 4);

	ops->download(ops->ctx, x, dev, bytes);
	return x;
}

/* Fail the run if a backend reported an error. */
static void
must_check(harness *h, const gr_ops *ops)
{
	gr_error	err;

	if (ops->check(ops->ctx, &err) != GR_OK)
	{
		fprintf(stderr, "FAIL %s: %s backend error: %s\n", h->op, ops->name, err.message);
		h->failures++;
	}
}

/* ---- comparisons ---- */

/* The table row of the current op and mode. */
static result_row *
row_of(harness *h)
{
	const char *mode = gr_math_mode_name(h->math);

	for (int i = 0; i < h->n_rows; i++)
		if (strcmp(h->rows[i].op, h->op) == 0 && strcmp(h->rows[i].mode, mode) == 0)
			return &h->rows[i];
	if (h->n_rows == MAX_ROWS)
		return &h->rows[MAX_ROWS - 1];
	result_row *r = &h->rows[h->n_rows++];

	memset(r, 0, sizeof(*r));
	snprintf(r->op, sizeof(r->op), "%s", h->op);
	snprintf(r->mode, sizeof(r->mode), "%s", mode);
	return r;
}

/* Record one check's outcome. */
static void
record(harness *h, const char *what, bool ok, double err, double tol)
{
	result_row *r = row_of(h);

	h->checks++;
	r->checks++;
	if (!ok)
	{
		h->failures++;
		r->failures++;
	}
	double		ratio = isfinite(err) ? err / tol : INFINITY;

	if (!(ratio <= r->worst))
		r->worst = ratio;
	printf("%-4s %-5s %-16s %-34s err %.3e tol %.0e\n", ok ? "ok" : "FAIL",
		   gr_math_mode_name(h->math), h->op, what, err, tol);
}

/* ||gpu - cpu|| / ||cpu|| over n floats; NaN or Inf in either side fails. */
static void
expect_close(harness *h, const char *what, const float *gpu, const float *cpu, size_t n,
			 double tol)
{
	double		num = 0.0, den = 0.0;
	bool		finite = true;

	for (size_t i = 0; i < n; i++)
	{
		double		a = gpu[i], b = cpu[i];

		if (!isfinite(a) || !isfinite(b))
		{
			if (finite)
				printf("     first non-finite element %zu: gpu %g cpu %g\n", i, a, b);
			finite = false;
			continue;
		}
		num += (a - b) * (a - b);
		den += b * b;
	}
	double		err = finite ? (den > 0 ? sqrt(num / den) : sqrt(num)) : NAN;

	record(h, what, finite && err <= tol, err, tol);
}

/* Integer outputs must match exactly. */
static void
expect_ints(harness *h, const char *what, const int32_t *gpu, const int32_t *cpu, size_t n)
{
	size_t		bad = 0, first = n;

	for (size_t i = 0; i < n; i++)
		if (gpu[i] != cpu[i])
		{
			if (bad++ == 0)
				first = i;
		}
	if (bad)
		printf("     %zu mismatches, first at %zu: gpu %d cpu %d\n", bad, first, gpu[first],
			   cpu[first]);
	record(h, what, bad == 0, (double) bad, 1.0);
}

/* Tolerance of a GEMM in the current mode. */
static double
tol_gemm(const harness *h)
{
	return h->math == GR_MATH_FP32 ? 1e-5 : h->math == GR_MATH_TF32 ? 1e-3 : 1e-2;
}

/* Tolerance of whole passes (GEMM error compounded through the network). */
static double
tol_model(const harness *h)
{
	return h->math == GR_MATH_FP32 ? 1e-4 : h->math == GR_MATH_TF32 ? 1e-2 : 5e-2;
}

#define TOL_FP32 1e-5

/* ---- ops ---- */

/* GEMM: every transpose pair, padded leading dimensions, beta 0 (poisoned C) and not. */
static void
test_gemm(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;

	h->op = "gemm";
	for (int rep = 0; rep < 10; rep++)
	{
		bool		ta = rep & 1, tb = (rep >> 1) & 1;
		int			m = irand(h, 1, 300), n = irand(h, 1, 300), k = irand(h, 1, 400);
		int			ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
		int			lda = ac + irand(h, 0, 5), ldb = bc + irand(h, 0, 5), ldc = n + irand(h, 0, 3);
		float		alpha = urand(h, 0.5f, 2.0f), beta = rep < 4 ? 0.0f : urand(h, -1.0f, 1.0f);
		size_t		nc = (size_t) m * ldc;
		float	   *A = rand_floats(h, (size_t) ar * lda, -1, 1);
		float	   *B = rand_floats(h, (size_t) br * ldb, -1, 1);
		float	   *C0 = rand_floats(h, nc, -1, 1);
		char		what[64];

		if (beta == 0.0f)
			for (int i = 0; i < m; i++)
				for (int j = 0; j < n; j++)
					C0[(size_t) i * ldc + j] = NAN;	/* beta = 0 must not read C */
		float	   *ca = put(C, A, sizeof(float) * ar * lda), *cb = put(C, B, sizeof(float) * br * ldb);
		float	   *cc = put(C, C0, sizeof(float) * nc);
		float	   *ga = put(G, A, sizeof(float) * ar * lda), *gb = put(G, B, sizeof(float) * br * ldb);
		float	   *gc = put(G, C0, sizeof(float) * nc);

		C->gemm(C->ctx, ta, tb, m, n, k, alpha, ca, lda, cb, ldb, beta, cc, ldc);
		G->gemm(G->ctx, ta, tb, m, n, k, alpha, ga, lda, gb, ldb, beta, gc, ldc);
		must_check(h, G);
		float	   *out = get(G, gc, sizeof(float) * nc);

		/* compare the m x n block only (padding must be untouched too) */
		float	   *x = malloc(sizeof(float) * m * n), *y = malloc(sizeof(float) * m * n);
		int			pad_bad = 0;

		for (int i = 0; i < m; i++)
		{
			for (int j = 0; j < n; j++)
			{
				x[(size_t) i * n + j] = out[(size_t) i * ldc + j];
				y[(size_t) i * n + j] = cc[(size_t) i * ldc + j];
			}
			for (int j = n; j < ldc; j++)
				pad_bad += memcmp(&out[(size_t) i * ldc + j], &C0[(size_t) i * ldc + j], 4) != 0;
		}
		snprintf(what, sizeof(what), "%s%s m%d n%d k%d beta%s", ta ? "T" : "N", tb ? "T" : "N",
				 m, n, k, beta == 0.0f ? "=0" : "!=0");
		expect_close(h, what, x, y, (size_t) m * n, tol_gemm(h));
		record(h, "ldc padding untouched", pad_bad == 0, pad_bad, 1);
		free(A), free(B), free(C0), free(out), free(x), free(y);
		C->free(C->ctx, ca), C->free(C->ctx, cb), C->free(C->ctx, cc);
		G->free(G->ctx, ga), G->free(G->ctx, gb), G->free(G->ctx, gc);
	}
	/* k = 0: C = beta C */
	{
		float	   *C0 = rand_floats(h, 12, -1, 1), *cc = put(C, C0, 48), *gc = put(G, C0, 48);

		C->gemm(C->ctx, false, false, 3, 4, 0, 1.0f, cc, 1, cc, 4, 0.5f, cc, 4);
		G->gemm(G->ctx, false, false, 3, 4, 0, 1.0f, gc, 1, gc, 4, 0.5f, gc, 4);
		must_check(h, G);
		float	   *out = get(G, gc, 48);

		expect_close(h, "k=0 scales C", out, cc, 12, TOL_FP32);
		free(C0), free(out);
		C->free(C->ctx, cc), G->free(G->ctx, gc);
	}
}

/* Run an elementwise op on both backends: inputs in[], one output (init NULL = poisoned). */
typedef void (*pw_run) (const gr_ops *ops, float *out, float **in, size_t n, void *arg);

static void
pw_case(harness *h, const char *what, size_t n, int n_in, const float *init, pw_run run,
		void *arg, double tol)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	float	   *hin[4], *cin[4], *gin[4];

	for (int i = 0; i < n_in; i++)
	{
		hin[i] = rand_floats(h, n, -3, 3);
		cin[i] = put(C, hin[i], sizeof(float) * n);
		gin[i] = put(G, hin[i], sizeof(float) * n);
	}
	float	   *co = init ? put(C, init, sizeof(float) * n) : poisoned(C, n);
	float	   *go = init ? put(G, init, sizeof(float) * n) : poisoned(G, n);

	run(C, co, cin, n, arg);
	run(G, go, gin, n, arg);
	must_check(h, G);
	float	   *out = get(G, go, sizeof(float) * n);

	expect_close(h, what, out, co, n, tol);
	free(out);
	for (int i = 0; i < n_in; i++)
	{
		free(hin[i]);
		C->free(C->ctx, cin[i]);
		G->free(G->ctx, gin[i]);
	}
	C->free(C->ctx, co);
	G->free(G->ctx, go);
}

static void
run_add(const gr_ops *o, float *out, float **in, size_t n, void *arg)
{
	o->add(o->ctx, out, in[0], in[1], n);
}

static void
run_add_alias(const gr_ops *o, float *out, float **in, size_t n, void *arg)
{
	o->add(o->ctx, in[0], in[0], in[1], n);
	o->copy(o->ctx, out, in[0], n * sizeof(float));
}

static void
run_gelu(const gr_ops *o, float *out, float **in, size_t n, void *arg)
{
	o->gelu_fwd(o->ctx, out, in[0], n);
}

static void
run_gelu_bwd(const gr_ops *o, float *out, float **in, size_t n, void *arg)
{
	o->gelu_bwd(o->ctx, in[1], in[0], in[1], n);	/* dinp aliases dout */
	o->copy(o->ctx, out, in[1], n * sizeof(float));
}

static void
run_dropout(const gr_ops *o, float *out, float **in, size_t n, void *arg)
{
	const uint32_t *a = arg;

	o->dropout(o->ctx, out, in[0], n, 0.3f, ((uint64_t) a[0] << 32) | a[1], a[2], a[3]);
}

static void
run_bias(const gr_ops *o, float *out, float **in, size_t n, void *arg)
{
	int			cols = *(int *) arg;

	o->copy(o->ctx, out, in[0], n * sizeof(float));
	o->add_bias(o->ctx, out, in[1], (int) (n / cols), cols);
}

/* Pointwise ops, bias, dropout (the mask must be identical). */
static void
test_pointwise(harness *h)
{
	size_t		n = (size_t) irand(h, 1000, 70000);
	int			cols = irand(h, 3, 300);
	uint32_t	drop[4] = {(uint32_t) irand(h, 0, 1 << 30), (uint32_t) irand(h, 0, 1 << 30),
	(uint32_t) irand(h, 0, 20), (uint32_t) irand(h, 0, 1000)};

	h->op = "add";
	pw_case(h, "out = a + b", n, 2, NULL, run_add, NULL, TOL_FP32);
	pw_case(h, "a = a + b (aliased)", n, 2, NULL, run_add_alias, NULL, TOL_FP32);
	h->op = "gelu";
	pw_case(h, "forward", n, 1, NULL, run_gelu, NULL, TOL_FP32);
	pw_case(h, "backward (dinp aliases dout)", n, 2, NULL, run_gelu_bwd, NULL, TOL_FP32);
	h->op = "add_bias";
	{
		size_t		nb = (size_t) cols * irand(h, 1, 400);

		pw_case(h, "rows x cols", nb, 2, NULL, run_bias, &cols, TOL_FP32);
	}
	h->op = "dropout";
	pw_case(h, "p=0.3 values", n, 1, NULL, run_dropout, drop, TOL_FP32);
	{
		/* the same keep mask on both devices, element by element */
		const gr_ops *C = h->cpu, *G = h->gpu;
		float	   *ones = malloc(sizeof(float) * n);

		for (size_t i = 0; i < n; i++)
			ones[i] = 1.0f;
		float	   *cx = put(C, ones, sizeof(float) * n), *gx = put(G, ones, sizeof(float) * n);
		uint64_t	seed = ((uint64_t) drop[0] << 32) | drop[1];

		C->dropout(C->ctx, cx, cx, n, 0.3f, seed, drop[2], drop[3]);
		G->dropout(G->ctx, gx, gx, n, 0.3f, seed, drop[2], drop[3]);
		must_check(h, G);
		float	   *go = get(G, gx, sizeof(float) * n);
		int32_t    *mc = malloc(sizeof(int32_t) * n), *mg = malloc(sizeof(int32_t) * n);
		size_t		kept = 0;

		for (size_t i = 0; i < n; i++)
		{
			mc[i] = cx[i] != 0.0f;
			mg[i] = go[i] != 0.0f;
			kept += mc[i];
		}
		expect_ints(h, "identical mask (in place)", mg, mc, n);
		/* the kept fraction of n Bernoulli(0.7) draws: within 5 standard deviations */
		double		keep_tol = 5.0 * sqrt(0.7 * 0.3 / (double) n);

		record(h, "keep rate near 0.7", fabs((double) kept / n - 0.7) < keep_tol,
			   fabs((double) kept / n - 0.7), keep_tol);
		free(ones), free(go), free(mc), free(mg);
		C->free(C->ctx, cx), G->free(G->ctx, gx);
	}
	h->op = "bias_grad";
	{
		const gr_ops *C = h->cpu, *G = h->gpu;
		int			rows = irand(h, 1, 3000);
		float	   *dout = rand_floats(h, (size_t) rows * cols, -1, 1);
		float	   *db0 = rand_floats(h, cols, -1, 1);
		float	   *cd = put(C, dout, sizeof(float) * rows * cols), *gd = put(G, dout, sizeof(float) * rows * cols);
		float	   *cb = put(C, db0, sizeof(float) * cols), *gb = put(G, db0, sizeof(float) * cols);

		C->bias_grad(C->ctx, cb, cd, rows, cols);
		G->bias_grad(G->ctx, gb, gd, rows, cols);
		must_check(h, G);
		float	   *out = get(G, gb, sizeof(float) * cols);

		expect_close(h, "dbias += colsum", out, cb, cols, TOL_FP32);
		free(dout), free(db0), free(out);
		C->free(C->ctx, cd), C->free(C->ctx, cb), G->free(G->ctx, gd), G->free(G->ctx, gb);
	}
}

/* LayerNorm forward and backward (accumulating into dinp, dw, db). */
static void
test_layernorm(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			sizes[3] = {irand(h, 2, 40), 64 + irand(h, 0, 100), 768};

	h->op = "layernorm";
	for (int si = 0; si < 3; si++)
	{
		int			cols = sizes[si], rows = irand(h, 1, 700);
		size_t		n = (size_t) rows * cols;
		float	   *x = rand_floats(h, n, -2, 2), *w = rand_floats(h, cols, 0.5, 1.5);
		float	   *b = rand_floats(h, cols, -0.5, 0.5), *dy = rand_floats(h, n, -1, 1);
		float	   *dx0 = rand_floats(h, n, -1, 1), *dw0 = rand_floats(h, cols, -1, 1);
		float	   *db0 = rand_floats(h, cols, -1, 1);
		float	   *cx = put(C, x, 4 * n), *cw = put(C, w, 4 * cols), *cb = put(C, b, 4 * cols);
		float	   *gx = put(G, x, 4 * n), *gw = put(G, w, 4 * cols), *gb = put(G, b, 4 * cols);
		float	   *co = poisoned(C, n), *cm = poisoned(C, rows), *cr = poisoned(C, rows);
		float	   *go = poisoned(G, n), *gm = poisoned(G, rows), *gr = poisoned(G, rows);
		char		what[64];

		C->layernorm_fwd(C->ctx, co, cm, cr, cx, cw, cb, rows, cols);
		G->layernorm_fwd(G->ctx, go, gm, gr, gx, gw, gb, rows, cols);
		must_check(h, G);
		float	   *o = get(G, go, 4 * n), *m = get(G, gm, 4 * rows), *r = get(G, gr, 4 * rows);

		snprintf(what, sizeof(what), "fwd out %dx%d", rows, cols);
		expect_close(h, what, o, co, n, TOL_FP32);
		expect_close(h, "fwd mean", m, cm, rows, TOL_FP32);
		expect_close(h, "fwd rstd", r, cr, rows, TOL_FP32);

		float	   *cdy = put(C, dy, 4 * n), *gdy = put(G, dy, 4 * n);
		float	   *cdx = put(C, dx0, 4 * n), *gdx = put(G, dx0, 4 * n);
		float	   *cdw = put(C, dw0, 4 * cols), *gdw = put(G, dw0, 4 * cols);
		float	   *cdb = put(C, db0, 4 * cols), *gdb = put(G, db0, 4 * cols);

		/* the backward pass reads the CPU's saved statistics on both sides */
		G->upload(G->ctx, gm, cm, 4 * rows);
		G->upload(G->ctx, gr, cr, 4 * rows);
		C->layernorm_bwd(C->ctx, cdx, cdw, cdb, cdy, cx, cw, cm, cr, rows, cols);
		G->layernorm_bwd(G->ctx, gdx, gdw, gdb, gdy, gx, gw, gm, gr, rows, cols);
		must_check(h, G);
		float	   *dx = get(G, gdx, 4 * n), *dw = get(G, gdw, 4 * cols), *db = get(G, gdb, 4 * cols);

		snprintf(what, sizeof(what), "bwd dinp %dx%d", rows, cols);
		expect_close(h, what, dx, cdx, n, TOL_FP32);
		expect_close(h, "bwd dw", dw, cdw, cols, TOL_FP32);
		expect_close(h, "bwd db", db, cdb, cols, TOL_FP32);
		free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0);
		free(o), free(m), free(r), free(dx), free(dw), free(db);
		float	   *cbufs[] = {cx, cw, cb, co, cm, cr, cdy, cdx, cdw, cdb};
		float	   *gbufs[] = {gx, gw, gb, go, gm, gr, gdy, gdx, gdw, gdb};

		for (int i = 0; i < 10; i++)
		{
			C->free(C->ctx, cbufs[i]);
			G->free(G->ctx, gbufs[i]);
		}
	}
}

/* Embedding gather (= and +=, with missing rows) and scatter-add with duplicates. */
static void
test_embedding(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			V = irand(h, 5, 500), cols = irand(h, 1, 200), rows = irand(h, 1, 2000);
	float	   *table = rand_floats(h, (size_t) V * cols, -1, 1);
	float	   *init = rand_floats(h, (size_t) rows * cols, -1, 1);
	int32_t    *idx = malloc(sizeof(int32_t) * rows);
	size_t		nt = (size_t) V * cols, nr = (size_t) rows * cols;

	h->op = "embedding";
	for (int r = 0; r < rows; r++)
		idx[r] = urand(h, 0, 1) < 0.1f ? -1 : irand(h, 0, V - 1);
	float	   *ct = put(C, table, 4 * nt), *gt = put(G, table, 4 * nt);
	int32_t    *ci = put(C, idx, 4 * rows), *gi = put(G, idx, 4 * rows);

	for (int acc = 0; acc < 2; acc++)
	{
		float	   *co = acc ? put(C, init, 4 * nr) : poisoned(C, nr);
		float	   *go = acc ? put(G, init, 4 * nr) : poisoned(G, nr);

		C->gather_rows(C->ctx, co, ct, ci, rows, cols, 0.75f, acc);
		G->gather_rows(G->ctx, go, gt, gi, rows, cols, 0.75f, acc);
		must_check(h, G);
		float	   *o = get(G, go, 4 * nr);

		expect_close(h, acc ? "gather +=" : "gather =", o, co, nr, TOL_FP32);
		free(o);
		C->free(C->ctx, co), G->free(G->ctx, go);
	}
	{
		float	   *cd = put(C, init, 4 * nr), *gd = put(G, init, 4 * nr);
		float	   *ct2 = put(C, table, 4 * nt), *gt2 = put(G, table, 4 * nt);

		C->scatter_add_rows(C->ctx, ct2, cd, ci, rows, cols, 1.5f);
		G->scatter_add_rows(G->ctx, gt2, gd, gi, rows, cols, 1.5f);
		must_check(h, G);
		float	   *o = get(G, gt2, 4 * nt);

		expect_close(h, "scatter_add (duplicates)", o, ct2, nt, TOL_FP32);
		free(o);
		C->free(C->ctx, cd), G->free(G->ctx, gd), C->free(C->ctx, ct2), G->free(G->ctx, gt2);
	}
	free(table), free(init), free(idx);
	C->free(C->ctx, ct), G->free(G->ctx, gt), C->free(C->ctx, ci), G->free(G->ctx, gi);
}

/* Exact float equality of n elements (sums of small integers: every order gives one result). */
static void
expect_exact(harness *h, const char *what, const float *gpu, const float *want, size_t n)
{
	size_t		bad = 0, first = n;

	for (size_t i = 0; i < n; i++)
		if (!(gpu[i] == want[i]))
		{
			if (bad++ == 0)
				first = i;
		}
	if (bad)
		printf("     %zu of %zu elements differ, first at %zu: gpu %.9g want %.9g\n", bad, n,
			   first, gpu[first], want[first]);
	record(h, what, bad == 0, (double) bad, 1.0);
}

/*
 * Atomic accumulation under contention: many blocks adding into a few addresses at once.
 * scatter_add_rows of thousands of rows into two hot rows (a binary action's two buckets) and
 * bias_grad over many rows of few columns; the values are small integers, so the sums are exact
 * in float whatever the order of the atomic adds, and the result must equal the host's exactly.
 * A lost update (an atomic that is not one) fails it; on the emulation this needs blocks in
 * parallel (make cuda-emu-check runs it so), on a GPU it checks the hardware path.
 */
static void
test_contention(harness *h)
{
	const gr_ops *G = h->gpu;
	int			rows = 4096, cols = 64, hot = 2;

	h->op = "contention";
	for (int rep = 0; rep < 3; rep++)
	{
		size_t		nr = (size_t) rows * cols, nt = (size_t) hot * cols;
		float	   *d = malloc(sizeof(float) * nr), *want = calloc(nt, sizeof(float));
		float	   *bias = calloc(cols, sizeof(float));
		int32_t    *idx = malloc(sizeof(int32_t) * rows);

		for (int r = 0; r < rows; r++)
		{
			idx[r] = irand(h, 0, hot - 1);
			for (int c = 0; c < cols; c++)
			{
				d[(size_t) r * cols + c] = (float) irand(h, -4, 4);
				want[(size_t) idx[r] * cols + c] += 2.0f * d[(size_t) r * cols + c];
				bias[c] += d[(size_t) r * cols + c];
			}
		}
		float	   *zt = calloc(nt, sizeof(float)), *zb = calloc(cols, sizeof(float));
		float	   *gd = put(G, d, 4 * nr), *gt = put(G, zt, 4 * nt), *gb = put(G, zb, 4 * cols);
		int32_t    *gi = put(G, idx, 4 * rows);

		G->scatter_add_rows(G->ctx, gt, gd, gi, rows, cols, 2.0f);
		G->bias_grad(G->ctx, gb, gd, rows, cols);
		must_check(h, G);
		float	   *ot = get(G, gt, 4 * nt), *ob = get(G, gb, 4 * cols);

		expect_exact(h, "scatter_add into 2 hot rows (exact)", ot, want, nt);
		expect_exact(h, "bias_grad over 4096 rows (exact)", ob, bias, (size_t) cols);
		free(ot), free(ob), free(d), free(want), free(bias), free(idx), free(zt), free(zb);
		G->free(G->ctx, gd), G->free(G->ctx, gt), G->free(G->ctx, gb), G->free(G->ctx, gi);
	}
}

/* Replace -inf entries that both sides have by 0 (an empty visible set's lse); a -inf on one
 * side only stays and fails. */
static void
same_neg_inf_to_zero(float *a, float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (isinf(a[i]) && a[i] < 0 && isinf(b[i]) && b[i] < 0)
			a[i] = b[i] = 0.0f;
}

/* One attention configuration: sequences of len[s] tokens with n_hist[s] history tokens,
 * a mask mode, and optionally a second value stream. */
static void
attn_case(harness *h, const char *what, int n_seq, const int *len, const int *hist, int n_head,
		  int d, gr_attn_mask mask, bool with_v2)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int32_t		off[16], nh[16];
	int			N = 0, mx = 0;
	char		label[80];

	off[0] = 0;
	for (int s = 0; s < n_seq; s++)
	{
		off[s + 1] = off[s] + len[s];
		nh[s] = hist[s];
		mx = GR_MAX(mx, len[s]);
	}
	N = off[n_seq];
	size_t		nq = (size_t) N * 3 * d, no = (size_t) N * d, nl = (size_t) N * n_head;
	float	   *qkv = rand_floats(h, nq, -1, 1), *dout = rand_floats(h, no, -1, 1);
	float	   *v2 = rand_floats(h, no, -1, 1);
	float	   *cq = put(C, qkv, 4 * nq), *gq = put(G, qkv, 4 * nq);
	float	   *cv2 = with_v2 ? put(C, v2, 4 * no) : NULL, *gv2 = with_v2 ? put(G, v2, 4 * no) : NULL;
	float	   *co = poisoned(C, no), *go = poisoned(G, no);
	float	   *cl = poisoned(C, nl), *gl = poisoned(G, nl);
	int32_t    *goff = put(G, off, 4 * (n_seq + 1)), *gnh = put(G, nh, 4 * n_seq);
	gr_attn_seqs cs = {n_seq, mx, off, nh, off, nh};
	gr_attn_seqs gs = {n_seq, mx, off, nh, goff, gnh};

	C->attn_fwd(C->ctx, co, cl, cq, cv2, &cs, mask, n_head, d);
	G->attn_fwd(G->ctx, go, gl, gq, gv2, &gs, mask, n_head, d);
	must_check(h, G);
	float	   *o = get(G, go, 4 * no), *l = get(G, gl, 4 * nl), *clh = malloc(4 * nl);

	C->download(C->ctx, clh, cl, 4 * nl);
	same_neg_inf_to_zero(l, clh, nl);
	snprintf(label, sizeof(label), "%s fwd out", what);
	expect_close(h, label, o, co, no, TOL_FP32);
	snprintf(label, sizeof(label), "%s fwd lse", what);
	expect_close(h, label, l, clh, nl, TOL_FP32);

	/* backward from the CPU's forward results on both sides */
	float	   *cdo = put(C, dout, 4 * no), *gdo = put(G, dout, 4 * no);
	float	   *cdq = poisoned(C, nq), *gdq = poisoned(G, nq);
	float	   *cdv2 = poisoned(C, no), *gdv2 = poisoned(G, no);

	G->upload(G->ctx, go, co, 4 * no);
	G->upload(G->ctx, gl, cl, 4 * nl);
	C->attn_bwd(C->ctx, cdq, with_v2 ? cdv2 : NULL, cdo, cq, cv2, co, cl, &cs, mask, n_head, d);
	G->attn_bwd(G->ctx, gdq, with_v2 ? gdv2 : NULL, gdo, gq, gv2, go, gl, &gs, mask, n_head, d);
	must_check(h, G);
	float	   *dq = get(G, gdq, 4 * nq), *dv = get(G, gdv2, 4 * no);

	snprintf(label, sizeof(label), "%s bwd dqkv", what);
	expect_close(h, label, dq, cdq, nq, TOL_FP32);
	if (with_v2)
	{
		snprintf(label, sizeof(label), "%s bwd dv2", what);
		expect_close(h, label, dv, cdv2, no, TOL_FP32);
	}
	free(qkv), free(dout), free(v2), free(o), free(l), free(clh), free(dq), free(dv);
	C->free(C->ctx, cq), C->free(C->ctx, co), C->free(C->ctx, cl), C->free(C->ctx, cdo);
	C->free(C->ctx, cdq), C->free(C->ctx, cdv2);
	G->free(G->ctx, gq), G->free(G->ctx, go), G->free(G->ctx, gl), G->free(G->ctx, gdo);
	G->free(G->ctx, gdq), G->free(G->ctx, gdv2), G->free(G->ctx, goff), G->free(G->ctx, gnh);
	if (with_v2)
		C->free(C->ctx, cv2), G->free(G->ctx, gv2);
}

/* Attention: causal training batches and block-causal scoring, every head-size path; the
 * strict mask and the second value stream on training and scoring batches. */
static void
test_attention(harness *h)
{
	h->op = "attention";
	{
		int			len[3] = {1, irand(h, 2, 60), irand(h, 65, 140)};

		attn_case(h, "causal dh32", 3, len, len, 2, 64, GR_MASK_CAUSAL, false);
	}
	{
		int			len[2] = {irand(h, 30, 200), irand(h, 1, 64)};

		attn_case(h, "causal dh64", 2, len, len, 2, 128, GR_MASK_CAUSAL, false);
	}
	{
		int			len[2] = {irand(h, 60, 130), 7};

		attn_case(h, "causal dh128", 2, len, len, 2, 256, GR_MASK_CAUSAL, false);
	}
	{
		int			len[2] = {irand(h, 20, 90), 33};

		attn_case(h, "causal dh24 (padded)", 2, len, len, 2, 48, GR_MASK_CAUSAL, false);
	}
	{
		int			len[2] = {irand(h, 5, 40), 3};

		attn_case(h, "causal dh160 (fallback)", 2, len, len, 1, 160, GR_MASK_CAUSAL, false);
	}
	{
		/* scoring: history then candidates crossing tile boundaries; one candidate-only run */
		int			H0 = irand(h, 40, 100), H1 = 1;
		int			len[3] = {H0 + irand(h, 60, 150), H1 + 5, irand(h, 2, 70)};
		int			hist[3] = {H0, H1, len[2]};

		attn_case(h, "block-causal dh32", 3, len, hist, 2, 64, GR_MASK_CAUSAL, false);
		attn_case(h, "block-causal dh64", 3, len, hist, 2, 128, GR_MASK_CAUSAL, false);
		attn_case(h, "block-causal dh160", 3, len, hist, 1, 160, GR_MASK_CAUSAL, false);
	}
	{
		/* the strict mask and the second value stream; one candidate-only sequence (H = 0) */
		int			H0 = irand(h, 10, 60);
		int			len[4] = {1, irand(h, 2, 80), H0 + irand(h, 3, 40), irand(h, 2, 9)};
		int			hist[4] = {1, len[1], H0, 0};

		attn_case(h, "strict dh32", 4, len, hist, 2, 64, GR_MASK_STRICT, false);
		attn_case(h, "strict + v2 dh32", 4, len, hist, 2, 64, GR_MASK_STRICT, true);
		attn_case(h, "causal + v2 dh16", 4, len, hist, 4, 64, GR_MASK_CAUSAL, true);
		attn_case(h, "strict + v2 dh160", 4, len, hist, 1, 160, GR_MASK_STRICT, true);
	}
}

/* Softmax cross-entropy in place, including rows without a target and a chunked catalogue. */
static void
test_softmax_xent(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			shapes[3][2] = {{irand(h, 1, 60), irand(h, 2, 3000)}, {3, irand(h, 100000, 250000)},
	{irand(h, 100, 400), 1682}};

	h->op = "softmax_xent";
	for (int si = 0; si < 3; si++)
	{
		int			rows = shapes[si][0], cols = shapes[si][1], ld = cols + irand(h, 0, 4);
		size_t		n = (size_t) rows * ld;
		float	   *x = rand_floats(h, n, -6, 6);
		int32_t    *t = malloc(4 * rows);
		char		what[64];

		for (int r = 0; r < rows; r++)
			t[r] = urand(h, 0, 1) < 0.15f ? -1 : irand(h, 0, cols - 1);
		float	   *cx = put(C, x, 4 * n), *gx = put(G, x, 4 * n);
		int32_t    *ct = put(C, t, 4 * rows), *gt = put(G, t, 4 * rows);
		float	   *cl = poisoned(C, rows), *gl = poisoned(G, rows);

		C->softmax_xent(C->ctx, cx, ld, ct, rows, cols, cl, 0.37f);
		G->softmax_xent(G->ctx, gx, ld, gt, rows, cols, gl, 0.37f);
		must_check(h, G);
		float	   *gxo = get(G, gx, 4 * n), *glo = get(G, gl, 4 * rows);
		size_t		nn = (size_t) rows * cols;
		float	   *a = malloc(4 * nn), *b = malloc(4 * nn), *ref = malloc(4 * nn);
		float	   *lref = malloc(4 * rows);

		/*
		 * The CPU sums a row's exponentials one by one in fp32, which over a large catalogue
		 * is itself off by ~1e-5; so both sides are also measured against a float64
		 * reference, and the GPU passes when it is within tolerance of that or no worse
		 * than the CPU. The one-hot term dominates the gradient's norm, so the softmax part
		 * (the gradient without it) is compared on its own.
		 */
		for (int r = 0; r < rows; r++)
		{
			const float *xr = x + (size_t) r * ld;
			double		m = -INFINITY, sum = 0;

			for (int c = 0; c < cols; c++)
				m = fmax(m, xr[c]);
			for (int c = 0; c < cols; c++)
				sum += exp(xr[c] - m);
			lref[r] = t[r] >= 0 ? (float) (log(sum) - (xr[t[r]] - m)) : 0.0f;
			for (int c = 0; c < cols; c++)
			{
				size_t		i = (size_t) r * cols + c;

				a[i] = gxo[(size_t) r * ld + c];
				b[i] = cx[(size_t) r * ld + c];
				ref[i] = t[r] >= 0 ? (float) (0.37 * exp(xr[c] - m) / sum) : 0.0f;
				if (c == t[r])
				{
					a[i] += 0.37f;
					b[i] += 0.37f;
				}
			}
		}
		double		cpu_err = 0.0;

		for (int pass = 0; pass < 2; pass++)
		{
			const float *gv = pass ? glo : a, *cv = pass ? cl : b, *rv = pass ? lref : ref;
			size_t		cnt = pass ? (size_t) rows : nn;
			double		eg = 0, ec = 0, den = 0;

			for (size_t i = 0; i < cnt; i++)
			{
				eg += ((double) gv[i] - rv[i]) * ((double) gv[i] - rv[i]);
				ec += ((double) cv[i] - rv[i]) * ((double) cv[i] - rv[i]);
				den += (double) rv[i] * rv[i];
			}
			eg = sqrt(eg / fmax(den, 1e-30));
			ec = sqrt(ec / fmax(den, 1e-30));
			snprintf(what, sizeof(what), "%s vs float64 %dx%d (cpu %.1e)",
					 pass ? "loss" : "softmax", rows, cols, ec);
			record(h, what, isfinite(eg) && eg <= fmax(TOL_FP32, ec), eg, fmax(TOL_FP32, ec));
			if (pass == 0)
				cpu_err = ec;
		}
		snprintf(what, sizeof(what), "softmax part vs cpu %dx%d", rows, cols);
		expect_close(h, what, a, b, nn, fmax(TOL_FP32, 2 * cpu_err));
		free(x), free(t), free(gxo), free(glo), free(a), free(b), free(ref), free(lref);
		C->free(C->ctx, cx), C->free(C->ctx, ct), C->free(C->ctx, cl);
		G->free(G->ctx, gx), G->free(G->ctx, gt), G->free(G->ctx, gl);
	}
}

/* Action losses: MSE and BCE columns, missing targets. */
static void
test_action_loss(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			rows = irand(h, 1, 3000), k = irand(h, 1, GR_MAX_ACTIONS);
	size_t		n = (size_t) rows * k;
	float	   *pred = rand_floats(h, n, -4, 4), *tgt = rand_floats(h, n, 0, 1);
	float		scale[GR_MAX_ACTIONS];
	uint32_t	mask = (uint32_t) irand(h, 0, (1 << k) - 1);

	h->op = "action_loss";
	for (int j = 0; j < k; j++)
		scale[j] = urand(h, 0.01f, 1.0f);
	for (size_t i = 0; i < n; i++)
	{
		if (urand(h, 0, 1) < 0.2f)
			tgt[i] = NAN;
		else if (mask & (1u << (i % k)))
			tgt[i] = tgt[i] < 0.5f ? 0.0f : 1.0f;
	}
	float	   *cp = put(C, pred, 4 * n), *gp = put(G, pred, 4 * n);
	float	   *ct = put(C, tgt, 4 * n), *gt = put(G, tgt, 4 * n);
	float	   *cl = poisoned(C, n), *gl = poisoned(G, n), *cg = poisoned(C, n), *gg = poisoned(G, n);

	C->action_loss(C->ctx, cp, ct, rows, k, scale, mask, cl, cg);
	G->action_loss(G->ctx, gp, gt, rows, k, scale, mask, gl, gg);
	must_check(h, G);
	float	   *l = get(G, gl, 4 * n), *g = get(G, gg, 4 * n);

	expect_close(h, "loss", l, cl, n, TOL_FP32);
	expect_close(h, "grad", g, cg, n, TOL_FP32);
	free(pred), free(tgt), free(l), free(g);
	C->free(C->ctx, cp), C->free(C->ctx, ct), C->free(C->ctx, cl), C->free(C->ctx, cg);
	G->free(G->ctx, gp), G->free(G->ctx, gt), G->free(G->ctx, gl), G->free(G->ctx, gg);
}

/* Sampled softmax over shared candidates (hits and padding left out), row dot and row scale. */
static void
test_sampled(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			rows = irand(h, 1, 3000), S = irand(h, 1, 700), ld = S + irand(h, 0, 3);
	int			V = irand(h, 5, 2000), d = irand(h, 1, 200);
	size_t		n = (size_t) rows * ld;
	float	   *x = rand_floats(h, n, -5, 5), *p = rand_floats(h, rows, -5, 5);
	float	   *q = rand_floats(h, S, -3, 3);
	int32_t    *t = malloc(4 * rows), *cd = malloc(4 * S);

	h->op = "sampled_xent";
	for (int j = 0; j < S; j++)
		cd[j] = urand(h, 0, 1) < 0.05f ? -1 : irand(h, 0, V - 1);
	for (int r = 0; r < rows; r++)
		t[r] = urand(h, 0, 1) < 0.1f ? -1 : urand(h, 0, 1) < 0.3f ? cd[irand(h, 0, S - 1)] :
			irand(h, 0, V - 1);
	float	   *cx = put(C, x, 4 * n), *gx = put(G, x, 4 * n);
	float	   *cp = put(C, p, 4 * rows), *gp = put(G, p, 4 * rows);
	float	   *cq = put(C, q, 4 * S), *gq = put(G, q, 4 * S);
	int32_t    *ct = put(C, t, 4 * rows), *gt = put(G, t, 4 * rows);
	int32_t    *cc = put(C, cd, 4 * S), *gc = put(G, cd, 4 * S);
	float	   *cl = poisoned(C, rows), *gl = poisoned(G, rows);

	C->sampled_xent(C->ctx, cx, ld, cp, ct, cc, cq, rows, S, 1.7f, cl, 0.37f);
	G->sampled_xent(G->ctx, gx, ld, gp, gt, gc, gq, rows, S, 1.7f, gl, 0.37f);
	must_check(h, G);
	{
		float	   *gxo = get(G, gx, 4 * n), *gpo = get(G, gp, 4 * rows), *glo = get(G, gl, 4 * rows);

		/* the padding columns beyond S are never written: compare the first S of each row */
		for (int r = 0; r < rows; r++)
			for (int c = S; c < ld; c++)
				gxo[(size_t) r * ld + c] = cx[(size_t) r * ld + c];
		expect_close(h, "candidate grads", gxo, cx, n, TOL_FP32);
		expect_close(h, "positive grads", gpo, cp, rows, TOL_FP32);
		expect_close(h, "loss", glo, cl, rows, TOL_FP32);
		free(gxo), free(gpo), free(glo);
	}
	C->free(C->ctx, cx), C->free(C->ctx, cp), C->free(C->ctx, cq), C->free(C->ctx, ct);
	C->free(C->ctx, cc), C->free(C->ctx, cl);
	G->free(G->ctx, gx), G->free(G->ctx, gp), G->free(G->ctx, gq), G->free(G->ctx, gt);
	G->free(G->ctx, gc), G->free(G->ctx, gl);
	free(x), free(p), free(q), free(t), free(cd);

	/* row_dot and row_scale (into and onto) */
	h->op = "row_ops";
	size_t		m = (size_t) rows * d;
	float	   *a = rand_floats(h, m, -1, 1), *b = rand_floats(h, m, -1, 1);
	float	   *ca = put(C, a, 4 * m), *ga = put(G, a, 4 * m), *cb = put(C, b, 4 * m);
	float	   *gb = put(G, b, 4 * m), *co = poisoned(C, rows), *go = poisoned(G, rows);

	C->row_dot(C->ctx, co, ca, cb, rows, d);
	G->row_dot(G->ctx, go, ga, gb, rows, d);
	must_check(h, G);
	float	   *o = get(G, go, 4 * rows);

	expect_close(h, "row_dot", o, co, rows, TOL_FP32);
	C->row_scale(C->ctx, cb, ca, co, rows, d, true);
	G->row_scale(G->ctx, gb, ga, go, rows, d, true);
	must_check(h, G);
	float	   *y = get(G, gb, 4 * m);

	expect_close(h, "row_scale +=", y, cb, m, TOL_FP32);
	free(y);
	C->row_scale(C->ctx, cb, ca, co, rows, d, false);
	G->row_scale(G->ctx, gb, ga, go, rows, d, false);
	must_check(h, G);
	y = get(G, gb, 4 * m);
	expect_close(h, "row_scale =", y, cb, m, TOL_FP32);
	free(y), free(o);

	/* l2norm_rows (every row, with 1 / |x|; then two listed rows) and l2norm_bwd, in place */
	h->op = "l2norm";
	C->l2norm_rows(C->ctx, ca, co, NULL, rows, d);
	G->l2norm_rows(G->ctx, ga, go, NULL, rows, d);
	must_check(h, G);
	y = get(G, ga, 4 * m);
	o = get(G, go, 4 * rows);
	expect_close(h, "l2norm_rows", y, ca, m, TOL_FP32);
	expect_close(h, "l2norm_rows 1/|x|", o, co, rows, TOL_FP32);
	free(y), free(o);
	/* a fresh dy: b is a multiple of a by now, whose gradient through the norm is ~0 */
	free(b);
	b = rand_floats(h, m, -1, 1);
	C->upload(C->ctx, cb, b, 4 * m);
	G->upload(G->ctx, gb, b, 4 * m);
	C->l2norm_bwd(C->ctx, cb, ca, co, cb, rows, d);
	G->l2norm_bwd(G->ctx, gb, ga, go, gb, rows, d);
	must_check(h, G);
	y = get(G, gb, 4 * m);
	expect_close(h, "l2norm_bwd", y, cb, m, TOL_FP32);
	free(y);
	if (rows >= 2)
	{
		int32_t		two[2] = {rows - 1, 0};
		int32_t    *cl = put(C, two, sizeof(two)), *gl = put(G, two, sizeof(two));

		C->l2norm_rows(C->ctx, cb, NULL, cl, 2, d);
		G->l2norm_rows(G->ctx, gb, NULL, gl, 2, d);
		must_check(h, G);
		y = get(G, gb, 4 * m);
		expect_close(h, "l2norm_rows listed", y, cb, m, TOL_FP32);
		free(y);
		C->free(C->ctx, cl), G->free(G->ctx, gl);
	}
	free(a), free(b);
	C->free(C->ctx, ca), C->free(C->ctx, cb), C->free(C->ctx, co);
	G->free(G->ctx, ga), G->free(G->ctx, gb), G->free(G->ctx, go);
}

/* AdamW: parameters and both moments after a step. */
static void
test_adamw(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	size_t		n = (size_t) irand(h, 1, 200000);
	float	   *p = rand_floats(h, n, -1, 1), *g = rand_floats(h, n, -0.1f, 0.1f);
	float	   *m = rand_floats(h, n, -0.01f, 0.01f), *v = rand_floats(h, n, 0, 1e-3f);
	float	   *cp = put(C, p, 4 * n), *gp = put(G, p, 4 * n), *cg = put(C, g, 4 * n);
	float	   *gg = put(G, g, 4 * n), *cm = put(C, m, 4 * n), *gm = put(G, m, 4 * n);
	float	   *cv = put(C, v, 4 * n), *gv = put(G, v, 4 * n);
	int			t = irand(h, 1, 1000);

	h->op = "adamw";
	C->adamw(C->ctx, cp, cg, cm, cv, n, 1e-3f, 0.9f, 0.98f, 1e-8f, 0.01f, t);
	G->adamw(G->ctx, gp, gg, gm, gv, n, 1e-3f, 0.9f, 0.98f, 1e-8f, 0.01f, t);
	must_check(h, G);
	float	   *po = get(G, gp, 4 * n), *mo = get(G, gm, 4 * n), *vo = get(G, gv, 4 * n);

	/* compare the update, not the parameter it is added to */
	for (size_t i = 0; i < n; i++)
	{
		po[i] -= p[i];
		cp[i] -= p[i];
	}
	expect_close(h, "param update", po, cp, n, TOL_FP32);
	expect_close(h, "m", mo, cm, n, TOL_FP32);
	expect_close(h, "v", vo, cv, n, TOL_FP32);
	free(p), free(g), free(m), free(v), free(po), free(mo), free(vo);
	C->free(C->ctx, cp), C->free(C->ctx, cg), C->free(C->ctx, cm), C->free(C->ctx, cv);
	G->free(G->ctx, gp), G->free(G->ctx, gg), G->free(G->ctx, gm), G->free(G->ctx, gv);
}

/* Lazy AdamW on listed rows: the listed rows' parameters and moments after a step, their
 * gradient zeroed; unlisted rows (and their gradient) exactly as they were. */
static void
test_adamw_rows(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			cols = irand(h, 1, 96), V = irand(h, 2, 6000);
	size_t		n = (size_t) V * cols;
	float	   *p = rand_floats(h, n, -1, 1), *g = rand_floats(h, n, -0.1f, 0.1f);
	float	   *m = rand_floats(h, n, -0.01f, 0.01f), *v = rand_floats(h, n, 0, 1e-3f);
	int32_t    *rows = malloc(sizeof(int32_t) * V);
	int			nr = 0, t = irand(h, 1, 1000);

	/* about a third of the rows, ascending, the last one always */
	for (int r = 0; r < V; r++)
		if (r == V - 1 || urand(h, 0, 1) < 0.33f)
			rows[nr++] = r;
	float	   *cp = put(C, p, 4 * n), *gp = put(G, p, 4 * n), *cg = put(C, g, 4 * n);
	float	   *gg = put(G, g, 4 * n), *cm = put(C, m, 4 * n), *gm = put(G, m, 4 * n);
	float	   *cv = put(C, v, 4 * n), *gv = put(G, v, 4 * n);
	int32_t    *ci = put(C, rows, 4 * (size_t) nr), *gi = put(G, rows, 4 * (size_t) nr);

	h->op = "adamw_rows";
	C->adamw_rows(C->ctx, cp, cg, cm, cv, ci, nr, cols, 1e-3f, 0.9f, 0.98f, 1e-8f, 0.01f, t);
	G->adamw_rows(G->ctx, gp, gg, gm, gv, gi, nr, cols, 1e-3f, 0.9f, 0.98f, 1e-8f, 0.01f, t);
	must_check(h, G);
	float	   *po = get(G, gp, 4 * n), *mo = get(G, gm, 4 * n), *vo = get(G, gv, 4 * n);
	float	   *go = get(G, gg, 4 * n), *gc = get(C, cg, 4 * n);

	for (size_t i = 0; i < n; i++)
	{
		po[i] -= p[i];
		cp[i] -= p[i];
	}
	expect_close(h, "rows param update", po, cp, n, TOL_FP32);
	expect_close(h, "rows m", mo, cm, n, TOL_FP32);
	expect_close(h, "rows v", vo, cv, n, TOL_FP32);
	/* the CPU's gradient (zero on listed rows, untouched elsewhere) exactly */
	expect_exact(h, "rows gradient zeroed", go, gc, n);
	{
		size_t		moved = 0;

		for (int r = 0, k = 0; r < V; r++)
		{
			bool		listed = k < nr && rows[k] == r;

			k += listed;
			for (int c = 0; !listed && c < cols; c++)
			{
				size_t		i = (size_t) r * cols + c;

				moved += po[i] != 0.0f || mo[i] != m[i] || vo[i] != v[i] || go[i] != g[i];
			}
		}
		record(h, "rows unlisted unchanged", moved == 0, (double) moved, 1.0);
	}
	free(p), free(g), free(m), free(v), free(po), free(mo), free(vo), free(go), free(gc);
	free(rows);
	C->free(C->ctx, cp), C->free(C->ctx, cg), C->free(C->ctx, cm), C->free(C->ctx, cv);
	G->free(G->ctx, gp), G->free(G->ctx, gg), G->free(G->ctx, gm), G->free(G->ctx, gv);
	C->free(C->ctx, ci), G->free(G->ctx, gi);
}

/* Random sorted exclusion lists per row (no duplicates); returns offsets, fills *excl. */
static int32_t *
make_excl(harness *h, int rows, int cols, int max_per_row, const int32_t *target,
		  int32_t **excl)
{
	int32_t    *off = malloc(4 * (rows + 1));
	int32_t    *ex = malloc(4 * ((size_t) rows * max_per_row + 1));

	off[0] = 0;
	for (int r = 0; r < rows; r++)
	{
		int			n = 0, want = irand(h, 0, max_per_row);

		for (int c = 0; c < cols && n < want; c++)
			if (urand(h, 0, 1) < (float) want / cols * 1.5f && (!target || c != target[r]))
				ex[off[r] + n++] = c;
		off[r + 1] = off[r] + n;
	}
	*excl = ex;
	return off;
}

/* Target ranks with and without exclusions. */
static void
test_rank(harness *h)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			rows = irand(h, 1, 200), cols = irand(h, 2, 5000), ld = cols + irand(h, 0, 3);
	float	   *x = rand_floats(h, (size_t) rows * ld, -5, 5);
	int32_t    *t = malloc(4 * rows), *ex;

	h->op = "rank_targets";
	for (int r = 0; r < rows; r++)
		t[r] = urand(h, 0, 1) < 0.1f ? -1 : irand(h, 0, cols - 1);
	int32_t    *off = make_excl(h, rows, cols, 60, t, &ex);
	size_t		nx = (size_t) rows * ld;

	/* NaN scores: a NaN target ranks last, other NaN columns never rank above */
	for (size_t i = 0; i < nx; i++)
		if (urand(h, 0, 1) < 0.002f)
			x[i] = NAN;
	if (rows > 1 && t[1] >= 0)
		x[(size_t) ld + t[1]] = NAN;
	float	   *cx = put(C, x, 4 * nx), *gx = put(G, x, 4 * nx);
	int32_t    *ct = put(C, t, 4 * rows), *gt = put(G, t, 4 * rows);
	int32_t    *co = put(C, off, 4 * (rows + 1)), *go = put(G, off, 4 * (rows + 1));
	int32_t    *ce = put(C, ex, 4 * (off[rows] + 1)), *ge = put(G, ex, 4 * (off[rows] + 1));
	int32_t    *cra = poisoned_ints(C, rows), *cre = poisoned_ints(C, rows);
	int32_t    *gra = poisoned_ints(G, rows), *gre = poisoned_ints(G, rows);

	C->rank_targets(C->ctx, cx, ld, ct, co, ce, rows, cols, cra, cre);
	G->rank_targets(G->ctx, gx, ld, gt, go, ge, rows, cols, gra, gre);
	must_check(h, G);
	int32_t    *ra = get(G, gra, 4 * rows), *re = get(G, gre, 4 * rows);

	expect_ints(h, "rank (all columns)", ra, cra, rows);
	expect_ints(h, "rank (exclusions)", re, cre, rows);
	free(x), free(t), free(ex), free(off), free(ra), free(re);
	C->free(C->ctx, cx), C->free(C->ctx, ct), C->free(C->ctx, co), C->free(C->ctx, ce);
	C->free(C->ctx, cra), C->free(C->ctx, cre);
	G->free(G->ctx, gx), G->free(G->ctx, gt), G->free(G->ctx, go), G->free(G->ctx, ge);
	G->free(G->ctx, gra), G->free(G->ctx, gre);
}

/* One top-k case: distinct scores (a unique order), or heavily tied ones (ties = the number
 * of distinct levels, -0.0 and +0.0 among them), where the tie rule decides the order. */
static void
topk_case_ties(harness *h, const char *what, int rows, int cols, int k, int max_excl,
			   bool use_excl, int ties)
{
	const gr_ops *C = h->cpu, *G = h->gpu;
	int			ld = cols + irand(h, 0, 3);
	size_t		nx = (size_t) rows * ld, no = (size_t) rows * k;
	float	   *x = malloc(sizeof(float) * nx);
	int32_t    *perm = malloc(sizeof(int32_t) * cols);
	int32_t    *ex = NULL, *off = NULL;
	char		label[80];

	/* distinct scores per row (a random permutation), so the order is unique */
	for (int r = 0; r < rows; r++)
	{
		for (int c = 0; c < cols; c++)
			perm[c] = c;
		for (int c = cols - 1; c > 0; c--)
		{
			int			j = irand(h, 0, c), tmp = perm[c];

			perm[c] = perm[j];
			perm[j] = tmp;
		}
		for (int c = 0; c < ld; c++)
			x[(size_t) r * ld + c] = c < cols ? (float) perm[c] * 0.001f - 20.0f : NAN;
		if (ties > 0)
			for (int c = 0; c < cols; c++)
			{
				int			level = perm[c] % ties;

				/* levels 0 and 1 are +0.0 and -0.0; the rest spread around them */
				x[(size_t) r * ld + c] = level == 0 ? 0.0f : level == 1 ? -0.0f :
					(float) (level - ties / 2) * 0.5f;
			}
		for (int c = 0; c < cols; c++)
			if (urand(h, 0, 1) < 0.001f)
				x[(size_t) r * ld + c] = NAN;	/* NaN scores are skipped */
	}
	free(perm);
	if (use_excl)
		off = make_excl(h, rows, cols, max_excl, NULL, &ex);
	float	   *cx = put(C, x, 4 * nx), *gx = put(G, x, 4 * nx);
	int32_t    *co = NULL, *go = NULL, *ce = NULL, *ge = NULL;

	if (use_excl)
	{
		co = put(C, off, 4 * (rows + 1));
		go = put(G, off, 4 * (rows + 1));
		ce = put(C, ex, 4 * (off[rows] + 1));
		ge = put(G, ex, 4 * (off[rows] + 1));
	}
	else
	{
		int32_t		zeros[2] = {0, 0};

		go = put(G, zeros, 8);	/* excl_off is not read without excl */
	}
	int32_t    *ci = poisoned_ints(C, no), *gi = poisoned_ints(G, no);
	float	   *cv = poisoned(C, no), *gv = poisoned(G, no);

	C->topk(C->ctx, cx, ld, co, ce, rows, cols, k, ci, cv);
	G->topk(G->ctx, gx, ld, go, ge, rows, cols, k, gi, gv);
	must_check(h, G);
	int32_t    *oi = get(G, gi, 4 * no);
	float	   *ov = get(G, gv, 4 * no);

	snprintf(label, sizeof(label), "%s idx", what);
	expect_ints(h, label, oi, ci, no);
	if (ties > 0)
	{
		/* the same result again: nothing depends on the order blocks or threads ran in */
		int32_t    *gi2 = poisoned_ints(G, no);
		float	   *gv2 = poisoned(G, no);

		G->topk(G->ctx, gx, ld, go, ge, rows, cols, k, gi2, gv2);
		must_check(h, G);
		int32_t    *oi2 = get(G, gi2, 4 * no);

		snprintf(label, sizeof(label), "%s idx, run again", what);
		expect_ints(h, label, oi2, oi, no);
		free(oi2);
		G->free(G->ctx, gi2), G->free(G->ctx, gv2);
	}
	/* values: finite entries compared, -inf fill must match exactly */
	size_t		fill_bad = 0;

	for (size_t i = 0; i < no; i++)
		if (isinf(cv[i]) || isinf(ov[i]))
		{
			fill_bad += !(isinf(cv[i]) && isinf(ov[i]));
			ov[i] = cv[i] = 0.0f;
		}
	snprintf(label, sizeof(label), "%s val", what);
	expect_close(h, label, ov, cv, no, TOL_FP32);
	record(h, "-inf fill where fewer than k", fill_bad == 0, fill_bad, 1);
	free(x), free(ex), free(off), free(oi), free(ov);
	C->free(C->ctx, cx), C->free(C->ctx, ci), C->free(C->ctx, cv);
	if (use_excl)
		C->free(C->ctx, co), C->free(C->ctx, ce), G->free(G->ctx, ge);
	G->free(G->ctx, gx), G->free(G->ctx, gi), G->free(G->ctx, gv), G->free(G->ctx, go);
}

/* One top-k case with distinct scores. */
static void
topk_case(harness *h, const char *what, int rows, int cols, int k, int max_excl, bool use_excl)
{
	topk_case_ties(h, what, rows, cols, k, max_excl, use_excl, 0);
}

/* Top-k: exclusions or none, k beyond the valid columns, the host path for large k, and
 * tied scores (across chunks of the device passes, -0.0 beside +0.0) in the CPU's order. */
static void
test_topk(harness *h)
{
	h->op = "topk";
	topk_case_ties(h, "ties k100 of 30k, 7 levels", irand(h, 1, 4), irand(h, 20000, 30000), 100,
				   300, true, 7);
	topk_case_ties(h, "ties k50 of 9000, +-0 only", 3, 9000, 50, 40, true, 2);
	topk_case_ties(h, "ties k1000 of 20k, 3 levels", 2, irand(h, 17000, 20000), 1000, 0, false,
				   3);
	topk_case_ties(h, "ties k5000 (host path)", 1, 9000, 5000, 50, true, 5);
	topk_case(h, "k100 of 50k, excl", irand(h, 1, 6), irand(h, 40000, 60000), 100, 300, true);
	topk_case(h, "k10 of 1682, no excl", irand(h, 1, 40), 1682, 10, 0, false);
	topk_case(h, "k64 of 70, most excl", 5, 70, 64, 60, true);
	topk_case(h, "k1", 7, irand(h, 1, 9000), 1, 20, true);
	topk_case(h, "k3000 (device sort)", 2, irand(h, 5000, 9000), 3000, 100, true);
	topk_case(h, "k6000 (host path)", 2, irand(h, 7000, 9000), 6000, 100, true);
}

/* ---- whole model: gradient, optimiser and scoring parity through the engine ---- */

/* Random normalised actions of a history: column 1 binary, 10% missing. */
static void
rand_history(harness *h, int n, int K, int V, int32_t *items, float *act)
{
	for (int i = 0; i < n; i++)
	{
		items[i] = irand(h, 1, V);
		for (int k = 0; k < K; k++)
		{
			float		v = urand(h, 0, 1);

			if (k == 1)
				v = v < 0.5f ? 0.0f : 1.0f;
			act[i * K + k] = urand(h, 0, 1) < 0.1f ? NAN : v;
		}
	}
}

/* Compare a whole parameter-shaped buffer, globally and per tensor. */
static void
compare_tensors(harness *h, const gr_model *m, const char *what, const float *gpu,
				const float *cpu, double tol)
{
	char		label[96];
	int			bad = 0;

	snprintf(label, sizeof(label), "%s (all tensors)", what);
	expect_close(h, label, gpu, cpu, m->n_params, tol);
	for (int i = 0; i < m->n_tensors; i++)
	{
		const gr_tensor *t = &m->tensors[i];
		double		num = 0, den = 0;

		for (size_t j = 0; j < t->numel; j++)
		{
			double		a = gpu[t->offset + j], b = cpu[t->offset + j];

			num += (a - b) * (a - b);
			den += b * b;
		}
		/* tensors whose gradient is tiny (|g| << the whole) only need absolute agreement */
		double		e = den > 1e-12 ? sqrt(num / den) : sqrt(num);

		if (!(e <= 10 * tol))
		{
			printf("     %s %s: err %.3e\n", what, t->name, e);
			bad++;
		}
	}
	snprintf(label, sizeof(label), "%s (each tensor, 10x tol)", what);
	record(h, label, bad == 0, bad, 1);
}

/* One layout: a training step's loss and gradients, an AdamW step, scoring and retrieval. */
static void
model_parity(harness *h, int layout_id, int item_loss, int negatives_per, int similarity)
{
	const gr_layout *lay = gr_layout_by_id(layout_id);
	gr_env		ec, eg;
	gr_error	err;
	gr_model_config cfg;
	gr_train_config tcfg;
	gr_model   *mc = NULL, *mg = NULL;
	gr_trainer *tc = NULL, *tg = NULL;
	gr_tokens	tb;
	int			V = irand(h, 50, 400), K = gr_layout_needs_actions(lay) ? 2 : 0, B = 6;
	char		op[48];
	double	   *cdf = NULL;

	snprintf(op, sizeof(op), "model %s%s%s%s%s", lay->name, item_loss ? " " : "",
			 item_loss ? gr_item_loss_name(item_loss) : "",
			 negatives_per == GR_NEGATIVES_PER_USER ? " per user" : "",
			 similarity == GR_SIMILARITY_COSINE ? " cosine" : "");
	h->op = op;
	gr_env_default(&ec);
	gr_env_default(&eg);
	ec.ops = h->cpu;
	eg.ops = h->gpu;
	gr_model_config_default(&cfg, layout_id, V, K);
	cfg.max_len = 24;
	cfg.d_model = 64;
	cfg.n_layer = 2;
	cfg.n_head = 2;
	cfg.item_loss = item_loss;
	cfg.negatives = item_loss == GR_LOSS_INFONCE ? 0 : 64;
	cfg.sampler = GR_SAMPLER_POPULARITY;
	cfg.negatives_per = negatives_per;
	cfg.temperature = 0.5f;
	cfg.similarity = similarity;
	if (K > 1)
		cfg.action_binary[1] = 1;
	gr_train_config_default(&tcfg);
	tcfg.dropout = 0.1f;
	tcfg.seed = h->seed;
	if (gr_model_create(&ec, &cfg, NULL, &mc, &err) != GR_OK ||
		gr_model_init_params(mc, h->seed, &err) != GR_OK ||
		gr_model_create(&eg, &cfg, NULL, &mg, &err) != GR_OK)
	{
		printf("FAIL %s: model: %s\n", op, err.message);
		h->failures++;
		goto out;
	}
	float	   *host = malloc(sizeof(float) * mc->n_params);

	gr_model_download_params(mc, host);
	gr_model_upload_params(mg, host);
	int			cap = B * mc->n_positions;

	if (gr_tokens_init(&tb, &ec, K, cfg.n_buckets, cap, B, cap, &err) != GR_OK)
	{
		printf("FAIL %s: tokens: %s\n", op, err.message);
		h->failures++;
		free(host);
		goto out;
	}
	int			wl = lay->window_len(cfg.max_len);
	int32_t    *items = malloc(sizeof(int32_t) * wl);
	float	   *act = malloc(sizeof(float) * wl * (K ? K : 1));

	for (int u = 0; u < B; u++)
	{
		int			n = irand(h, 3, wl);
		gr_seq_view sv = {0};

		rand_history(h, n, K, V, items, act);
		sv.items = items;
		sv.actions = K ? act : NULL;
		sv.n = n;
		sv.n_actions = K;
		if (lay->add_window(&tb, &sv, 0, n, false, &err) != GR_OK)
			printf("     add_window: %s\n", err.message);
	}
	if (gr_trainer_create(mc, &tcfg, cap, B, &tc, &err) != GR_OK ||
		gr_trainer_create(mg, &tcfg, cap, B, &tg, &err) != GR_OK)
	{
		printf("FAIL %s: trainer: %s\n", op, err.message);
		h->failures++;
		goto out_tokens;
	}
	/* popularity for the sampled losses: item c counted (c % 7) + 1 times */
	cdf = malloc(sizeof(double) * V);
	for (int c = 0; c < V; c++)
		cdf[c] = (c > 0 ? cdf[c - 1] : 0.0) + c % 7 + 1;
	tc->popularity.cdf = tg->popularity.cdf = cdf;

	gr_step_loss lc, lg;
	gr_status	sc = gr_trainer_compute(tc, &tb, 3, &lc, &err);
	gr_status	sg = gr_trainer_compute(tg, &tb, 3, &lg, &err);

	if (sc != GR_OK || sg != GR_OK)
	{
		printf("FAIL %s: trainer_compute: %s\n", op, err.message);
		h->failures++;
		goto out_tokens;
	}
	{
		float		a = (float) lg.total, b = (float) lc.total;

		expect_close(h, "step loss", &a, &b, 1, tol_model(h));
	}
	float	   *gg = get(h->gpu, tg->grads, sizeof(float) * mc->n_params);

	compare_tensors(h, mc, "gradients", gg, tc->grads, tol_model(h));
	free(gg);
	/* one optimiser step from identical gradients: upload the CPU's */
	h->gpu->upload(h->gpu->ctx, tg->grads, tc->grads, sizeof(float) * mc->n_params);
	if (gr_trainer_apply(tc, &err) != GR_OK || gr_trainer_apply(tg, &err) != GR_OK)
	{
		printf("FAIL %s: apply: %s\n", op, err.message);
		h->failures++;
		goto out_tokens;
	}
	{
		float	   *pc = malloc(sizeof(float) * mc->n_params), *pg = malloc(sizeof(float) * mc->n_params);

		gr_model_download_params(mc, pc);
		gr_model_download_params(mg, pg);
		for (size_t i = 0; i < mc->n_params; i++)
		{
			pc[i] -= host[i];
			pg[i] -= host[i];
		}
		compare_tensors(h, mc, "adamw update", pg, pc, TOL_FP32 * 10);
		free(pc), free(pg);
	}

	/* scoring and retrieval with the updated (identical up to rounding) weights */
	{
		gr_session *sc_ = NULL, *sg_ = NULL;
		int			n = irand(h, 1, wl), C_ = 40;
		int64_t    *hi = malloc(sizeof(int64_t) * n), cands[40], ri[2][20];
		double	   *ha = malloc(sizeof(double) * n * (K ? K : 1));
		float		ac[2][40 * GR_MAX_ACTIONS], lo[2][40], rs[2][20];
		int			nr[2];

		gr_model_download_params(mc, host);
		gr_model_upload_params(mg, host);
		rand_history(h, n, K, V, items, act);
		for (int i = 0; i < n; i++)
		{
			hi[i] = items[i];
			for (int k = 0; k < K; k++)
				ha[i * K + k] = act[i * K + k];
		}
		for (int c = 0; c < C_; c++)
			cands[c] = irand(h, 1, V + 5);	/* a few unknown items */
		gr_history hist = {hi, K ? ha : NULL, n};

		if (gr_session_create(mc, &sc_, &err) != GR_OK || gr_session_create(mg, &sg_, &err) != GR_OK)
		{
			printf("FAIL %s: session: %s\n", op, err.message);
			h->failures++;
		}
		else
		{
			for (int dev = 0; dev < 2; dev++)
			{
				gr_scores	out = {K ? ac[dev] : NULL, lo[dev], NULL};

				/* a layout without an item head cannot retrieve, on either device */
				gr_status	rec = GR_OK;

				if (gr_score(dev ? sg_ : sc_, &hist, cands, C_, &out, &err) != GR_OK ||
					(rec = gr_recommend(dev ? sg_ : sc_, &hist, 20, true, ri[dev], rs[dev],
										&nr[dev], &err)) != (gr_layout_has_item_head(lay) ?
															 GR_OK : GR_ERR_INVALID_ARGUMENT))
				{
					printf("FAIL %s: serving: %s\n", op, err.message);
					h->failures++;
				}
				if (rec != GR_OK)
					nr[dev] = 0;
			}
			/* unknown items give NaN logits on both sides: compare the known ones */
			for (int c = 0; c < C_; c++)
				if (isnan(lo[0][c]) && isnan(lo[1][c]))
					lo[0][c] = lo[1][c] = 0.0f;
			expect_close(h, "score: retrieval logits", lo[1], lo[0], C_, tol_model(h));
			if (K > 0 && gr_layout_has_action_head(lay))
				expect_close(h, "score: actions", ac[1], ac[0], (size_t) C_ * K, tol_model(h));
			int			same = nr[0] == nr[1];

			for (int i = 0; same && i < nr[0]; i++)
				same = ri[0][i] == ri[1][i];
			record(h, "recommend: same top-20", same, !same, 1);
			if (same)
				expect_close(h, "recommend: scores", rs[1], rs[0], nr[0], tol_model(h));
		}
		gr_session_free(sc_);
		gr_session_free(sg_);
		free(hi), free(ha);
	}
out_tokens:
	gr_tokens_free(&tb);
	free(items), free(act), free(host);
	if (tc)
		tc->popularity.cdf = NULL;
	if (tg)
		tg->popularity.cdf = NULL;
	free(cdf);
out:
	gr_trainer_free(tc);
	gr_trainer_free(tg);
	gr_model_free(mc);
	gr_model_free(mg);
}

/* ---- driver ---- */

/* Print the summary table: one line per op and mode. */
static void
print_table(const harness *h)
{
	printf("\n%-20s %-5s %7s %8s %12s  %s\n", "op", "mode", "checks", "failed", "worst/tol",
		   "status");
	for (int i = 0; i < h->n_rows; i++)
	{
		const result_row *r = &h->rows[i];

		printf("%-20s %-5s %7d %8d %12.3g  %s\n", r->op, r->mode, r->checks, r->failures,
			   r->worst, r->failures ? "FAIL" : "ok");
	}
	printf("%d passed, %d failed\n", h->checks - h->failures, h->failures);
}

/* Whether a group of checks was asked for (--only). */
static bool
wanted(const harness *h, const char *group)
{
	return h->only == NULL || strcmp(h->only, group) == 0;
}

/* Run every check in one math mode. */
static int
run_mode(harness *h, gr_math_mode mode, const char *module)
{
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];

	if (gr_device_open("cuda", gr_math_mode_name(mode), module, "build", &dev, notice, &err)
		!= GR_OK)
	{
		fprintf(stderr, "test_cuda_ops: cannot open the CUDA backend: %s\n", err.message);
		return 2;
	}
	h->gpu = dev.ops;
	h->math = mode;
	printf("== %s (math %s), seed %llu\n", dev.ops->name, gr_math_mode_name(mode),
		   (unsigned long long) h->seed);
	if (wanted(h, "gemm"))
		test_gemm(h);
	if (!h->ops_done)
	{
		/* the non-GEMM ops do not depend on the math mode: check them once */
		static const struct
		{
			const char *name;
			void		(*run) (harness *h);
		}			groups[] = {
			{"pointwise", test_pointwise}, {"layernorm", test_layernorm},
			{"embedding", test_embedding}, {"contention", test_contention},
			{"attention", test_attention},
			{"softmax_xent", test_softmax_xent}, {"sampled", test_sampled},
			{"action_loss", test_action_loss},
			{"adamw", test_adamw}, {"adamw_rows", test_adamw_rows},
			{"rank_targets", test_rank}, {"topk", test_topk},
		};

		h->ops_done = true;
		for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
			if (wanted(h, groups[i].name))
				groups[i].run(h);
	}
	if (wanted(h, "model"))
	{
		for (int l = 0; l < GR_LAYOUT_COUNT; l++)
			model_parity(h, l, GR_LOSS_FULL, GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT);
		model_parity(h, GR_LAYOUT_ITEM, GR_LOSS_SAMPLED, GR_NEGATIVES_PER_BATCH,
					 GR_SIMILARITY_DOT);
		model_parity(h, GR_LAYOUT_PC, GR_LOSS_SAMPLED, GR_NEGATIVES_PER_USER,
					 GR_SIMILARITY_DOT);
		model_parity(h, GR_LAYOUT_LAC, GR_LOSS_INFONCE, GR_NEGATIVES_PER_BATCH,
					 GR_SIMILARITY_DOT);
		model_parity(h, GR_LAYOUT_ITEM, GR_LOSS_SAMPLED, GR_NEGATIVES_PER_USER,
					 GR_SIMILARITY_COSINE);
		model_parity(h, GR_LAYOUT_INT, GR_LOSS_INFONCE, GR_NEGATIVES_PER_BATCH,
					 GR_SIMILARITY_COSINE);
	}
	gr_device_close(&dev);
	return 0;
}

int
main(int argc, char **argv)
{
	static harness h;
	const char *math = "all", *module = NULL;
	int			rc = 0;
	bool		probe = false;

	h.seed = ((uint64_t) time(NULL) << 20) ^ (uint64_t) getpid();
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--math") == 0 && i + 1 < argc)
			math = argv[++i];
		else if (strcmp(argv[i], "--module") == 0 && i + 1 < argc)
			module = argv[++i];
		else if (strcmp(argv[i], "--probe") == 0)
			probe = true;
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			h.seed = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			h.only = argv[++i];
		else
		{
			fprintf(stderr, "usage: test_cuda_ops [--math fp32|tf32|bf16|all] [--module PATH] "
					"[--seed N] [--only GROUP] [--probe]\n");
			return 2;
		}
	}
	h.cpu = gr_ops_cpu();
	if (probe)
	{
		/* only say whether a CUDA backend opens here, and which */
		gr_device	dev;
		gr_error	err;
		char		notice[GR_DEVICE_NOTICE_LEN];

		if (gr_device_open("cuda", NULL, module, "build", &dev, notice, &err) != GR_OK)
		{
			printf("%s\n", err.message);
			return 2;
		}
		printf("%s\n", dev.ops->name);
		gr_device_close(&dev);
		return 0;
	}
	gr_math_mode modes[3] = {GR_MATH_TF32, GR_MATH_FP32, GR_MATH_BF16};

	for (int i = 0; i < 3 && rc == 0; i++)
		if (strcmp(math, "all") == 0 || strcmp(math, gr_math_mode_name(modes[i])) == 0)
			rc = run_mode(&h, modes[i], module);
	if (rc != 0)
		return rc;
	print_table(&h);
	return h.failures == 0 ? 0 : 1;
}
