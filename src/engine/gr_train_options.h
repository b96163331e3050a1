/*
 * gr_train_options.h — the training options object ({"beta1": 0.9, "binary_actions":
 * ["click"], ...}) parsed from JSON text: the `options` jsonb of genrec_train (the glue feeds
 * its text form) and anything else that wants the same options.
 *
 * Keys (all optional; any other key is an error): beta1, beta2 in [0, 1]; eps in [1e-30, 1];
 * weight_decay in [0, 10]; w_item, w_action in [0, 1e6]; warmup_steps and eval_users
 * integers in [0, 2147483647]; n_buckets an integer in [1, 1024]; emb_scale in [0, 1e6];
 * head_hidden an integer in [1, 65536]; binary_actions an array of at most GR_MAX_ACTIONS
 * strings; task_weights an array of 1 to GR_MAX_ACTIONS numbers in [0, 1e6], one loss weight
 * per action column in column order (the caller checks the count against its columns). loss "full" | "sampled" | "infonce";
 * negatives an integer in [0, 65536] (infonce without it: 0, every row); sampler "uniform" |
 * "popularity"; negatives_per "batch" | "user" (sampled without it: user, each sequence its
 * own draw); temperature in [1e-3, 1e3]; similarity "dot" | "cosine"; item_update "auto" | "dense" | "lazy"
 * (gr_item_update). Numbers are JSON numbers (an integer key takes 4 or 4.0, not 4.5), read as doubles
 * (cJSON reads at most 63 characters of a number: a longer one is refused as invalid JSON).
 * The text is bounded before it is parsed (64 kB, 1024 values, 16 levels) and duplicate keys
 * are refused. Ranges are the parser's; the engine's validation (gr_train_config_validate,
 * gr_model_config_validate) still applies to the combined configuration.
 */
#ifndef GR_TRAIN_OPTIONS_H
#define GR_TRAIN_OPTIONS_H

#include "gr_train.h"

/* Column names listed in "binary_actions", allocated through the env of the parse. */
typedef struct gr_train_option_names
{
	int			n;
	char	   *name[GR_MAX_ACTIONS];
} gr_train_option_names;

/* The known keys, comma-separated (for hints). */
const char *gr_train_option_keys(void);

/*
 * Apply the options in len bytes of JSON text to mcfg and tcfg (keys absent keep their
 * values) and list binary_actions in names. GR_ERR_INVALID_ARGUMENT names the key and the
 * rule for any bad input; nothing is changed then. Free names with gr_train_option_names_free.
 */
gr_status	gr_train_options_from_json(const gr_env *env, const char *json, size_t len,
									   gr_model_config *mcfg, gr_train_config *tcfg,
									   gr_train_option_names *names, gr_error *err);

/* Free the names of a parse; names may be zeroed. */
void		gr_train_option_names_free(const gr_env *env, gr_train_option_names *names);

#endif							/* GR_TRAIN_OPTIONS_H */
