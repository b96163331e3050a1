/*
 * gr_arch.h — architectures: what the model computes between the embeddings x0 and the input
 * of the final LayerNorm, and the shared block helpers they are written with.
 *
 * An architecture is one file (gr_arch_gpt2.c, gr_arch_hstu.c) with a straight-line forward
 * and backward over the helpers below (norm, attention with a mask mode, MLP, residual
 * dropout), like llama.cpp's src/models/ files built from build_norm / build_attn /
 * build_ffn. It declares its per-layer tensors once (an X-macro list: names, shapes, init
 * rules and struct fields) and its activations the same way, and GR_ARCH_LISTS expands the
 * lists; gr_model.c and gr_forward.c lay out the parameter and workspace buffers from those
 * declarations and never name a trunk tensor themselves.
 *
 * To add an architecture: write gr_arch_NAME.c with its lists, forward and backward, add its
 * id to gr_trunk_id (gr_model.h) and its entry to the table in gr_arch.c.
 */
#ifndef GR_ARCH_H
#define GR_ARCH_H

#include "gr_forward.h"

/* A workspace being laid out: the float buffers to carve out of one backend allocation. */
typedef struct gr_act_slot
{
	float	  **ptr;
	size_t		n;
} gr_act_slot;

typedef struct gr_act_table
{
	gr_act_slot *slots;
	int			cap;
	int			n;
	bool		overflow;
} gr_act_table;

/* Reserve n floats for *ptr in the workspace being laid out. */
void		gr_act_declare(gr_act_table *t, float **ptr, size_t n);

typedef struct gr_arch
{
	const char *name;			/* as in configurations and the CLI */
	gr_trunk_id id;
	bool		reads_time;		/* the tokens' key/query times reach the computation */
	/* The name of an op this architecture needs that the backend lacks, or NULL. */
	const char *(*missing_op) (const gr_ops *ops);

	/* Declare layer l's tensors (gr_tensor_declare with layer = l). */
	void		(*declare_tensors) (gr_tensor_table *t, int l, const gr_dims *z,
									const gr_layout *lay);
	/* Declare the per-layer activations (into a->layer) and, for training, the backward
	 * scratch (into a->scratch), with z->N tokens. */
	void		(*declare_acts) (gr_act_table *t, gr_acts *a, const gr_dims *z,
								 const gr_layout *lay, bool train);
	/* x0 -> the trunk's output (the final LayerNorm's input); returns that buffer. */
	const float *(*forward) (const gr_model *m, gr_acts *a, const gr_pass *p);
	/* The gradient at the trunk's output (dx, clobbered) -> the buffer holding d x0 (one of
	 * a->d_res, a->d_res2); NULL when the interrupt callback asked to stop. */
	float	   *(*backward) (const gr_model *m, gr_acts *a, gr_weights *g, const gr_pass *p,
							 float *dx);
} gr_arch;

/* Architecture by id, or NULL. */
const gr_arch *gr_arch_by_id(int id);

/* Architecture by name ("gpt2"), or NULL. */
const gr_arch *gr_arch_by_name(const char *name);

extern const gr_arch gr_arch_gpt2;
extern const gr_arch gr_arch_hstu;

/* ---- dropout sites: the embeddings, then two per layer ---------------------------------- */

#define GR_SITE_EMBED 0u
#define GR_SITE_LAYER(l, k) (1u + 2u * (uint32_t) (l) + (uint32_t) (k))	/* k = 0, 1 */

/* ---- an architecture's lists, expanded (each gr_arch_*.c uses GR_ARCH_LISTS once) ------- */

/*
 * GR_ARCH_LISTS(TENSORS, ACTS, SCRATCH) turns an architecture's three X-macro lists
 *   TENSORS(X): X(field, name, ndim, d0, d1, d2, init, present)   per-layer parameters
 *   ACTS(X):    X(field, floats, present)                          per-layer activations
 *   SCRATCH(X): X(field, floats, present)                          backward scratch
 * into what the file needs from them: the slot enums (bounds checked at compile time), the
 * structs of named fields layer_w, layer_a and scratch, arch_declare_tensors and
 * arch_declare_acts for its gr_arch entry, and the binders bind_w(weights, l), bind_a(acts, l)
 * and bind_s(acts). Shapes and presence are written in terms of z (const gr_dims *), lay
 * (const gr_layout *) and values (whether the layout's action values join the attention).
 */
#define GR_ARCH_T_SLOT(f, ...) T_##f,
#define GR_ARCH_A_SLOT(f, ...) A_##f,
#define GR_ARCH_S_SLOT(f, ...) S_##f,
#define GR_ARCH_DECLARE_T(f, name, nd, d0, d1, d2, init, present) \
	if (present) gr_tensor_declare(t, l, T_##f, name, nd, d0, d1, d2, init);
#define GR_ARCH_DECLARE_A(f, n, present) \
	if (present) gr_act_declare(t, &a->layer[l][A_##f], (size_t) (n));
#define GR_ARCH_DECLARE_S(f, n, present) \
	if (present) gr_act_declare(t, &a->scratch[S_##f], (size_t) (n));
#define GR_ARCH_BIND_W(f, ...) W.f = w->layer[l][T_##f];
#define GR_ARCH_BIND_A(f, ...) A.f = a->layer[l][A_##f];
#define GR_ARCH_BIND_S(f, ...) S.f = a->scratch[S_##f];

#define GR_ARCH_LISTS(TENSORS, ACTS, SCRATCH) \
	enum { TENSORS(GR_ARCH_T_SLOT) N_LAYER_TENSORS }; \
	enum { ACTS(GR_ARCH_A_SLOT) N_LAYER_ACTS }; \
	enum { SCRATCH(GR_ARCH_S_SLOT) N_SCRATCH }; \
	_Static_assert(N_LAYER_TENSORS <= GR_MAX_LAYER_TENSORS, "layer tensors exceed the slots"); \
	_Static_assert(N_LAYER_ACTS <= GR_MAX_LAYER_ACTS, "layer activations exceed the slots"); \
	_Static_assert(N_SCRATCH <= GR_MAX_ARCH_SCRATCH, "backward scratch exceeds the slots"); \
	typedef struct layer_w { TENSORS(GR_X_FIELD) } layer_w; \
	typedef struct layer_a { ACTS(GR_X_FIELD) } layer_a; \
	typedef struct scratch { SCRATCH(GR_X_FIELD) } scratch; \
	/* Declare layer l's tensors. */ \
	static void \
	arch_declare_tensors(gr_tensor_table *t, int l, const gr_dims *z, const gr_layout *lay) \
	{ \
		(void) lay; \
		TENSORS(GR_ARCH_DECLARE_T) \
	} \
	/* Declare every layer's activations and, for training, the backward scratch. */ \
	static void \
	arch_declare_acts(gr_act_table *t, gr_acts *a, const gr_dims *z, const gr_layout *lay, \
					  bool train) \
	{ \
		bool		values = lay->action_input == GR_ACTION_INPUT_VALUES; \
		\
		(void) values; \
		for (int l = 0; l < z->L; l++) \
		{ \
			ACTS(GR_ARCH_DECLARE_A) \
		} \
		if (train) \
		{ \
			SCRATCH(GR_ARCH_DECLARE_S) \
		} \
	} \
	/* Layer l's tensors of a weights buffer, by field. */ \
	static layer_w \
	bind_w(const gr_weights *w, int l) \
	{ \
		layer_w		W; \
		\
		TENSORS(GR_ARCH_BIND_W) \
		return W; \
	} \
	/* Layer l's activations, by field. */ \
	static layer_a \
	bind_a(const gr_acts *a, int l) \
	{ \
		layer_a		A; \
		\
		ACTS(GR_ARCH_BIND_A) \
		return A; \
	} \
	/* The backward scratch, by field. */ \
	static scratch \
	bind_s(const gr_acts *a) \
	{ \
		scratch		S; \
		\
		SCRATCH(GR_ARCH_BIND_S) \
		return S; \
	}

/* ---- block helpers (gr_blocks.c) -------------------------------------------------------- */

/* Y[n, out] = X[n, in] W^T + b. */
void		gr_linear_forward(const gr_ops *ops, float *y, const float *x, const float *w,
							  const float *b, int n, int in, int out);

/* dX[n, in] (= or +=) dY W (dx may be NULL); dW += dY^T X; db += colsum dY. */
void		gr_linear_backward(const gr_ops *ops, float *dx, float *dw, float *db,
							   const float *dy, const float *x, const float *w, int n, int in,
							   int out, bool accumulate_dx);

/* LayerNorm over rows with gain w and shift b; mean and rstd are saved. */
void		gr_norm_forward(const gr_ops *ops, float *out, float *mean, float *rstd,
							const float *x, const float *w, const float *b, int n, int d);

/* dx += LN'(dy); dw, db accumulate. */
void		gr_norm_backward(const gr_ops *ops, float *dx, float *dw, float *db, const float *dy,
							 const float *x, const float *w, const float *mean,
							 const float *rstd, int n, int d);

/* Multi-head softmax attention over the batch's packed sequences with a mask mode and an
 * optional second value stream v2 read at the strict keys (gr_ops.h). */
void		gr_attention_forward(const gr_model *m, gr_acts *a, gr_attn_mask mask, float *out,
								 float *lse, const float *qkv, const float *v2);

/* dqkv (and dv2 with v2) overwritten from dout. */
void		gr_attention_backward(const gr_model *m, gr_acts *a, gr_attn_mask mask,
								  float *dqkv, float *dv2, const float *dout, const float *qkv,
								  const float *v2, const float *out, const float *lse);

/* y = GELU(x W1^T + b1) W2^T + b2, keeping the hidden layer before (u) and after (g) GELU. */
void		gr_mlp_forward(const gr_ops *ops, float *y, float *u, float *g, const float *x,
						   const float *w1, const float *b1, const float *w2, const float *b2,
						   int n, int d, int hidden);

/* dx (overwritten) from dy; du is [n, hidden] scratch. */
void		gr_mlp_backward(const gr_ops *ops, float *dx, float *du, float *dw1, float *db1,
							float *dw2, float *db2, const float *dy, const float *x,
							const float *u, const float *g, const float *w1, const float *w2,
							int n, int d, int hidden);

/* y = residual + dropout(y), in place on y. */
void		gr_residual_forward(const gr_ops *ops, float *y, const float *residual, size_t n,
								const gr_pass *p, uint32_t site);

/* out = dropout mask applied to dy (the branch gradient of a residual). */
void		gr_residual_backward(const gr_ops *ops, float *out, const float *dy, size_t n,
								 const gr_pass *p, uint32_t site);

/* ---- AttnLFA's action pooling after the trunk (gr_pool.c) ------------------------------- */

/* p = W_o strict-attn(q = W_q h, k = W_k h, v = W_v A) for every token into a->pool_out. */
void		gr_pool_forward(const gr_model *m, gr_acts *a);

/* From a->d_pool: dh into a->d_res, dA into a->d_astream, the pooling's gradients into g. */
void		gr_pool_backward(const gr_model *m, gr_acts *a, gr_weights *g);

/* ---- heads (gr_heads.c): they read h and the batch's rows ------------------------------ */

/* The action head over every action row into a->act_pred (nothing without a head). */
void		gr_head_action_forward(const gr_model *m, gr_acts *a);

/* The tied item head's cross-entropy over the item rows fused with its gradient: dh into
 * a->d_res, dE into g; returns the summed loss over rows with targets. */
double		gr_head_item_backward(const gr_model *m, gr_acts *a, gr_weights *g,
								  const gr_pass *p, float weight);

/* The action losses of a->act_pred and their gradient: dh into a->d_res, the head's and (the
 * coupler's) item table's into g; column k weighs weight * w_task[k] (w_task NULL: 1);
 * per-column loss sums into col_loss (K entries). */
void		gr_head_action_backward(const gr_model *m, gr_acts *a, gr_weights *g, float weight,
									const float *w_task, double *col_loss);

#endif							/* GR_ARCH_H */
