/*
 * gr_tokens.h — the per-token metadata a layout produces (LAYOUTS.md §4.0b), on the host.
 *
 * A batch is a list of packed sequences. Each token carries an item (dense id, 0 = none), a
 * learned-position id and an optional action slot (K values, NaN = missing; a slot with all
 * values missing is the learned "null action"). Supervision and read-out are lists of rows:
 * an item row reads the hidden state of one token with the tied item head (target: a dense
 * item id, or 0 for a pure read-out such as a retrieval query); an action row reads one
 * token with the action head, optionally coupled with an item embedding (PC), against K
 * targets. The trunk, heads and losses only ever see this structure.
 */
#ifndef GR_TOKENS_H
#define GR_TOKENS_H

#include "gr_common.h"

#include <math.h>

#define GR_MAX_ACTIONS 8

typedef struct gr_tokens
{
	const gr_env *env;
	int			n_actions;		/* K */
	int			n_buckets;		/* bucket rows per action (plus one "missing" row) */

	int			cap_tokens;
	int			cap_seq;
	int			cap_rows;

	int			n_tokens;
	int			n_seq;
	int			max_seq_tokens; /* longest sequence so far */

	/* per token */
	int32_t    *item;
	int32_t    *pos;
	uint8_t    *has_action;		/* 1 if the token has an action slot */
	float	   *action;			/* [tokens * K] normalised values, NaN = missing */
	/* the token's times, read by time-aware trunks (HSTU's time bias): the time it is seen at
	 * as a key (its interaction's), and the time it queries at (the time of what it predicts;
	 * gr_tokens_set_time, both 0 until set) */
	int64_t    *key_time;
	int64_t    *query_time;

	/* per sequence */
	int32_t    *seq_off;		/* [seqs + 1] */
	int32_t    *n_hist;			/* [seqs] history tokens; the rest are candidates */

	/* item rows: tied item head */
	int			n_item_rows;
	int32_t    *item_row_tok;
	int32_t    *item_row_target;	/* dense id, 0 = read-out only */
	int32_t    *item_row_src;	/* index in the history of the target interaction, -1 none */

	/* action rows: action head */
	int			n_act_rows;
	int32_t    *act_row_tok;
	int32_t    *act_row_coupler;	/* dense id fed to the PC coupler, 0 = none */
	float	   *act_row_target; /* [rows * K], NaN = no target */
	int32_t    *act_row_src;	/* index in the history of the target interaction, -1 none */
} gr_tokens;

/* Bytes a token batch of these capacities takes (gr_tokens_init's allocations). */
size_t		gr_tokens_bytes(int n_actions, int cap_tokens, int cap_seq, int cap_rows);

/* Allocate a token batch for up to cap_tokens tokens, cap_seq sequences and cap_rows rows
 * of each kind. */
gr_status	gr_tokens_init(gr_tokens *tb, const gr_env *env, int n_actions, int n_buckets,
						   int cap_tokens, int cap_seq, int cap_rows, gr_error *err);

/* Free a token batch's arrays. */
void		gr_tokens_free(gr_tokens *tb);

/* Empty the batch, keeping its capacity. */
void		gr_tokens_reset(gr_tokens *tb);

/* How full a batch is, to go back to (gr_tokens_rewind). */
typedef struct gr_tokens_mark
{
	int			n_tokens;
	int			n_seq;
	int			max_seq_tokens;
	int			n_item_rows;
	int			n_act_rows;
} gr_tokens_mark;

/* The batch's current fill. */
gr_tokens_mark gr_tokens_get_mark(const gr_tokens *tb);

/* Drop everything appended since mark (e.g. a sequence a layout refused half-way). */
void		gr_tokens_rewind(gr_tokens *tb, const gr_tokens_mark *mark);

/* Start a new sequence; fails when the sequence capacity is exhausted. */
gr_status	gr_tokens_begin_seq(gr_tokens *tb, gr_error *err);

/* Close the current sequence, marking its first n_hist tokens as history. */
void		gr_tokens_end_seq(gr_tokens *tb, int n_hist);

/* Tokens in the current (open) sequence. */
int			gr_tokens_seq_len(const gr_tokens *tb);

/*
 * Append a token. action NULL with has_action false: no action slot; action NULL with
 * has_action true: the null action (all missing); otherwise K values. Returns the token's
 * index in the batch, or -1 when the capacity is exhausted.
 */
int			gr_tokens_add(gr_tokens *tb, int32_t item, int32_t pos, bool has_action,
						  const float *action);

/* Set the times token tok is a key and a query at (the layout's choice, LAYOUTS.md §2.3). */
void		gr_tokens_set_time(gr_tokens *tb, int tok, int64_t key_time, int64_t query_time);

/* Append an item row reading token tok with the given target item, which is interaction src
 * of the history (-1 for a read-out); false when full. */
bool		gr_tokens_add_item_row(gr_tokens *tb, int tok, int32_t target, int src);

/* Append an action row reading token tok (coupled with item coupler, 0 = none) against the K
 * targets of interaction src (target NULL and src -1 for a read-out); false when full. */
bool		gr_tokens_add_act_row(gr_tokens *tb, int tok, int32_t coupler, const float *target,
								  int src);

/* Bucket of a normalised action value for the input encoder; n_buckets for missing. */
static inline int
gr_action_bucket(float v, int n_buckets)
{
	if (isnan(v))
		return n_buckets;
	int			b = (int) (v * (float) n_buckets);

	return b < 0 ? 0 : (b >= n_buckets ? n_buckets - 1 : b);
}

#endif							/* GR_TOKENS_H */
