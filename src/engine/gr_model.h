/*
 * gr_model.h — the model: configuration, named parameter tensors, and the GPT-2 pre-LN trunk
 * with a tied item head and an action head, run through the ops interface.
 *
 * Parameters live in one contiguous backend buffer described by a table of named tensors
 * (these names are the safetensors names). Gradients and AdamW moments are buffers of the same
 * size and layout. Activations live in one workspace buffer sized from (tokens, rows).
 */
#ifndef GR_MODEL_H
#define GR_MODEL_H

#include "gr_layout.h"
#include "gr_ops.h"

#define GR_TENSOR_NAME_LEN 48
#define GR_MAX_LAYERS 64

typedef struct gr_model_config
{
	int			layout;			/* gr_layout_id */
	int			n_items;		/* V: dense item ids 1..V (0 = padding/unknown) */
	int			d_model;
	int			n_layer;
	int			n_head;
	int			max_len;		/* interactions per training window */
	int			n_actions;		/* K action columns (0 for item-only data) */
	uint8_t		action_binary[GR_MAX_ACTIONS];	/* 1 = binary (BCE), 0 = continuous (MSE) */
	double		action_min[GR_MAX_ACTIONS]; /* raw value mapped to 0 */
	double		action_max[GR_MAX_ACTIONS]; /* raw value mapped to 1 */
	int			n_buckets;		/* input bucket embeddings per action */
	float		emb_scale;		/* s in x = s E[i] + ... */
	int			head_hidden;	/* width of the action head's hidden layer */
} gr_model_config;

/* Fill a configuration with the project defaults for a layout and catalogue. */
void		gr_model_config_default(gr_model_config *cfg, int layout, int n_items, int n_actions);

/* Check a configuration's values and limits. */
gr_status	gr_model_config_validate(const gr_model_config *cfg, gr_error *err);

typedef struct gr_tensor
{
	char		name[GR_TENSOR_NAME_LEN];
	int			ndim;
	int64_t		shape[3];
	size_t		offset;			/* in floats from the start of the parameter buffer */
	size_t		numel;
} gr_tensor;

/* Pointers to every parameter tensor inside one buffer (parameters, gradients, moments). */
typedef struct gr_layer_weights
{
	float	   *ln1_w, *ln1_b;
	float	   *qkv_w, *qkv_b;		/* [3d, d], [3d] */
	float	   *proj_w, *proj_b;	/* [d, d], [d] */
	float	   *ln2_w, *ln2_b;
	float	   *fc_w, *fc_b;		/* [4d, d], [4d] */
	float	   *fcproj_w, *fcproj_b;	/* [d, 4d], [d] */
} gr_layer_weights;

typedef struct gr_weights
{
	float	   *item_emb;		/* [V+1, d], row 0 unused */
	float	   *pos_emb;		/* [P, d] */
	float	   *act_emb;		/* [K, n_buckets + 1, d] (row n_buckets = missing/null) */
	float	   *act_lin;		/* [K, d] */
	gr_layer_weights layer[GR_MAX_LAYERS];
	float	   *lnf_w, *lnf_b;
	float	   *head_fc_w, *head_fc_b;	/* [H, d] or [H, 2d] (coupler), [H] */
	float	   *head_out_w, *head_out_b;	/* [K, H], [K] */
} gr_weights;

typedef struct gr_model
{
	const gr_env *env;
	const gr_ops *ops;
	gr_model_config cfg;
	const gr_layout *layout;
	int			n_positions;
	int			n_tensors;
	gr_tensor  *tensors;
	size_t		n_params;
	float	   *params;			/* backend memory, n_params floats */
	gr_weights	w;				/* bound to params */
	int64_t    *item_ids;		/* host [V+1]: external id of each dense id, ascending */
	bool		borrowed;		/* params and item_ids belong to the caller (a view) */
} gr_model;

/*
 * Create a model with uninitialised parameters. item_ids (V entries, strictly ascending
 * external ids of dense ids 1..V) is copied; it may be NULL (ids 1..V map to themselves).
 */
gr_status	gr_model_create(const gr_env *env, const gr_model_config *cfg,
							const int64_t *item_ids, gr_model **out, gr_error *err);

/*
 * Create a read-only view of a model whose parameters (n_params floats laid out by the tensor
 * table of cfg) and item ids ([V+1], [0] unused) live in caller memory, e.g. a shared memory
 * segment: nothing is copied and gr_model_free leaves them alone. The CPU backend reads them
 * in place; other backends get a private device copy. The caller keeps the memory alive and
 * unchanged while the view exists. expected_params, when non-zero, must equal the size the
 * configuration implies (a guard against a mismatched buffer).
 */
gr_status	gr_model_create_view(const gr_env *env, const gr_model_config *cfg,
								 const int64_t *item_ids, const float *params,
								 size_t expected_params, gr_model **out, gr_error *err);

/* Floats of parameters a configuration implies (0 if the configuration is invalid). */
size_t		gr_model_config_param_count(const gr_model_config *cfg);

/* Free a model and its backend memory; NULL is ignored. */
void		gr_model_free(gr_model *model);

/* Initialise parameters GPT-2 style from a seed (host draw, then upload). */
gr_status	gr_model_init_params(gr_model *model, uint64_t seed, gr_error *err);

/* Point w at the tensors inside buf, a buffer laid out like the parameters. */
void		gr_weights_bind(const gr_model *model, float *buf, gr_weights *w);

/* Find a tensor by name, or NULL. */
const gr_tensor *gr_model_tensor(const gr_model *model, const char *name);

/* Dense id of an external item id (binary search), or 0 when unknown. */
int32_t		gr_model_item_dense(const gr_model *model, int64_t external_id);

/* Map a raw action value of column k to the model's [0, 1] scale (NaN stays NaN). */
float		gr_model_normalise_action(const gr_model *model, int k, double raw);

/* Map a [0, 1] action prediction of column k back to the raw scale. */
double		gr_model_denormalise_action(const gr_model *model, int k, float value);

/* Copy the parameters to a host buffer of n_params floats. */
void		gr_model_download_params(const gr_model *model, float *host);

/* Copy a host buffer of n_params floats into the parameters. */
void		gr_model_upload_params(gr_model *model, const float *host);

#endif							/* GR_MODEL_H */
