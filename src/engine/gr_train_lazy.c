/*
 * gr_train_lazy.c — the item table's lazy AdamW update (gr_item_update in gr_train.h).
 *
 * With a sampled or in-batch loss a step's item-table gradient is non-zero only on the rows
 * the step reads: its token items (the input embedding), its item targets and candidates (the
 * tied output head) and the PC couplers (the action head's item input). A dense update still
 * zeroes, reads and writes the whole V x d table and both moments every step: at 10^6 items
 * and d 64 that is 1 GB of memory traffic per step, more than the rest of the step.
 *
 * The lazy trainer instead lists those rows after the forward pass (from the host token batch
 * and the negatives gr_item_negatives draws for the step, deterministic in (seed, step)),
 * updates only them (ops->adamw_rows, which also zeroes their gradient rows so that the table
 * is all zero again for the next step) and zeroes and updates every other tensor densely.
 *
 * Semantics (as TensorFlow Addons' LazyAdam and PyTorch's SparseAdam): a listed row gets
 * exactly the dense AdamW update, with the bias corrections of the global step t; an unlisted
 * row keeps its value and its moments, so it does not move on stale momentum and is not
 * decayed (weight decay, 0 by default, applies to a row only in the steps that touch it).
 * A listed row whose gradient happens to be 0 still takes its momentum step, as it would
 * densely. The full softmax never takes this path: every row has a gradient every step.
 *
 * The invariant "the item table's gradient is zero outside the rows of the last compute"
 * holds between steps; a compute not followed by an update (gradient checks) leaves rows
 * pending, and the next compute then zeroes the whole table once.
 */
#include "gr_train_lazy.h"

#include <stdlib.h>
#include <string.h>

struct gr_lazy_rows
{
	int			cap;			/* rows a step can touch */
	int			n;				/* rows of the last compute */
	bool		pending;		/* gradient rows may be non-zero outside rows[0..n) */
	int32_t    *rows;			/* host, ascending, distinct, in 1..V */
	int32_t    *dev_rows;		/* backend copy */
	uint8_t    *mark;			/* host [V + 1], all zero between calls */
	int32_t    *cand;			/* host [negatives] scratch for the sampled negatives */
	float	   *logq;
	size_t		off, len;		/* the item table's floats within the parameters */
};

static const char *const update_names[GR_ITEM_UPDATE_COUNT] = {"auto", "dense", "lazy"};

/* Name of an item-update mode. */
const char *
gr_item_update_name(int mode)
{
	return mode >= 0 && mode < GR_ITEM_UPDATE_COUNT ? update_names[mode] : NULL;
}

/* Mode of a name, or -1. */
int
gr_item_update_by_name(const char *name)
{
	for (int i = 0; name && i < GR_ITEM_UPDATE_COUNT; i++)
		if (strcmp(name, update_names[i]) == 0)
			return i;
	return -1;
}

/* Sampled candidates one step draws: S, or S for each of cap_seq sequences per user. */
static size_t
lazy_draws(const gr_model_config *mc, int cap_seq)
{
	size_t		S = (size_t) GR_MAX(mc->negatives, 1);

	return mc->negatives_per == GR_NEGATIVES_PER_USER ? S * (size_t) cap_seq : S;
}

/* Rows one step can touch: tokens, item rows, action rows and candidates, at most V. */
static size_t
lazy_cap(const gr_model_config *mc, int cap_tokens, int cap_seq)
{
	size_t		c = 3 * (size_t) cap_tokens + (mc->negatives > 0 ? lazy_draws(mc, cap_seq) : 0);

	return GR_MIN(c, (size_t) mc->n_items);
}

/* Whether a configuration trains its item table lazily (see gr_item_update). */
bool
gr_item_update_is_lazy(const gr_model_config *mc, const gr_train_config *tc)
{
	if (mc->item_loss == GR_LOSS_FULL)
		return false;
	return tc->item_update == GR_ITEM_UPDATE_AUTO || tc->item_update == GR_ITEM_UPDATE_LAZY;
}

/* Host and backend bytes of a lazy trainer's row lists (0 when dense). */
size_t
gr_lazy_bytes(const gr_model_config *mc, const gr_train_config *tc, int cap_tokens,
			  int cap_seq)
{
	if (!gr_item_update_is_lazy(mc, tc))
		return 0;
	size_t		cap = lazy_cap(mc, cap_tokens, cap_seq), S = lazy_draws(mc, cap_seq);

	return sizeof(gr_lazy_rows) + 2 * cap * sizeof(int32_t) + ((size_t) mc->n_items + 1) +
		S * (sizeof(int32_t) + sizeof(float));
}

/* Set up the lazy update when the configuration asks for it (tr->lazy stays NULL if not). */
gr_status
gr_lazy_create(gr_trainer *tr, int cap_tokens, int cap_seq, gr_error *err)
{
	const gr_model *m = tr->model;
	const gr_ops *ops = m->ops;
	const gr_env *env = m->env;

	if (tr->cfg.item_update < 0 || tr->cfg.item_update >= GR_ITEM_UPDATE_COUNT)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "item_update must be auto, dense or lazy");
	if (tr->cfg.item_update == GR_ITEM_UPDATE_LAZY && m->cfg.item_loss == GR_LOSS_FULL)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "item_update lazy needs loss sampled or infonce: the full softmax has "
					   "a gradient on every item every step");
	if (!gr_item_update_is_lazy(&m->cfg, &tr->cfg))
		return GR_OK;

	gr_lazy_rows *z = gr_calloc(env, 1, sizeof(gr_lazy_rows));
	size_t		S = lazy_draws(&m->cfg, cap_seq);

	if (z == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the lazy item update");
	tr->lazy = z;
	z->cap = (int) lazy_cap(&m->cfg, cap_tokens, cap_seq);
	z->rows = gr_alloc(env, sizeof(int32_t) * (size_t) z->cap);
	z->dev_rows = ops->alloc(ops->ctx, sizeof(int32_t) * (size_t) z->cap);
	z->mark = gr_calloc(env, (size_t) m->cfg.n_items + 1, 1);
	z->cand = gr_alloc(env, sizeof(int32_t) * S);
	z->logq = gr_alloc(env, sizeof(float) * S);
	if (!z->rows || !z->dev_rows || !z->mark || !z->cand || !z->logq)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for the lazy item update");
	z->off = (size_t) (m->w.item_emb - m->params);
	z->len = ((size_t) m->cfg.n_items + 1) * (size_t) m->cfg.d_model;
	z->pending = true;			/* the fresh gradient buffer is not zeroed yet */
	return GR_OK;
}

/* Free the lazy update's buffers. */
void
gr_lazy_free(gr_trainer *tr)
{
	gr_lazy_rows *z = tr->lazy;
	const gr_ops *ops = tr->model->ops;
	const gr_env *env = tr->model->env;

	if (z == NULL)
		return;
	if (z->dev_rows)
		ops->free(ops->ctx, z->dev_rows);
	gr_free(env, z->rows);
	gr_free(env, z->mark);
	gr_free(env, z->cand);
	gr_free(env, z->logq);
	gr_free(env, z);
	tr->lazy = NULL;
}

/* Zero the gradients for a new step: all of them, or all but the item table's zero rows. */
void
gr_lazy_zero_grads(gr_trainer *tr)
{
	const gr_model *m = tr->model;
	const gr_ops *ops = m->ops;
	gr_lazy_rows *z = tr->lazy;

	if (z == NULL || z->pending)
	{
		ops->zero(ops->ctx, tr->grads, m->n_params * sizeof(float));
		if (z)
			z->pending = false;
		return;
	}
	ops->zero(ops->ctx, tr->grads, z->off * sizeof(float));
	ops->zero(ops->ctx, tr->grads + z->off + z->len,
			  (m->n_params - z->off - z->len) * sizeof(float));
}

/* Mark dense id it (1..V) as touched. */
static inline void
touch(gr_lazy_rows *z, int V, int32_t it)
{
	if (it > 0 && it <= V && !z->mark[it])
	{
		z->mark[it] = 1;
		z->rows[z->n++] = it;
	}
}

/* Order int32 ascending (for qsort). */
static int
cmp_i32(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a, y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

/* List the rows of the item table the step of the uploaded batch tb touches (after the
 * forward pass, before the backward pass writes them). */
gr_status
gr_lazy_collect(gr_trainer *tr, const gr_tokens *tb, const gr_pass *pass, gr_error *err)
{
	const gr_model *m = tr->model;
	const gr_ops *ops = m->ops;
	gr_lazy_rows *z = tr->lazy;
	int			V = m->cfg.n_items;

	if (z == NULL)
		return GR_OK;
	z->pending = true;
	z->n = 0;
	if ((size_t) tb->n_tokens + tb->n_item_rows + tb->n_act_rows +
		(m->cfg.negatives > 0 ? lazy_draws(&m->cfg, tb->n_seq) : 0) > (size_t) z->cap &&
		z->cap < V)
		return gr_fail(err, GR_ERR_INTERNAL, "batch exceeds the lazy update's capacity");
	for (int t = 0; t < tb->n_tokens; t++)
		touch(z, V, tb->item[t]);
	for (int r = 0; r < tb->n_item_rows; r++)
		touch(z, V, tb->item_row_target[r]);
	for (int r = 0; r < tb->n_act_rows; r++)
		touch(z, V, tb->act_row_coupler[r]);
	/* in-batch candidates are targets of the batch's rows, already listed */
	if (m->cfg.item_loss == GR_LOSS_SAMPLED && tr->acts->neg_cap > 0)
	{
		int			S = gr_item_negatives(m, tr->acts, pass, z->cand, z->logq);

		for (int j = 0; j < S; j++)
			if (z->cand[j] >= 0)
				touch(z, V, z->cand[j] + 1);
	}
	for (int i = 0; i < z->n; i++)
		z->mark[z->rows[i]] = 0;
	qsort(z->rows, (size_t) z->n, sizeof(int32_t), cmp_i32);
	ops->upload(ops->ctx, z->dev_rows, z->rows, sizeof(int32_t) * (size_t) z->n);
	return GR_OK;
}

/* One AdamW step: dense outside the item table, lazy on its touched rows. */
void
gr_lazy_adamw(gr_trainer *tr, float lr)
{
	const gr_model *m = tr->model;
	const gr_ops *ops = m->ops;
	const gr_train_config *c = &tr->cfg;
	gr_lazy_rows *z = tr->lazy;
	size_t		hi = z->off + z->len;

	ops->adamw(ops->ctx, m->params, tr->grads, tr->adam_m, tr->adam_v, z->off, lr, c->beta1,
			   c->beta2, c->eps, c->weight_decay, tr->t);
	ops->adamw(ops->ctx, m->params + hi, tr->grads + hi, tr->adam_m + hi, tr->adam_v + hi,
			   m->n_params - hi, lr, c->beta1, c->beta2, c->eps, c->weight_decay, tr->t);
	ops->adamw_rows(ops->ctx, m->params + z->off, tr->grads + z->off, tr->adam_m + z->off,
					tr->adam_v + z->off, z->dev_rows, z->n, m->cfg.d_model, lr, c->beta1,
					c->beta2, c->eps, c->weight_decay, tr->t);
	/* the cosine similarity keeps item rows unit: the updated ones go back to the sphere */
	if (m->cfg.similarity == GR_SIMILARITY_COSINE)
		ops->l2norm_rows(ops->ctx, m->params + z->off, NULL, z->dev_rows, z->n,
						 m->cfg.d_model);
	z->pending = false;
}

/* The touched rows of the last compute (see gr_train.h). */
const int32_t *
gr_trainer_touched_rows(const gr_trainer *tr, int *n_rows)
{
	*n_rows = tr->lazy ? tr->lazy->n : 0;
	return tr->lazy ? tr->lazy->rows : NULL;
}
