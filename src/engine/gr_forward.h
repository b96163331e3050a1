/*
 * gr_forward.h — the activation workspace and the forward/backward passes of the model:
 * embeddings, the GPT-2 pre-LN trunk, the tied item head and the action head.
 *
 * One workspace serves one batch shape (tokens, sequences, rows). gr_pass_upload copies a
 * token batch's metadata to the backend; gr_trunk_forward computes h = LN_f(trunk(x)); the
 * heads read rows of h; gr_trunk_backward consumes dh.
 */
#ifndef GR_FORWARD_H
#define GR_FORWARD_H

#include "gr_model.h"

typedef struct gr_layer_acts
{
	float	   *ln1, *ln1_mean, *ln1_rstd;
	float	   *qkv;			/* [N, 3d] */
	float	   *att;			/* [N, d] attention output before the projection */
	float	   *lse;			/* [N, heads] */
	float	   *res1;			/* [N, d] residual after attention */
	float	   *ln2, *ln2_mean, *ln2_rstd;
	float	   *fc;				/* [N, 4d] before GELU */
	float	   *fcg;			/* [N, 4d] after GELU */
	float	   *out;			/* [N, d] residual after the MLP: the layer's output */
} gr_layer_acts;

typedef struct gr_acts
{
	const gr_model *model;
	int			cap_tokens;
	int			cap_seq;
	int			cap_rows;		/* item rows and action rows, each */
	int			logit_rows;		/* rows of item logits computed at once */
	bool		train;			/* backward buffers allocated */

	float	   *fbuf;			/* one backend buffer for all floats below */
	int32_t    *ibuf;			/* one backend buffer for all indices below */

	/* forward */
	float	   *x0;				/* [N, d] embeddings after dropout */
	gr_layer_acts layer[GR_MAX_LAYERS];
	float	   *h, *lnf_mean, *lnf_rstd;	/* [N, d] final hidden states */
	float	   *item_h;			/* [rows, d] gathered item-row states */
	float	   *logits;			/* [logit_rows, V] */
	float	   *item_loss;		/* [rows] */
	float	   *act_in;			/* [rows, d] gathered action-row states */
	float	   *act_cpl;		/* [rows, d] coupler item embeddings (PC) */
	float	   *act_fc, *act_g; /* [rows, H] head hidden layer before/after GELU */
	float	   *act_pred;		/* [rows, K] */
	float	   *act_grad;		/* [rows, K] */
	float	   *act_loss;		/* [rows, K] */
	/* backward */
	float	   *d_res, *d_res2, *d_tmp;	/* [N, d] */
	float	   *d_qkv;			/* [N, 3d] */
	float	   *d_big;			/* [N, 4d] */
	float	   *d_item_h;		/* [rows, d] */
	float	   *d_act_in, *d_act_cpl;	/* [rows, d] */
	float	   *d_act_g;		/* [rows, H] */

	/* backend copies of the batch's metadata */
	float	   *tok_actval;		/* [N, K] action values for the linear term, 0 if none */
	float	   *act_row_target; /* [rows, K] */
	int32_t    *tok_item;		/* [N] dense id or -1 */
	int32_t    *tok_pos;		/* [N] */
	int32_t    *tok_bucket;		/* [K, N] row of action_emb, or -1 */
	int32_t    *seq_off, *n_hist;
	int32_t    *item_row_tok, *item_row_col;	/* column = dense id - 1, or -1 */
	int32_t    *act_row_tok, *act_row_cpl;	/* coupler dense id or -1 */
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

/* Allocate a workspace for batches of up to cap_tokens tokens, cap_seq sequences and cap_rows
 * rows of each kind; train adds the backward buffers; cap_excl bounds exclusion lists. */
gr_status	gr_acts_create(const gr_model *model, int cap_tokens, int cap_seq, int cap_rows,
						   int cap_excl, bool train, gr_acts **out, gr_error *err);

/* Free a workspace; NULL is ignored. */
void		gr_acts_free(gr_acts *acts);

/* Copy a token batch's metadata into the workspace. */
gr_status	gr_pass_upload(gr_acts *acts, const gr_tokens *tb, gr_error *err);

/* Embeddings and trunk: fills acts->h. dropout p applies at the embedding and residual sites
 * with masks keyed by (seed, step). */
void		gr_trunk_forward(const gr_model *model, gr_acts *acts, float dropout, uint64_t seed,
							 uint32_t step);

/* Backward of trunk and embeddings from dh (acts->d_res holds dh on entry) into grads.
 * Polls the environment's interrupt callback between blocks; returns false (gradients
 * incomplete) when it asked to stop. */
bool		gr_trunk_backward(const gr_model *model, gr_acts *acts, gr_weights *grads,
							  float dropout, uint64_t seed, uint32_t step);

/* Item head over all item rows: loss and gradient (accumulated into d_res and grads).
 * Returns the summed cross-entropy over rows with targets. */
double		gr_item_head_train(const gr_model *model, gr_acts *acts, gr_weights *grads,
							   float weight);

/* Item logits of item rows [row0, row0 + n) into acts->logits (n <= logit_rows). */
void		gr_item_head_logits(const gr_model *model, gr_acts *acts, int row0, int n);

/* Action head forward over all action rows into acts->act_pred. */
void		gr_action_head_forward(const gr_model *model, gr_acts *acts);

/* Action head loss and backward; per-column loss sums are written to col_loss (K entries).
 * weight multiplies the mean loss of every column. */
void		gr_action_head_train(const gr_model *model, gr_acts *acts, gr_weights *grads,
								 float weight, double *col_loss);

#endif							/* GR_FORWARD_H */
