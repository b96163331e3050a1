/*
 * gr_leakage.c — the P3 perturbation test (gr_leakage.h). Per user: the base window and two
 * perturbed copies per interaction (its action, its item), each run alone through the model
 * (a batch of one sequence of the same shape, so the GEMM kernels round every unreached
 * prediction exactly as in the base pass: on the CPU an unreached prediction is
 * bit-identical), and every prediction compared with the base.
 */
#include "gr_leakage.h"

#include <math.h>
#include <string.h>

/* Scratch of a check: the token batch, workspace and per-sequence copies of a history. */
typedef struct leak_state
{
	gr_tokens	tb;
	gr_acts    *acts;
	int32_t    *items;			/* [W] one perturbed copy */
	float	   *actions;		/* [W * K] */
	float	   *pred;			/* [copies * rows] item rows: logit of the base target */
	int32_t    *row_src;		/* [2 * rows] target interaction of each row of a copy */
	int32_t    *tgt;			/* [rows] item rows: the unperturbed target item */
	float	   *act_host;		/* [copies * rows * K] action predictions */
	int			ri, ra;			/* item and action rows of one copy */
} leak_state;

/* Perturb a normalised action: far from its value, inside [0, 1]. */
static float
perturb_action(float v, bool binary)
{
	if (isnan(v))
		return 0.5f;
	if (binary)
		return 1.0f - v;
	return v > 0.5f ? v - 0.45f : v + 0.45f;
}

/* Append one window of seq, injecting the leak when asked. */
static gr_status
add_window(const gr_model *m, leak_state *s, const gr_seq_view *seq, int start, int end,
		   bool inject_leak, gr_error *err)
{
	int			K = m->cfg.n_actions;
	int			r0 = s->tb.n_act_rows;

	GR_TRY(m->layout->add_window(&s->tb, seq, start, end, false, err));
	if (!inject_leak || K == 0)
		return GR_OK;
	for (int r = r0; r < s->tb.n_act_rows; r++)
	{
		int			tok = s->tb.act_row_tok[r], src = s->tb.act_row_src[r];

		if (src >= 0 && s->tb.has_action[tok])
			memcpy(s->tb.action + (size_t) tok * K, gr_seq_action(seq, src), sizeof(float) * K);
	}
	return GR_OK;
}

/* Compare sequence seq_no's predictions with the base sequence's (0): rows per sequence
 * are the same, in the same order, for every perturbed copy of a window. */
static void
compare(const gr_model *m, leak_state *s, int seq_no, int j, bool item_perturbed,
		gr_leakage_result *out)
{
	int			K = m->cfg.n_actions;

	for (int r = 0; r < s->ri; r++)
	{
		double		d = fabs((double) s->pred[(size_t) seq_no * s->ri + r] - s->pred[r]);
		int			src = s->row_src[r];

		if (isnan(d))
			continue;			/* an item unknown to the model has no logit */
		if (src > j)
			out->later_change = fmax(out->later_change, d);
		else if (src < j)
			out->future_change = fmax(out->future_change, d);
		else
			out->own_change = fmax(out->own_change, d);
	}
	for (int r = 0; r < s->ra; r++)
		for (int k = 0; k < K; k++)
		{
			size_t		i = (size_t) r * K + k;
			double		d = fabs((double) s->act_host[(size_t) seq_no * s->ra * K + i] -
								 s->act_host[i]);
			int			src = s->row_src[s->ri + r];

			if (src > j)
				out->later_change = fmax(out->later_change, d);
			else if (src < j)
				out->future_change = fmax(out->future_change, d);
			else if (!item_perturbed)	/* an action may read its own item (P2) */
				out->own_change = fmax(out->own_change, d);
		}
}

/* Run one window copy through the model alone and keep its predictions as sequence q. */
static gr_status
predict_copy(const gr_model *m, leak_state *s, const gr_seq_view *pv, const int32_t *base_items,
			 int q, bool inject_leak, gr_error *err)
{
	const gr_ops *ops = m->ops;
	int			K = m->cfg.n_actions;

	gr_tokens_reset(&s->tb);
	GR_TRY(add_window(m, s, pv, 0, pv->n, inject_leak, err));
	GR_TRY(gr_model_forward(m, s->acts, &s->tb, NULL, err));
	if (q == 0)
	{
		s->ri = s->tb.n_item_rows;
		s->ra = gr_layout_has_action_head(m->layout) && K > 0 ? s->tb.n_act_rows : 0;
		for (int r = 0; r < s->ri; r++)
		{
			s->row_src[r] = s->tb.item_row_src[r];
			s->tgt[r] = base_items[s->tb.item_row_src[r]];
		}
		for (int r = 0; r < s->ra; r++)
			s->row_src[s->ri + r] = s->tb.act_row_src[r];
	}
	if (s->tb.n_item_rows != s->ri || (s->ra > 0 && s->tb.n_act_rows != s->ra))
		return gr_fail(err, GR_ERR_INTERNAL, "a perturbed window changed its rows");
	for (int r = 0; r < s->ri; r++)
		gr_model_candidate_logits(m, s->acts, r, s->tgt + r, 1,
								  s->pred + (size_t) q * s->ri + r);
	if (s->ra > 0)
		ops->download(ops->ctx, s->act_host + (size_t) q * s->ra * K, s->acts->act_pred,
					  sizeof(float) * (size_t) s->ra * K);
	return ops->check(ops->ctx, err);
}

/* Check one user: the base window, then each interaction's action and item perturbed. */
static gr_status
check_user(const gr_model *m, const gr_dataset *ds, leak_state *s, int u, bool inject_leak,
		   gr_leakage_result *out, gr_error *err)
{
	int			K = m->cfg.n_actions, V = m->cfg.n_items;
	gr_seq_view base = gr_dataset_user_seq(ds, u);
	int			end = base.n;
	int			start = GR_MAX(0, end - m->layout->window_len(m->cfg.max_len));
	int			W = end - start;
	gr_seq_view pv = {.items = s->items,.actions = K > 0 ? s->actions : NULL,.n = W,
	.n_actions = K,.times = base.times ? base.times + start : NULL};

	/* copy 0: the base; 1 + 2q: the action of q perturbed; 2 + 2q: the item of q */
	for (int c = 0; c < 1 + 2 * W; c++)
	{
		int			q = (c - 1) / 2;

		memcpy(s->items, base.items + start, sizeof(int32_t) * W);
		if (K > 0)
			memcpy(s->actions, base.actions + (size_t) start * K, sizeof(float) * W * K);
		if (c > 0 && c % 2 == 1)
			for (int k = 0; k < K; k++)
				s->actions[(size_t) q * K + k] =
					perturb_action(s->actions[(size_t) q * K + k], m->cfg.action_binary[k]);
		if (c > 0 && c % 2 == 0)
			s->items[q] = s->items[q] % V + 1;
		GR_TRY(predict_copy(m, s, &pv, base.items + start, c, inject_leak, err));
		if (c > 0)
		{
			compare(m, s, c, q, c % 2 == 0, out);
			out->n_perturbations++;
		}
	}
	out->n_users++;
	return GR_OK;
}

/* Release a check's scratch. */
static void
leak_state_free(const gr_model *m, leak_state *s)
{
	gr_tokens_free(&s->tb);
	gr_acts_free(s->acts);
	gr_free(m->env, s->items);
	gr_free(m->env, s->actions);
	gr_free(m->env, s->pred);
	gr_free(m->env, s->row_src);
	gr_free(m->env, s->tgt);
	gr_free(m->env, s->act_host);
}

/* Run the perturbation test on the first max_users users with two or more interactions. */
gr_status
gr_leakage_check(const gr_model *m, const gr_dataset *ds, int max_users, bool inject_leak,
				 gr_leakage_result *out, gr_error *err)
{
	leak_state	s;
	gr_status	st = GR_OK;
	int			K = m->cfg.n_actions;
	int			W = m->layout->window_len(m->cfg.max_len);
	int			copies = 1 + 2 * W;
	int			cap_tokens = m->n_positions + 1;
	int			cap_rows = 2 * cap_tokens;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	if (max_users < 1)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "users must be positive, got %d", max_users);
	if (ds->n_items != m->cfg.n_items || ds->n_actions != K)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "dataset is not in the model's space");
	if ((st = gr_tokens_init(&s.tb, m->env, K, m->cfg.n_buckets, cap_tokens, 1, cap_rows,
							 err)) != GR_OK ||
		(st = gr_acts_create(m, cap_tokens, 1, cap_rows, 1, false, &s.acts, err)) != GR_OK)
		goto done;
	s.items = gr_alloc(m->env, sizeof(int32_t) * (size_t) W);
	s.actions = gr_alloc(m->env, sizeof(float) * (size_t) W * (K > 0 ? K : 1));
	s.pred = gr_alloc(m->env, sizeof(float) * (size_t) copies * cap_rows);
	s.row_src = gr_alloc(m->env, sizeof(int32_t) * 2 * (size_t) cap_rows);
	s.tgt = gr_alloc(m->env, sizeof(int32_t) * (size_t) cap_rows);
	s.act_host = gr_alloc(m->env, sizeof(float) * (size_t) copies * cap_rows * (K > 0 ? K : 1));
	if (!s.items || !s.actions || !s.pred || !s.row_src || !s.tgt || !s.act_host)
	{
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the leakage check");
		goto done;
	}
	for (int u = 0; u < ds->n_users && out->n_users < max_users; u++)
	{
		if (gr_should_stop(m->env))
		{
			st = gr_fail(err, GR_ERR_CANCELLED, "leakage check cancelled");
			goto done;
		}
		if (gr_dataset_user_len(ds, u) < 2)
			continue;
		if ((st = check_user(m, ds, &s, u, inject_leak, out, err)) != GR_OK)
			goto done;
	}
	if (out->n_users == 0)
		st = gr_fail(err, GR_ERR_NO_DATA, "no user has two interactions to perturb");
done:
	leak_state_free(m, &s);
	return st;
}
