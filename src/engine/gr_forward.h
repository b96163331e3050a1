/*
 * gr_forward.h — the one pass of the model: the activation workspace, gr_model_forward and
 * gr_model_backward (in the spirit of llm.c's gpt2_forward / gpt2_backward), and the head
 * read-outs that serving and evaluation take from a forward pass.
 *
 * gr_model_forward uploads a token batch's metadata, embeds the tokens, runs the trunk of the
 * model's architecture (gr_arch.h) and the final LayerNorm (h), and the action head over every
 * action row (act_pred). Item logits against the whole catalogue are read out in chunks
 * (gr_model_item_logits), since rows x V rarely fits at once. gr_model_backward computes the
 * losses and the gradients of everything: the tied item head's cross-entropy is fused with its
 * gradient (the V-wide logits are made once per chunk), the action losses come from the
 * forward pass's predictions. Training, evaluation and serving call only these; none of them
 * sequences trunk and heads itself.
 */
#ifndef GR_FORWARD_H
#define GR_FORWARD_H

#include "gr_model.h"

#define GR_MAX_LAYER_ACTS 24	/* activation buffers one layer of an architecture may declare */
#define GR_MAX_ARCH_SCRATCH 8	/* backward scratch buffers an architecture may declare */

/* How often each item is a training target, for popularity negatives and the log-Q
 * correction of in-batch negatives (host memory, owned by the caller). */
typedef struct gr_item_popularity
{
	const double *cdf;			/* [V] running sum of counts by column; cdf[V-1] = total */
} gr_item_popularity;

/* The options of one pass; NULL means inference (no dropout). */
typedef struct gr_pass
{
	const gr_item_popularity *popularity;	/* NULL: uniform (sampled and infonce losses) */
	float		dropout;		/* p at the embedding and residual sites */
	uint64_t	seed;			/* dropout masks are keyed by (seed, step, site, element) */
	uint32_t	step;
	float		w_item;			/* loss weights (backward) */
	float		w_action;
	const float *w_task;		/* [K] per action column, times w_action; NULL = all 1 */
} gr_pass;

/* Losses of one training pass. */
typedef struct gr_step_loss
{
	double		item;			/* mean cross-entropy over item targets */
	double		action[GR_MAX_ACTIONS]; /* mean loss per action column */
	double		total;			/* w_item * item + w_action * sum(w_task[k] action[k]) */
	int			n_item_targets;
	int			n_action_targets[GR_MAX_ACTIONS];
} gr_step_loss;

typedef struct gr_acts
{
	const gr_model *model;
	int			cap_tokens;
	int			cap_seq;
	int			cap_rows;		/* item rows and action rows, each */
	int			logit_rows;		/* rows of item logits computed at once */
	int			neg_cap;		/* candidates of the sampled losses (0: full softmax) */
	int			neg_draws;		/* candidates drawn a step: neg_cap, times cap_seq per user */
	int			neg_rows;		/* rows of candidate logits computed at once */
	bool		train;			/* backward buffers allocated */

	float	   *fbuf;			/* one backend buffer for all floats below */
	int32_t    *ibuf;			/* one backend buffer for all indices below */

	/* forward */
	float	   *x0;				/* [N, d] embeddings after dropout */
	float	   *layer[GR_MAX_LAYERS][GR_MAX_LAYER_ACTS];	/* the trunk's, per layer */
	const float *trunk_out;		/* [N, d] the trunk's output (the final LayerNorm's input) */
	float	   *h, *lnf_mean, *lnf_rstd;	/* [N, d] final hidden states */
	float	   *item_h;			/* [rows, d] gathered item-row states */
	float	   *logits;			/* [logit_rows, V] */
	float	   *item_loss;		/* [rows] */
	float	   *astream;		/* [N, d] the action stream A = φ(a) (AttnLFA, AttnMVP) */
	float	   *pool_qkv;		/* [N, 3d] AttnLFA pooling: q | k from h, v from A */
	float	   *pool_att;		/* [N, d] pooled values before the output projection */
	float	   *pool_lse;		/* [N, heads] */
	float	   *pool_out;		/* [N, d] p, the pooled actions */
	float	   *neg_logits;		/* [neg_rows, neg_cap] sampled losses */
	float	   *neg_e, *d_neg_e;	/* [neg_cap, d] candidates' embeddings and gradients */
	float	   *neg_logq;		/* [neg_cap] log-Q corrections */
	float	   *item_pos;		/* [rows] positive logits, then their gradients */
	float	   *item_rnorm;		/* [rows] 1 / |h| of the item rows (cosine similarity) */
	float	   *item_pe;		/* [rows, d] positives' embeddings, then their gradients */
	float	   *act_in;			/* [rows, d] gathered action-row states */
	float	   *act_cpl;		/* [rows, d] the head's second input: coupler item embeddings
								 * (PC) or pooled actions (AttnLFA) */
	float	   *act_fc, *act_g; /* [rows, H] head hidden layer before/after GELU */
	float	   *act_pred;		/* [rows, K] */
	float	   *act_uoff;		/* [rows, 4K] the user-offset features u_r (gr_model.h) */
	float	   *act_grad;		/* [rows, K] */
	float	   *act_loss;		/* [rows, K] */
	/* backward */
	float	   *d_res, *d_res2, *d_tmp;	/* [N, d] residual-stream gradients */
	float	   *scratch[GR_MAX_ARCH_SCRATCH];	/* the trunk's backward scratch */
	float	   *d_item_h;		/* [rows, d] */
	float	   *d_act_in, *d_act_cpl;	/* [rows, d] */
	float	   *d_astream;		/* [N, d] gradient of the action stream */
	float	   *d_pool, *d_pool_att;	/* [N, d] gradients of p and of the pooled values */
	float	   *d_pool_qkv;		/* [N, 3d] */
	float	   *d_act_g;		/* [rows, H] */

	/* backend copies of the batch's metadata */
	float	   *tok_actval;		/* [N, K] action values for the linear term, 0 if none */
	float	   *act_row_target; /* [rows, K] */
	int32_t    *tok_item;		/* [N] dense id or -1 */
	int32_t    *tok_pos;		/* [N] */
	int64_t    *tok_tq, *tok_tk;	/* [N] query and key times (gr_tokens.h), in tok_time */
	int32_t    *tok_time;		/* [4N] the int slot holding tok_tq and tok_tk */
	int32_t    *tok_bucket;		/* [K, N] row of action_emb, or -1 */
	int32_t    *seq_off, *n_hist;
	int32_t    *item_row_tok, *item_row_col;	/* column = dense id - 1, or -1 */
	int32_t    *act_row_tok, *act_row_cpl;	/* coupler dense id or -1 */
	int32_t    *act_row_item;	/* the item acted on (token item or coupler), or -1 */
	int32_t    *neg_cand;		/* [neg_cap] candidate columns, -1 = padding */
	int32_t    *excl_off, *excl;	/* exclusion lists for ranking (evaluation) */
	int32_t    *topk_idx;		/* [rows] top-k results (retrieval) */
	float	   *topk_val;		/* [rows] */
	int			cap_excl;

	/* host staging */
	float	   *h_float;
	int32_t    *h_int;

	/* the uploaded batch */
	int			n_tokens;
	int			n_item_rows;
	int			n_act_rows;
	int			n_item_targets; /* item rows with a target */
	int			n_act_targets[GR_MAX_ACTIONS];	/* present action targets per column */
	gr_attn_seqs seqs;
	const gr_tokens *tokens;
} gr_acts;

/* Bytes gr_acts_create would allocate for a valid configuration (0 if it is not valid). */
size_t		gr_acts_bytes(const gr_model_config *cfg, int cap_tokens, int cap_seq, int cap_rows,
						  int cap_excl, bool train);

/* Allocate a workspace for batches of up to cap_tokens tokens, cap_seq sequences and cap_rows
 * rows of each kind; train adds the backward buffers; cap_excl bounds exclusion lists. */
gr_status	gr_acts_create(const gr_model *model, int cap_tokens, int cap_seq, int cap_rows,
						   int cap_excl, bool train, gr_acts **out, gr_error *err);

/* Free a workspace; NULL is ignored. */
void		gr_acts_free(gr_acts *acts);

/*
 * The forward pass of a token batch: h for every token, the action head's prediction for
 * every action row (acts->act_pred, [rows, K], normalised scale or logits). pass NULL is
 * inference; a training pass applies its dropout.
 */
gr_status	gr_model_forward(const gr_model *model, gr_acts *acts, const gr_tokens *tb,
							 const gr_pass *pass, gr_error *err);

/*
 * The losses of the batch of the last gr_model_forward (same pass) and their gradients,
 * accumulated into grads (which the caller zeroes). Needs a training workspace. Polls the
 * environment's interrupt callback between phases and blocks: GR_ERR_CANCELLED then, with the
 * gradients incomplete.
 */
gr_status	gr_model_backward(const gr_model *model, gr_acts *acts, gr_weights *grads,
							  const gr_pass *pass, gr_step_loss *out, gr_error *err);

/* Candidates of a sampled or in-batch item loss for the uploaded batch, drawn on the host
 * from (pass seed, step): columns into cand and log-Q corrections into logq (each of
 * neg_draws entries); returns how many: S, or S per sequence of the batch in sequence order
 * with negatives_per user. */
int			gr_item_negatives(const gr_model *model, const gr_acts *acts, const gr_pass *pass,
							  int32_t *cand, float *logq);

/* Item logits of item rows [row0, row0 + n) into acts->logits (n <= logit_rows), after a
 * forward pass. */
void		gr_model_item_logits(const gr_model *model, gr_acts *acts, int row0, int n);

/* Retrieval logits <h of item row `row`, E[c]> for n candidates given as host dense ids
 * (<= 0: unknown, NaN out), into host out; n <= cap_rows and n <= cap_excl. */
void		gr_model_candidate_logits(const gr_model *model, gr_acts *acts, int row,
									  const int32_t *dense, int n, float *out);

#endif							/* GR_FORWARD_H */
