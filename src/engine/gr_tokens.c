/*
 * gr_tokens.c — building token batches (see gr_tokens.h).
 */
#include "gr_tokens.h"

#include <math.h>
#include <string.h>

/* Allocate a token batch with the given capacities. */
gr_status
gr_tokens_init(gr_tokens *tb, const gr_env *env, int n_actions, int n_buckets,
			   int cap_tokens, int cap_seq, int cap_rows, gr_error *err)
{
	memset(tb, 0, sizeof(*tb));
	if (n_actions < 0 || n_actions > GR_MAX_ACTIONS || cap_tokens <= 0 || cap_seq <= 0 ||
		cap_rows <= 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "invalid token batch capacity");
	tb->env = env;
	tb->n_actions = n_actions;
	tb->n_buckets = n_buckets;
	tb->cap_tokens = cap_tokens;
	tb->cap_seq = cap_seq;
	tb->cap_rows = cap_rows;
	size_t		k = (size_t) (n_actions > 0 ? n_actions : 1);

	tb->item = gr_alloc(env, sizeof(int32_t) * cap_tokens);
	tb->pos = gr_alloc(env, sizeof(int32_t) * cap_tokens);
	tb->has_action = gr_alloc(env, cap_tokens);
	tb->action = gr_alloc(env, sizeof(float) * cap_tokens * k);
	tb->key_time = gr_alloc(env, sizeof(int64_t) * cap_tokens);
	tb->query_time = gr_alloc(env, sizeof(int64_t) * cap_tokens);
	tb->seq_off = gr_alloc(env, sizeof(int32_t) * (cap_seq + 1));
	tb->n_hist = gr_alloc(env, sizeof(int32_t) * cap_seq);
	tb->item_row_tok = gr_alloc(env, sizeof(int32_t) * cap_rows);
	tb->item_row_target = gr_alloc(env, sizeof(int32_t) * cap_rows);
	tb->item_row_src = gr_alloc(env, sizeof(int32_t) * cap_rows);
	tb->act_row_tok = gr_alloc(env, sizeof(int32_t) * cap_rows);
	tb->act_row_coupler = gr_alloc(env, sizeof(int32_t) * cap_rows);
	tb->act_row_target = gr_alloc(env, sizeof(float) * cap_rows * k);
	tb->act_row_src = gr_alloc(env, sizeof(int32_t) * cap_rows);
	if (!tb->item || !tb->pos || !tb->has_action || !tb->action || !tb->key_time ||
		!tb->query_time || !tb->seq_off ||
		!tb->n_hist || !tb->item_row_tok || !tb->item_row_target || !tb->item_row_src ||
		!tb->act_row_tok || !tb->act_row_coupler || !tb->act_row_target || !tb->act_row_src)
	{
		gr_tokens_free(tb);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for a token batch of %d tokens",
					   cap_tokens);
	}
	gr_tokens_reset(tb);
	return GR_OK;
}

/* Bytes gr_tokens_init allocates for these capacities. */
size_t
gr_tokens_bytes(int n_actions, int cap_tokens, int cap_seq, int cap_rows)
{
	size_t		k = (size_t) (n_actions > 0 ? n_actions : 1);
	size_t		t = (size_t) GR_MAX(cap_tokens, 0),
				s = (size_t) GR_MAX(cap_seq, 0),
				r = (size_t) GR_MAX(cap_rows, 0);

	return t * (2 * sizeof(int32_t) + 2 * sizeof(int64_t) + 1 + sizeof(float) * k) + sizeof(int32_t) * (2 * s + 1) +
		r * (6 * sizeof(int32_t) + sizeof(float) * k);
}

/* Free the batch's arrays. */
void
gr_tokens_free(gr_tokens *tb)
{
	const gr_env *env = tb->env;

	if (env == NULL)
		return;
	gr_free(env, tb->item);
	gr_free(env, tb->pos);
	gr_free(env, tb->has_action);
	gr_free(env, tb->action);
	gr_free(env, tb->key_time);
	gr_free(env, tb->query_time);
	gr_free(env, tb->seq_off);
	gr_free(env, tb->n_hist);
	gr_free(env, tb->item_row_tok);
	gr_free(env, tb->item_row_target);
	gr_free(env, tb->item_row_src);
	gr_free(env, tb->act_row_tok);
	gr_free(env, tb->act_row_coupler);
	gr_free(env, tb->act_row_target);
	gr_free(env, tb->act_row_src);
	memset(tb, 0, sizeof(*tb));
}

/* The batch's current fill. */
gr_tokens_mark
gr_tokens_get_mark(const gr_tokens *tb)
{
	gr_tokens_mark m = {tb->n_tokens, tb->n_seq, tb->max_seq_tokens, tb->n_item_rows,
	tb->n_act_rows};

	return m;
}

/* Go back to an earlier fill. */
void
gr_tokens_rewind(gr_tokens *tb, const gr_tokens_mark *mark)
{
	tb->n_tokens = mark->n_tokens;
	tb->n_seq = mark->n_seq;
	tb->max_seq_tokens = mark->max_seq_tokens;
	tb->n_item_rows = mark->n_item_rows;
	tb->n_act_rows = mark->n_act_rows;
	tb->seq_off[tb->n_seq] = tb->n_tokens;
}

/* Empty the batch. */
void
gr_tokens_reset(gr_tokens *tb)
{
	tb->n_tokens = 0;
	tb->n_seq = 0;
	tb->max_seq_tokens = 0;
	tb->n_item_rows = 0;
	tb->n_act_rows = 0;
	tb->seq_off[0] = 0;
}

/* Open a new sequence at the current end of the batch. */
gr_status
gr_tokens_begin_seq(gr_tokens *tb, gr_error *err)
{
	if (tb->n_seq >= tb->cap_seq)
		return gr_fail(err, GR_ERR_INTERNAL, "token batch holds at most %d sequences",
					   tb->cap_seq);
	tb->seq_off[tb->n_seq] = tb->n_tokens;
	return GR_OK;
}

/* Tokens appended since gr_tokens_begin_seq. */
int
gr_tokens_seq_len(const gr_tokens *tb)
{
	return tb->n_tokens - tb->seq_off[tb->n_seq];
}

/* Close the open sequence with n_hist history tokens. */
void
gr_tokens_end_seq(gr_tokens *tb, int n_hist)
{
	int			len = gr_tokens_seq_len(tb);

	tb->n_hist[tb->n_seq] = n_hist;
	tb->n_seq++;
	tb->seq_off[tb->n_seq] = tb->n_tokens;
	if (len > tb->max_seq_tokens)
		tb->max_seq_tokens = len;
}

/* Append one token to the open sequence. */
int
gr_tokens_add(gr_tokens *tb, int32_t item, int32_t pos, bool has_action, const float *action)
{
	if (tb->n_tokens >= tb->cap_tokens)
		return -1;
	int			t = tb->n_tokens++;
	int			K = tb->n_actions;

	tb->item[t] = item;
	tb->pos[t] = pos;
	tb->key_time[t] = 0;
	tb->query_time[t] = 0;
	tb->has_action[t] = has_action && K > 0;
	for (int k = 0; k < K; k++)
		tb->action[(size_t) t * K + k] = (has_action && action) ? action[k] : NAN;
	return t;
}

/* Set the times token tok is a key and a query at. */
void
gr_tokens_set_time(gr_tokens *tb, int tok, int64_t key_time, int64_t query_time)
{
	if (tok < 0 || tok >= tb->n_tokens)
		return;
	tb->key_time[tok] = key_time;
	tb->query_time[tok] = query_time;
}

/* Append an item row. */
bool
gr_tokens_add_item_row(gr_tokens *tb, int tok, int32_t target, int src)
{
	if (tb->n_item_rows >= tb->cap_rows || tok < 0)
		return false;
	int			r = tb->n_item_rows++;

	tb->item_row_tok[r] = tok;
	tb->item_row_target[r] = target;
	tb->item_row_src[r] = src;
	return true;
}

/* Append an action row. */
bool
gr_tokens_add_act_row(gr_tokens *tb, int tok, int32_t coupler, const float *target, int src)
{
	if (tb->n_act_rows >= tb->cap_rows || tok < 0)
		return false;
	int			r = tb->n_act_rows++;
	int			K = tb->n_actions;

	tb->act_row_tok[r] = tok;
	tb->act_row_coupler[r] = coupler;
	tb->act_row_src[r] = src;
	for (int k = 0; k < K; k++)
		tb->act_row_target[(size_t) r * K + k] = target ? target[k] : NAN;
	return true;
}
