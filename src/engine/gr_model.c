/*
 * gr_model.c — model configuration, the named tensor table, parameter init and item lookup.
 */
#include "gr_model.h"
#include "gr_rng.h"

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
}

/* Check every field against its limits. */
gr_status
gr_model_config_validate(const gr_model_config *cfg, gr_error *err)
{
	const gr_layout *layout = gr_layout_by_id(cfg->layout);

	if (layout == NULL)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown layout id %d", cfg->layout);
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
	if (layout->uses_actions && cfg->n_actions < 1)
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
	for (int k = 0; k < cfg->n_actions; k++)
		if (!isfinite(cfg->action_min[k]) || !isfinite(cfg->action_max[k]) ||
			!(cfg->action_max[k] > cfg->action_min[k]) || cfg->action_binary[k] > 1)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "action %d needs finite min < max and kind 0 or 1", k);
	return GR_OK;
}

/* Append one tensor to the table under construction. */
static void
add_tensor(gr_model *m, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	gr_tensor  *t = &m->tensors[m->n_tensors++];

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->shape[2] = d2;
	t->numel = (size_t) d0 * (ndim > 1 ? (size_t) d1 : 1) * (ndim > 2 ? (size_t) d2 : 1);
	t->offset = m->n_params;
	m->n_params += (t->numel + 15) & ~(size_t) 15;	/* keep every tensor 64-byte aligned */
}

/* Build the tensor table for the configuration. */
static void
build_tensor_table(gr_model *m)
{
	const gr_model_config *c = &m->cfg;
	int			d = c->d_model, K = c->n_actions;
	char		name[GR_TENSOR_NAME_LEN];

	m->n_tensors = 0;
	m->n_params = 0;
	add_tensor(m, "item_emb", 2, c->n_items + 1, d, 0);
	add_tensor(m, "pos_emb", 2, m->n_positions, d, 0);
	if (m->layout->uses_actions)
	{
		add_tensor(m, "action_emb", 3, K, c->n_buckets + 1, d);
		add_tensor(m, "action_linear", 2, K, d, 0);
	}
	for (int l = 0; l < c->n_layer; l++)
	{
#define LAYER_TENSOR(suffix, nd, a, b) \
		snprintf(name, sizeof(name), "blocks.%d.%s", l, suffix); \
		add_tensor(m, name, nd, a, b, 0)
		LAYER_TENSOR("ln1.weight", 1, d, 0);
		LAYER_TENSOR("ln1.bias", 1, d, 0);
		LAYER_TENSOR("attn.qkv.weight", 2, 3 * d, d);
		LAYER_TENSOR("attn.qkv.bias", 1, 3 * d, 0);
		LAYER_TENSOR("attn.proj.weight", 2, d, d);
		LAYER_TENSOR("attn.proj.bias", 1, d, 0);
		LAYER_TENSOR("ln2.weight", 1, d, 0);
		LAYER_TENSOR("ln2.bias", 1, d, 0);
		LAYER_TENSOR("mlp.fc.weight", 2, 4 * d, d);
		LAYER_TENSOR("mlp.fc.bias", 1, 4 * d, 0);
		LAYER_TENSOR("mlp.proj.weight", 2, d, 4 * d);
		LAYER_TENSOR("mlp.proj.bias", 1, d, 0);
#undef LAYER_TENSOR
	}
	add_tensor(m, "ln_f.weight", 1, d, 0, 0);
	add_tensor(m, "ln_f.bias", 1, d, 0, 0);
	if (m->layout->uses_actions)
	{
		int			in = m->layout->coupler ? 2 * d : d;

		add_tensor(m, "action_head.fc.weight", 2, c->head_hidden, in, 0);
		add_tensor(m, "action_head.fc.bias", 1, c->head_hidden, 0, 0);
		add_tensor(m, "action_head.out.weight", 2, K, c->head_hidden, 0);
		add_tensor(m, "action_head.out.bias", 1, K, 0, 0);
	}
}

/* Bind w to the tensors of a buffer laid out like the parameters. */
void
gr_weights_bind(const gr_model *model, float *buf, gr_weights *w)
{
	int			i = 0;

	memset(w, 0, sizeof(*w));
#define NEXT() (buf + model->tensors[i++].offset)
	w->item_emb = NEXT();
	w->pos_emb = NEXT();
	if (model->layout->uses_actions)
	{
		w->act_emb = NEXT();
		w->act_lin = NEXT();
	}
	for (int l = 0; l < model->cfg.n_layer; l++)
	{
		gr_layer_weights *L = &w->layer[l];

		L->ln1_w = NEXT();
		L->ln1_b = NEXT();
		L->qkv_w = NEXT();
		L->qkv_b = NEXT();
		L->proj_w = NEXT();
		L->proj_b = NEXT();
		L->ln2_w = NEXT();
		L->ln2_b = NEXT();
		L->fc_w = NEXT();
		L->fc_b = NEXT();
		L->fcproj_w = NEXT();
		L->fcproj_b = NEXT();
	}
	w->lnf_w = NEXT();
	w->lnf_b = NEXT();
	if (model->layout->uses_actions)
	{
		w->head_fc_w = NEXT();
		w->head_fc_b = NEXT();
		w->head_out_w = NEXT();
		w->head_out_b = NEXT();
	}
#undef NEXT
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
	m->n_positions = m->layout->positions(cfg->max_len);
	m->borrowed = borrowed;
	m->tensors = gr_calloc(env, 12 + 12 * (size_t) cfg->n_layer, sizeof(gr_tensor));
	if (!borrowed)
		m->item_ids = gr_alloc(env, sizeof(int64_t) * ((size_t) cfg->n_items + 1));
	if (m->tensors == NULL || (!borrowed && m->item_ids == NULL))
	{
		gr_model_free(m);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a model of %d items",
					   cfg->n_items);
	}
	build_tensor_table(m);
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

/* Parameter count implied by a configuration, via a throwaway tensor table. */
size_t
gr_model_config_param_count(const gr_model_config *cfg)
{
	gr_model	m;
	gr_tensor	table[12 + 12 * GR_MAX_LAYERS];

	if (gr_model_config_validate(cfg, NULL) != GR_OK)
		return 0;
	memset(&m, 0, sizeof(m));
	m.cfg = *cfg;
	m.layout = gr_layout_by_id(cfg->layout);
	m.n_positions = m.layout->positions(cfg->max_len);
	m.tensors = table;
	build_tensor_table(&m);
	return m.n_params;
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
		gr_model_free(m);
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "parameter buffer holds %zu floats, the configuration needs %zu",
					   expected_params, m->n_params);
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

/* Standard deviation for a tensor's initial values; 0 for constants. */
static double
init_std(const gr_model *m, const char *name, float *constant)
{
	size_t		len = strlen(name);

	*constant = 0.0f;
	bool		is_norm = strstr(name, ".ln1.") || strstr(name, ".ln2.") ||
		strncmp(name, "ln_f.", 5) == 0;

	if (is_norm && strcmp(name + len - 7, ".weight") == 0)
	{
		*constant = 1.0f;
		return 0.0;
	}
	if (len > 5 && strcmp(name + len - 5, ".bias") == 0)
		return 0.0;
	if (strcmp(name, "pos_emb") == 0)
		return 0.01;
	if (strstr(name, "attn.proj.weight") || strstr(name, "mlp.proj.weight"))
		return 0.02 / sqrt(2.0 * m->cfg.n_layer);
	return 0.02;
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
		double		std = init_std(model, ten->name, &constant);
		float	   *p = host + ten->offset;

		for (size_t i = 0; i < ten->numel; i++)
			p[i] = std > 0.0 ? (float) (std * init_normal(seed, t, i)) : constant;
	}
	/* the padding row of the item table stays zero */
	memset(host + model->tensors[0].offset, 0, sizeof(float) * model->cfg.d_model);
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
