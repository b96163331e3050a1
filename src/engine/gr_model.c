/*
 * gr_model.c — model configuration, the tensor table built from the declarations (gr_model.h
 * and the architecture's list), binding, parameter init and item lookup.
 */
#include "gr_arch.h"
#include "gr_model.h"
#include "gr_rng.h"

#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Fill cfg with the project defaults. */
void
gr_model_config_default(gr_model_config *cfg, int layout, int n_items, int n_actions)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->layout = layout;
	cfg->n_items = n_items;
	cfg->d_model = 64;
	cfg->n_layer = 2;
	cfg->n_head = 2;
	cfg->max_len = 50;
	cfg->n_actions = n_actions;
	for (int k = 0; k < GR_MAX_ACTIONS; k++)
	{
		cfg->action_min[k] = 0.0;
		cfg->action_max[k] = 1.0;
	}
	cfg->n_buckets = 8;
	cfg->emb_scale = 1.0f;
	cfg->head_hidden = 64;
	cfg->item_loss = GR_LOSS_FULL;
	/* new models get the action head's bias path where they have a head (gr_model.h) */
	cfg->action_bias = 1;
	cfg->negatives = GR_DEFAULT_NEGATIVES;
	cfg->sampler = GR_SAMPLER_UNIFORM;
	cfg->temperature = 1.0f;
}

static const char *const loss_names[GR_LOSS_COUNT] = {"full", "sampled", "infonce"};
static const char *const sampler_names[GR_SAMPLER_COUNT] = {"uniform", "popularity"};
static const char *const negatives_per_names[GR_NEGATIVES_PER_COUNT] = {"batch", "user"};
static const char *const similarity_names[GR_SIMILARITY_COUNT] = {"dot", "cosine"};

/* Name of entry id of a table of n names, or "?" when out of range. */
static const char *
name_of(const char *const *names, int n, int id)
{
	return id >= 0 && id < n ? names[id] : "?";
}

/* Index of name in a table of n names, or -1. */
static int
index_of(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

/* Name of an item loss id. */
const char *
gr_item_loss_name(int loss)
{
	return name_of(loss_names, GR_LOSS_COUNT, loss);
}

/* Item loss id of a name, or -1. */
int
gr_item_loss_by_name(const char *name)
{
	return index_of(loss_names, GR_LOSS_COUNT, name);
}

/* Name of a sampler id. */
const char *
gr_sampler_name(int sampler)
{
	return name_of(sampler_names, GR_SAMPLER_COUNT, sampler);
}

/* Sampler id of a name, or -1. */
int
gr_sampler_by_name(const char *name)
{
	return index_of(sampler_names, GR_SAMPLER_COUNT, name);
}

/* Name of a negatives_per id. */
const char *
gr_negatives_per_name(int per)
{
	return name_of(negatives_per_names, GR_NEGATIVES_PER_COUNT, per);
}

/* negatives_per id of a name, or -1. */
int
gr_negatives_per_by_name(const char *name)
{
	return index_of(negatives_per_names, GR_NEGATIVES_PER_COUNT, name);
}

/* Name of a similarity id. */
const char *
gr_similarity_name(int similarity)
{
	return name_of(similarity_names, GR_SIMILARITY_COUNT, similarity);
}

/* Similarity id of a name, or -1. */
int
gr_similarity_by_name(const char *name)
{
	return index_of(similarity_names, GR_SIMILARITY_COUNT, name);
}

/* Check every field against its limits. */
gr_status
gr_model_config_validate(const gr_model_config *cfg, gr_error *err)
{
	const gr_layout *layout = gr_layout_by_id(cfg->layout);

	if (layout == NULL)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown layout id %d", cfg->layout);
	if (gr_arch_by_id(cfg->trunk) == NULL)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown trunk id %d", cfg->trunk);
	if (cfg->n_items < 1 || cfg->n_items > 50000000)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "n_items must be in 1..50000000, got %d",
					   cfg->n_items);
	if (cfg->d_model < 2 || cfg->d_model > 8192)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "d_model must be in 2..8192, got %d",
					   cfg->d_model);
	if (cfg->n_head < 1 || cfg->n_head > 128 || cfg->d_model % cfg->n_head != 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "n_head must be in 1..128 and divide d_model (%d), got %d",
					   cfg->d_model, cfg->n_head);
	if (cfg->n_layer < 1 || cfg->n_layer > GR_MAX_LAYERS)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "n_layer must be in 1..%d, got %d",
					   GR_MAX_LAYERS, cfg->n_layer);
	if (cfg->max_len < 2 || cfg->max_len > 8192)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "max_len must be in 2..8192, got %d",
					   cfg->max_len);
	if (cfg->n_actions < 0 || cfg->n_actions > GR_MAX_ACTIONS)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "at most %d action columns, got %d",
					   GR_MAX_ACTIONS, cfg->n_actions);
	if (gr_layout_needs_actions(layout) && cfg->n_actions < 1)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "layout \"%s\" needs at least one action column", layout->name);
	if (cfg->n_buckets < 1 || cfg->n_buckets > 1024)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "n_buckets must be in 1..1024, got %d",
					   cfg->n_buckets);
	if (!(cfg->emb_scale > 0.0f) || !isfinite(cfg->emb_scale) || cfg->emb_scale > 1e4f)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "emb_scale must be positive and finite");
	if (cfg->head_hidden < 1 || cfg->head_hidden > 65536)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "head_hidden must be in 1..65536, got %d",
					   cfg->head_hidden);
	if (cfg->action_bias != 0 && cfg->action_bias != 1)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "action_bias must be 0 or 1, got %d",
					   cfg->action_bias);
	if (cfg->item_loss < 0 || cfg->item_loss >= GR_LOSS_COUNT)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown item loss id %d", cfg->item_loss);
	if (cfg->negatives < (cfg->item_loss == GR_LOSS_SAMPLED ? 1 : 0) ||
		cfg->negatives > GR_MAX_NEGATIVES)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "negatives must be in %d..%d, got %d",
					   cfg->item_loss == GR_LOSS_SAMPLED ? 1 : 0, GR_MAX_NEGATIVES,
					   cfg->negatives);
	if (cfg->sampler < 0 || cfg->sampler >= GR_SAMPLER_COUNT)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown sampler id %d", cfg->sampler);
	if (cfg->negatives_per < 0 || cfg->negatives_per >= GR_NEGATIVES_PER_COUNT)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown negatives_per id %d",
					   cfg->negatives_per);
	if (cfg->negatives_per != GR_NEGATIVES_PER_BATCH && cfg->item_loss != GR_LOSS_SAMPLED)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "negatives_per \"user\" needs loss sampled (in-batch negatives are the "
					   "batch's own targets)");
	if (!(cfg->temperature >= 1e-3f && cfg->temperature <= 1e3f))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "temperature must be in [0.001, 1000]");
	if (cfg->similarity < 0 || cfg->similarity >= GR_SIMILARITY_COUNT)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown similarity id %d",
					   cfg->similarity);
	if (cfg->similarity == GR_SIMILARITY_COSINE && cfg->item_loss == GR_LOSS_FULL)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "similarity \"cosine\" needs loss sampled or infonce (their logits "
					   "carry the temperature a cosine needs)");
	for (int k = 0; k < cfg->n_actions; k++)
		if (!isfinite(cfg->action_min[k]) || !isfinite(cfg->action_max[k]) ||
			!(cfg->action_max[k] > cfg->action_min[k]) || cfg->action_binary[k] > 1)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "action %d needs finite min < max and kind 0 or 1", k);
	return GR_OK;
}

/* Append one tensor to the table under construction (only count it without an array). */
void
gr_tensor_declare(gr_tensor_table *t, int layer, int slot, const char *name, int ndim,
				  int64_t d0, int64_t d1, int64_t d2, gr_init init)
{
	size_t		numel = (size_t) d0 * (ndim > 1 ? (size_t) d1 : 1) * (ndim > 2 ? (size_t) d2 : 1);

	if (t->tensors != NULL)
	{
		if (t->n >= t->cap || slot < 0 ||
			slot >= (layer < 0 ? GR_N_MODEL_SLOTS : GR_MAX_LAYER_TENSORS))
		{
			t->overflow = true;
			return;
		}
		gr_tensor  *ten = &t->tensors[t->n];

		if (layer >= 0)
			snprintf(ten->name, sizeof(ten->name), "blocks.%d.%s", layer, name);
		else
			snprintf(ten->name, sizeof(ten->name), "%s", name);
		ten->ndim = ndim;
		ten->shape[0] = d0;
		ten->shape[1] = d1;
		ten->shape[2] = d2;
		ten->numel = numel;
		ten->offset = t->n_params;
		ten->init = init;
		ten->layer = layer;
		ten->slot = slot;
	}
	t->n++;
	t->n_params += (numel + 15) & ~(size_t) 15;	/* keep every tensor 64-byte aligned */
	t->n_floats += numel;
}

/* The sizes of a configuration. */
void
gr_model_dims(const gr_model_config *c, gr_dims *z)
{
	const gr_layout *lay = gr_layout_by_id(c->layout);

	memset(z, 0, sizeof(*z));
	z->V = c->n_items;
	z->P = lay->positions(c->max_len);
	z->D = c->d_model;
	z->H = c->n_head;
	z->L = c->n_layer;
	z->K = c->n_actions;
	z->NB = c->n_buckets;
	z->HH = c->head_hidden;
	z->HIN = (int64_t) gr_layout_head_inputs(lay) * c->d_model;
	z->AB = c->action_bias != 0 && c->n_actions > 0;
}

/* Declare every tensor of a (valid) configuration, in file order. */
static void
declare_tensors(gr_tensor_table *t, const gr_model_config *c)
{
	const gr_layout *lay = gr_layout_by_id(c->layout);
	const gr_arch *arch = gr_arch_by_id(c->trunk);
	gr_dims		dims,
			   *z = &dims;

	gr_model_dims(c, z);
#define DECLARE(f, name, nd, d0, d1, d2, init, present) \
	if (present) gr_tensor_declare(t, -1, GR_T_##f, name, nd, d0, d1, d2, init);
	GR_INPUT_TENSORS(DECLARE)
	for (int l = 0; l < c->n_layer; l++)
		arch->declare_tensors(t, l, z, lay);
	GR_OUTPUT_TENSORS(DECLARE)
#undef DECLARE
}

/* Count, then build the tensor table of m->cfg (allocated through the model's env). */
static gr_status
build_tensor_table(gr_model *m, gr_error *err)
{
	gr_tensor_table count = {0};

	declare_tensors(&count, &m->cfg);
	gr_tensor_table t = {.cap = count.n};

	t.tensors = gr_calloc(m->env, (size_t) GR_MAX(count.n, 1), sizeof(gr_tensor));
	if (t.tensors == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a tensor table");
	declare_tensors(&t, &m->cfg);
	m->tensors = t.tensors;
	if (t.overflow || t.n != count.n)
		return gr_fail(err, GR_ERR_INTERNAL, "tensor declarations overflow their slots");
	m->n_tensors = t.n;
	m->n_params = t.n_params;
	return GR_OK;
}

/* Where each model-level tensor's pointer lives in gr_weights. */
static const size_t model_slot_offset[GR_N_MODEL_SLOTS] = {
#define OFFSET(f, ...) [GR_T_##f] = offsetof(gr_weights, f),
	GR_INPUT_TENSORS(OFFSET)
	GR_OUTPUT_TENSORS(OFFSET)
#undef OFFSET
};

/* Bind w to the tensors of a buffer laid out like the parameters. */
void
gr_weights_bind(const gr_model *model, float *buf, gr_weights *w)
{
	memset(w, 0, sizeof(*w));
	for (int i = 0; i < model->n_tensors; i++)
	{
		const gr_tensor *t = &model->tensors[i];
		float	   *p = buf + t->offset;

		if (t->layer >= 0)
			w->layer[t->layer][t->slot] = p;
		else
			*(float **) ((char *) w + model_slot_offset[t->slot]) = p;
	}
}

/* Validate cfg and allocate a model with its tensor table built (no parameters yet);
 * borrowed views keep the caller's item ids, others get their own array. */
static gr_status
model_new(const gr_env *env, const gr_model_config *cfg, bool borrowed, gr_model **out,
		  gr_error *err)
{
	*out = NULL;
	GR_TRY(gr_model_config_validate(cfg, err));
	gr_model   *m = gr_calloc(env, 1, sizeof(gr_model));

	if (m == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a model");
	m->env = env;
	m->ops = env->ops ? env->ops : gr_ops_cpu();
	m->cfg = *cfg;
	m->layout = gr_layout_by_id(cfg->layout);
	m->arch = gr_arch_by_id(cfg->trunk);
	m->n_positions = m->layout->positions(cfg->max_len);
	if (m->arch->missing_op && m->arch->missing_op(m->ops) != NULL)
	{
		gr_status	st = gr_fail(err, GR_ERR_DEVICE, "the %s backend has no %s op, which the %s "
								 "trunk needs", m->ops->name, m->arch->missing_op(m->ops),
								 m->arch->name);

		gr_free(env, m);
		return st;
	}
	m->borrowed = borrowed;
	if (!borrowed)
		m->item_ids = gr_alloc(env, sizeof(int64_t) * ((size_t) cfg->n_items + 1));
	if (!borrowed && m->item_ids == NULL)
	{
		gr_model_free(m);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a model of %d items",
					   cfg->n_items);
	}
	gr_status	st = build_tensor_table(m, err);

	if (st != GR_OK)
	{
		gr_model_free(m);
		return st;
	}
	*out = m;
	return GR_OK;
}

/* Create a model with its tensor table and (uninitialised) parameter buffer. */
gr_status
gr_model_create(const gr_env *env, const gr_model_config *cfg, const int64_t *item_ids,
				gr_model **out, gr_error *err)
{
	gr_model   *m;

	*out = NULL;
	GR_TRY(model_new(env, cfg, false, &m, err));
	m->item_ids[0] = 0;
	for (int i = 1; i <= cfg->n_items; i++)
	{
		m->item_ids[i] = item_ids ? item_ids[i - 1] : i;
		if (i > 1 && m->item_ids[i] <= m->item_ids[i - 1])
		{
			gr_model_free(m);
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "item ids must be strictly ascending (position %d)", i);
		}
	}
	m->params = m->ops->alloc(m->ops->ctx, m->n_params * sizeof(float));
	if (m->params == NULL)
	{
		gr_model_free(m);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for %zu parameters",
					   m->n_params);
	}
	m->ops->zero(m->ops->ctx, m->params, m->n_params * sizeof(float));
	gr_weights_bind(m, m->params, &m->w);
	*out = m;
	return GR_OK;
}

/* Free a model (a view's borrowed buffers are left alone). */
void
gr_model_free(gr_model *model)
{
	if (model == NULL)
		return;
	const gr_env *env = model->env;
	bool		params_borrowed = model->borrowed && model->ops->device == GR_DEVICE_CPU;

	if (model->params && !params_borrowed)
		model->ops->free(model->ops->ctx, model->params);
	gr_free(env, model->tensors);
	if (!model->borrowed)
		gr_free(env, model->item_ids);
	gr_free(env, model);
}

/* Parameter count implied by a configuration (a counting pass over the declarations). */
size_t
gr_model_config_param_count(const gr_model_config *cfg)
{
	gr_tensor_table t = {0};

	if (gr_model_config_validate(cfg, NULL) != GR_OK)
		return 0;
	declare_tensors(&t, cfg);
	return t.n_params;
}

/* Floats the tensors of a configuration hold, without padding. */
size_t
gr_model_config_tensor_floats(const gr_model_config *cfg)
{
	gr_tensor_table t = {0};

	if (gr_model_config_validate(cfg, NULL) != GR_OK)
		return 0;
	declare_tensors(&t, cfg);
	return t.n_floats;
}

/* Create a model that reads its parameters and item ids from caller memory. */
gr_status
gr_model_create_view(const gr_env *env, const gr_model_config *cfg, const int64_t *item_ids,
					 const float *params, size_t expected_params, gr_model **out,
					 gr_error *err)
{
	gr_model   *m;

	*out = NULL;
	GR_TRY(model_new(env, cfg, true, &m, err));
	m->item_ids = (int64_t *) item_ids;
	if (expected_params != 0 && expected_params != m->n_params)
	{
		size_t		needed = m->n_params;

		gr_model_free(m);
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "parameter buffer holds %zu floats, the configuration needs %zu",
					   expected_params, needed);
	}
	if (m->ops->device == GR_DEVICE_CPU)
		m->params = (float *) params;
	else
	{
		m->params = m->ops->alloc(m->ops->ctx, m->n_params * sizeof(float));
		if (m->params == NULL)
		{
			gr_model_free(m);
			return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of device memory for %zu parameters",
						   m->n_params);
		}
		gr_model_upload_params(m, params);
	}
	gr_weights_bind(m, m->params, &m->w);
	*out = m;
	return m->ops->check(m->ops->ctx, err);
}

/* Find a tensor by name. */
const gr_tensor *
gr_model_tensor(const gr_model *model, const char *name)
{
	for (int i = 0; i < model->n_tensors; i++)
		if (strcmp(model->tensors[i].name, name) == 0)
			return &model->tensors[i];
	return NULL;
}

/* Draw a standard normal for (seed, tensor, element) by Box-Muller. */
static float
init_normal(uint64_t seed, int tensor, size_t element)
{
	gr_philox4	r = gr_rng_words(seed, GR_STREAM_INIT + tensor, 0, element);
	double		u1 = ((double) r.v[0] + 1.0) / 4294967296.0;
	double		u2 = (double) r.v[1] / 4294967296.0;

	return (float) (sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* Standard deviation of a tensor's initial values by its rule; 0 for constants. */
static double
init_std(const gr_model *m, gr_init rule, float *constant)
{
	*constant = rule == GR_INIT_ONE ? 1.0f : 0.0f;
	switch (rule)
	{
		case GR_INIT_ZERO:
		case GR_INIT_ONE:
			return 0.0;
		case GR_INIT_NORMAL:
			return 0.02;
		case GR_INIT_POSITION:
			return 0.01;
		case GR_INIT_RESIDUAL:
			return 0.02 / sqrt(2.0 * m->cfg.n_layer);
	}
	return 0.0;
}

/* Initialise all parameters from seed. */
gr_status
gr_model_init_params(gr_model *model, uint64_t seed, gr_error *err)
{
	float	   *host = gr_alloc(model->env, model->n_params * sizeof(float));

	if (host == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory initialising %zu parameters",
					   model->n_params);
	memset(host, 0, model->n_params * sizeof(float));
	for (int t = 0; t < model->n_tensors; t++)
	{
		const gr_tensor *ten = &model->tensors[t];
		float		constant;
		double		std = init_std(model, ten->init, &constant);
		float	   *p = host + ten->offset;

		for (size_t i = 0; i < ten->numel; i++)
			p[i] = std > 0.0 ? (float) (std * init_normal(seed, t, i)) : constant;
	}
	/* the padding row of the item table stays zero */
	memset(host + (model->w.item_emb - model->params), 0, sizeof(float) * model->cfg.d_model);
	gr_model_upload_params(model, host);
	gr_free(model->env, host);
	return model->ops->check(model->ops->ctx, err);
}

/* Binary-search the dense id of an external item id. */
int32_t
gr_model_item_dense(const gr_model *model, int64_t external_id)
{
	int			lo = 1, hi = model->cfg.n_items;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int64_t		v = model->item_ids[mid];

		if (v == external_id)
			return mid;
		if (v < external_id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

/* Normalise a raw action value to [0, 1] with the model's min/max (clamped). */
float
gr_model_normalise_action(const gr_model *model, int k, double raw)
{
	if (isnan(raw))
		return NAN;
	double		lo = model->cfg.action_min[k], hi = model->cfg.action_max[k];
	double		v = (raw - lo) / (hi - lo);

	return (float) (v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v));
}

/* Map a normalised prediction back to the raw scale. */
double
gr_model_denormalise_action(const gr_model *model, int k, float value)
{
	double		lo = model->cfg.action_min[k], hi = model->cfg.action_max[k];

	return lo + (double) value * (hi - lo);
}

/* Copy parameters to the host. */
void
gr_model_download_params(const gr_model *model, float *host)
{
	model->ops->download(model->ops->ctx, host, model->params, model->n_params * sizeof(float));
}

/* Copy parameters from the host. */
void
gr_model_upload_params(gr_model *model, const float *host)
{
	model->ops->upload(model->ops->ctx, model->params, host, model->n_params * sizeof(float));
}
