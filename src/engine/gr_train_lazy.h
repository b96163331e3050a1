/*
 * gr_train_lazy.h — the trainer's internal hooks for the item table's lazy AdamW update
 * (gr_train_lazy.c); the public switch is gr_train_config.item_update (gr_train.h).
 */
#ifndef GR_TRAIN_LAZY_H
#define GR_TRAIN_LAZY_H

#include "gr_train.h"

/* Whether a configuration trains its item table lazily: sampled or in-batch loss, and
 * item_update auto or lazy. */
bool		gr_item_update_is_lazy(const gr_model_config *mc, const gr_train_config *tc);

/* Bytes the lazy update allocates for a trainer of cap_tokens tokens (0 when dense). */
size_t		gr_lazy_bytes(const gr_model_config *mc, const gr_train_config *tc, int cap_tokens,
						  int cap_seq);

/* Validate item_update against the model and set up tr->lazy when it applies. */
gr_status	gr_lazy_create(gr_trainer *tr, int cap_tokens, int cap_seq, gr_error *err);

/* Free tr->lazy (NULL is ignored). */
void		gr_lazy_free(gr_trainer *tr);

/* Zero the gradients before a step (the item table only where it may be dirty). */
void		gr_lazy_zero_grads(gr_trainer *tr);

/* List the item rows the step of batch tb touches; after the forward pass, before backward. */
gr_status	gr_lazy_collect(gr_trainer *tr, const gr_tokens *tb, const gr_pass *pass,
							gr_error *err);

/* AdamW with learning rate lr at step tr->t: dense except on the item table's rows. */
void		gr_lazy_adamw(gr_trainer *tr, float lr);

#endif							/* GR_TRAIN_LAZY_H */
