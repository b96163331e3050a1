/*
 * gr_model.h — the model: configuration, the declared tensor table, parameters and item ids.
 *
 * Parameters live in one contiguous backend buffer described by a table of named tensors
 * (these names are the safetensors names). The table is built from declarations: the tensors
 * around the trunk (GR_INPUT_TENSORS, GR_OUTPUT_TENSORS below) and the trunk's per-layer list
 * in its architecture file (gr_arch_*.c). Each declaration gives the name, shape, init rule
 * and struct field, and whether the layout needs it; offsets, counts, the init, the binding
 * of gr_weights and the file format all follow from that one list. Gradients and AdamW
 * moments are buffers of the same size and layout.
 */
#ifndef GR_MODEL_H
#define GR_MODEL_H

#include "gr_layout.h"
#include "gr_ops.h"

#define GR_TENSOR_NAME_LEN 48
#define GR_MAX_LAYERS 64
#define GR_MAX_LAYER_TENSORS 24		/* tensors one layer of an architecture may declare */

/* The trunk architectures (gr_arch.h); 0 is the default, so configurations without the key
 * mean GPT-2. */
typedef enum gr_trunk_id
{
	GR_TRUNK_GPT2 = 0,			/* pre-LN GPT-2 decoder blocks (LAYOUTS.md §2.2) */
	GR_TRUNK_HSTU = 1,			/* HSTU blocks, DLRM-v3 variant (LAYOUTS.md §2.3) */
	GR_TRUNK_COUNT
} gr_trunk_id;

typedef struct gr_model_config
{
	int			layout;			/* gr_layout_id */
	int			trunk;			/* gr_trunk_id */
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
	/* the item head's training loss (gr_heads.c); evaluation always ranks the catalogue */
	int			item_loss;		/* gr_item_loss */
	int			negatives;		/* sampled: negatives per step; infonce: 0 = every row */
	int			sampler;		/* gr_neg_sampler_kind of the sampled loss */
	int			negatives_per;	/* gr_negatives_per: who shares a draw of the sampled loss */
	float		temperature;	/* logits are divided by it (sampled and infonce) */
	int			similarity;		/* gr_similarity of the item logits (sampled and infonce) */
	/* the action head's bias path (gr_heads.c): 1 for new models; configurations without
	 * the key (files of 0.1.0 and early 0.2.0) mean 0, so older files load unchanged */
	int			action_bias;
} gr_model_config;

/*
 * The action head's bias path adds to the MLP output, per action row r and column k,
 *   b_item[item_r, k] + sum_j W_u[k, j] u_r[j],
 *   u_r = (S_r / (n_r + s), n_r / (n_r + s), l_r, p_r)   ([GR_USER_FEATURES K]),
 * item_r the item whose action is predicted (the row token's item, or the PC coupler);
 * S_r[k] and n_r[k] the sum and count of the present values of column k among the action
 * slots the row's token can attend to (its causal context: strict-causal for the action
 * streams), s = GR_USER_OFFSET_SHRINK; l_r[k] the most recent of those values (0 if none)
 * and p_r[k] 1 if there is one. With W_u = [I, -diag(c), 0, 0] the second term is the user's
 * shrunk mean offset from c over the visible history, the user term of the bias baseline
 * (gr_baseline.c) computed causally from tokens; the last two blocks let it learn how much
 * the latest action carries over (a linear AR(1) term).
 */
#define GR_USER_OFFSET_SHRINK 10.0f
#define GR_USER_FEATURES 4			/* u_r holds 4 values per action column */

/* The item head's loss; 0 is the default, so configurations without the key mean full. */
typedef enum gr_item_loss
{
	GR_LOSS_FULL = 0,			/* softmax over the whole catalogue (LAYOUTS.md §2.6 1) */
	GR_LOSS_SAMPLED = 1,		/* shared sampled negatives with the log-Q correction */
	GR_LOSS_INFONCE = 2,		/* the batch's other targets as negatives (in-batch) */
	GR_LOSS_COUNT
} gr_item_loss;

/* Where sampled negatives come from. */
typedef enum gr_neg_sampler_kind
{
	GR_SAMPLER_UNIFORM = 0,		/* Q(v) = 1 / V */
	GR_SAMPLER_POPULARITY = 1,	/* Q(v) = count(v) / total, training interactions */
	GR_SAMPLER_COUNT
} gr_neg_sampler_kind;

/* Who shares one draw of the sampled loss's negatives; 0 is the default, so configurations
 * without the key mean batch. */
typedef enum gr_negatives_per
{
	GR_NEGATIVES_PER_BATCH = 0,	/* one set of S for every row of the step */
	GR_NEGATIVES_PER_USER = 1,	/* each sequence of the step draws its own S */
	GR_NEGATIVES_PER_COUNT
} gr_negatives_per;

/*
 * The item logits' similarity; 0 is the default, so configurations without the key mean dot.
 * Cosine (as the HSTU repository's in-batch loss): logit = (h / |h|) . e / temperature with
 * every item row e of unit length. Training keeps the rows unit (normalised at the start and
 * after every optimiser step, gr_train.c), so retrieval, evaluation and the IVF index rank
 * by h . e, which orders the items as the cosine does.
 */
typedef enum gr_similarity
{
	GR_SIMILARITY_DOT = 0,
	GR_SIMILARITY_COSINE = 1,
	GR_SIMILARITY_COUNT
} gr_similarity;

#define GR_DEFAULT_NEGATIVES 256
#define GR_MAX_NEGATIVES 65536
#define GR_MAX_NEGATIVE_DRAWS (1 << 24)	/* negatives x sequences of a step, per user */

/* Names of losses and samplers ("full", "sampled", "infonce"; "uniform", "popularity"), and
 * their ids by name (-1 when unknown). */
const char *gr_item_loss_name(int loss);
int			gr_item_loss_by_name(const char *name);
const char *gr_sampler_name(int sampler);
int			gr_sampler_by_name(const char *name);
const char *gr_negatives_per_name(int per);
const char *gr_similarity_name(int similarity);
int			gr_similarity_by_name(const char *name);
int			gr_negatives_per_by_name(const char *name);

/* Fill a configuration with the project defaults for a layout and catalogue. */
void		gr_model_config_default(gr_model_config *cfg, int layout, int n_items, int n_actions);

/* Check a configuration's values and limits. */
gr_status	gr_model_config_validate(const gr_model_config *cfg, gr_error *err);

/* How a tensor is initialised (GPT-2 style). */
typedef enum gr_init
{
	GR_INIT_ZERO = 0,			/* biases and LayerNorm shifts */
	GR_INIT_ONE,				/* LayerNorm gains */
	GR_INIT_NORMAL,				/* N(0, 0.02) */
	GR_INIT_POSITION,			/* N(0, 0.01): learned positions */
	GR_INIT_RESIDUAL,			/* N(0, 0.02 / sqrt(2 L)): projections into the residual stream */
} gr_init;

typedef struct gr_tensor
{
	char		name[GR_TENSOR_NAME_LEN];
	int			ndim;
	int64_t		shape[3];
	size_t		offset;			/* in floats from the start of the parameter buffer */
	size_t		numel;
	gr_init		init;
	int			layer;			/* trunk layer, or -1 for a model-level tensor */
	int			slot;			/* field of gr_weights (model level) or of the layer */
} gr_tensor;

/* The sizes shapes are written in. */
typedef struct gr_dims
{
	int64_t		V;				/* catalogue */
	int64_t		P;				/* learned positions */
	int64_t		D;				/* d_model */
	int64_t		H;				/* heads */
	int64_t		L;				/* layers */
	int64_t		K;				/* action columns */
	int64_t		NB;				/* action buckets */
	int64_t		HH;				/* action head hidden width */
	int64_t		HIN;			/* action head input width */
	int64_t		AB;				/* 1 when the action head has its bias path */
	int64_t		N;				/* tokens of a workspace (activations only) */
	int64_t		R;				/* rows of a workspace (activations only) */
} gr_dims;

/*
 * The model-level tensors, in file order before and after the trunk's layers:
 *   X(field, name, ndim, d0, d1, d2, init, present)
 * with shapes in terms of z (const gr_dims *) and presence in terms of the layout lay.
 * Adding a tensor is one line here (and its use in the code that reads it).
 */
#define GR_INPUT_TENSORS(X) \
	X(item_emb, "item_emb", 2, z->V + 1, z->D, 0, GR_INIT_NORMAL, true) \
	X(pos_emb, "pos_emb", 2, z->P, z->D, 0, GR_INIT_POSITION, true) \
	X(act_emb, "action_emb", 3, z->K, z->NB + 1, z->D, GR_INIT_NORMAL, \
	  gr_layout_reads_actions(lay)) \
	X(act_lin, "action_linear", 2, z->K, z->D, 0, GR_INIT_NORMAL, gr_layout_reads_actions(lay))

#define GR_OUTPUT_TENSORS(X) \
	X(lnf_w, "ln_f.weight", 1, z->D, 0, 0, GR_INIT_ONE, true) \
	X(lnf_b, "ln_f.bias", 1, z->D, 0, 0, GR_INIT_ZERO, true) \
	/* AttnLFA's action pooling after the trunk (gr_pool.c): q | k from h, v from φ(a) */ \
	X(pool_qk_w, "action_pool.qk.weight", 2, 2 * z->D, z->D, 0, GR_INIT_NORMAL, \
	  gr_layout_pools_actions(lay)) \
	X(pool_v_w, "action_pool.v.weight", 2, z->D, z->D, 0, GR_INIT_NORMAL, \
	  gr_layout_pools_actions(lay)) \
	X(pool_proj_w, "action_pool.proj.weight", 2, z->D, z->D, 0, GR_INIT_NORMAL, \
	  gr_layout_pools_actions(lay)) \
	X(pool_proj_b, "action_pool.proj.bias", 1, z->D, 0, 0, GR_INIT_ZERO, \
	  gr_layout_pools_actions(lay)) \
	X(head_fc_w, "action_head.fc.weight", 2, z->HH, z->HIN, 0, GR_INIT_NORMAL, \
	  gr_layout_has_action_head(lay)) \
	X(head_fc_b, "action_head.fc.bias", 1, z->HH, 0, 0, GR_INIT_ZERO, \
	  gr_layout_has_action_head(lay)) \
	X(head_out_w, "action_head.out.weight", 2, z->K, z->HH, 0, GR_INIT_NORMAL, \
	  gr_layout_has_action_head(lay)) \
	X(head_out_b, "action_head.out.bias", 1, z->K, 0, 0, GR_INIT_ZERO, \
	  gr_layout_has_action_head(lay)) \
	/* the bias path (see GR_USER_OFFSET_SHRINK): an item bias where the action row names the \
	 * item acted on (a candidate-specific head), a user offset from the visible actions */ \
	X(head_item_b, "action_head.item_bias.weight", 2, z->V + 1, z->K, 0, GR_INIT_ZERO, \
	  z->AB && gr_layout_candidate_actions(lay)) \
	X(head_user_w, "action_head.user_offset.weight", 2, z->K, GR_USER_FEATURES * z->K, 0, \
	  GR_INIT_ZERO, \
	  z->AB && gr_layout_has_action_head(lay) && gr_layout_reads_actions(lay))

#define GR_X_FIELD(field, ...) float *field;
#define GR_X_SLOT(field, ...) GR_T_##field,

/* Model-level tensor slots (gr_tensor.slot of a tensor with layer -1). */
typedef enum gr_model_slot
{
	GR_INPUT_TENSORS(GR_X_SLOT)
	GR_OUTPUT_TENSORS(GR_X_SLOT)
	GR_N_MODEL_SLOTS
} gr_model_slot;

/* Pointers to every parameter tensor inside one buffer (parameters, gradients, moments);
 * absent tensors are NULL. layer[l] holds the trunk's tensors of layer l in the order of
 * its architecture's declaration (the architecture file binds them to named fields). */
typedef struct gr_weights
{
	GR_INPUT_TENSORS(GR_X_FIELD)
	GR_OUTPUT_TENSORS(GR_X_FIELD)
	float	   *layer[GR_MAX_LAYERS][GR_MAX_LAYER_TENSORS];
} gr_weights;

/* A tensor table under construction (a NULL tensors array only counts). */
typedef struct gr_tensor_table
{
	gr_tensor  *tensors;
	int			cap;
	int			n;
	size_t		n_params;		/* floats, every tensor 64-byte aligned */
	size_t		n_floats;		/* floats without the alignment padding */
	bool		overflow;
} gr_tensor_table;

/* Append one tensor; layer >= 0 prefixes the name with "blocks.<layer>.". */
void		gr_tensor_declare(gr_tensor_table *t, int layer, int slot, const char *name,
							  int ndim, int64_t d0, int64_t d1, int64_t d2, gr_init init);

struct gr_arch;

typedef struct gr_model
{
	const gr_env *env;
	const gr_ops *ops;
	gr_model_config cfg;
	const gr_layout *layout;
	const struct gr_arch *arch;
	int			n_positions;
	int			n_tensors;
	gr_tensor  *tensors;
	size_t		n_params;
	float	   *params;			/* backend memory, n_params floats */
	gr_weights	w;				/* bound to params */
	int64_t    *item_ids;		/* host [V+1]: external id of each dense id, ascending */
	bool		borrowed;		/* params and item_ids belong to the caller (a view) */
} gr_model;

/* The sizes of a configuration (N and R zero). */
void		gr_model_dims(const gr_model_config *cfg, gr_dims *z);

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

/* Floats the configuration's tensors hold, without alignment padding (0 if invalid): the
 * least a serialised model's data section can hold. */
size_t		gr_model_config_tensor_floats(const gr_model_config *cfg);

/* Free a model and its backend memory; NULL is ignored. */
void		gr_model_free(gr_model *model);

/* Initialise parameters by each tensor's init rule from a seed (host draw, then upload). */
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
