/*
 * test_ops.c — every CPU op against a plain reference loop (in double) on random inputs, and a
 * finite-difference gradient check of every op with a backward pass (central differences of
 * the double reference). Linear ops are checked through their adjoint identity. HSTU
 * attention (LAYOUTS.md §2.3) also gets an independent check of its integer time buckets
 * against the log formula they tabulate.
 */
#include "gr_ops.h"
#include "gr_rng.h"
#include "unit.h"

#include <string.h>

static const gr_ops *ops;
static uint32_t draw_counter = 0;

/* Linked with -Wl,--wrap=malloc: when set, the engine's malloc calls fail. */
static volatile bool fail_malloc = false;
void	   *__real_malloc(size_t size);
void	   *__wrap_malloc(size_t size);

/* malloc that fails on demand. */
void *
__wrap_malloc(size_t size)
{
	return fail_malloc ? NULL : __real_malloc(size);
}

/* Fill x with uniform values in [lo, hi) from a fresh counter. */
static void
fill_uniform(float *x, size_t n, float lo, float hi)
{
	uint32_t	stream = GR_STREAM_TEST + (draw_counter++);

	for (size_t i = 0; i < n; i++)
		x[i] = lo + (hi - lo) * gr_rng_uniform(7, stream, 0, i);
}

/* Relative error ||a - b|| / max(||b||, 1e-12) between a float and a double array. */
static double
rel_err(const float *a, const double *b, size_t n)
{
	double		num = 0.0, den = 0.0;

	for (size_t i = 0; i < n; i++)
	{
		double		e = (double) a[i] - b[i];

		if (isnan(a[i]))
			return INFINITY;
		num += e * e;
		den += b[i] * b[i];
	}
	return sqrt(num) / fmax(sqrt(den), 1e-12);
}

/* Plain GEMM reference in double with the ops' row-major transpose convention. */
static void
ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const float *a, int lda,
		 const float *b, int ldb, double beta, const float *c_in, double *c, int ldc)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++)
		{
			double		s = 0.0;

			for (int p = 0; p < k; p++)
			{
				double		av = ta ? a[(size_t) p * lda + i] : a[(size_t) i * lda + p];
				double		bv = tb ? b[(size_t) j * ldb + p] : b[(size_t) p * ldb + j];

				s += av * bv;
			}
			c[(size_t) i * ldc + j] = alpha * s + beta * c_in[(size_t) i * ldc + j];
		}
}

/* GEMM in all transpose combinations with padded leading dimensions. */
static void
test_gemm(void)
{
	int			m = 7, n = 5, k = 9;

	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
		{
			int			lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
			float		a[(9 + 3) * 9], b[(9 + 2) * 9], c[7 * 6];
			double		ref[7 * 6];

			fill_uniform(a, sizeof(a) / sizeof(float), -1, 1);
			fill_uniform(b, sizeof(b) / sizeof(float), -1, 1);
			fill_uniform(c, sizeof(c) / sizeof(float), -1, 1);
			ref_gemm(ta, tb, m, n, k, 0.7, a, lda, b, ldb, 0.3, c, ref, ldc);
			ops->gemm(ops->ctx, ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c, ldc);
			for (int i = 0; i < m; i++)
				for (int j = 0; j < n; j++)
					CHECK_CLOSE(c[i * ldc + j], ref[i * ldc + j], 1e-5);
		}
	/* a few rows against a tall B^T (the retrieval path that reads B once), beta 0 and not */
	for (int rows = 1; rows <= 9; rows += 4)
		for (int bz = 0; bz < 2; bz++)
		{
			int			N = 5000, K = 37, lda = K + 1, ldb = K + 3, ldc = N + 5;
			float	   *a = malloc(sizeof(float) * rows * lda), *b = malloc(sizeof(float) * N * ldb);
			float	   *c = malloc(sizeof(float) * rows * ldc);
			double	   *ref = malloc(sizeof(double) * rows * ldc);
			float		beta = bz ? 0.0f : 0.3f;

			fill_uniform(a, (size_t) rows * lda, -1, 1);
			fill_uniform(b, (size_t) N * ldb, -1, 1);
			fill_uniform(c, (size_t) rows * ldc, -1, 1);
			if (bz)
				for (int i = 0; i < rows * ldc; i++)
					c[i] = NAN;	/* beta 0 never reads C */
			ref_gemm(false, true, rows, N, K, 0.7, a, lda, b, ldb, beta, c, ref, ldc);
			if (bz)
				for (int i = 0; i < rows; i++)
					for (int j = 0; j < N; j++)
					{
						double		sum = 0;

						for (int t = 0; t < K; t++)
							sum += (double) a[i * lda + t] * b[(size_t) j * ldb + t];
						ref[(size_t) i * ldc + j] = 0.7 * sum;
					}
			ops->gemm(ops->ctx, false, true, rows, N, K, 0.7f, a, lda, b, ldb, beta, c, ldc);
			int			bad = 0;

			for (int i = 0; i < rows; i++)
				for (int j = 0; j < N; j++)
					bad += !(fabs(c[(size_t) i * ldc + j] - ref[(size_t) i * ldc + j]) <= 1e-5 *
							 fmax(1.0, fabs(ref[(size_t) i * ldc + j])));
			CHECK_MSG(bad == 0, "%d of %d entries of a %d x %d x %d A B^T differ", bad, rows * N,
					  rows, N, K);
			free(a), free(b), free(c), free(ref);
		}
}

/* Bias add, bias gradient and elementwise add against loops. */
static void
test_bias_and_add(void)
{
	enum
	{
	R = 37, C = 70};
	float		x[R * C], b[C], y[R * C], db[C], s[R * C];

	fill_uniform(x, R * C, -1, 1);
	fill_uniform(b, C, -1, 1);
	memcpy(y, x, sizeof(x));
	ops->add_bias(ops->ctx, y, b, R, C);
	for (int i = 0; i < R * C; i++)
		CHECK_CLOSE(y[i], x[i] + b[i % C], 1e-6);
	for (int c = 0; c < C; c++)
		db[c] = 0.5f;
	ops->bias_grad(ops->ctx, db, x, R, C);
	for (int c = 0; c < C; c++)
	{
		double		ref = 0.5;

		for (int r = 0; r < R; r++)
			ref += x[r * C + c];
		CHECK_CLOSE(db[c], ref, 1e-5);
	}
	ops->add(ops->ctx, s, x, y, R * C);
	for (int i = 0; i < R * C; i++)
		CHECK_CLOSE(s[i], x[i] + y[i], 1e-6);
}

/* Double LayerNorm of one row. */
static void
ref_layernorm_row(const double *x, const float *w, const float *b, int C, double *y)
{
	double		m = 0, v = 0;

	for (int c = 0; c < C; c++)
		m += x[c];
	m /= C;
	for (int c = 0; c < C; c++)
		v += (x[c] - m) * (x[c] - m);
	v /= C;
	for (int c = 0; c < C; c++)
		y[c] = (x[c] - m) / sqrt(v + 1e-5) * w[c] + b[c];
}

/* LayerNorm forward against the reference, backward against finite differences. */
static void
test_layernorm(void)
{
	enum
	{
	R = 5, C = 12};
	float		x[R * C], w[C], b[C], y[R * C], mean[R], rstd[R], dy[R * C];
	float		dx[R * C], dw[C], db[C];
	double		xd[C], yd[C], yp[C], ym[C];

	fill_uniform(x, R * C, -2, 2);
	fill_uniform(w, C, 0.5, 1.5);
	fill_uniform(b, C, -0.5, 0.5);
	fill_uniform(dy, R * C, -1, 1);
	ops->layernorm_fwd(ops->ctx, y, mean, rstd, x, w, b, R, C);
	for (int r = 0; r < R; r++)
	{
		for (int c = 0; c < C; c++)
			xd[c] = x[r * C + c];
		ref_layernorm_row(xd, w, b, C, yd);
		for (int c = 0; c < C; c++)
			CHECK_CLOSE(y[r * C + c], yd[c], 1e-5);
	}
	memset(dx, 0, sizeof(dx));
	memset(dw, 0, sizeof(dw));
	memset(db, 0, sizeof(db));
	ops->layernorm_bwd(ops->ctx, dx, dw, db, dy, x, w, mean, rstd, R, C);
	/* dL/dx with L = sum dy * y, by central differences of the double reference */
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
		{
			double		h = 1e-6, lp = 0, lm = 0;

			for (int j = 0; j < C; j++)
				xd[j] = x[r * C + j];
			xd[c] += h;
			ref_layernorm_row(xd, w, b, C, yp);
			xd[c] -= 2 * h;
			ref_layernorm_row(xd, w, b, C, ym);
			for (int j = 0; j < C; j++)
			{
				lp += dy[r * C + j] * yp[j];
				lm += dy[r * C + j] * ym[j];
			}
			CHECK_CLOSE(dx[r * C + c], (lp - lm) / (2 * h), 1e-4);
		}
	/* dL/dw and dL/db are sums of dy * xhat and dy */
	for (int c = 0; c < C; c++)
	{
		double		rw = 0, rb = 0;

		for (int r = 0; r < R; r++)
		{
			rw += dy[r * C + c] * (x[r * C + c] - mean[r]) * rstd[r];
			rb += dy[r * C + c];
		}
		CHECK_CLOSE(dw[c], rw, 1e-5);
		CHECK_CLOSE(db[c], rb, 1e-5);
	}
}

/* Double GELU (tanh form). */
static double
ref_gelu(double u)
{
	return 0.5 * u * (1.0 + tanh(sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
}

/* GELU forward against the reference, backward against finite differences. */
static void
test_gelu(void)
{
	enum
	{
	N = 200};
	float		x[N], y[N], dy[N], dx[N];

	fill_uniform(x, N, -5, 5);
	fill_uniform(dy, N, -1, 1);
	ops->gelu_fwd(ops->ctx, y, x, N);
	ops->gelu_bwd(ops->ctx, dx, x, dy, N);
	for (int i = 0; i < N; i++)
	{
		double		h = 1e-6;

		CHECK_CLOSE(y[i], ref_gelu(x[i]), 1e-5);
		CHECK_CLOSE(dx[i], dy[i] * (ref_gelu(x[i] + h) - ref_gelu(x[i] - h)) / (2 * h), 1e-4);
	}
}

/* Dropout: keep rate, scaling, determinism per (seed, site, step), and p = 0. */
static void
test_dropout(void)
{
	enum
	{
	N = 100000};
	static float x[N], y[N], y2[N], y3[N];
	size_t		kept = 0;

	fill_uniform(x, N, 0.5, 1.5);
	ops->dropout(ops->ctx, y, x, N, 0.25f, 11, 3, 5);
	ops->dropout(ops->ctx, y2, x, N, 0.25f, 11, 3, 5);
	ops->dropout(ops->ctx, y3, x, N, 0.25f, 11, 3, 6);
	int			same = 1, differs = 0;

	for (int i = 0; i < N; i++)
	{
		if (y[i] != 0.0f)
		{
			kept++;
			CHECK_CLOSE(y[i], x[i] / 0.75, 1e-6);
		}
		same &= y[i] == y2[i];
		differs |= (y[i] == 0.0f) != (y3[i] == 0.0f);
		CHECK(y[i] == 0.0f || (gr_dropout_keep(11, 3, 5, i, 0.25f) && y[i] != 0.0f));
	}
	CHECK(same);
	CHECK(differs);
	/* binomial: 75000 +- 4.5 sigma (sigma = 137) */
	CHECK_MSG(kept > 74380 && kept < 75620, "kept %zu of %d", kept, N);
	ops->dropout(ops->ctx, y, x, N, 0.0f, 11, 3, 5);
	CHECK(memcmp(x, y, sizeof(x)) == 0);
}

/* Gather/scatter against loops and the adjoint identity <gather(T), Y> = <T, scatter(Y)>. */
static void
test_gather_scatter(void)
{
	enum
	{
	V = 9, R = 13, C = 6};
	float		t[V * C], g[R * C], yv[R * C], dt[V * C];
	int32_t		idx[R];

	fill_uniform(t, V * C, -1, 1);
	fill_uniform(yv, R * C, -1, 1);
	for (int r = 0; r < R; r++)
		idx[r] = (r * 5) % (V + 1) - 1;	/* includes -1 and duplicates */
	ops->gather_rows(ops->ctx, g, t, idx, R, C, 2.0f, false);
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			CHECK_CLOSE(g[r * C + c], idx[r] < 0 ? 0.0 : 2.0 * t[idx[r] * C + c], 1e-6);
	memcpy(g, yv, sizeof(g));
	ops->gather_rows(ops->ctx, g, t, idx, R, C, 1.0f, true);
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			CHECK_CLOSE(g[r * C + c], yv[r * C + c] + (idx[r] < 0 ? 0.0 : t[idx[r] * C + c]),
						1e-6);
	memset(dt, 0, sizeof(dt));
	ops->scatter_add_rows(ops->ctx, dt, yv, idx, R, C, 2.0f);
	ops->gather_rows(ops->ctx, g, t, idx, R, C, 2.0f, false);
	double		lhs = 0, rhs = 0;

	for (int i = 0; i < R * C; i++)
		lhs += (double) g[i] * yv[i];
	for (int i = 0; i < V * C; i++)
		rhs += (double) t[i] * dt[i];
	CHECK_CLOSE(lhs, rhs, 1e-5);
}

/* The predicates of gr_ops.h, written out. */
static bool
ref_allow(int q, int k, int th, gr_attn_mask mask)
{
	if (mask == GR_MASK_STRICT)
		return (q < th && k < q) || (q >= th && k < th);
	return (q < th && k <= q) || (q >= th && (k < th || k == q));
}

/* Double attention over packed sequences with an explicit predicate: softmax over allow,
 * the values v plus, at the strict keys, the second stream v2 (NULL: none). */
static void
ref_attention(const double *qkv, const double *v2, const gr_attn_seqs *s, gr_attn_mask mask,
			  int H, int d, double *out)
{
	int			dh = d / H;

	for (int q = 0; q < s->seq_off[s->n_seq]; q++)
		for (int i = 0; i < d; i++)
			out[q * d + i] = 0;
	for (int sq = 0; sq < s->n_seq; sq++)
	{
		int			base = s->seq_off[sq], T = s->seq_off[sq + 1] - base, th = s->n_hist[sq];

		for (int h = 0; h < H; h++)
			for (int q = 0; q < T; q++)
			{
				double		sc[64], mx = -INFINITY, sum = 0;

				for (int k = 0; k < T; k++)
				{
					sc[k] = -INFINITY;
					if (!ref_allow(q, k, th, mask))
						continue;
					double		dotp = 0;

					for (int i = 0; i < dh; i++)
						dotp += qkv[(base + q) * 3 * d + h * dh + i] *
							qkv[(base + k) * 3 * d + d + h * dh + i];
					sc[k] = dotp / sqrt((double) dh);
					mx = fmax(mx, sc[k]);
				}
				for (int k = 0; k < T; k++)
					sum += isinf(sc[k]) ? 0 : exp(sc[k] - mx);
				for (int k = 0; k < T; k++)
				{
					if (isinf(sc[k]))
						continue;
					double		p = exp(sc[k] - mx) / sum;

					for (int i = 0; i < dh; i++)
					{
						out[(base + q) * d + h * dh + i] +=
							p * qkv[(base + k) * 3 * d + 2 * d + h * dh + i];
						if (v2 && ref_allow(q, k, th, GR_MASK_STRICT))
							out[(base + q) * d + h * dh + i] += p * v2[(base + k) * d + h * dh + i];
					}
				}
			}
	}
}

/* <dout, ref_attention(x)> for finite differences. */
static double
ref_attention_dot(const double *qkv, const double *v2, const gr_attn_seqs *s,
				  gr_attn_mask mask, int H, int d, const float *dout, double *work)
{
	double		l = 0;

	ref_attention(qkv, v2, s, mask, H, d, work);
	for (int j = 0; j < s->seq_off[s->n_seq] * d; j++)
		l += dout[j] * work[j];
	return l;
}

/* Attention forward against the reference for one mask mode, with and without a second
 * value stream; backward against finite differences of the reference. */
static void
test_attention_mode(gr_attn_mask mask, bool with_v2)
{
	enum
	{
	H = 2, D = 8, NT = 17};
	/* three sequences: causal (n_hist = len), block-causal with candidates, and length 1 */
	int32_t		off[4] = {0, 6, 16, 17}, hist[3] = {6, 4, 1};
	gr_attn_seqs s = {.n_seq = 3,.max_tokens = 10,.seq_off = off,.n_hist = hist,
	.dev_seq_off = off,.dev_n_hist = hist};
	float		qkv[NT * 3 * D], v2[NT * D], out[NT * D], lse[NT * H], dout[NT * D],
				dqkv[NT * 3 * D], dv2[NT * D];
	double		qd[NT * 3 * D], vd[NT * D], ref[NT * D], work[NT * D];
	const char *what = mask == GR_MASK_STRICT ? (with_v2 ? "strict + v2" : "strict") :
		(with_v2 ? "causal + v2" : "causal");

	fill_uniform(qkv, NT * 3 * D, -1.5, 1.5);
	fill_uniform(v2, NT * D, -1.5, 1.5);
	fill_uniform(dout, NT * D, -1, 1);
	for (int i = 0; i < NT * 3 * D; i++)
		qd[i] = qkv[i];
	for (int i = 0; i < NT * D; i++)
		vd[i] = v2[i];
	const float *v2p = with_v2 ? v2 : NULL;
	const double *vdp = with_v2 ? vd : NULL;

	ref_attention(qd, vdp, &s, mask, H, D, ref);
	ops->attn_fwd(ops->ctx, out, lse, qkv, v2p, &s, mask, H, D);
	CHECK_MSG(rel_err(out, ref, NT * D) < 1e-5, "attention (%s) forward error %g", what,
			  rel_err(out, ref, NT * D));
	if (mask == GR_MASK_STRICT)
	{
		/* the first token of each sequence sees no key: output 0, lse -inf */
		for (int q = 0; q < 3; q++)
			for (int i = 0; i < D; i++)
				CHECK(out[off[q] * D + i] == 0.0f && isinf(lse[off[q] * H]) &&
					  lse[off[q] * H] < 0);
	}
	memset(dv2, 0x7f, sizeof(dv2));
	ops->attn_bwd(ops->ctx, dqkv, with_v2 ? dv2 : NULL, dout, qkv, v2p, out, lse, &s, mask, H,
				  D);
	static double num[NT * 3 * D], num2[NT * D];

	for (int i = 0; i < NT * 3 * D; i++)
	{
		double		h = 1e-6, lp, lm;

		qd[i] = qkv[i] + h;
		lp = ref_attention_dot(qd, vdp, &s, mask, H, D, dout, work);
		qd[i] = qkv[i] - h;
		lm = ref_attention_dot(qd, vdp, &s, mask, H, D, dout, work);
		qd[i] = qkv[i];
		num[i] = (lp - lm) / (2 * h);
	}
	CHECK_MSG(rel_err(dqkv, num, NT * 3 * D) < 1e-4, "attention (%s) backward error %g", what,
			  rel_err(dqkv, num, NT * 3 * D));
	if (with_v2)
	{
		for (int i = 0; i < NT * D; i++)
		{
			double		h = 1e-6, lp, lm;

			vd[i] = v2[i] + h;
			lp = ref_attention_dot(qd, vd, &s, mask, H, D, dout, work);
			vd[i] = v2[i] - h;
			lm = ref_attention_dot(qd, vd, &s, mask, H, D, dout, work);
			vd[i] = v2[i];
			num2[i] = (lp - lm) / (2 * h);
		}
		CHECK_MSG(rel_err(dv2, num2, NT * D) < 1e-4, "attention (%s) v2 backward error %g",
				  what, rel_err(dv2, num2, NT * D));
	}
	/* candidates do not see each other: changing candidate 2's k/v leaves candidate 1 alone */
	float		out2[NT * D];

	for (int i = 0; i < D; i++)
		qkv[(6 + 5) * 3 * D + D + i] += 1.0f;
	ops->attn_fwd(ops->ctx, out2, lse, qkv, v2p, &s, mask, H, D);
	for (int i = 0; i < D; i++)
		CHECK(out2[(6 + 4) * D + i] == out[(6 + 4) * D + i]);
	/* a token's own second-stream value never reaches its own output (nor a later
	 * candidate's: candidates read v2 of the history only) */
	if (with_v2)
	{
		for (int i = 0; i < D; i++)
			qkv[(6 + 5) * 3 * D + D + i] -= 1.0f;
		for (int i = 0; i < D; i++)
			v2[3 * D + i] += 1.0f;	/* token 3 of sequence 0 */
		for (int i = 0; i < D; i++)
			v2[(6 + 4) * D + i] += 1.0f;	/* candidate 0 of sequence 1 */
		ops->attn_fwd(ops->ctx, out2, lse, qkv, v2p, &s, mask, H, D);
		for (int i = 0; i < D; i++)
			CHECK(out2[3 * D + i] == out[3 * D + i] && out2[(6 + 4) * D + i] == out[(6 + 4) * D + i]);
		bool		moved = false;

		for (int i = 0; i < D; i++)
			moved |= out2[4 * D + i] != out[4 * D + i];
		CHECK_MSG(moved, "attention (%s): token 3's v2 does not reach token 4", what);
	}
}

/* Every mask mode, with and without the second value stream. */
static void
test_attention(void)
{
	test_attention_mode(GR_MASK_CAUSAL, false);
	test_attention_mode(GR_MASK_CAUSAL, true);
	test_attention_mode(GR_MASK_STRICT, false);
	test_attention_mode(GR_MASK_STRICT, true);
}

/* ---- HSTU pointwise attention ---- */

/* HSTU's time bucket written out: floor(ln(max(|g|, 1)) / 0.301) clamped to [0, 128]. */
static int
ref_time_bucket(int64_t g)
{
	double		a = fabs((double) g);
	double		b = floor(log(fmax(a, 1.0)) / 0.301);

	return b < 0 ? 0 : b > 128 ? 128 : (int) b;
}

/* gr_hstu_time_bucket against the log formula at and around every edge below 1e12, over
 * spread random gaps of both signs, at 0 and at the int64 extremes. */
static void
test_hstu_time_bucket(void)
{
	int			bad = 0, n = 0;

	CHECK(gr_hstu_time_bucket(0) == 0 && gr_hstu_time_bucket(1) == 0 &&
		  gr_hstu_time_bucket(-1) == 0 && gr_hstu_time_bucket(2) == 2);
	CHECK(gr_hstu_time_bucket(INT64_MAX) == 128 && gr_hstu_time_bucket(INT64_MIN) == 128 &&
		  gr_hstu_time_bucket(-INT64_MAX) == 128);
	for (int b = 1; b < GR_HSTU_BUCKET_EDGES; b++)
		CHECK(gr_hstu_edges[b] >= gr_hstu_edges[b - 1]);
	for (int b = 0; b < GR_HSTU_BUCKET_EDGES && gr_hstu_edges[b] < INT64_C(1000000000000); b++)
		for (int64_t g = gr_hstu_edges[b] - 2; g <= gr_hstu_edges[b] + 2; g++)
		{
			n += 2;
			bad += gr_hstu_time_bucket(g) != ref_time_bucket(g);
			bad += gr_hstu_time_bucket(-g) != ref_time_bucket(-g);
		}
	for (int i = 0; i < 20000; i++)
	{
		/* |g| log-uniform in [1, 1e12) */
		double		u = gr_rng_uniform(11, GR_STREAM_TEST, 1, (uint64_t) i);
		int64_t		g = (int64_t) exp(u * log(1e12));

		if (i & 1)
			g = -g;
		n++;
		bad += gr_hstu_time_bucket(g) != ref_time_bucket(g);
	}
	for (int64_t g = -300; g <= 300; g++, n++)
		bad += gr_hstu_time_bucket(g) != ref_time_bucket(g);
	/* the top edges: above 1e12 the table decides, by definition of its last edges */
	CHECK(gr_hstu_time_bucket(gr_hstu_edges[127]) == 128 &&
		  gr_hstu_time_bucket(gr_hstu_edges[127] - 1) == 127);
	CHECK_MSG(bad == 0, "%d of %d gaps in a bucket other than floor(ln g / 0.301)", bad, n);
}

/* One HSTU problem: packed sequences, qkv rows of stride ld = 4d, the biases. */
enum
{
HH = 3, HD = 12, HLD = 4 * HD, HNS = 5, HNT = 22, HNPOS = 7};

typedef struct hstu_case
{
	int32_t		off[HNS + 1], hist[HNS];
	gr_attn_seqs s;
	int32_t		pos[HNT];
	int64_t		tq[HNT], tk[HNT];
	float		alpha, inv_n;
} hstu_case;

/* Double reference of hstu_attn_fwd with the predicates written out (ref_allow). */
static void
ref_hstu(const hstu_case *c, const double *qkv, const double *v2, const double *wp,
		 const double *wt, gr_attn_mask mask, double *out)
{
	int			dh = HD / HH;

	for (int i = 0; i < HNT * HD; i++)
		out[i] = 0;
	for (int sq = 0; sq < c->s.n_seq; sq++)
	{
		int			base = c->off[sq], T = c->off[sq + 1] - base, th = c->hist[sq];

		for (int h = 0; h < HH; h++)
			for (int q = 0; q < T; q++)
				for (int k = 0; k < T; k++)
				{
					int			tq = base + q, tk = base + k, g = c->pos[tq] - c->pos[tk];
					double		dotp = 0, s, a;

					if (!ref_allow(q, k, th, mask))
						continue;
					for (int i = 0; i < dh; i++)
						dotp += qkv[tq * HLD + h * dh + i] * qkv[tk * HLD + HD + h * dh + i];
					s = c->alpha * dotp + wp[g < 0 ? 0 : g >= HNPOS ? HNPOS - 1 : g] +
						wt[ref_time_bucket(c->tq[tq] - c->tk[tk])];
					a = s / (1 + exp(-s)) * c->inv_n;
					for (int i = 0; i < dh; i++)
					{
						out[tq * HD + h * dh + i] += a * qkv[tk * HLD + 2 * HD + h * dh + i];
						if (v2 && ref_allow(q, k, th, GR_MASK_STRICT))
							out[tq * HD + h * dh + i] += a * v2[tk * HD + h * dh + i];
					}
				}
	}
}

/* The scalar loss sum(out * R) of the reference, for finite differences. */
static double
ref_hstu_loss(const hstu_case *c, const double *qkv, const double *v2, const double *wp,
			  const double *wt, gr_attn_mask mask, const float *R)
{
	static double out[HNT * HD];
	double		l = 0;

	ref_hstu(c, qkv, v2, wp, wt, mask, out);
	for (int i = 0; i < HNT * HD; i++)
		l += R[i] * out[i];
	return l;
}

/* Central difference of the reference loss in x[i]. */
static double
fd_at(const hstu_case *c, double *qkv, double *v2, double *wp, double *wt, gr_attn_mask mask,
	  const float *R, double *x, int i)
{
	double		h = 1e-6, x0 = x[i], lp, lm;

	x[i] = x0 + h;
	lp = ref_hstu_loss(c, qkv, v2, wp, wt, mask, R);
	x[i] = x0 - h;
	lm = ref_hstu_loss(c, qkv, v2, wp, wt, mask, R);
	x[i] = x0;
	return (lp - lm) / (2 * h);
}

/* Sequences (full history, history + candidates, length 1, candidates only, history +
 * candidates), positions with gaps of both signs past the table, times with gaps from 0 to
 * ~1e12 of both signs. */
static void
hstu_make_case(hstu_case *c)
{
	static const int32_t off[HNS + 1] = {0, 7, 16, 17, 20, 22}, hist[HNS] = {7, 5, 1, 0, 1};
	float		u[3 * HNT];

	memcpy(c->off, off, sizeof(off));
	memcpy(c->hist, hist, sizeof(hist));
	c->s = (gr_attn_seqs) {.n_seq = HNS,.max_tokens = 9,.seq_off = c->off,.n_hist = c->hist,
	.dev_seq_off = c->off,.dev_n_hist = c->hist};
	fill_uniform(u, 3 * HNT, 0, 1);
	for (int s = 0; s < HNS; s++)
	{
		int64_t		t = INT64_C(1700000000000000);

		for (int i = off[s]; i < off[s + 1]; i++)
		{
			/* increments log-uniform in [1, 1e11) (some 0), queries off the keys by up to
			 * 1e7 either way */
			int64_t		inc = u[i] < 0.1f ? 0 : (int64_t) exp(u[i] * log(1e11));

			t += inc;
			c->tk[i] = t;
			c->tq[i] = t + (int64_t) ((u[HNT + i] < 0.3f ? -1 : 1) *
									  exp(u[HNT + i] * log(1e7)));
			c->pos[i] = (int32_t) (u[2 * HNT + i] * 12.0f);
		}
	}
	c->alpha = 0.7f;
	c->inv_n = 1.0f / 6.0f;
}

/* HSTU forward against the double reference, backward against central differences of the
 * reference loss sum(out * R) in q, k, v, v2 and every entry of both bias tables; the u
 * columns of qkv are NaN (must not be read) and those of dqkv must stay as they were; the
 * q | k | v columns and dv2 are overwritten, d_w_pos / d_w_time accumulate. */
static void
test_hstu_mode(gr_attn_mask mask, bool with_v2)
{
	static hstu_case c;
	static float qkv[HNT * HLD], v2[HNT * HD], out[HNT * HD], R[HNT * HD], dqkv[HNT * HLD],
				dv2[HNT * HD], wp[HNPOS], wt[GR_HSTU_TIME_BUCKETS], dwp[HNPOS],
				dwt[GR_HSTU_TIME_BUCKETS], dwp0[HNPOS], dwt0[GR_HSTU_TIME_BUCKETS],
				out2[HNT * HD];
	static double qd[HNT * HLD], vd[HNT * HD], wpd[HNPOS], wtd[GR_HSTU_TIME_BUCKETS],
				ref[HNT * HD], num[HNT * HLD], num2[HNT * HD], nwp[HNPOS],
				nwt[GR_HSTU_TIME_BUCKETS];
	const char *what = mask == GR_MASK_STRICT ? (with_v2 ? "strict + v2" : "strict") :
		(with_v2 ? "causal + v2" : "causal");
	int			nb = 0;
	bool		hit[GR_HSTU_TIME_BUCKETS] = {false};

	hstu_make_case(&c);
	fill_uniform(qkv, HNT * HLD, -1, 1);
	fill_uniform(v2, HNT * HD, -1, 1);
	fill_uniform(R, HNT * HD, -1, 1);
	fill_uniform(wp, HNPOS, -1, 1);
	fill_uniform(wt, GR_HSTU_TIME_BUCKETS, -1, 1);
	for (int i = 0; i < HNPOS; i++)
		dwp0[i] = 0.125f * (float) (i % 5 - 2);
	for (int i = 0; i < GR_HSTU_TIME_BUCKETS; i++)
		dwt0[i] = 0.125f * (float) (i % 7 - 3);
	for (int r = 0; r < HNT; r++)
		for (int i = 3 * HD; i < HLD; i++)
			qkv[r * HLD + i] = NAN;		/* u: never read */
	for (int i = 0; i < HNT * HLD; i++)
		qd[i] = qkv[i];
	for (int i = 0; i < HNT * HD; i++)
		vd[i] = v2[i];
	for (int i = 0; i < HNPOS; i++)
		wpd[i] = wp[i];
	for (int i = 0; i < GR_HSTU_TIME_BUCKETS; i++)
		wtd[i] = wt[i];
	for (int s = 0; s < HNS; s++)
		for (int q = c.off[s]; q < c.off[s + 1]; q++)
			for (int k = c.off[s]; k < c.off[s + 1]; k++)
				hit[gr_hstu_time_bucket(c.tq[q] - c.tk[k])] = true;
	for (int b = 0; b < GR_HSTU_TIME_BUCKETS; b++)
		nb += hit[b];
	CHECK_MSG(nb >= 30, "hstu: the time gaps hit only %d buckets", nb);

	gr_hstu_rab rab = {.w_pos = wp,.w_time = wt,.n_pos = HNPOS,.pos = c.pos,.tq = c.tq,
	.tk = c.tk};
	const float *v2p = with_v2 ? v2 : NULL;
	double	   *vdp = with_v2 ? vd : NULL;

	ref_hstu(&c, qd, vdp, wpd, wtd, mask, ref);
	memset(out, 0x7f, sizeof(out));
	ops->hstu_attn_fwd(ops->ctx, out, qkv, HLD, v2p, &rab, &c.s, mask, HH, HD, c.alpha,
					   c.inv_n);
	CHECK_MSG(rel_err(out, ref, HNT * HD) < 1e-5, "hstu (%s) forward error %g", what,
			  rel_err(out, ref, HNT * HD));
	/* queries that see no key: the strict mask's first tokens, and under it every token of
	 * the candidate-only sequence */
	for (int s = 0; s < HNS; s++)
		for (int q = c.off[s]; q < c.off[s + 1]; q++)
		{
			bool		none = mask == GR_MASK_STRICT && (q == c.off[s] || c.hist[s] == 0);

			for (int i = 0; none && i < HD; i++)
				CHECK(out[q * HD + i] == 0.0f);
		}

	/* backward: twice, so overwriting (not accumulating) dqkv / dv2 shows */
	for (int i = 0; i < HNT * HLD; i++)
		dqkv[i] = (i % HLD) < 3 * HD ? NAN : (float) (i % 13) - 6.5f;
	for (int i = 0; i < HNT * HD; i++)
		dv2[i] = with_v2 ? NAN : 42.0f;
	memcpy(dwp, dwp0, sizeof(dwp));
	memcpy(dwt, dwt0, sizeof(dwt));
	for (int rep = 0; rep < 2; rep++)
		ops->hstu_attn_bwd(ops->ctx, dqkv, dv2, dwp, dwt, R, qkv, HLD, v2p, &rab, &c.s, mask,
						   HH, HD, c.alpha, c.inv_n);
	int			u_bad = 0, v2_bad = 0;

	for (int i = 0; i < HNT * HLD; i++)
		if ((i % HLD) >= 3 * HD)
			u_bad += dqkv[i] != (float) (i % 13) - 6.5f;
	for (int i = 0; i < HNT * HD && !with_v2; i++)
		v2_bad += dv2[i] != 42.0f;
	CHECK_MSG(u_bad == 0, "hstu (%s): %d u columns of dqkv written", what, u_bad);
	CHECK_MSG(v2_bad == 0, "hstu (%s): dv2 written without v2", what);

	/* finite differences: q | k | v (the u columns' gradient is 0 by construction), v2 */
	static float dq3[HNT * 3 * HD];
	static double num3[HNT * 3 * HD];

	for (int r = 0; r < HNT; r++)
		for (int i = 0; i < 3 * HD; i++)
		{
			num[r * HLD + i] = fd_at(&c, qd, vdp, wpd, wtd, mask, R, qd, r * HLD + i);
			dq3[r * 3 * HD + i] = dqkv[r * HLD + i];
			num3[r * 3 * HD + i] = num[r * HLD + i];
		}
	CHECK_MSG(rel_err(dq3, num3, HNT * 3 * HD) < 1e-4, "hstu (%s) dqkv error %g", what,
			  rel_err(dq3, num3, HNT * 3 * HD));
	if (with_v2)
	{
		for (int i = 0; i < HNT * HD; i++)
			num2[i] = fd_at(&c, qd, vd, wpd, wtd, mask, R, vd, i);
		CHECK_MSG(rel_err(dv2, num2, HNT * HD) < 1e-4, "hstu (%s) dv2 error %g", what,
				  rel_err(dv2, num2, HNT * HD));
	}
	/* the bias tables: two calls added 2 g to the prefilled values */
	static float gwp[HNPOS], gwt[GR_HSTU_TIME_BUCKETS];
	int			unhit_bad = 0;

	for (int i = 0; i < HNPOS; i++)
	{
		nwp[i] = fd_at(&c, qd, vdp, wpd, wtd, mask, R, wpd, i);
		gwp[i] = (dwp[i] - dwp0[i]) / 2;
	}
	for (int i = 0; i < GR_HSTU_TIME_BUCKETS; i++)
	{
		nwt[i] = fd_at(&c, qd, vdp, wpd, wtd, mask, R, wtd, i);
		gwt[i] = (dwt[i] - dwt0[i]) / 2;
		if (!hit[i])
			unhit_bad += dwt[i] != dwt0[i];
	}
	CHECK_MSG(rel_err(gwp, nwp, HNPOS) < 1e-4, "hstu (%s) d_w_pos error %g", what,
			  rel_err(gwp, nwp, HNPOS));
	CHECK_MSG(rel_err(gwt, nwt, GR_HSTU_TIME_BUCKETS) < 1e-4, "hstu (%s) d_w_time error %g",
			  what, rel_err(gwt, nwt, GR_HSTU_TIME_BUCKETS));
	CHECK_MSG(unhit_bad == 0, "hstu (%s): %d buckets no pair uses got a gradient", what,
			  unhit_bad);
	CHECK(fabs(nwp[0]) > 1e-3 && fabs(nwp[HNPOS - 1]) > 1e-3);	/* both clamps were used */

	/* candidates do not see each other: candidate 3 of sequence 1 moving leaves 2 alone */
	for (int i = 0; i < HD; i++)
		qkv[(7 + 8) * HLD + HD + i] += 1.0f, qkv[(7 + 8) * HLD + 2 * HD + i] += 1.0f;
	ops->hstu_attn_fwd(ops->ctx, out2, qkv, HLD, v2p, &rab, &c.s, mask, HH, HD, c.alpha,
					   c.inv_n);
	for (int i = 0; i < HD; i++)
		CHECK(out2[(7 + 7) * HD + i] == out[(7 + 7) * HD + i]);
}

/* Every mask mode, with and without the second value stream. */
static void
test_hstu(void)
{
	test_hstu_mode(GR_MASK_CAUSAL, false);
	test_hstu_mode(GR_MASK_CAUSAL, true);
	test_hstu_mode(GR_MASK_STRICT, false);
	test_hstu_mode(GR_MASK_STRICT, true);
}

/* Softmax cross-entropy loss and in-place gradient against the reference. */
static void
test_softmax_xent(void)
{
	enum
	{
	R = 4, V = 11, LD = 13};
	float		x[R * LD], g[R * LD], loss[R];
	int32_t		tgt[R] = {3, -1, 10, 0};

	fill_uniform(x, R * LD, -6, 6);
	memcpy(g, x, sizeof(x));
	ops->softmax_xent(ops->ctx, g, LD, tgt, R, V, loss, 0.5f);
	for (int r = 0; r < R; r++)
	{
		double		mx = -INFINITY, s = 0;

		for (int c = 0; c < V; c++)
			mx = fmax(mx, x[r * LD + c]);
		for (int c = 0; c < V; c++)
			s += exp(x[r * LD + c] - mx);
		if (tgt[r] < 0)
		{
			CHECK(loss[r] == 0.0f);
			for (int c = 0; c < V; c++)
				CHECK(g[r * LD + c] == 0.0f);
			continue;
		}
		CHECK_CLOSE(loss[r], log(s) + mx - x[r * LD + tgt[r]], 1e-5);
		for (int c = 0; c < V; c++)
		{
			double		p = exp(x[r * LD + c] - mx) / s;

			CHECK_CLOSE(g[r * LD + c], 0.5 * (p - (c == tgt[r])), 1e-5);
		}
	}
}

/* The sampled loss of one row in double: logsumexp over the positive and kept candidates. */
static double
ref_sampled_row(const double *pos, const double *neg, const int32_t *cand, const float *logq,
				int S, int t, double inv_t)
{
	double		z0 = inv_t * pos[0], m = z0, s = 0.0;

	for (int c = 0; c < S; c++)
		if (cand[c] >= 0 && cand[c] != t)
			m = fmax(m, inv_t * neg[c] - logq[c]);
	s = exp(z0 - m);
	for (int c = 0; c < S; c++)
		if (cand[c] >= 0 && cand[c] != t)
			s += exp(inv_t * neg[c] - logq[c] - m);
	return log(s) + m - z0;
}

/* Sampled softmax: loss and in-place gradients against the reference, accidental hits and
 * padding left out, gradients against central differences of the reference. */
static void
test_sampled_xent(void)
{
	enum
	{
	R = 5, S = 9, LD = 11};
	float		x[R * LD], g[R * LD], pos[R], gpos[R], loss[R], logq[S];
	int32_t		tgt[R] = {3, -1, 7, 0, 3};
	int32_t		cand[S] = {3, 1, 7, -1, 5, 3, 0, 8, 2};	/* hits for rows 0, 2, 3, 4 */
	const float inv_t = 1.0f / 0.7f, scale = 0.3f;

	fill_uniform(x, R * LD, -3, 3);
	fill_uniform(pos, R, -3, 3);
	fill_uniform(logq, S, -2, 1);
	memcpy(g, x, sizeof(x));
	memcpy(gpos, pos, sizeof(pos));
	ops->sampled_xent(ops->ctx, g, LD, gpos, tgt, cand, logq, R, S, inv_t, loss, scale);
	for (int r = 0; r < R; r++)
	{
		double		pd = pos[r], nd[S];

		for (int c = 0; c < S; c++)
			nd[c] = x[r * LD + c];
		if (tgt[r] < 0)
		{
			CHECK(loss[r] == 0.0f && gpos[r] == 0.0f);
			for (int c = 0; c < S; c++)
				CHECK(g[r * LD + c] == 0.0f);
			continue;
		}
		CHECK_CLOSE(loss[r], ref_sampled_row(&pd, nd, cand, logq, S, tgt[r], inv_t), 1e-5);
		/* central differences of scale * loss in double */
		const double h = 1e-5;
		double		f1, f0;

		pd = pos[r] + h;
		f1 = ref_sampled_row(&pd, nd, cand, logq, S, tgt[r], inv_t);
		pd = pos[r] - h;
		f0 = ref_sampled_row(&pd, nd, cand, logq, S, tgt[r], inv_t);
		pd = pos[r];
		CHECK_CLOSE(gpos[r], scale * (f1 - f0) / (2 * h), 1e-5);
		CHECK(gpos[r] < 0.0f);
		for (int c = 0; c < S; c++)
		{
			nd[c] = x[r * LD + c] + h;
			f1 = ref_sampled_row(&pd, nd, cand, logq, S, tgt[r], inv_t);
			nd[c] = x[r * LD + c] - h;
			f0 = ref_sampled_row(&pd, nd, cand, logq, S, tgt[r], inv_t);
			nd[c] = x[r * LD + c];
			CHECK_CLOSE(g[r * LD + c], scale * (f1 - f0) / (2 * h), 1e-5);
			if (cand[c] < 0 || cand[c] == tgt[r])
				CHECK(g[r * LD + c] == 0.0f);
			else
				CHECK(g[r * LD + c] > 0.0f);
		}
	}
	/* no candidate kept: the loss is log 1 = 0 and the positive's gradient 0 */
	int32_t		one_t[1] = {2}, one_c[1] = {2};
	float		one_x[1] = {1.5f}, one_p[1] = {0.25f}, one_l[1], one_q[1] = {0.0f};

	ops->sampled_xent(ops->ctx, one_x, 1, one_p, one_t, one_c, one_q, 1, 1, 1.0f, one_l, 1.0f);
	CHECK(one_x[0] == 0.0f);
	CHECK_CLOSE(one_l[0], 0.0, 1e-7);
	CHECK_CLOSE(one_p[0], 0.0, 1e-7);
}

/* Row dot products and per-row scaling against plain loops. */
static void
test_row_ops(void)
{
	enum
	{
	R = 7, C = 37};
	float		a[R * C], b[R * C], out[R], y[R * C], y0[R * C];

	fill_uniform(a, R * C, -1, 1);
	fill_uniform(b, R * C, -1, 1);
	ops->row_dot(ops->ctx, out, a, b, R, C);
	for (int r = 0; r < R; r++)
	{
		double		s = 0;

		for (int c = 0; c < C; c++)
			s += (double) a[r * C + c] * b[r * C + c];
		CHECK_CLOSE(out[r], s, 1e-5);
	}
	fill_uniform(y0, R * C, -1, 1);
	memcpy(y, y0, sizeof(y));
	ops->row_scale(ops->ctx, y, a, out, R, C, true);
	for (int i = 0; i < R * C; i++)
		CHECK_CLOSE(y[i], y0[i] + (double) out[i / C] * a[i], 1e-6);
	ops->row_scale(ops->ctx, y, a, out, R, C, false);
	for (int i = 0; i < R * C; i++)
		CHECK_CLOSE(y[i], (double) out[i / C] * a[i], 1e-6);
}

/* Row normalisation (all rows, listed rows, a zero row) against plain loops, and its backward
 * against central differences of f(x) = sum_c w[c] (x / |x|)[c]. */
static void
test_l2norm(void)
{
	enum
	{
	R = 6, C = 37};
	float		x[R * C], y[R * C], rn[R], w[R * C], dx[R * C], t[R * C];
	int32_t		idx[2] = {4, 1};

	fill_uniform(x, R * C, -2, 2);
	for (int c = 0; c < C; c++)
		x[2 * C + c] = 0.0f;
	memcpy(y, x, sizeof(y));
	ops->l2norm_rows(ops->ctx, y, rn, NULL, R, C);
	for (int r = 0; r < R; r++)
	{
		double		s = 0;

		for (int c = 0; c < C; c++)
			s += (double) x[r * C + c] * x[r * C + c];
		for (int c = 0; c < C; c++)
			CHECK_CLOSE(y[r * C + c], r == 2 ? 0.0 : x[r * C + c] / sqrt(s), 1e-6);
		if (r != 2)
			CHECK_CLOSE(rn[r] * sqrt(s), 1.0, 1e-6);
	}
	/* listed rows only: rows 4 and 1 change, the others keep their bits */
	memcpy(t, x, sizeof(t));
	ops->l2norm_rows(ops->ctx, t, NULL, idx, 2, C);
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			if (r == 4 || r == 1)
				CHECK_CLOSE(t[r * C + c], y[r * C + c], 1e-7);
			else
				CHECK(t[r * C + c] == x[r * C + c]);
	/* backward, out of place and in place */
	fill_uniform(w, R * C, -1, 1);
	ops->l2norm_bwd(ops->ctx, dx, y, rn, w, R, C);
	memcpy(t, w, sizeof(t));
	ops->l2norm_bwd(ops->ctx, t, y, rn, t, R, C);
	for (int i = 0; i < R * C; i++)
		CHECK(t[i] == dx[i]);
	for (int r = 0; r < R; r++)
	{
		if (r == 2)
			continue;
		for (int c = 0; c < C; c += 5)
		{
			double		f[2], h = 1e-3;

			for (int k = 0; k < 2; k++)
			{
				double		xs[C], s = 0, dot = 0;

				for (int j = 0; j < C; j++)
					xs[j] = x[r * C + j] + (j == c ? (k ? h : -h) : 0.0);
				for (int j = 0; j < C; j++)
					s += xs[j] * xs[j];
				for (int j = 0; j < C; j++)
					dot += w[r * C + j] * xs[j] / sqrt(s);
				f[k] = dot;
			}
			CHECK_CLOSE(dx[r * C + c], (f[1] - f[0]) / (2 * h), 1e-4);
		}
	}
}

/* Action losses (MSE and BCE columns, missing targets) against references and derivatives. */
static void
test_action_loss(void)
{
	enum
	{
	R = 6, K = 2};
	float		pred[R * K], y[R * K], loss[R * K], grad[R * K];
	float		scale[K] = {0.25f, 0.5f};

	fill_uniform(pred, R * K, -3, 3);
	fill_uniform(y, R * K, 0, 1);
	y[3] = NAN;
	for (int r = 0; r < R; r++)
		y[r * K + 1] = y[r * K + 1] > 0.5f;	/* column 1 is binary */
	ops->action_loss(ops->ctx, pred, y, R, K, scale, 2u, loss, grad);
	for (int i = 0; i < R * K; i++)
	{
		double		z = pred[i], t = y[i];

		if (isnan(y[i]))
		{
			CHECK(loss[i] == 0.0f && grad[i] == 0.0f);
			continue;
		}
		if (i % K == 0)
		{
			CHECK_CLOSE(loss[i], (z - t) * (z - t), 1e-5);
			CHECK_CLOSE(grad[i], 0.25 * 2 * (z - t), 1e-5);
		}
		else
		{
			double		h = 1e-6;
			double		lp = log1p(exp(z + h)) - t * (z + h), lm = log1p(exp(z - h)) - t * (z - h);

			CHECK_CLOSE(loss[i], log1p(exp(z)) - t * z, 1e-5);
			CHECK_CLOSE(grad[i], 0.5 * (lp - lm) / (2 * h), 1e-5);
		}
	}
}

/* AdamW over several steps against the textbook update in double. */
static void
test_adamw(void)
{
	enum
	{
	N = 50};
	float		p[N], g[N], m[N] = {0}, v[N] = {0};
	double		pd[N], md[N] = {0}, vd[N] = {0};
	double		lr = 0.01, b1 = 0.9, b2 = 0.98, eps = 1e-8, wd = 0.1;

	fill_uniform(p, N, -1, 1);
	for (int i = 0; i < N; i++)
		pd[i] = p[i];
	for (int t = 1; t <= 5; t++)
	{
		fill_uniform(g, N, -1, 1);
		ops->adamw(ops->ctx, p, g, m, v, N, (float) lr, (float) b1, (float) b2, (float) eps,
				   (float) wd, t);
		for (int i = 0; i < N; i++)
		{
			md[i] = b1 * md[i] + (1 - b1) * g[i];
			vd[i] = b2 * vd[i] + (1 - b2) * (double) g[i] * g[i];
			double		mh = md[i] / (1 - pow(b1, t)), vh = vd[i] / (1 - pow(b2, t));

			pd[i] -= lr * (mh / (sqrt(vh) + eps) + wd * pd[i]);
		}
	}
	for (int i = 0; i < N; i++)
		CHECK_CLOSE(p[i], pd[i], 1e-5);
}

/* Ranks with and without exclusions, and top-k, against counting and sorting. */
static void
test_rank_and_topk(void)
{
	enum
	{
	R = 3, V = 40, K = 7};
	float		s[R * V], val[R * K];
	int32_t		tgt[R] = {5, 17, -1}, ra[R], re[R], idx[R * K];
	int32_t		excl_off[R + 1] = {0, 3, 3, 5};
	int32_t		excl[5] = {1, 9, 30, 2, 3};	/* sorted per row */

	fill_uniform(s, R * V, -1, 1);
	s[2 * V + 4] = NAN;			/* a NaN score is never returned */
	ops->rank_targets(ops->ctx, s, V, tgt, excl_off, excl, R, V, ra, re);
	for (int r = 0; r < R; r++)
	{
		if (tgt[r] < 0)
		{
			CHECK(ra[r] == 0 && re[r] == 0);
			continue;
		}
		int			all = 1, ex = 1;

		for (int c = 0; c < V; c++)
		{
			bool		excluded = false;

			for (int j = excl_off[r]; j < excl_off[r + 1]; j++)
				excluded |= excl[j] == c;
			if (s[r * V + c] > s[r * V + tgt[r]])
			{
				all++;
				ex += !excluded;
			}
		}
		CHECK(ra[r] == all);
		CHECK(re[r] == ex);
	}
	ops->topk(ops->ctx, s, V, excl_off, excl, R, V, K, idx, val);
	for (int r = 0; r < R; r++)
	{
		/* every returned item beats every non-returned, non-excluded one, in order */
		for (int i = 0; i < K; i++)
		{
			CHECK(idx[r * K + i] >= 0 && val[r * K + i] == s[r * V + idx[r * K + i]]);
			if (i > 0)
				CHECK(val[r * K + i - 1] >= val[r * K + i]);
			for (int j = excl_off[r]; j < excl_off[r + 1]; j++)
				CHECK(idx[r * K + i] != excl[j]);
		}
		for (int c = 0; c < V; c++)
		{
			bool		in = false, excluded = false;

			for (int i = 0; i < K; i++)
				in |= idx[r * K + i] == c;
			for (int j = excl_off[r]; j < excl_off[r + 1]; j++)
				excluded |= excl[j] == c;
			if (!in && !excluded && !isnan(s[r * V + c]))
				CHECK(s[r * V + c] <= val[r * K + K - 1]);
		}
	}
	/* a target whose score is NaN ranks last, never first */
	float		nan_row[V];
	int32_t		nan_tgt = 7, nan_off[2] = {0, 0}, nan_ra, nan_re;

	memcpy(nan_row, s, sizeof(nan_row));
	nan_row[7] = NAN;
	ops->rank_targets(ops->ctx, nan_row, V, &nan_tgt, nan_off, NULL, 1, V, &nan_ra, &nan_re);
	CHECK(nan_ra == V && nan_re == V);

	/* fewer candidates than k: the tail is padded with -1 / -inf */
	int32_t		off1[2] = {0, 0};

	ops->topk(ops->ctx, s, V, off1, NULL, 1, 3, 5, idx, val);
	CHECK(idx[3] == -1 && idx[4] == -1 && isinf(val[4]) && idx[2] >= 0);
}

/* Best-first order of top-k: higher score, then lower column (the rule of gr_ops.h). */
static int
cmp_best_first(const void *pa, const void *pb)
{
	const float *a = pa, *b = pb;
	int32_t		ca, cb;

	if (a[0] != b[0])
		return a[0] > b[0] ? -1 : 1;
	memcpy(&ca, a + 1, 4);
	memcpy(&cb, b + 1, 4);
	return ca < cb ? -1 : ca > cb;
}

/* Top-k over heavily tied scores (with -0.0 next to +0.0) against a full sort. */
static void
test_topk_ties(void)
{
	enum
	{
	V = 300, K = 37};
	static const float levels[] = {1.5f, 0.25f, 0.0f, -0.0f, -0.75f, -INFINITY};
	float		s[V], val[K], pairs[2 * V];
	int32_t		idx[K], off[2] = {0, 4}, excl[4] = {3, 40, 41, 299};
	int			bad = 0;

	for (int rep = 0; rep < 4; rep++)
	{
		int			n = 0, e = 0, k = rep == 3 ? 1 : K;

		for (int c = 0; c < V; c++)
			s[c] = levels[(c * 7 + rep * 3 + c / 11) % 6];
		s[17] = NAN;
		ops->topk(ops->ctx, s, V, off, rep & 1 ? excl : NULL, 1, V, k, idx, val);
		for (int c = 0; c < V; c++)
		{
			if (rep & 1)
			{
				while (e < 4 && excl[e] < c)
					e++;
				if (e < 4 && excl[e] == c)
					continue;
			}
			if (isnan(s[c]))
				continue;
			pairs[2 * n] = s[c];
			memcpy(&pairs[2 * n + 1], &c, 4);
			n++;
		}
		qsort(pairs, n, 2 * sizeof(float), cmp_best_first);
		for (int i = 0; i < k; i++)
		{
			int32_t		c;

			memcpy(&c, &pairs[2 * i + 1], 4);
			bad += idx[i] != c || val[i] != pairs[2 * i];
		}
	}
	CHECK_MSG(bad == 0, "%d top-k entries differ from the (score desc, column asc) order", bad);
}

/* Run every op test. */
int
main(void)
{
	ops = gr_ops_cpu();
	test_gemm();
	test_bias_and_add();
	test_layernorm();
	test_gelu();
	test_dropout();
	test_gather_scatter();
	test_attention();
	/* again without scratch memory: the plain per-key path */
	fail_malloc = true;
	test_attention();
	fail_malloc = false;
	test_hstu_time_bucket();
	test_hstu();
	/* again without scratch memory: the bias gradients by atomics */
	fail_malloc = true;
	test_hstu();
	fail_malloc = false;
	test_softmax_xent();
	test_sampled_xent();
	test_row_ops();
	test_l2norm();
	test_action_loss();
	test_adamw();
	test_rank_and_topk();
	test_topk_ties();
	return unit_finish("test_ops");
}
