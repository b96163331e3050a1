/*
 * parity_dump.c — dump what the engine computes on a tiny deterministic problem, for the
 * PyTorch reference (test/ref/genrec_ref.py) to recompute independently and test/ref/parity.py
 * to compare, in the style of llm.c's test_gpt2.
 *
 *   parity_dump OUTDIR [layout[@trunk] ...]   (e.g. lac, lac@hstu; default every layout on
 *                                               every trunk)
 *
 * For every run (a layout on a trunk; the tag is the layout's name, with "@trunk" for a trunk
 * other than gpt2) it writes OUTDIR/<tag>.json (configuration, the raw interactions, the
 * dataset the engine built from them, the training windows and token batch with the tokens'
 * key and query times, step-0 loss parts, ten training losses, serving inputs and outputs,
 * and for HSTU the time-bucket table) and float32 little-endian blobs laid out like
 * model->tensors: <tag>_init.bin (initial parameters), <tag>_grads0.bin (the gradients of
 * step 0), <tag>_final.bin (the parameters after ten AdamW steps) and the sampled losses'
 * gradients.
 *
 * The driver uses only the engine's public API (dataset, model, trainer, serving); it never
 * recomputes anything itself, so every number in the dump is the engine's.
 */
#include "gr_arch.h"
#include "gr_dataset.h"
#include "gr_hstu.h"
#include "gr_model.h"
#include "gr_serve.h"
#include "gr_train.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_STEPS 10
#define MAX_ROWS 256
#define MAX_HIST 32
#define UNKNOWN_ITEM 999999

static uint64_t rng_next(uint64_t *s);

/* ---- a harder starting point ------------------------------------------------------------ */

/*
 * GPT-2 init (std 0.02, zero biases, unit LayerNorm gains) keeps every pre-activation tiny,
 * where many mistakes are invisible at float precision: the GELU form, a missing bias or
 * LayerNorm gain, a wrong epsilon. So after gr_model_init_params the driver rescales the
 * weights by 10, draws biases and LayerNorm shifts from N(0, 0.1) and gains from
 * 1 + N(0, 0.1), and fills the padding row 0 of item_emb with a non-constant vector: the spec says row 0 never
 * contributes and never learns, so any read of it shows up as a mismatch. HSTU's relative
 * bias tables (zero at init) are drawn from N(0, 0.5), so that a wrong position gap or time
 * bucket changes the scores; its LayerNorms (ln, attn.ln_out) are perturbed like GPT-2's.
 * (The draws are uniform with these standard deviations.)
 */
static void
perturb_params(gr_model *m, uint64_t seed)
{
	float	   *host = malloc(m->n_params * sizeof(float));
	uint64_t	s = seed * 0x2545f4914f6cdd1dull + 1;

	if (host == NULL)
		return;
	gr_model_download_params(m, host);
	for (int t = 0; t < m->n_tensors; t++)
	{
		const gr_tensor *ten = &m->tensors[t];
		float	   *p = host + ten->offset;
		size_t		len = strlen(ten->name);
		bool		is_norm = strstr(ten->name, ".ln1.") || strstr(ten->name, ".ln2.") ||
			strstr(ten->name, ".ln.") || strstr(ten->name, ".ln_out.") ||
			strncmp(ten->name, "ln_f.", 5) == 0;
		bool		is_bias = len > 5 && strcmp(ten->name + len - 5, ".bias") == 0;
		/* the action head's bias path starts at zero: draw it so that parity covers it
		 * (the item bias's padding row 0 too, which must never be read) */
		bool		is_bias_path = strncmp(ten->name, "action_head.item_bias", 21) == 0 ||
			strncmp(ten->name, "action_head.user_offset", 23) == 0;
		bool		is_rab = strstr(ten->name, ".rab_") != NULL;

		for (size_t i = 0; i < ten->numel; i++)
		{
			/* a centred uniform with standard deviation 1 */
			double		z = (((double) (rng_next(&s) >> 11) / 9007199254740992.0) - 0.5) * 3.4641016;

			if (is_rab)
				p[i] = (float) (0.5 * z);
			else if (is_norm && !is_bias)
				p[i] = (float) (1.0 + 0.1 * z);
			else if (is_bias)
				p[i] = (float) (0.1 * z);
			else if (is_bias_path)
				p[i] = (float) (0.3 * z);
			else
				p[i] *= 10.0f;
		}
	}
	/* not a constant vector: LayerNorm would cancel a constant shift of the residual stream */
	for (int j = 0; j < m->cfg.d_model; j++)
		host[m->tensors[0].offset + j] = 0.5f * (float) ((j % 3) - 1) + 0.1f * (float) j;
	gr_model_upload_params(m, host);
	free(host);
}

/* ---- the raw problem ------------------------------------------------------------------ */

typedef struct raw_problem
{
	int			n;
	int64_t		user[MAX_ROWS];
	int64_t		item[MAX_ROWS];
	int64_t		time[MAX_ROWS];
	double		action[MAX_ROWS];
} raw_problem;

/* A small xorshift generator, independent of the engine's RNG. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static int
rng_int(uint64_t *s, int n)
{
	return (int) ((rng_next(s) >> 11) % (uint64_t) n);
}

/*
 * Eight users with 2..14 interactions (one training-only user with 2), 40 possible items
 * with sparse external ids, times with ties (the stable sort decides) and gaps of 0, 1, 45
 * and 3600 (HSTU's time buckets 0, 0, 12 and 27, their sums others), one continuous
 * action with four missing values and one out-of-range value in a held-out position; the
 * rows are handed to the engine in shuffled order.
 */
static void
make_problem(raw_problem *p)
{
	static const int lens[] = {3, 14, 5, 9, 2, 12, 7, 4};
	static const int64_t uids[] = {907, 15, 333, 48, 1200, 7, 560, 81};
	uint64_t	s = 0x9e3779b97f4a7c15ull;
	int			n = 0;

	for (int u = 0; u < (int) (sizeof(lens) / sizeof(lens[0])); u++)
	{
		int64_t		t = 1000000 + 1000 * u;

		for (int i = 0; i < lens[u]; i++)
		{
			static const int steps[] = {0, 1, 45, 3600};

			t += steps[rng_int(&s, 4)];
			p->user[n] = uids[u];
			p->item[n] = 1000 + 7 * rng_int(&s, 40);
			p->time[n] = t;
			p->action[n] = 1.0 + 0.25 * rng_int(&s, 17);	/* 1.0 .. 5.0 */
			n++;
		}
	}
	p->n = n;
	/* missing values: one early in the long user's window, one in a mid user, one last */
	p->action[3 + 4] = NAN;
	p->action[3 + 10] = NAN;
	p->action[3 + 14 + 2] = NAN;
	p->action[n - 1] = NAN;
	/* a validation value above the training range (clamped to 1 after normalisation; it is
	 * in the long user's serving history) */
	p->action[3 + 14 - 2] = 9.5;
	/* shuffle the row order */
	for (int i = n - 1; i > 0; i--)
	{
		int			j = rng_int(&s, i + 1);
		int64_t		tu = p->user[i], ti = p->item[i], tt = p->time[i];
		double		ta = p->action[i];

		p->user[i] = p->user[j];
		p->item[i] = p->item[j];
		p->time[i] = p->time[j];
		p->action[i] = p->action[j];
		p->user[j] = tu;
		p->item[j] = ti;
		p->time[j] = tt;
		p->action[j] = ta;
	}
}

/* ---- a guarded allocator ---------------------------------------------------------------- */

/*
 * Every engine host allocation gets a header and a trailing canary zone; gr_free checks the
 * canary, so an out-of-bounds write by the engine is reported (and, within the slack,
 * harmless to the rest of the run) instead of corrupting the heap. Live allocations are
 * counted to catch leaks.
 */
#define GUARD_HEAD 64
#define GUARD_SLACK 4096
#define GUARD_BYTE 0xA5

typedef struct guard_stats
{
	long		live;
	long		overflows;
	size_t		worst_bytes;	/* furthest write past the end seen */
	char		first[256];
} guard_stats;

static void *
guard_alloc(void *user, size_t bytes)
{
	(void) user;
	unsigned char *p = NULL;

	if (posix_memalign((void **) &p, 64, GUARD_HEAD + bytes + GUARD_SLACK) != 0)
		return NULL;
	memcpy(p, &bytes, sizeof(bytes));
	memset(p + GUARD_HEAD + bytes, GUARD_BYTE, GUARD_SLACK);
	((guard_stats *) user)->live++;
	return p + GUARD_HEAD;
}

static void
guard_free(void *user, void *ptr)
{
	guard_stats *gs = user;
	unsigned char *p = (unsigned char *) ptr - GUARD_HEAD;
	size_t		bytes;

	memcpy(&bytes, p, sizeof(bytes));
	for (size_t i = GUARD_SLACK; i > 0; i--)
		if (p[GUARD_HEAD + bytes + i - 1] != GUARD_BYTE)
		{
			gs->overflows++;
			if (i > gs->worst_bytes)
			{
				gs->worst_bytes = i;
				snprintf(gs->first, sizeof(gs->first),
						 "a %zu-byte engine allocation was written up to %zu bytes past its end",
						 bytes, i);
			}
			break;
		}
	gs->live--;
	free(p);
}

/* ---- JSON helpers ----------------------------------------------------------------------- */

/* A float as a JSON number, or null for NaN/Inf. */
static cJSON *
jnum(double v)
{
	return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *
jints(const int32_t *v, int n)
{
	cJSON	   *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
	return a;
}

static cJSON *
jint64s(const int64_t *v, int n)
{
	cJSON	   *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double) v[i]));
	return a;
}

static cJSON *
jfloats(const float *v, int n)
{
	cJSON	   *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, jnum(v[i]));
	return a;
}

static cJSON *
jdoubles(const double *v, int n)
{
	cJSON	   *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, jnum(v[i]));
	return a;
}

/* A [n][K] float matrix as nested arrays. */
static cJSON *
jmatrix(const float *v, int n, int K)
{
	cJSON	   *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, jfloats(v + (size_t) i * K, K));
	return a;
}

/* int64 values as decimal strings (JSON numbers are doubles: exact only below 2^53). */
static cJSON *
jint64_strings(const int64_t *v, int n)
{
	cJSON	   *a = cJSON_CreateArray();
	char		buf[32];

	for (int i = 0; i < n; i++)
	{
		snprintf(buf, sizeof(buf), "%lld", (long long) v[i]);
		cJSON_AddItemToArray(a, cJSON_CreateString(buf));
	}
	return a;
}

/* The metadata of a token batch, exactly as the layout produced it. */
static cJSON *
jtokens(const gr_tokens *tb)
{
	cJSON	   *o = cJSON_CreateObject();
	int			K = tb->n_actions;
	int32_t		has[4096];

	for (int t = 0; t < tb->n_tokens && t < 4096; t++)
		has[t] = tb->has_action[t];
	cJSON_AddNumberToObject(o, "n_tokens", tb->n_tokens);
	cJSON_AddItemToObject(o, "item", jints(tb->item, tb->n_tokens));
	cJSON_AddItemToObject(o, "pos", jints(tb->pos, tb->n_tokens));
	cJSON_AddItemToObject(o, "has_action", jints(has, tb->n_tokens));
	cJSON_AddItemToObject(o, "action", jmatrix(tb->action, tb->n_tokens, K));
	cJSON_AddItemToObject(o, "key_time", jint64_strings(tb->key_time, tb->n_tokens));
	cJSON_AddItemToObject(o, "query_time", jint64_strings(tb->query_time, tb->n_tokens));
	cJSON_AddItemToObject(o, "seq_off", jints(tb->seq_off, tb->n_seq + 1));
	cJSON_AddItemToObject(o, "n_hist", jints(tb->n_hist, tb->n_seq));
	cJSON_AddItemToObject(o, "item_row_tok", jints(tb->item_row_tok, tb->n_item_rows));
	cJSON_AddItemToObject(o, "item_row_target", jints(tb->item_row_target, tb->n_item_rows));
	cJSON_AddItemToObject(o, "act_row_tok", jints(tb->act_row_tok, tb->n_act_rows));
	cJSON_AddItemToObject(o, "act_row_coupler", jints(tb->act_row_coupler, tb->n_act_rows));
	cJSON_AddItemToObject(o, "act_row_target", jmatrix(tb->act_row_target, tb->n_act_rows, K));
	return o;
}

/* ---- output ----------------------------------------------------------------------------- */

static int
write_blob(const char *dir, const char *layout, const char *what, const float *v, size_t n)
{
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s_%s.bin", dir, layout, what);
	if ((f = fopen(path, "wb")) == NULL || fwrite(v, sizeof(float), n, f) != n || fclose(f) != 0)
	{
		fprintf(stderr, "parity_dump: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

static int
write_json(const char *dir, const char *layout, cJSON *root)
{
	char		path[1024];
	char	   *text = cJSON_Print(root);
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s.json", dir, layout);
	if (text == NULL || (f = fopen(path, "w")) == NULL)
	{
		fprintf(stderr, "parity_dump: cannot write %s\n", path);
		free(text);
		return 1;
	}
	fputs(text, f);
	fclose(f);
	free(text);
	return 0;
}

#define TRY(expr) \
	do { gr_status st_ = (expr); if (st_ != GR_OK) { \
		fprintf(stderr, "parity_dump: %s: %s failed: %s: %s\n", tag, #expr, \
				gr_status_name(st_), err.message); goto fail; } } while (0)

/* ---- serving ---------------------------------------------------------------------------- */

/* One user's interactions in time order (stable on ties), from the raw rows. */
static int
user_rows(const raw_problem *p, int64_t uid, int *idx)
{
	int			n = 0;

	for (int i = 0; i < p->n; i++)
		if (p->user[i] == uid)
			idx[n++] = i;
	/* insertion sort by (time, input position): stable */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && p->time[idx[j]] < p->time[idx[j - 1]]; j--)
		{
			int			t = idx[j];

			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	return n;
}

/* What a serving case tells of time (gr_history). */
typedef enum serve_times
{
	TIMES_NONE,					/* no times (every token's time 0) */
	TIMES_LAST,					/* the history's times; the next interaction at the last */
	TIMES_NOW,					/* the history's times and a request time a day after the
								 * held-out interaction's */
} serve_times;

/*
 * Score candidates and recommend for a history: the user's interactions except the last
 * (n_hist < 0) or an explicit prefix length, with times as tm says; candidates are the
 * held-out next item, an unknown id, an item of the history and two other catalogue items.
 */
static cJSON *
serve_case(gr_session *sess, const gr_model *m, const gr_dataset *ds, const raw_problem *p,
		   const char *name, int64_t uid, int n_hist, serve_times tm)
{
	int			idx[MAX_ROWS];
	int			n = user_rows(p, uid, idx);
	int64_t		hist_items[MAX_HIST], hist_times[MAX_HIST];
	double		hist_act[MAX_HIST];
	int			K = m->cfg.n_actions;
	gr_error	err = {0};
	cJSON	   *o = cJSON_CreateObject();

	if (n_hist < 0)
		n_hist = n - 1;
	for (int i = 0; i < n_hist; i++)
	{
		hist_items[i] = p->item[idx[i]];
		hist_times[i] = p->time[idx[i]];
		hist_act[i] = p->action[idx[i]];
	}
	int64_t		next = p->item[idx[n_hist]];
	int64_t		now = p->time[idx[n_hist]] + 86400;
	int64_t		cands[5] = {
		next, UNKNOWN_ITEM,
		n_hist > 0 ? hist_items[0] : ds->item_ids[1],
		ds->item_ids[1 + (int) (uid % ds->n_items)],
		ds->item_ids[ds->n_items],
	};
	int			C = 5;
	gr_history	h = {.items = hist_items, .actions = K > 0 ? hist_act : NULL, .n = n_hist,
	.times = tm == TIMES_NONE ? NULL : hist_times, .has_now = tm == TIMES_NOW, .now = now};
	float		action[5 * GR_MAX_ACTIONS], logit[5];
	uint8_t		known[5];
	gr_scores	sc = {.action = action, .logit = logit, .known = known};

	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddNumberToObject(o, "user_id", (double) uid);
	cJSON *jh = cJSON_CreateObject();

	cJSON_AddItemToObject(jh, "items", jint64s(hist_items, n_hist));
	cJSON *ja = cJSON_CreateArray();

	for (int i = 0; i < n_hist; i++)
		cJSON_AddItemToArray(ja, jdoubles(&hist_act[i], 1));
	cJSON_AddItemToObject(jh, "actions", ja);
	cJSON_AddItemToObject(jh, "times", h.times ? jint64s(hist_times, n_hist) : cJSON_CreateNull());
	cJSON_AddItemToObject(jh, "now", h.has_now ? cJSON_CreateNumber((double) now) :
						  cJSON_CreateNull());
	cJSON_AddItemToObject(o, "history", jh);
	cJSON_AddItemToObject(o, "candidates", jint64s(cands, C));

	cJSON	   *js = cJSON_CreateObject();
	gr_status	st = gr_score(sess, &h, cands, C, &sc, &err);

	cJSON_AddStringToObject(js, "status", gr_status_name(st));
	if (st == GR_OK)
	{
		int32_t		kn[5];

		for (int c = 0; c < C; c++)
			kn[c] = known[c];
		cJSON_AddItemToObject(js, "action", jmatrix(action, C, K));
		cJSON_AddItemToObject(js, "logit", jfloats(logit, C));
		cJSON_AddItemToObject(js, "known", jints(kn, C));
		cJSON_AddItemToObject(js, "tokens", jtokens(&sess->tb));
	}
	cJSON_AddItemToObject(o, "score", js);

	for (int excl = 1; excl >= 0; excl--)
	{
		int64_t		items[5];
		float		scores[5];
		int			n_out = 0;
		cJSON	   *jr = cJSON_CreateObject();

		st = gr_recommend(sess, &h, 5, excl != 0, items, scores, &n_out, &err);
		cJSON_AddBoolToObject(jr, "exclude_seen", excl != 0);
		cJSON_AddNumberToObject(jr, "k", 5);
		cJSON_AddStringToObject(jr, "status", gr_status_name(st));
		if (st == GR_OK)
		{
			cJSON_AddItemToObject(jr, "items", jint64s(items, n_out));
			cJSON_AddItemToObject(jr, "scores", jfloats(scores, n_out));
		}
		cJSON_AddItemToObject(o, excl ? "recommend" : "recommend_all", jr);
	}
	return o;
}

/* ---- evaluation ------------------------------------------------------------------------- */

/* gr_evaluate on a split with K in {1, 3, 10} and batches of 3 users (several batches). */
static cJSON *
eval_split(const gr_model *m, const gr_dataset *ds, gr_split split, gr_error *err)
{
	gr_eval_options opt;
	gr_metrics	mt;
	cJSON	   *o = cJSON_CreateObject();
	int			K = m->cfg.n_actions;

	gr_eval_options_default(&opt);
	opt.n_ks = 3;
	opt.ks[0] = 1;
	opt.ks[1] = 3;
	opt.ks[2] = 10;
	opt.batch_users = 3;
	opt.baseline = true;
	gr_status	st = gr_evaluate(m, ds, split, &opt, &mt, err);

	cJSON_AddStringToObject(o, "status", gr_status_name(st));
	if (st != GR_OK)
		return o;
	int32_t		nat[GR_MAX_ACTIONS];

	for (int k = 0; k < K; k++)
		nat[k] = mt.n_action_targets[k];
	cJSON_AddNumberToObject(o, "n_users", mt.n_users);
	cJSON_AddItemToObject(o, "ks", jints(mt.ks, mt.n_ks));
	cJSON_AddItemToObject(o, "hr", jdoubles(mt.hr, mt.n_ks));
	cJSON_AddItemToObject(o, "ndcg", jdoubles(mt.ndcg, mt.n_ks));
	cJSON_AddItemToObject(o, "mrr", jnum(mt.mrr));
	cJSON_AddItemToObject(o, "hr_all", jdoubles(mt.hr_all, mt.n_ks));
	cJSON_AddItemToObject(o, "ndcg_all", jdoubles(mt.ndcg_all, mt.n_ks));
	cJSON_AddItemToObject(o, "mrr_all", jnum(mt.mrr_all));
	cJSON_AddItemToObject(o, "n_action_targets", jints(nat, K));
	cJSON_AddItemToObject(o, "rmse", jdoubles(mt.rmse, K));
	cJSON_AddItemToObject(o, "baseline_rmse", jdoubles(mt.baseline_rmse, K));
	return o;
}

/* ---- one layout --------------------------------------------------------------------------- */

/* The HSTU time-bucket table and gr_hstu_time_bucket at gaps around every edge, both signs
 * and the extremes, for the reference to check its own table and bucketing against. */
static cJSON *
jtime_buckets(void)
{
	enum
	{
		N_PROBES = 6 * GR_HSTU_BUCKET_EDGES + 5
	};
	static int64_t gaps[N_PROBES];
	int32_t		buckets[N_PROBES];
	int			n = 0;
	cJSON	   *o = cJSON_CreateObject();

	for (int b = 0; b < GR_HSTU_BUCKET_EDGES; b++)
		for (int d = -1; d <= 1; d++)
		{
			gaps[n++] = gr_hstu_edges[b] + d;
			gaps[n++] = -(gr_hstu_edges[b] + d);
		}
	gaps[n++] = 0;
	gaps[n++] = INT64_MAX;
	gaps[n++] = INT64_MIN;
	gaps[n++] = INT64_MAX - 1;
	gaps[n++] = INT64_MIN + 1;
	for (int i = 0; i < n; i++)
		buckets[i] = gr_hstu_time_bucket(gaps[i]);
	cJSON_AddItemToObject(o, "edges", jint64_strings(gr_hstu_edges, GR_HSTU_BUCKET_EDGES));
	cJSON_AddItemToObject(o, "gaps", jint64_strings(gaps, n));
	cJSON_AddItemToObject(o, "buckets", jints(buckets, n));
	return o;
}

static int
dump_layout(const char *dir, const gr_layout *layout, const gr_arch *arch, const raw_problem *p)
{
	gr_env		env;
	guard_stats gs = {0};
	gr_error	err = {0};
	gr_dataset *ds = NULL;
	gr_model   *m = NULL;
	gr_trainer *tr = NULL;
	gr_session *sess = NULL;
	gr_tokens	tb;
	float	   *host = NULL, *host2 = NULL;
	char		name_buf[256], tag[64];
	int			rc = 1;
	cJSON	   *root = cJSON_CreateObject();

	snprintf(tag, sizeof(tag), "%s%s%s", layout->name, arch->id == GR_TRUNK_GPT2 ? "" : "@",
			 arch->id == GR_TRUNK_GPT2 ? "" : arch->name);

	memset(&tb, 0, sizeof(tb));
	gr_env_default(&env);
	env.allocator.alloc = guard_alloc;
	env.allocator.free = guard_free;
	env.allocator.user = &gs;

	/* dataset */
	gr_raw_interactions raw = {
		.n = (size_t) p->n,.user = p->user,.item = p->item,.time = p->time,
		.actions = p->action,.n_actions = 1,.action_binary = NULL,
	};

	TRY(gr_dataset_build(&env, &raw, NULL, &ds, &err));
	int			K = ds->n_actions;

	/* model */
	gr_model_config mc;

	gr_model_config_default(&mc, layout->id, ds->n_items, K);
	mc.d_model = 16;
	mc.n_layer = 2;
	mc.n_head = 2;
	mc.max_len = 6;
	mc.n_buckets = 4;
	mc.head_hidden = 12;
	mc.emb_scale = 1.5f;
	mc.trunk = arch->id;
	for (int k = 0; k < K; k++)
	{
		mc.action_min[k] = ds->action_min[k];
		mc.action_max[k] = ds->action_max[k];
		mc.action_binary[k] = ds->action_binary[k];
	}
	TRY(gr_model_create(&env, &mc, ds->item_ids + 1, &m, &err));
	TRY(gr_model_init_params(m, 1234, &err));
	perturb_params(m, 99);

	/* trainer */
	gr_train_config tc;

	gr_train_config_default(&tc);
	tc.dropout = 0.0f;
	tc.lr = 1e-2f;
	int			cap_tokens = ds->n_users * m->n_positions;

	TRY(gr_trainer_create(m, &tc, cap_tokens, ds->n_users, &tr, &err));
	TRY(gr_tokens_init(&tb, &env, K, mc.n_buckets, cap_tokens, ds->n_users, cap_tokens, &err));

	/* configuration */
	cJSON	   *jc = cJSON_CreateObject();

	cJSON_AddStringToObject(root, "layout", layout->name);
	cJSON_AddNumberToObject(root, "layout_id", layout->id);
	cJSON_AddStringToObject(root, "tag", tag);
	cJSON_AddStringToObject(jc, "trunk", arch->name);
	cJSON_AddNumberToObject(jc, "n_items", mc.n_items);
	cJSON_AddNumberToObject(jc, "d_model", mc.d_model);
	cJSON_AddNumberToObject(jc, "n_layer", mc.n_layer);
	cJSON_AddNumberToObject(jc, "n_head", mc.n_head);
	cJSON_AddNumberToObject(jc, "max_len", mc.max_len);
	cJSON_AddNumberToObject(jc, "n_actions", mc.n_actions);
	cJSON_AddNumberToObject(jc, "n_buckets", mc.n_buckets);
	cJSON_AddNumberToObject(jc, "emb_scale", mc.emb_scale);
	cJSON_AddNumberToObject(jc, "head_hidden", mc.head_hidden);
	cJSON_AddBoolToObject(jc, "action_bias", mc.action_bias);
	cJSON_AddNumberToObject(jc, "n_positions", m->n_positions);
	cJSON_AddItemToObject(jc, "action_min", jdoubles(mc.action_min, K));
	cJSON_AddItemToObject(jc, "action_max", jdoubles(mc.action_max, K));
	{
		int32_t		b[GR_MAX_ACTIONS];

		for (int k = 0; k < K; k++)
			b[k] = mc.action_binary[k];
		cJSON_AddItemToObject(jc, "action_binary", jints(b, K));
	}
	cJSON_AddItemToObject(root, "config", jc);
	cJSON	   *jt = cJSON_CreateObject();

	cJSON_AddNumberToObject(jt, "lr", tc.lr);
	cJSON_AddNumberToObject(jt, "beta1", tc.beta1);
	cJSON_AddNumberToObject(jt, "beta2", tc.beta2);
	cJSON_AddNumberToObject(jt, "eps", tc.eps);
	cJSON_AddNumberToObject(jt, "weight_decay", tc.weight_decay);
	cJSON_AddNumberToObject(jt, "dropout", tc.dropout);
	cJSON_AddNumberToObject(jt, "w_item", tc.w_item);
	cJSON_AddNumberToObject(jt, "w_action", tc.w_action);
	cJSON_AddNumberToObject(jt, "steps", N_STEPS);
	cJSON_AddItemToObject(root, "train", jt);

	/* raw rows (input order) */
	cJSON	   *jr = cJSON_CreateObject();

	cJSON_AddItemToObject(jr, "user", jint64s(p->user, p->n));
	cJSON_AddItemToObject(jr, "item", jint64s(p->item, p->n));
	cJSON_AddItemToObject(jr, "time", jint64s(p->time, p->n));
	cJSON_AddItemToObject(jr, "action", jdoubles(p->action, p->n));
	cJSON_AddItemToObject(root, "raw", jr);

	/* the dataset the engine built */
	cJSON	   *jd = cJSON_CreateObject();

	cJSON_AddItemToObject(jd, "user_ids", jint64s(ds->user_ids, ds->n_users));
	cJSON_AddItemToObject(jd, "item_ids", jint64s(ds->item_ids + 1, ds->n_items));
	cJSON_AddItemToObject(jd, "action_min", jdoubles(ds->action_min, K));
	cJSON_AddItemToObject(jd, "action_max", jdoubles(ds->action_max, K));
	cJSON	   *jus = cJSON_CreateArray();

	for (int u = 0; u < ds->n_users; u++)
	{
		gr_seq_view sv = gr_dataset_user_seq(ds, u);
		cJSON	   *ju = cJSON_CreateObject();

		cJSON_AddNumberToObject(ju, "user_id", (double) ds->user_ids[u]);
		cJSON_AddItemToObject(ju, "items", jints(sv.items, sv.n));
		cJSON_AddItemToObject(ju, "actions", jmatrix(sv.actions, sv.n, K));
		cJSON_AddItemToObject(ju, "times", sv.times ? jint64s(sv.times, sv.n) : cJSON_CreateNull());
		cJSON_AddItemToArray(jus, ju);
	}
	cJSON_AddItemToObject(jd, "users", jus);
	cJSON_AddItemToObject(root, "dataset", jd);

	/* one batch: the most recent training window of every user */
	cJSON	   *jw = cJSON_CreateArray();

	for (int u = 0; u < ds->n_users; u++)
	{
		bool		added = false;
		int			end = gr_dataset_train_end(ds, u);
		int			start = GR_MAX(0, end - layout->window_len(mc.max_len));
		cJSON	   *w = cJSON_CreateObject();

		TRY(gr_add_train_window(m, ds, u, &tb, &added, &err));
		cJSON_AddNumberToObject(w, "user", u);
		cJSON_AddNumberToObject(w, "start", start);
		cJSON_AddNumberToObject(w, "end", end);
		cJSON_AddBoolToObject(w, "added", added);
		cJSON_AddItemToArray(jw, w);
	}
	cJSON_AddItemToObject(root, "windows", jw);
	cJSON_AddItemToObject(root, "batch", jtokens(&tb));

	/* tensors and initial parameters */
	cJSON	   *jten = cJSON_CreateArray();

	for (int t = 0; t < m->n_tensors; t++)
	{
		const gr_tensor *ten = &m->tensors[t];
		cJSON	   *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", ten->name);
		cJSON_AddItemToObject(o, "shape", jint64s(ten->shape, ten->ndim));
		cJSON_AddNumberToObject(o, "offset", (double) ten->offset);
		cJSON_AddNumberToObject(o, "numel", (double) ten->numel);
		cJSON_AddItemToArray(jten, o);
	}
	cJSON_AddItemToObject(root, "tensors", jten);
	cJSON_AddNumberToObject(root, "n_params", (double) m->n_params);
	host = malloc(m->n_params * sizeof(float));
	host2 = malloc(m->n_params * sizeof(float));
	if (host == NULL || host2 == NULL)
		goto fail;
	gr_model_download_params(m, host);
	if (write_blob(dir, tag, "init", host, m->n_params))
		goto fail;

	/* the sampled item losses: step 3's loss, gradients and candidates from the initial
	 * parameters, on a model that differs only in its item loss */
	static const struct
	{
		int			loss, negatives, sampler;
		float		temperature;
		const char *tag;
		int			negatives_per;
		int			similarity;
	}			sampled[] = {
		{GR_LOSS_SAMPLED, 24, GR_SAMPLER_UNIFORM, 0.7f, "sampled_uniform", GR_NEGATIVES_PER_BATCH},
		{GR_LOSS_SAMPLED, 40, GR_SAMPLER_POPULARITY, 1.0f, "sampled_popularity",
		GR_NEGATIVES_PER_BATCH},
		{GR_LOSS_SAMPLED, 11, GR_SAMPLER_POPULARITY, 0.8f, "sampled_per_user",
		GR_NEGATIVES_PER_USER},
		{GR_LOSS_INFONCE, 0, GR_SAMPLER_UNIFORM, 0.5f, "infonce_all", GR_NEGATIVES_PER_BATCH},
		{GR_LOSS_INFONCE, 9, GR_SAMPLER_UNIFORM, 0.25f, "infonce_9", GR_NEGATIVES_PER_BATCH},
		/* cosine: the trainer starts from the unit item rows, the states are normalised */
		{GR_LOSS_SAMPLED, 24, GR_SAMPLER_UNIFORM, 0.2f, "sampled_cosine", GR_NEGATIVES_PER_USER,
		GR_SIMILARITY_COSINE},
		{GR_LOSS_INFONCE, 0, GR_SAMPLER_UNIFORM, 0.1f, "infonce_cosine", GR_NEGATIVES_PER_BATCH,
		GR_SIMILARITY_COSINE},
	};
	cJSON	   *jsm = cJSON_CreateArray();

	for (size_t i = 0; i < sizeof(sampled) / sizeof(sampled[0]); i++)
	{
		gr_model_config sc = mc;
		gr_model   *sm = NULL;
		gr_trainer *st = NULL;
		gr_step_loss sl;
		gr_status	s;
		cJSON	   *o = cJSON_CreateObject();
		char		what[64];

		sc.item_loss = sampled[i].loss;
		sc.negatives = sampled[i].negatives;
		sc.sampler = sampled[i].sampler;
		sc.temperature = sampled[i].temperature;
		sc.negatives_per = sampled[i].negatives_per;
		sc.similarity = sampled[i].similarity;
		s = gr_model_create(&env, &sc, ds->item_ids + 1, &sm, &err);
		if (s == GR_OK)
		{
			gr_model_upload_params(sm, host);
			s = gr_trainer_create(sm, &tc, cap_tokens, ds->n_users, &st, &err);
		}
		if (s == GR_OK)
			s = gr_trainer_count_items(st, ds, &err);
		if (s == GR_OK)
			s = gr_trainer_compute(st, &tb, 3, &sl, &err);
		if (s == GR_OK)
		{
			int32_t    *cand = malloc(sizeof(int32_t) * st->acts->neg_draws);
			float	   *logq = malloc(sizeof(float) * st->acts->neg_draws);
			gr_pass		pass = {.popularity = &st->popularity,.seed = tc.seed,.step = 3};
			int			n = gr_item_negatives(sm, st->acts, &pass, cand, logq);

			cJSON_AddStringToObject(o, "tag", sampled[i].tag);
			cJSON_AddStringToObject(o, "loss", gr_item_loss_name(sc.item_loss));
			cJSON_AddNumberToObject(o, "negatives", sc.negatives);
			cJSON_AddStringToObject(o, "sampler", gr_sampler_name(sc.sampler));
			cJSON_AddStringToObject(o, "negatives_per", gr_negatives_per_name(sc.negatives_per));
			cJSON_AddNumberToObject(o, "temperature", sc.temperature);
			cJSON_AddStringToObject(o, "similarity", gr_similarity_name(sc.similarity));
			cJSON_AddItemToObject(o, "cand", jints(cand, n));
			cJSON_AddItemToObject(o, "item", jnum(sl.item));
			cJSON_AddItemToObject(o, "total", jnum(sl.total));
			snprintf(what, sizeof(what), "grads_%s", sampled[i].tag);
			snprintf(name_buf, sizeof(name_buf), "%s_%s.bin", tag, what);
			cJSON_AddStringToObject(o, "file", name_buf);
			sm->ops->download(sm->ops->ctx, host2, st->grads, m->n_params * sizeof(float));
			if (write_blob(dir, tag, what, host2, m->n_params))
				s = GR_ERR_IO;
			free(cand);
			free(logq);
		}
		gr_trainer_free(st);
		gr_model_free(sm);
		if (s != GR_OK)
		{
			fprintf(stderr, "parity_dump: %s %s: %s\n", layout->name, sampled[i].tag,
					err.message);
			cJSON_Delete(o);
			goto fail;
		}
		cJSON_AddItemToArray(jsm, o);
	}
	cJSON_AddItemToObject(root, "sampled", jsm);

	/* ten optimiser steps on the same batch; step 0 also dumps its gradients */
	double		losses[N_STEPS];

	for (int step = 0; step < N_STEPS; step++)
	{
		gr_step_loss sl;

		TRY(gr_trainer_compute(tr, &tb, (uint32_t) step, &sl, &err));
		losses[step] = sl.total;
		if (step == 0)
		{
			cJSON	   *j0 = cJSON_CreateObject();
			int32_t		nat[GR_MAX_ACTIONS];

			for (int k = 0; k < K; k++)
				nat[k] = sl.n_action_targets[k];
			cJSON_AddItemToObject(j0, "item", jnum(sl.item));
			cJSON_AddItemToObject(j0, "action",
								  jdoubles(sl.action, gr_layout_has_action_head(layout) ? K : 0));
			cJSON_AddItemToObject(j0, "total", jnum(sl.total));
			cJSON_AddNumberToObject(j0, "n_item_targets", sl.n_item_targets);
			cJSON_AddItemToObject(j0, "n_action_targets",
								  jints(nat, gr_layout_has_action_head(layout) ? K : 0));
			cJSON_AddItemToObject(root, "step0", j0);
			m->ops->download(m->ops->ctx, host, tr->grads, m->n_params * sizeof(float));
			if (write_blob(dir, tag, "grads0", host, m->n_params))
				goto fail;
		}
		TRY(gr_trainer_apply(tr, &err));
	}
	cJSON_AddItemToObject(root, "losses", jdoubles(losses, N_STEPS));
	gr_model_download_params(m, host);
	if (write_blob(dir, tag, "final", host, m->n_params))
		goto fail;

	/* evaluation with the trained parameters */
	cJSON	   *jev = cJSON_CreateObject();

	cJSON_AddItemToObject(jev, "valid", eval_split(m, ds, GR_SPLIT_VALID, &err));
	cJSON_AddItemToObject(jev, "test", eval_split(m, ds, GR_SPLIT_TEST, &err));
	cJSON_AddItemToObject(root, "eval", jev);

	/* serving with the trained parameters */
	cJSON	   *jsv = cJSON_CreateArray();

	TRY(gr_session_create(m, &sess, &err));
	cJSON_AddItemToArray(jsv, serve_case(sess, m, ds, p, "long", 15, -1, TIMES_NOW));
	cJSON_AddItemToArray(jsv, serve_case(sess, m, ds, p, "short", 333, -1, TIMES_LAST));
	cJSON_AddItemToArray(jsv, serve_case(sess, m, ds, p, "untimed", 7, -1, TIMES_NONE));
	if (gr_layout_packs_candidates(layout))
		cJSON_AddItemToArray(jsv, serve_case(sess, m, ds, p, "empty", 48, 0, TIMES_NOW));
	cJSON_AddItemToObject(root, "serving", jsv);
	if (arch->id == GR_TRUNK_HSTU)
		cJSON_AddItemToObject(root, "time_buckets", jtime_buckets());

	cJSON	   *jf = cJSON_CreateObject();
	char		name[256];

	snprintf(name, sizeof(name), "%s_init.bin", tag);
	cJSON_AddStringToObject(jf, "init", name);
	snprintf(name, sizeof(name), "%s_grads0.bin", tag);
	cJSON_AddStringToObject(jf, "grads0", name);
	snprintf(name, sizeof(name), "%s_final.bin", tag);
	cJSON_AddStringToObject(jf, "final", name);
	cJSON_AddItemToObject(root, "files", jf);
	rc = 0;
fail:
	free(host);
	free(host2);
	gr_session_free(sess);
	gr_tokens_free(&tb);
	gr_trainer_free(tr);
	gr_model_free(m);
	gr_dataset_free(ds);
	if (gs.overflows > 0 || gs.live != 0)
		fprintf(stderr, "parity_dump: %s: ENGINE MEMORY ERROR: %ld overflowing allocation(s)%s%s, "
				"%ld allocation(s) never freed\n", tag, gs.overflows,
				gs.overflows ? ": " : "", gs.first, gs.live);
	cJSON	   *jm = cJSON_CreateObject();

	cJSON_AddNumberToObject(jm, "overflows", (double) gs.overflows);
	cJSON_AddStringToObject(jm, "first_overflow", gs.first);
	cJSON_AddNumberToObject(jm, "leaked_allocations", (double) gs.live);
	cJSON_AddItemToObject(root, "memory", jm);
	if (rc == 0)
		rc = write_json(dir, tag, root);
	cJSON_Delete(root);
	return rc;
}

int
main(int argc, char **argv)
{
	raw_problem p;
	int			rc = 0;

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s OUTDIR [LAYOUT[@TRUNK] ...]\n", argv[0]);
		return 2;
	}
	if (mkdir(argv[1], 0755) != 0 && errno != EEXIST)
	{
		fprintf(stderr, "parity_dump: cannot create %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	make_problem(&p);
	if (argc == 2)
	{
		for (int t = 0; t < GR_TRUNK_COUNT; t++)
			for (int id = 0; id < GR_LAYOUT_COUNT; id++)
				rc |= dump_layout(argv[1], gr_layout_by_id(id), gr_arch_by_id(t), &p);
		return rc;
	}
	for (int i = 2; i < argc; i++)
	{
		char		name[64];
		const char *at = strchr(argv[i], '@');
		const gr_arch *arch = at ? gr_arch_by_name(at + 1) : gr_arch_by_id(GR_TRUNK_GPT2);
		const gr_layout *layout;

		snprintf(name, sizeof(name), "%.*s", at ? (int) (at - argv[i]) : (int) strlen(argv[i]),
				 argv[i]);
		layout = gr_layout_by_name(name);
		if (layout == NULL || arch == NULL)
		{
			fprintf(stderr, "parity_dump: unknown layout or trunk \"%s\"\n", argv[i]);
			rc = 1;
			continue;
		}
		rc |= dump_layout(argv[1], layout, arch, &p);
	}
	return rc;
}
