/*
 * test_layouts.c — the layouts end to end on small random models:
 *  - token metadata of the toy history of LAYOUTS.md §4.0, for training and serving;
 *  - leakage: perturbing an interaction never changes a prediction made for it from its own
 *    label, nor any prediction for an earlier interaction (with positive controls showing the
 *    perturbations do reach the predictions that may see them);
 *  - packed candidate scoring equals the training-path prediction of the same item
 *    (PROTOCOL.md), and candidates do not influence each other;
 *  - a finite-difference check of each layout's whole loss, tensor by tensor;
 *  - for the action-stream layouts (AttnLFA, AttnMVP): a positive control running the
 *    strict-causal reads as causal, which the leakage test must catch, and AttnLFA's pooled
 *    vector against a plain double-precision loop.
 */
#include "gr_arch.h"
#include "gr_serve.h"
#include "gr_train.h"
#include "gr_rng.h"
#include "unit.h"

#include <string.h>

static gr_env env;

#define N_ITEMS 30

/* A toy history of n interactions: items and actions drawn from a test stream. */
static void
make_history(int n, uint32_t stream, int32_t *items, float *actions)
{
	for (int i = 0; i < n; i++)
	{
		items[i] = 1 + (int) (gr_rng_uniform(3, stream, 0, i) * N_ITEMS);
		actions[i] = gr_rng_uniform(3, stream, 1, i);
	}
}

/* Times of a toy history: gaps of 1 .. e^14 seconds (log-uniform), so the HSTU trunk's time
 * bias reads many buckets. */
static void
make_times(int n, uint32_t stream, int64_t *times)
{
	int64_t		t = 1700000000;

	for (int i = 0; i < n; i++)
	{
		t += (int64_t) exp(14.0 * gr_rng_uniform(3, stream, 2, i));
		times[i] = t;
	}
}

/* The trunk of the models make_model creates (a test loop sets it). */
static int	model_trunk = GR_TRUNK_GPT2;

/* The item loss of the models make_model creates (full softmax unless a test sets it). */
typedef struct item_loss_cfg
{
	int			loss, negatives, sampler;
	float		temperature;
	int			negatives_per;	/* gr_negatives_per (0: batch) */
	int			similarity;		/* gr_similarity (0: dot) */
} item_loss_cfg;

static const item_loss_cfg full_softmax_loss = {GR_LOSS_FULL, 0, GR_SAMPLER_UNIFORM, 1.0f,
GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT};
static item_loss_cfg model_loss = {GR_LOSS_FULL, 0, GR_SAMPLER_UNIFORM, 1.0f,
GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT};

/* Create a small model of a layout with random weights. */
static gr_model *
make_model(gr_layout_id layout, int max_len, uint64_t seed)
{
	gr_model_config cfg;
	gr_model   *m = NULL;
	gr_error	err = {0};

	gr_model_config_default(&cfg, layout, N_ITEMS, 1);
	cfg.trunk = model_trunk;
	cfg.item_loss = model_loss.loss;
	cfg.negatives = model_loss.negatives;
	cfg.sampler = model_loss.sampler;
	cfg.temperature = model_loss.temperature;
	cfg.negatives_per = model_loss.negatives_per;
	cfg.similarity = model_loss.similarity;
	cfg.d_model = 16;
	cfg.n_head = 2;
	cfg.n_layer = 2;
	cfg.max_len = max_len;
	cfg.n_buckets = 4;
	cfg.head_hidden = 12;
	cfg.emb_scale = 2.0f;
	CHECK_OK(gr_model_create(&env, &cfg, NULL, &m, &err), &err);
	CHECK_OK(gr_model_init_params(m, seed, &err), &err);
	/* larger weights than the GPT-2 init so every path visibly moves the outputs */
	float	   *host = malloc(sizeof(float) * m->n_params);

	gr_model_download_params(m, host);
	for (size_t i = 0; i < m->n_params; i++)
		host[i] *= 3.0f;
	/* the action head's bias path starts at zero: draw it too, so that the leakage, scoring
	 * and gradient checks see its item bias and user offset move the predictions */
	static const char *const bias_path[] = {"action_head.item_bias.weight",
	"action_head.user_offset.weight"};

	for (int b = 0; b < 2; b++)
	{
		const gr_tensor *t = gr_model_tensor(m, bias_path[b]);

		for (size_t i = 0; t != NULL && i < t->numel; i++)
			host[t->offset + i] = gr_rng_uniform(seed, GR_STREAM_TEST, 900 + b, i) - 0.5f;
	}
	gr_model_upload_params(m, host);
	free(host);
	return m;
}

/* Toy history (i1,a1),(i2,a2),(i3,a3) as in LAYOUTS.md §4.0: check the training tokens. */
static void
test_toy_training_tokens(void)
{
	int32_t		items[3] = {11, 12, 13};
	float		acts[3] = {0.1f, 0.2f, 0.3f};
	gr_seq_view seq = {.items = items,.actions = acts,.n = 3,.n_actions = 1};
	gr_tokens	tb;
	gr_error	err;

	CHECK_OK(gr_tokens_init(&tb, &env, 1, 4, 16, 2, 16, &err), &err);

	/* L0: tokens i1, i2 with targets i2, i3 */
	CHECK_OK(gr_layout_item.add_window(&tb, &seq, 0, 3, false, &err), &err);
	CHECK(tb.n_tokens == 2 && tb.item[0] == 11 && tb.item[1] == 12 && !tb.has_action[0]);
	CHECK(tb.n_item_rows == 2 && tb.item_row_target[0] == 12 && tb.item_row_target[1] == 13);
	CHECK(tb.item_row_src[0] == 1 && tb.n_act_rows == 0);

	/* INT: i1 a1 i2 a2 i3; item tokens predict a_n, action tokens predict i_{n+1} */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_int.add_window(&tb, &seq, 0, 3, false, &err), &err);
	CHECK(tb.n_tokens == 5);
	CHECK(tb.item[0] == 11 && tb.item[1] == 0 && tb.item[2] == 12 && tb.item[4] == 13);
	CHECK(tb.has_action[1] && tb.action[1] == 0.1f && !tb.has_action[0] && !tb.has_action[4]);
	for (int t = 0; t < 5; t++)
		CHECK(tb.pos[t] == t);
	CHECK(tb.n_act_rows == 3 && tb.act_row_tok[0] == 0 && tb.act_row_tok[2] == 4);
	CHECK(tb.act_row_target[2] == 0.3f && tb.act_row_src[2] == 2);
	CHECK(tb.n_item_rows == 2 && tb.item_row_tok[0] == 1 && tb.item_row_target[0] == 12);
	CHECK(tb.item_row_tok[1] == 3 && tb.item_row_target[1] == 13);

	/* PC: (i1,a1), (i2,a2); coupler g(h_n, E[i_{n+1}]) predicts a_{n+1} */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_pc.add_window(&tb, &seq, 0, 3, false, &err), &err);
	CHECK(tb.n_tokens == 2 && tb.action[0] == 0.1f && tb.action[1] == 0.2f);
	CHECK(tb.n_act_rows == 2 && tb.act_row_coupler[0] == 12 && tb.act_row_target[0] == 0.2f);
	CHECK(tb.act_row_coupler[1] == 13 && tb.act_row_target[1] == 0.3f);
	CHECK(tb.n_item_rows == 2 && tb.item_row_target[1] == 13);

	/* LAC: (i1,null), (i2,a1), (i3,a2); h_n predicts a_n and i_{n+1} */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_lac.add_window(&tb, &seq, 0, 3, false, &err), &err);
	CHECK(tb.n_tokens == 3 && tb.has_action[0] && isnan(tb.action[0]));
	CHECK(tb.action[1] == 0.1f && tb.action[2] == 0.2f);
	CHECK(tb.n_act_rows == 3 && tb.act_row_target[0] == 0.1f && tb.act_row_target[2] == 0.3f);
	CHECK(tb.n_item_rows == 2 && tb.item_row_tok[1] == 1 && tb.item_row_target[1] == 13);

	/* AttnLFA / AttnMVP: items only in the input, each token's own action in the stream;
	 * h_n predicts a_n (dense) and i_{n+1} */
	const gr_layout *stream_layouts[2] = {&gr_layout_attnlfa, &gr_layout_attnmvp};

	for (int li = 0; li < 2; li++)
	{
		gr_tokens_reset(&tb);
		CHECK_OK(stream_layouts[li]->add_window(&tb, &seq, 0, 3, false, &err), &err);
		CHECK(tb.n_tokens == 3 && tb.item[0] == 11 && tb.item[2] == 13 && tb.pos[2] == 2);
		CHECK(tb.has_action[0] && tb.action[0] == 0.1f && tb.action[2] == 0.3f);
		CHECK(tb.n_act_rows == 3 && tb.act_row_tok[1] == 1 && tb.act_row_target[1] == 0.2f);
		CHECK(tb.act_row_src[2] == 2 && tb.act_row_coupler[0] == 0);
		CHECK(tb.n_item_rows == 2 && tb.item_row_tok[1] == 1 && tb.item_row_target[1] == 13);
		CHECK(gr_layout_action_stream(stream_layouts[li]) &&
			  !gr_layout_reads_actions(stream_layouts[li]) == false);
	}
	CHECK(gr_layout_pools_actions(&gr_layout_attnlfa) && !gr_layout_pools_actions(&gr_layout_attnmvp));
	CHECK(gr_layout_trunk_mask(&gr_layout_attnmvp) == GR_MASK_STRICT &&
		  gr_layout_trunk_mask(&gr_layout_attnlfa) == GR_MASK_CAUSAL);

	/* a LAC window starting later carries the real lagged action, not the null one */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_lac.add_window(&tb, &seq, 1, 3, true, &err), &err);
	CHECK(tb.n_tokens == 2 && tb.action[0] == 0.1f && tb.n_act_rows == 1 &&
		  tb.act_row_src[0] == 2 && tb.n_item_rows == 1 && tb.item_row_src[0] == 2);
	gr_tokens_free(&tb);
}

/* Toy serving: candidates c1, c2 after the toy history (LAYOUTS.md §4.0 scoring). */
static void
test_toy_serving_tokens(void)
{
	int32_t		items[3] = {11, 12, 13}, cands[2] = {21, 22};
	float		acts[3] = {0.1f, 0.2f, 0.3f};
	gr_seq_view seq = {.items = items,.actions = acts,.n = 3,.n_actions = 1};
	gr_tokens	tb;
	gr_error	err;

	CHECK_OK(gr_tokens_init(&tb, &env, 1, 4, 16, 2, 16, &err), &err);
	CHECK_OK(gr_layout_lac.add_serving(&tb, &seq, 0, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 5 && tb.n_hist[0] == 3);
	CHECK(tb.item[3] == 21 && tb.pos[3] == 3 && tb.item[4] == 22 && tb.pos[4] == 3);
	CHECK(tb.action[3] == 0.3f && tb.action[4] == 0.3f);
	CHECK(tb.n_item_rows == 1 && tb.item_row_tok[0] == 2 && tb.n_act_rows == 2);

	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_int.add_serving(&tb, &seq, 0, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 8 && tb.n_hist[0] == 6 && tb.pos[6] == 6 && tb.pos[7] == 6);
	CHECK(tb.item[6] == 21 && !tb.has_action[6] && tb.item_row_tok[0] == 5);

	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_pc.add_serving(&tb, &seq, 0, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 3 && tb.n_act_rows == 2 && tb.act_row_tok[0] == 2 &&
		  tb.act_row_coupler[1] == 22);

	/* AttnLFA / AttnMVP: candidates at the next position without an action, history with
	 * its own actions (LAYOUTS.md §6.2) */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_attnmvp.add_serving(&tb, &seq, 0, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 5 && tb.n_hist[0] == 3 && tb.action[2] == 0.3f);
	CHECK(tb.item[3] == 21 && tb.pos[3] == 3 && tb.pos[4] == 3 && !tb.has_action[3]);
	CHECK(tb.n_item_rows == 1 && tb.item_row_tok[0] == 2 && tb.n_act_rows == 2 &&
		  tb.act_row_tok[1] == 4);
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_attnlfa.add_serving(&tb, &seq, 3, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 2 && tb.n_hist[0] == 0 && tb.n_item_rows == 0 && tb.n_act_rows == 2);

	gr_tokens_reset(&tb);
	CHECK(gr_layout_item.add_serving(&tb, &seq, 3, cands, 2, &err) == GR_ERR_EMPTY_HISTORY);
	gr_tokens_free(&tb);
}

/* Predictions of a forward pass over a whole history, keyed by target interaction. */
typedef struct predictions
{
	int			n;
	float	   *item;			/* [n, V] logits predicting i_j (NaN rows: none) */
	float	   *act;			/* [n] prediction of a_j (NaN: none) */
} predictions;

/* Run the training-path forward pass (no dropout) over seq and collect predictions. */
static void
predict_history(const gr_model *m, const gr_seq_view *seq, predictions *p)
{
	gr_tokens	tb;
	gr_acts    *a;
	gr_error	err;
	int			V = m->cfg.n_items, n = seq->n;

	p->n = n;
	p->item = malloc(sizeof(float) * n * V);
	p->act = malloc(sizeof(float) * n);
	for (int i = 0; i < n * V; i++)
		p->item[i] = NAN;
	for (int i = 0; i < n; i++)
		p->act[i] = NAN;
	CHECK_OK(gr_tokens_init(&tb, &env, 1, m->cfg.n_buckets, 4 * n, 1, 4 * n, &err), &err);
	CHECK_OK(m->layout->add_window(&tb, seq, 0, n, false, &err), &err);
	CHECK_OK(gr_acts_create(m, tb.n_tokens, 1, tb.n_tokens, 0, false, &a, &err), &err);
	CHECK_OK(gr_model_forward(m, a, &tb, NULL, &err), &err);
	for (int r = 0; r < tb.n_item_rows; r++)
	{
		gr_model_item_logits(m, a, r, 1);
		memcpy(p->item + (size_t) tb.item_row_src[r] * V, a->logits, sizeof(float) * V);
	}
	if (gr_layout_has_action_head(m->layout))
	{
		for (int r = 0; r < tb.n_act_rows; r++)
			p->act[tb.act_row_src[r]] = a->act_pred[r];
	}
	gr_acts_free(a);
	gr_tokens_free(&tb);
}

/* Whether target j's item prediction is bitwise equal in two runs. */
static bool
same_item(const predictions *a, const predictions *b, int j, int V)
{
	return memcmp(a->item + (size_t) j * V, b->item + (size_t) j * V, sizeof(float) * V) == 0;
}

/* Whether target j's action prediction is bitwise equal in two runs. */
static bool
same_act(const predictions *a, const predictions *b, int j)
{
	return memcmp(a->act + j, b->act + j, sizeof(float)) == 0;
}

/*
 * A deliberately leaky attention for the positive control: every strict-causal read runs
 * causal, with the second value stream folded into the values, i.e. "the pooling or the MVP
 * mask made causal instead of strict" (k <= q), so a token's own action reaches its query.
 */
static const gr_ops *honest_ops;
static gr_ops leaky_ops;

/* attn_fwd with the strict mask replaced by the causal one. */
static void
leaky_attn_fwd(void *ctx, float *out, float *lse, const float *qkv, const float *v2,
			   const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d)
{
	if (mask != GR_MASK_STRICT)
	{
		honest_ops->attn_fwd(ctx, out, lse, qkv, v2, seqs, mask, n_head, d);
		return;
	}
	int			N = seqs->seq_off[seqs->n_seq];
	float	   *mixed = malloc(sizeof(float) * (size_t) N * 3 * d);

	memcpy(mixed, qkv, sizeof(float) * (size_t) N * 3 * d);
	for (int t = 0; t < N && v2; t++)
		for (int i = 0; i < d; i++)
			mixed[(size_t) t * 3 * d + 2 * d + i] += v2[(size_t) t * d + i];
	honest_ops->attn_fwd(ctx, out, lse, mixed, NULL, seqs, GR_MASK_CAUSAL, n_head, d);
	free(mixed);
}

/* hstu_attn_fwd with the strict mask replaced by the causal one, likewise. */
static void
leaky_hstu_fwd(void *ctx, float *out, const float *qkv, int ld, const float *v2,
			   const gr_hstu_rab *rab, const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head,
			   int d, float alpha, float inv_n)
{
	if (mask != GR_MASK_STRICT)
	{
		honest_ops->hstu_attn_fwd(ctx, out, qkv, ld, v2, rab, seqs, mask, n_head, d, alpha,
								  inv_n);
		return;
	}
	int			N = seqs->seq_off[seqs->n_seq];
	float	   *mixed = malloc(sizeof(float) * (size_t) N * ld);

	memcpy(mixed, qkv, sizeof(float) * (size_t) N * ld);
	for (int t = 0; t < N && v2; t++)
		for (int i = 0; i < d; i++)
			mixed[(size_t) t * ld + 2 * d + i] += v2[(size_t) t * d + i];
	honest_ops->hstu_attn_fwd(ctx, out, mixed, ld, NULL, rab, seqs, GR_MASK_CAUSAL, n_head, d,
							  alpha, inv_n);
	free(mixed);
}

/* Leak check: a CHECK, or (expecting a leak) a count of violations. */
#define LEAK_CHECK(cond, ...) \
	do { if (expect_leak) leaks += !(cond); else CHECK_MSG(cond, __VA_ARGS__); } while (0)

/*
 * Leakage: perturb each interaction's action and item in turn. With expect_leak the model
 * runs on the leaky attention above and the test must find violations (positive control).
 */
static void
test_leakage(gr_layout_id id, bool expect_leak)
{
	enum
	{
	N = 9};
	gr_model   *m = make_model(id, 16, 5);
	int			leaks = 0;

	if (expect_leak)
	{
		honest_ops = m->ops;
		leaky_ops = *m->ops;
		leaky_ops.attn_fwd = leaky_attn_fwd;
		leaky_ops.hstu_attn_fwd = leaky_hstu_fwd;
		m->ops = &leaky_ops;
	}
	int32_t		items[N];
	float		acts[N];
	int64_t		times[N];
	gr_seq_view seq = {.items = items,.actions = acts,.n = N,.n_actions = 1,.times = times};
	predictions base, pert;
	int			V = m->cfg.n_items, reached_act = 0, reached_item = 0;

	make_history(N, 41, items, acts);
	make_times(N, 41, times);
	predict_history(m, &seq, &base);
	for (int mi = 0; mi < N; mi++)
	{
		/* the action of interaction mi */
		float		saved = acts[mi];

		acts[mi] = saved > 0.5f ? saved - 0.45f : saved + 0.45f;
		predict_history(m, &seq, &pert);
		for (int j = 0; j <= mi; j++)
		{
			LEAK_CHECK(same_item(&base, &pert, j, V), "%s: a_%d changed the prediction of i_%d",
					   m->layout->name, mi, j);
			LEAK_CHECK(same_act(&base, &pert, j), "%s: a_%d changed the prediction of a_%d",
					   m->layout->name, mi, j);
		}
		for (int j = mi + 1; j < N; j++)
			reached_act += !same_act(&base, &pert, j) || !same_item(&base, &pert, j, V);
		acts[mi] = saved;
		free(pert.item);
		free(pert.act);

		/* the item of interaction mi */
		int32_t		saved_item = items[mi];

		items[mi] = saved_item % N_ITEMS + 1;
		predict_history(m, &seq, &pert);
		for (int j = 0; j <= mi; j++)
			LEAK_CHECK(same_item(&base, &pert, j, V), "%s: i_%d changed the prediction of i_%d",
					   m->layout->name, mi, j);
		for (int j = 0; j < mi; j++)
			LEAK_CHECK(same_act(&base, &pert, j), "%s: i_%d changed the prediction of a_%d",
					   m->layout->name, mi, j);
		/* action given item (P2): the item does reach its own action's prediction */
		if (gr_layout_has_action_head(m->layout) && !isnan(base.act[mi]))
			reached_item += !same_act(&base, &pert, mi);
		items[mi] = saved_item;
		free(pert.item);
		free(pert.act);
	}
	/* positive controls: visible perturbations do move later predictions */
	if (gr_layout_reads_actions(m->layout))
		CHECK_MSG(reached_act > 0, "%s: actions never reach a prediction", m->layout->name);
	else
		CHECK_MSG(reached_act == 0, "%s: unread actions reached %d predictions",
				  m->layout->name, reached_act);
	/* P2: the item reaches its own action's prediction exactly where the layout scores
	 * candidates by action; a user-level layout (l5, l6, l7, l9) predicts a_n without i_n */
	if (gr_layout_candidate_actions(m->layout))
		CHECK_MSG(reached_item > N / 2, "%s: items reached only %d of their actions",
				  m->layout->name, reached_item);
	else if (gr_layout_has_action_head(m->layout))
		CHECK_MSG(reached_item == 0, "%s: items reached %d of their actions in a layout "
				  "without candidate-specific actions", m->layout->name, reached_item);
	if (expect_leak)
	{
		/* the own-label perturbations alone: at least one per interaction */
		CHECK_MSG(leaks >= N, "%s: the leaky attention went unnoticed (%d violations)",
				  m->layout->name, leaks);
		m->ops = honest_ops;
	}
	free(base.item);
	free(base.act);
	gr_model_free(m);
}

/* Packed scoring of the true next item equals the training-path prediction for it. */
static void
test_scoring_consistency(gr_layout_id id)
{
	enum
	{
	N = 12, MAXLEN = 6, C = 4};
	gr_model   *m = make_model(id, MAXLEN, 9);
	int32_t		items[N];
	float		acts[N];
	int64_t		times[N];
	int64_t		hist_items[N], cands[C];
	double		hist_acts[N];
	float		act_all[C], logit_all[C], act_one, logit_one;
	uint8_t		known[C];
	gr_session *s;
	gr_error	err;
	int			V = m->cfg.n_items;

	make_history(N, 77, items, acts);
	make_times(N, 77, times);
	for (int i = 0; i < N; i++)
	{
		hist_items[i] = items[i];
		hist_acts[i] = acts[i];
	}
	CHECK_OK(gr_session_create(m, &s, &err), &err);
	for (int t = 3; t < N; t++)
	{
		/* training path: the evaluation window ending at target t */
		gr_tokens	tb;
		gr_acts    *a;
		gr_seq_view seq = {.items = items,.actions = acts,.n = N,.n_actions = 1,.times = times};
		int			W = m->layout->window_len(MAXLEN);

		CHECK_OK(gr_tokens_init(&tb, &env, 1, m->cfg.n_buckets, 64, 1, 64, &err), &err);
		CHECK_OK(m->layout->add_window(&tb, &seq, GR_MAX(0, t + 1 - W), t + 1, true, &err), &err);
		CHECK_OK(gr_acts_create(m, 64, 1, 64, 0, false, &a, &err), &err);
		CHECK_OK(gr_model_forward(m, a, &tb, NULL, &err), &err);
		float		train_logit = NAN;
		float		train_act = NAN;

		if (gr_layout_has_item_head(m->layout))
		{
			gr_model_item_logits(m, a, 0, 1);
			train_logit = a->logits[items[t] - 1];
		}

		if (gr_layout_has_action_head(m->layout))
			train_act = a->act_pred[0];

		/* serving path: history 0..t-1, candidates include i_t, requested at i_t's time */
		gr_history h = {.items = hist_items,.actions = hist_acts,.n = t,.times = times,
		.has_now = true,.now = times[t]};
		gr_scores	sc = {.action = act_all,.logit = logit_all,.known = known};

		cands[0] = 1 + (items[t] % V);
		cands[1] = items[t];
		cands[2] = 999;			/* unknown item */
		cands[3] = 1 + ((items[t] + 7) % V);
		CHECK_OK(gr_score(s, &h, cands, C, &sc, &err), &err);
		CHECK(known[1] && !known[2] && isnan(logit_all[2]));
		if (gr_layout_has_item_head(m->layout))
			CHECK_MSG(fabsf(logit_all[1] - train_logit) <= 1e-5f * fmaxf(1.0f, fabsf(train_logit)),
					  "%s/%s t=%d: packed logit %g vs training path %g", m->layout->name,
					  m->arch->name, t,
					  logit_all[1], train_logit);
		else
			CHECK_MSG(isnan(logit_all[1]), "%s: a retrieval logit without an item head",
					  m->layout->name);
		/* a user-level estimate is the same for every candidate, unknown ones included */
		if (gr_layout_has_action_head(m->layout) && !gr_layout_candidate_actions(m->layout))
			for (int c = 0; c < C; c++)
				CHECK_MSG(fabsf(act_all[c] - act_all[1]) <= 1e-6f * fmaxf(1.0f, fabsf(act_all[1])),
						  "%s: user-level action differs between candidates", m->layout->name);
		if (gr_layout_has_action_head(m->layout))
			CHECK_MSG(fabsf(act_all[1] - train_act) <= 1e-5f * fmaxf(1.0f, fabsf(train_act)),
					  "%s/%s t=%d: packed action %g vs training path %g", m->layout->name,
					  m->arch->name, t,
					  act_all[1], train_act);
		/* each candidate alone scores the same as in the pack */
		gr_scores	one = {.action = &act_one,.logit = &logit_one};

		CHECK_OK(gr_score(s, &h, cands + 3, 1, &one, &err), &err);
		CHECK((isnan(logit_one) && isnan(logit_all[3])) ||
			  fabsf(logit_one - logit_all[3]) <= 1e-5f * fmaxf(1.0f, fabsf(logit_one)));
		if (gr_layout_has_action_head(m->layout))
			CHECK(fabsf(act_one - act_all[3]) <= 1e-5f * fmaxf(1.0f, fabsf(act_one)));
		gr_acts_free(a);
		gr_tokens_free(&tb);
	}
	/* retrieval returns the top of the training-path logits, seen items excluded */
	int64_t		rec[5];
	float		rec_s[5];
	int			n_rec;
	gr_history	h = {.items = hist_items,.actions = hist_acts,.n = N};

	if (!gr_layout_has_item_head(m->layout))
	{
		/* no next-item prediction: no retrieval */
		CHECK(gr_recommend(s, &h, 5, true, rec, rec_s, &n_rec, &err) == GR_ERR_INVALID_ARGUMENT &&
			  n_rec == 0);
		gr_session_free(s);
		gr_model_free(m);
		return;
	}
	CHECK_OK(gr_recommend(s, &h, 5, true, rec, rec_s, &n_rec, &err), &err);
	CHECK(n_rec == 5);
	for (int i = 0; i < n_rec; i++)
	{
		for (int j = 0; j < N; j++)
			CHECK(rec[i] != items[j]);
		if (i > 0)
			CHECK(rec_s[i - 1] >= rec_s[i]);
	}
	gr_session_free(s);
	gr_model_free(m);
}

/*
 * Whole-loss gradient check: directional central differences per tensor. The loss is float32,
 * so with eps = 5e-4 its rounding (about 3e-7) puts a floor of about 1e-3 on the numeric
 * derivative; the directional derivatives checked are mostly O(0.1..10), where a missing or
 * mis-scaled gradient path shows far above the 2% tolerance (measured truncation error at
 * this eps stays under 0.5%). The PyTorch parity test checks gradients to 1e-4.
 */
static void
test_loss_gradient(gr_layout_id id, float w_item, float w_action)
{
	enum
	{
	USERS = 4, LEN = 9};
	gr_model   *m = make_model(id, 8, 13);
	gr_train_config tc;
	gr_trainer *tr;
	gr_tokens	tb;
	gr_error	err;
	gr_step_loss sl;
	int32_t		items[USERS][LEN];
	float		acts[USERS][LEN];
	int64_t		times[USERS][LEN];
	size_t		P = m->n_params;
	float	   *theta = malloc(sizeof(float) * P), *grad = malloc(sizeof(float) * P);
	float	   *dir = malloc(sizeof(float) * P), *work = malloc(sizeof(float) * P);

	gr_train_config_default(&tc);
	tc.dropout = 0.0f;
	tc.w_item = w_item;
	tc.w_action = w_action;
	CHECK_OK(gr_trainer_create(m, &tc, 256, USERS, &tr, &err), &err);
	CHECK_OK(gr_tokens_init(&tb, &env, 1, m->cfg.n_buckets, 256, USERS, 256, &err), &err);
	/* a skewed popularity for the sampled losses: item c counted c + 1 times */
	double		cdf[N_ITEMS];

	for (int c = 0; c < N_ITEMS; c++)
		cdf[c] = (c > 0 ? cdf[c - 1] : 0.0) + c + 1;
	tr->popularity.cdf = cdf;
	for (int u = 0; u < USERS; u++)
	{
		make_history(LEN, 100 + u, items[u], acts[u]);
		make_times(LEN, 100 + u, times[u]);
		gr_seq_view seq = {.items = items[u],.actions = acts[u],.n = LEN - u,.n_actions = 1,
		.times = times[u]};
		int			start = GR_MAX(0, seq.n - m->layout->window_len(m->cfg.max_len));

		CHECK_OK(m->layout->add_window(&tb, &seq, start, seq.n, false, &err), &err);
	}
	CHECK_OK(gr_trainer_compute(tr, &tb, 0, &sl, &err), &err);
	gr_model_download_params(m, theta);
	m->ops->download(m->ops->ctx, grad, tr->grads, sizeof(float) * P);

	for (int t = 0; t < m->n_tensors; t++)
	{
		const gr_tensor *ten = &m->tensors[t];
		double		analytic = 0.0, norm = 0.0;
		float		eps = 5e-4f;

		memset(dir, 0, sizeof(float) * P);
		for (size_t i = 0; i < ten->numel; i++)
		{
			float		u = 2.0f * gr_rng_uniform(17, GR_STREAM_TEST, t, i) - 1.0f;

			/* the padding row of the item table is never read */
			if (t == 0 && i < (size_t) m->cfg.d_model)
				u = 0.0f;
			dir[ten->offset + i] = u;
			analytic += (double) u * grad[ten->offset + i];
			norm += (double) u * u;
		}
		/* five-point stencil: truncation error O(eps^4) */
		static const float steps[4] = {2.0f, 1.0f, -1.0f, -2.0f};
		double		loss[4];

		for (int k = 0; k < 4; k++)
		{
			for (size_t i = 0; i < P; i++)
				work[i] = theta[i] + steps[k] * eps * dir[i];
			gr_model_upload_params(m, work);
			CHECK_OK(gr_trainer_compute(tr, &tb, 0, &sl, &err), &err);
			loss[k] = sl.total;
		}
		double		numeric = (-loss[0] + 8.0 * loss[1] - 8.0 * loss[2] + loss[3]) / (12.0 * eps);

		CHECK_MSG(fabs(numeric - analytic) <= 5e-3 * fabs(analytic) + 1e-3,
				  "%s/%s (w_item %g, w_action %g, loss %s/%d/%s) tensor %s: analytic %.6g "
				  "numeric %.6g", m->layout->name, m->arch->name, w_item, w_action,
				  gr_item_loss_name(m->cfg.item_loss), m->cfg.negatives,
				  gr_sampler_name(m->cfg.sampler), ten->name, analytic, numeric);
	}
	gr_model_upload_params(m, theta);
	free(theta);
	free(grad);
	free(dir);
	free(work);
	gr_tokens_free(&tb);
	tr->popularity.cdf = NULL;
	gr_trainer_free(tr);
	gr_model_free(m);
}

/* A trunk whose op the backend lacks is refused at model creation, not called. */
static void
test_missing_op(void)
{
	gr_ops		lacking = *gr_ops_cpu();
	gr_env		e = env;
	gr_model_config cfg;
	gr_model   *m = NULL;
	gr_error	err = {0};

	lacking.hstu_attn_bwd = NULL;
	e.ops = &lacking;
	gr_model_config_default(&cfg, GR_LAYOUT_LAC, N_ITEMS, 1);
	cfg.trunk = GR_TRUNK_HSTU;
	CHECK(gr_model_create(&e, &cfg, NULL, &m, &err) == GR_ERR_DEVICE && m == NULL);
	CHECK_MSG(strstr(err.message, "hstu_attn") != NULL, "message: %s", err.message);
	cfg.trunk = GR_TRUNK_GPT2;
	CHECK_OK(gr_model_create(&e, &cfg, NULL, &m, &err), &err);
	gr_model_free(m);
}

/* The negatives: reproducible from (seed, step), distributed as Q, logq = log(S Q(c)). */
static void
test_negative_sampler(int sampler)
{
	enum
	{
	S = 60000};
	model_loss = (item_loss_cfg) {GR_LOSS_SAMPLED, S, sampler, 1.0f, GR_NEGATIVES_PER_BATCH,
	GR_SIMILARITY_DOT};
	gr_model   *m = make_model(GR_LAYOUT_ITEM, 8, 5);
	gr_acts    *a = NULL;
	gr_error	err;
	double		cdf[N_ITEMS];
	gr_item_popularity pop = {.cdf = cdf};
	gr_pass		p = {.popularity = &pop,.seed = 99,.step = 4};
	int32_t    *cand = malloc(sizeof(int32_t) * S), *again = malloc(sizeof(int32_t) * S);
	float	   *logq = malloc(sizeof(float) * S), *logq2 = malloc(sizeof(float) * S);
	int			count[N_ITEMS] = {0};

	model_loss = full_softmax_loss;
	for (int c = 0; c < N_ITEMS; c++)
		cdf[c] = (c > 0 ? cdf[c - 1] : 0.0) + (c % 3 == 0 ? 0 : c + 1);	/* some never */
	CHECK_OK(gr_acts_create(m, 16, 1, 16, 0, true, &a, &err), &err);
	CHECK(a->neg_cap == S);
	CHECK(gr_item_negatives(m, a, &p, cand, logq) == S);
	CHECK(gr_item_negatives(m, a, &p, again, logq2) == S);
	CHECK(memcmp(cand, again, sizeof(int32_t) * S) == 0);
	p.step = 5;
	gr_item_negatives(m, a, &p, again, logq2);
	CHECK(memcmp(cand, again, sizeof(int32_t) * S) != 0);
	for (int j = 0; j < S; j++)
	{
		CHECK(cand[j] >= 0 && cand[j] < N_ITEMS);
		count[cand[j]]++;
		double		q = sampler == GR_SAMPLER_UNIFORM ? 1.0 / N_ITEMS :
			(cdf[cand[j]] - (cand[j] ? cdf[cand[j] - 1] : 0)) / cdf[N_ITEMS - 1];

		CHECK_CLOSE(logq[j], log(S * q), 1e-5);
	}
	for (int c = 0; c < N_ITEMS; c++)
	{
		double		q = sampler == GR_SAMPLER_UNIFORM ? 1.0 / N_ITEMS :
			(cdf[c] - (c ? cdf[c - 1] : 0)) / cdf[N_ITEMS - 1];
		double		sd = sqrt(S * q * (1 - q));

		/* within 5 standard deviations; never-counted items are never drawn */
		CHECK_MSG(fabs(count[c] - S * q) <= 5 * sd + 1e-9, "%s: item %d drawn %d times, "
				  "expected %.1f", gr_sampler_name(sampler), c, count[c], S * q);
	}
	free(cand), free(again), free(logq), free(logq2);
	gr_acts_free(a);
	gr_model_free(m);
}

/* Per-user negatives: one set of S per sequence of the uploaded batch, in sequence order,
 * the first equal to the batch's set, the others different; the workspace holds them all
 * and a batch of more sequences than negatives x batch allows is refused. */
static void
test_negatives_per_user(void)
{
	enum
	{
	S = 20, SEQS = 3};
	gr_model   *mb, *mu;
	gr_acts    *ab = NULL, *au = NULL;
	gr_tokens	tb;
	gr_error	err;
	gr_pass		p = {.seed = 7,.step = 2};
	int32_t		cb[S], cu[S * SEQS], again[S * SEQS];
	float		qb[S], qu[S * SEQS], q2[S * SEQS];
	gr_trainer *tr = NULL;
	gr_train_config tc;

	model_loss = (item_loss_cfg) {GR_LOSS_SAMPLED, S, GR_SAMPLER_UNIFORM, 1.0f,
	GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT};
	mb = make_model(GR_LAYOUT_ITEM, 8, 5);
	model_loss.negatives_per = GR_NEGATIVES_PER_USER;
	mu = make_model(GR_LAYOUT_ITEM, 8, 5);
	model_loss = full_softmax_loss;
	CHECK_OK(gr_tokens_init(&tb, &env, 1, 4, 16, SEQS, 16, &err), &err);
	for (int s = 0; s < SEQS; s++)
	{
		CHECK_OK(gr_tokens_begin_seq(&tb, &err), &err);
		gr_tokens_add(&tb, 1 + s, 0, false, NULL);
		gr_tokens_end_seq(&tb, 1);
	}
	CHECK_OK(gr_acts_create(mb, 16, SEQS, 16, 0, true, &ab, &err), &err);
	CHECK_OK(gr_acts_create(mu, 16, SEQS, 16, 0, true, &au, &err), &err);
	CHECK(ab->neg_draws == S && au->neg_draws == S * SEQS && au->neg_cap == S);
	ab->tokens = &tb;
	au->tokens = &tb;
	CHECK(gr_item_negatives(mb, ab, &p, cb, qb) == S);
	CHECK(gr_item_negatives(mu, au, &p, cu, qu) == S * SEQS);
	CHECK(gr_item_negatives(mu, au, &p, again, q2) == S * SEQS);
	CHECK(memcmp(cu, again, sizeof(cu)) == 0 && memcmp(qu, q2, sizeof(qu)) == 0);
	CHECK(memcmp(cb, cu, sizeof(cb)) == 0);
	CHECK(memcmp(cu, cu + S, sizeof(cb)) != 0 && memcmp(cu + S, cu + 2 * S, sizeof(cb)) != 0);
	for (int j = 0; j < S * SEQS; j++)
		CHECK(cu[j] >= 0 && cu[j] < N_ITEMS && fabsf(qu[j] - logf((float) S / N_ITEMS)) < 1e-5f);
	/* negatives x batch above GR_MAX_NEGATIVE_DRAWS: refused when the trainer is made */
	gr_train_config_default(&tc);
	CHECK(gr_trainer_create(mu, &tc, 16, GR_MAX_NEGATIVE_DRAWS / S + 1, &tr, &err) ==
		  GR_ERR_INVALID_ARGUMENT && tr == NULL);
	CHECK_MSG(strstr(err.message, "negatives x batch") != NULL, "%s", err.message);
	/* and per user needs the sampled loss */
	gr_model_config c = mu->cfg;

	c.item_loss = GR_LOSS_INFONCE;
	CHECK(gr_model_config_validate(&c, &err) == GR_ERR_INVALID_ARGUMENT);
	gr_acts_free(ab);
	gr_acts_free(au);
	gr_tokens_free(&tb);
	gr_model_free(mb);
	gr_model_free(mu);
}

/* A view over copied parameters scores exactly like the model it was copied from. */
static void
test_model_view(void)
{
	gr_model   *m = make_model(GR_LAYOUT_LAC, 8, 21), *v = NULL;
	gr_session *sm, *sv;
	gr_error	err;
	float	   *copy = malloc(sizeof(float) * m->n_params);
	int64_t		items[5] = {3, 9, 4, 12, 7}, cands[3] = {5, 6, 30};
	double		acts[5] = {0.2, 0.9, 0.4, 0.5, 0.1};
	float		a1[3], a2[3], l1[3], l2[3];
	gr_history	h = {.items = items,.actions = acts,.n = 5};
	gr_scores	s1 = {.action = a1,.logit = l1}, s2 = {.action = a2,.logit = l2};

	gr_model_download_params(m, copy);
	CHECK(gr_model_config_param_count(&m->cfg) == m->n_params);
	CHECK(gr_model_create_view(&env, &m->cfg, m->item_ids, copy, m->n_params + 1, &v, &err) ==
		  GR_ERR_CORRUPT_MODEL);
	CHECK_OK(gr_model_create_view(&env, &m->cfg, m->item_ids, copy, m->n_params, &v, &err), &err);
	CHECK(v->params == copy);
	CHECK_OK(gr_session_create(m, &sm, &err), &err);
	CHECK_OK(gr_session_create(v, &sv, &err), &err);
	CHECK_OK(gr_score(sm, &h, cands, 3, &s1, &err), &err);
	CHECK_OK(gr_score(sv, &h, cands, 3, &s2, &err), &err);
	CHECK(memcmp(a1, a2, sizeof(a1)) == 0 && memcmp(l1, l2, sizeof(l1)) == 0);
	gr_session_free(sm);
	gr_session_free(sv);
	gr_model_free(v);
	gr_model_free(m);
	free(copy);
}

/* The tensor table follows the declarations: aligned, disjoint, bound, named once, and the
 * layout's needs decide which tensors exist and how wide the action head reads. */
static void
test_tensor_table(gr_layout_id id)
{
	gr_model   *m = make_model(id, 8, 3);
	const gr_layout *lay = m->layout;
	size_t		end = 0;
	int			d = m->cfg.d_model;

	CHECK(gr_model_config_param_count(&m->cfg) == m->n_params);
	for (int i = 0; i < m->n_tensors; i++)
	{
		const gr_tensor *t = &m->tensors[i];

		CHECK_MSG(t->offset % 16 == 0 && t->offset >= end, "%s: %s misplaced", lay->name, t->name);
		end = t->offset + t->numel;
		for (int j = 0; j < i; j++)
			CHECK_MSG(strcmp(m->tensors[j].name, t->name) != 0, "%s: %s twice", lay->name,
					  t->name);
		if (t->layer >= 0)
			CHECK(m->w.layer[t->layer][t->slot] == m->params + t->offset);
		CHECK(gr_model_tensor(m, t->name) == t);
	}
	CHECK(end <= m->n_params && m->n_params - end < 16);
	CHECK(m->w.item_emb == m->params + gr_model_tensor(m, "item_emb")->offset);
	CHECK((gr_model_tensor(m, "action_emb") != NULL) == gr_layout_reads_actions(lay));
	CHECK((m->w.act_emb != NULL) == gr_layout_reads_actions(lay));
	const gr_tensor *fc = gr_model_tensor(m, "action_head.fc.weight");

	CHECK((fc != NULL) == gr_layout_has_action_head(lay));
	if (fc)
		CHECK(fc->shape[1] == gr_layout_head_inputs(lay) * d && m->w.head_fc_w != NULL);
	CHECK((gr_model_tensor(m, "action_pool.qk.weight") != NULL) == gr_layout_pools_actions(lay));
	CHECK((m->w.pool_v_w != NULL) == gr_layout_pools_actions(lay));
	CHECK((gr_model_tensor(m, "blocks.1.attn.va.weight") != NULL) ==
		  (lay->action_input == GR_ACTION_INPUT_VALUES));
	CHECK(gr_model_tensor(m, "blocks.1.attn.qkv.weight") != NULL &&
		  gr_model_tensor(m, "blocks.2.ln1.weight") == NULL);
	/* the bias path: an item bias where the row names the item acted on, a user offset where
	 * tokens carry actions; neither without the configuration's action_bias (older files) */
	const gr_tensor *ib = gr_model_tensor(m, "action_head.item_bias.weight");
	const gr_tensor *uw = gr_model_tensor(m, "action_head.user_offset.weight");

	CHECK_MSG((ib != NULL) == gr_layout_candidate_actions(lay), "%s: item bias", lay->name);
	CHECK_MSG((uw != NULL) == (gr_layout_has_action_head(lay) && gr_layout_reads_actions(lay)),
			  "%s: user offset", lay->name);
	if (ib)
		CHECK(ib->shape[0] == m->cfg.n_items + 1 && ib->shape[1] == 1 && m->w.head_item_b);
	if (uw)
		CHECK(uw->shape[0] == 1 && uw->shape[1] == GR_USER_FEATURES && m->w.head_user_w);

	gr_model_config c0 = m->cfg;
	gr_model   *m0 = NULL;
	gr_error	err = {0};

	c0.action_bias = 0;
	CHECK_OK(gr_model_create(&env, &c0, NULL, &m0, &err), &err);
	if (m0)
	{
		CHECK(gr_model_tensor(m0, "action_head.item_bias.weight") == NULL &&
			  gr_model_tensor(m0, "action_head.user_offset.weight") == NULL);
		CHECK(m0->n_params + (ib ? ((ib->numel + 15) & ~(size_t) 15) : 0) +
			  (uw ? ((uw->numel + 15) & ~(size_t) 15) : 0) == m->n_params);
	}
	gr_model_free(m0);
	gr_model_free(m);
}

/*
 * AttnLFA's pooled vector p_n against a plain double loop over the forward pass's h and
 * action stream: per head, softmax over the strictly earlier history keys (a candidate: the
 * whole history), p_1 = the output bias. Two users, the second with candidates.
 */
static void
test_pool_reference(void)
{
	gr_model   *m = make_model(GR_LAYOUT_ATTNLFA, 8, 31);
	int			d = m->cfg.d_model, H = m->cfg.n_head, dh = d / H;
	int32_t		items[7], cands[3] = {4, 9, 17};
	float		acts[7];
	gr_seq_view seq = {.items = items,.actions = acts,.n = 7,.n_actions = 1};
	gr_tokens	tb;
	gr_acts    *a;
	gr_error	err;
	double		worst = 0.0;

	make_history(7, 55, items, acts);
	CHECK_OK(gr_tokens_init(&tb, &env, 1, m->cfg.n_buckets, 64, 2, 64, &err), &err);
	CHECK_OK(m->layout->add_window(&tb, &seq, 0, 7, false, &err), &err);
	seq.n = 5;
	CHECK_OK(m->layout->add_serving(&tb, &seq, 0, cands, 3, &err), &err);
	CHECK_OK(gr_acts_create(m, 64, 2, 64, 0, false, &a, &err), &err);
	CHECK_OK(gr_model_forward(m, a, &tb, NULL, &err), &err);
	const float *Wqk = m->w.pool_qk_w, *Wv = m->w.pool_v_w, *Wo = m->w.pool_proj_w,
			   *bo = m->w.pool_proj_b;

	for (int s = 0; s < tb.n_seq; s++)
	{
		int			b = tb.seq_off[s], T = tb.seq_off[s + 1] - b, Th = tb.n_hist[s];
		double	   *q = calloc((size_t) T * d, sizeof(double)), *k = calloc((size_t) T * d, sizeof(double));
		double	   *v = calloc((size_t) T * d, sizeof(double)), *o = calloc((size_t) T * d, sizeof(double));

		for (int t = 0; t < T; t++)
			for (int i = 0; i < d; i++)
				for (int j = 0; j < d; j++)
				{
					q[t * d + i] += (double) Wqk[i * d + j] * a->h[(size_t) (b + t) * d + j];
					k[t * d + i] += (double) Wqk[(d + i) * d + j] * a->h[(size_t) (b + t) * d + j];
					v[t * d + i] += (double) Wv[i * d + j] * a->astream[(size_t) (b + t) * d + j];
				}
		for (int t = 0; t < T; t++)
			for (int h = 0; h < H; h++)
			{
				int			nk = t < Th ? t : Th;	/* strict: keys j < t of the history */
				double		mx = -INFINITY, z = 0.0, sc[64];

				for (int j = 0; j < nk; j++)
				{
					sc[j] = 0.0;
					for (int i = 0; i < dh; i++)
						sc[j] += q[t * d + h * dh + i] * k[j * d + h * dh + i];
					sc[j] /= sqrt((double) dh);
					mx = fmax(mx, sc[j]);
				}
				for (int j = 0; j < nk; j++)
					z += exp(sc[j] - mx);
				for (int j = 0; j < nk; j++)
					for (int i = 0; i < dh; i++)
						o[t * d + h * dh + i] += exp(sc[j] - mx) / z * v[j * d + h * dh + i];
			}
		for (int t = 0; t < T; t++)
			for (int i = 0; i < d; i++)
			{
				double		p = bo[i];

				for (int j = 0; j < d; j++)
					p += (double) Wo[i * d + j] * o[t * d + j];
				double		got = a->pool_out[(size_t) (b + t) * d + i];

				worst = fmax(worst, fabs(got - p) / fmax(1.0, fabs(p)));
				if (t == 0)
					CHECK(got == bo[i]);
			}
		free(q);
		free(k);
		free(v);
		free(o);
	}
	CHECK_MSG(worst < 1e-5, "pooling differs from the reference by %g", worst);
	gr_acts_free(a);
	gr_tokens_free(&tb);
	gr_model_free(m);
}

/* Run every layout test. */
int
main(void)
{
	gr_env_default(&env);
	test_toy_training_tokens();
	test_toy_serving_tokens();
	test_model_view();
	test_pool_reference();
	test_missing_op();
	/* every layout on every trunk */
	for (model_trunk = 0; model_trunk < GR_TRUNK_COUNT; model_trunk++)
		for (int id = 0; id < GR_LAYOUT_COUNT; id++)
		{
			test_tensor_table(id);
			test_leakage(id, false);
			if (gr_layout_action_stream(gr_layout_by_id(id)))
				test_leakage(id, true);
			test_scoring_consistency(id);
			/* each loss alone, so a path's error cannot hide under the other's gradient */
			if (gr_layout_has_item_head(gr_layout_by_id(id)))
				test_loss_gradient(id, 1.0f, 0.0f);
			if (gr_layout_has_action_head(gr_layout_by_id(id)))
				test_loss_gradient(id, 0.0f, 1.0f);
		}
	model_trunk = GR_TRUNK_GPT2;
	/* the sampled losses through the whole model: every layout's item rows (the item head is
	 * the only part they change); accidental hits occur among 30 items */
	static const item_loss_cfg sampled[] = {
		{GR_LOSS_SAMPLED, 12, GR_SAMPLER_UNIFORM, 1.0f, GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT},
		{GR_LOSS_SAMPLED, 40, GR_SAMPLER_POPULARITY, 0.5f, GR_NEGATIVES_PER_BATCH,
		GR_SIMILARITY_DOT},
		{GR_LOSS_SAMPLED, 9, GR_SAMPLER_UNIFORM, 1.0f, GR_NEGATIVES_PER_USER, GR_SIMILARITY_DOT},
		{GR_LOSS_SAMPLED, 17, GR_SAMPLER_POPULARITY, 0.7f, GR_NEGATIVES_PER_USER, GR_SIMILARITY_DOT},
		{GR_LOSS_INFONCE, 0, GR_SAMPLER_UNIFORM, 0.25f, GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT},
		{GR_LOSS_INFONCE, 7, GR_SAMPLER_UNIFORM, 1.0f, GR_NEGATIVES_PER_BATCH, GR_SIMILARITY_DOT},
		/* cosine logits: the states' normalisation inside the gradient */
		{GR_LOSS_SAMPLED, 12, GR_SAMPLER_UNIFORM, 0.2f, GR_NEGATIVES_PER_USER,
		GR_SIMILARITY_COSINE},
		{GR_LOSS_INFONCE, 0, GR_SAMPLER_UNIFORM, 0.1f, GR_NEGATIVES_PER_BATCH,
		GR_SIMILARITY_COSINE},
	};

	for (int i = 0; i < (int) (sizeof(sampled) / sizeof(sampled[0])); i++)
	{
		model_loss = sampled[i];
		for (int id = 0; id < GR_LAYOUT_COUNT; id++)
			test_loss_gradient(id, 1.0f, 0.0f);
	}
	model_loss = full_softmax_loss;
	test_negative_sampler(GR_SAMPLER_UNIFORM);
	test_negative_sampler(GR_SAMPLER_POPULARITY);
	test_negatives_per_user();
	return unit_finish("test_layouts");
}
