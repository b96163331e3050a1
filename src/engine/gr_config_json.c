/*
 * gr_config_json.c — the model configuration as a JSON object (gr_io.h).
 *
 * Every key is required and no other key is accepted, except the item loss's keys (loss,
 * negatives, sampler, temperature, negatives_per, similarity): they are written only for a loss
 * other than full (negatives_per only when it is not "batch", similarity only when it is not
 * "dot") and read as the defaults when absent, so
 * files from before them load unchanged. Integers must be integral numbers in
 * the range of int; doubles are printed with the fewest digits that read back to the same
 * value, so a configuration survives a round trip bit for bit. The text is bounded before it
 * is parsed (config_limits); cJSON allocates through the caller's env (gr_json.h) and its
 * trees are transient; the returned text is allocated through the env too.
 */
#include "gr_arch.h"
#include "gr_io.h"
#include "gr_json.h"

#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum config_key
{
	KEY_LAYOUT,
	KEY_N_ITEMS,
	KEY_D_MODEL,
	KEY_N_LAYER,
	KEY_N_HEAD,
	KEY_MAX_LEN,
	KEY_N_ACTIONS,
	KEY_ACTION_BINARY,
	KEY_ACTION_MIN,
	KEY_ACTION_MAX,
	KEY_N_BUCKETS,
	KEY_EMB_SCALE,
	KEY_HEAD_HIDDEN,
	KEY_LOSS,					/* the optional keys, from here on */
	KEY_NEGATIVES,
	KEY_SAMPLER,
	KEY_TEMPERATURE,
	KEY_NEGATIVES_PER,
	KEY_SIMILARITY,
	KEY_TRUNK,
	KEY_ACTION_BIAS,
	N_CONFIG_KEYS
} config_key;

static const char *const config_key_names[N_CONFIG_KEYS] = {
	[KEY_LAYOUT] = "layout",
	[KEY_N_ITEMS] = "n_items",
	[KEY_D_MODEL] = "d_model",
	[KEY_N_LAYER] = "n_layer",
	[KEY_N_HEAD] = "n_head",
	[KEY_MAX_LEN] = "max_len",
	[KEY_N_ACTIONS] = "n_actions",
	[KEY_ACTION_BINARY] = "action_binary",
	[KEY_ACTION_MIN] = "action_min",
	[KEY_ACTION_MAX] = "action_max",
	[KEY_N_BUCKETS] = "n_buckets",
	[KEY_EMB_SCALE] = "emb_scale",
	[KEY_HEAD_HIDDEN] = "head_hidden",
	[KEY_LOSS] = "loss",
	[KEY_NEGATIVES] = "negatives",
	[KEY_SAMPLER] = "sampler",
	[KEY_TEMPERATURE] = "temperature",
	[KEY_NEGATIVES_PER] = "negatives_per",
	[KEY_SIMILARITY] = "similarity",
	[KEY_TRUNK] = "trunk",
	[KEY_ACTION_BIAS] = "action_bias",
};

#define FIRST_OPTIONAL_KEY KEY_LOSS

#define NUMBER_TEXT_LEN 40

/* A configuration is one flat object of 13 keys with three arrays of GR_MAX_ACTIONS numbers:
 * well under a kilobyte and fifty values. */
static const gr_json_limits config_limits = {65536, 1024, 2};

/* Replace the locale's decimal point with the '.' that JSON requires. */
static void
use_json_decimal_point(char *text)
{
	const struct lconv *conv = localeconv();
	char		point = (conv && conv->decimal_point && conv->decimal_point[0]) ?
		conv->decimal_point[0] : '.';

	if (point == '.')
		return;
	for (char *c = text; *c; c++)
		if (*c == point)
			*c = '.';
}

/* Print a double with the fewest significant digits that read back exactly. */
static void
format_double(double value, char *text, size_t size)
{
	for (int digits = 15; digits <= 17; digits++)
	{
		snprintf(text, size, "%.*g", digits, value);
		if (strtod(text, NULL) == value)
			break;
	}
	use_json_decimal_point(text);
}

/* Print a float with the fewest significant digits that read back exactly as a float. */
static void
format_float(float value, char *text, size_t size)
{
	for (int digits = 6; digits <= 9; digits++)
	{
		snprintf(text, size, "%.*g", digits, (double) value);
		if ((float) strtod(text, NULL) == value)
			break;
	}
	use_json_decimal_point(text);
}

/* Add a raw (preformatted) number to an array; false when cJSON runs out of memory. */
static bool
append_raw_number(cJSON *array, const char *text)
{
	cJSON	   *item = cJSON_CreateRaw(text);

	if (item == NULL)
		return false;
	if (!cJSON_AddItemToArray(array, item))
	{
		cJSON_Delete(item);
		return false;
	}
	return true;
}

/* Build the cJSON tree of a configuration; NULL when cJSON runs out of memory. */
static cJSON *
config_to_tree(const gr_model_config *cfg, const char *layout_name)
{
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *binary = NULL,
			   *mins = NULL,
			   *maxs = NULL;
	char		text[NUMBER_TEXT_LEN];
	bool		ok = root != NULL;

	ok = ok && cJSON_AddStringToObject(root, "layout", layout_name) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "n_items", cfg->n_items) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "d_model", cfg->d_model) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "n_layer", cfg->n_layer) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "n_head", cfg->n_head) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "max_len", cfg->max_len) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "n_actions", cfg->n_actions) != NULL;
	ok = ok && (binary = cJSON_AddArrayToObject(root, "action_binary")) != NULL;
	ok = ok && (mins = cJSON_AddArrayToObject(root, "action_min")) != NULL;
	ok = ok && (maxs = cJSON_AddArrayToObject(root, "action_max")) != NULL;
	for (int k = 0; ok && k < cfg->n_actions; k++)
	{
		snprintf(text, sizeof(text), "%d", (int) cfg->action_binary[k]);
		ok = append_raw_number(binary, text);
		format_double(cfg->action_min[k], text, sizeof(text));
		ok = ok && append_raw_number(mins, text);
		format_double(cfg->action_max[k], text, sizeof(text));
		ok = ok && append_raw_number(maxs, text);
	}
	ok = ok && cJSON_AddNumberToObject(root, "n_buckets", cfg->n_buckets) != NULL;
	format_float(cfg->emb_scale, text, sizeof(text));
	ok = ok && cJSON_AddRawToObject(root, "emb_scale", text) != NULL;
	ok = ok && cJSON_AddNumberToObject(root, "head_hidden", cfg->head_hidden) != NULL;
	/* the default trunk is written as absence, so GPT-2 files stay byte-identical */
	if (cfg->trunk != GR_TRUNK_GPT2)
		ok = ok && cJSON_AddStringToObject(root, "trunk", gr_arch_by_id(cfg->trunk)->name) != NULL;
	if (cfg->item_loss != GR_LOSS_FULL)
	{
		ok = ok && cJSON_AddStringToObject(root, "loss", gr_item_loss_name(cfg->item_loss)) != NULL;
		ok = ok && cJSON_AddNumberToObject(root, "negatives", cfg->negatives) != NULL;
		ok = ok && cJSON_AddStringToObject(root, "sampler", gr_sampler_name(cfg->sampler)) != NULL;
		format_float(cfg->temperature, text, sizeof(text));
		ok = ok && cJSON_AddRawToObject(root, "temperature", text) != NULL;
		if (cfg->negatives_per != GR_NEGATIVES_PER_BATCH)
			ok = ok && cJSON_AddStringToObject(root, "negatives_per",
											   gr_negatives_per_name(cfg->negatives_per)) != NULL;
		if (cfg->similarity != GR_SIMILARITY_DOT)
			ok = ok && cJSON_AddStringToObject(root, "similarity",
											   gr_similarity_name(cfg->similarity)) != NULL;
	}
	if (cfg->action_bias)
		ok = ok && cJSON_AddTrueToObject(root, "action_bias") != NULL;
	if (!ok)
	{
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* Encode a valid configuration as a compact JSON object allocated through env. */
gr_status
gr_config_to_json(const gr_env *env, const gr_model_config *cfg, char **json, gr_error *err)
{
	gr_json_scope scope;

	*json = NULL;
	GR_TRY(gr_model_config_validate(cfg, err));
	gr_json_scope_begin(&scope, env);

	cJSON	   *root = config_to_tree(cfg, gr_layout_by_id(cfg->layout)->name);
	char	   *printed = root ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	gr_json_scope_end(&scope);
	if (printed == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory encoding a configuration");

	size_t		len = strlen(printed);
	char	   *copy = gr_alloc(env, len + 1);

	if (copy != NULL)
		memcpy(copy, printed, len + 1);
	cJSON_free(printed);
	if (copy == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory encoding a configuration");
	*json = copy;
	return GR_OK;
}

/* Read an integral JSON number that fits in an int. */
static gr_status
decode_int(const cJSON *item, const char *key, int *out, gr_error *err)
{
	if (!cJSON_IsNumber(item))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"%s\" must be a number", key);

	double		value = item->valuedouble;

	if (!(value >= INT_MIN && value <= INT_MAX) || value != (double) (int) value)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"%s\" must be an integer, got %g", key, value);
	*out = (int) value;
	return GR_OK;
}

/* Check that a JSON value is an array of exactly n elements. */
static gr_status
check_array(const cJSON *item, const char *key, int n, gr_error *err)
{
	if (!cJSON_IsArray(item))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"%s\" must be an array", key);

	int			size = cJSON_GetArraySize(item);

	if (size != n)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"%s\" must have n_actions = %d entries, got %d",
					   key, n, size);
	return GR_OK;
}

/* Read the per-action arrays (kinds, minima, maxima) for cfg->n_actions columns. */
static gr_status
decode_actions(const cJSON *const *items, gr_model_config *cfg, gr_error *err)
{
	const cJSON *binary = items[KEY_ACTION_BINARY];
	const cJSON *mins = items[KEY_ACTION_MIN];
	const cJSON *maxs = items[KEY_ACTION_MAX];
	const cJSON *element;
	int			k;

	GR_TRY(check_array(binary, "action_binary", cfg->n_actions, err));
	GR_TRY(check_array(mins, "action_min", cfg->n_actions, err));
	GR_TRY(check_array(maxs, "action_max", cfg->n_actions, err));
	k = 0;
	cJSON_ArrayForEach(element, binary)
	{
		int			kind = 0;

		GR_TRY(decode_int(element, "action_binary", &kind, err));
		if (kind != 0 && kind != 1)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "configuration key \"action_binary\" entries must be 0 or 1, got %d",
						   kind);
		cfg->action_binary[k++] = (uint8_t) kind;
	}
	k = 0;
	cJSON_ArrayForEach(element, mins)
	{
		if (!cJSON_IsNumber(element))
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "configuration key \"action_min\" entries must be numbers");
		cfg->action_min[k++] = element->valuedouble;
	}
	k = 0;
	cJSON_ArrayForEach(element, maxs)
	{
		if (!cJSON_IsNumber(element))
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "configuration key \"action_max\" entries must be numbers");
		cfg->action_max[k++] = element->valuedouble;
	}
	return GR_OK;
}

/* Read the optional item-loss keys (absent: the defaults). */
static gr_status
decode_loss(const cJSON *const *items, gr_model_config *cfg, gr_error *err)
{
	const cJSON *loss = items[KEY_LOSS], *sampler = items[KEY_SAMPLER];
	const cJSON *temp = items[KEY_TEMPERATURE], *per = items[KEY_NEGATIVES_PER];
	const cJSON *sim = items[KEY_SIMILARITY];

	if (loss != NULL &&
		(!cJSON_IsString(loss) || (cfg->item_loss = gr_item_loss_by_name(loss->valuestring)) < 0))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"loss\" must be \"full\", \"sampled\" or \"infonce\"");
	if (sampler != NULL &&
		(!cJSON_IsString(sampler) ||
		 (cfg->sampler = gr_sampler_by_name(sampler->valuestring)) < 0))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"sampler\" must be \"uniform\" or \"popularity\"");
	if (per != NULL &&
		(!cJSON_IsString(per) ||
		 (cfg->negatives_per = gr_negatives_per_by_name(per->valuestring)) < 0))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"negatives_per\" must be \"batch\" or \"user\"");
	if (sim != NULL &&
		(!cJSON_IsString(sim) ||
		 (cfg->similarity = gr_similarity_by_name(sim->valuestring)) < 0))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"similarity\" must be \"dot\" or \"cosine\"");
	if (items[KEY_NEGATIVES] != NULL)
		GR_TRY(decode_int(items[KEY_NEGATIVES], "negatives", &cfg->negatives, err));
	if (temp != NULL)
	{
		if (!cJSON_IsNumber(temp))
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "configuration key \"temperature\" must be a number");
		cfg->temperature = (float) temp->valuedouble;
	}
	return GR_OK;
}

/* Collect the value of every known key, rejecting unknown, duplicate and missing keys. */
static gr_status
collect_keys(const cJSON *root, const cJSON **items, gr_error *err)
{
	const cJSON *member;

	memset(items, 0, sizeof(*items) * N_CONFIG_KEYS);
	cJSON_ArrayForEach(member, root)
	{
		int			key = 0;

		while (key < N_CONFIG_KEYS && strcmp(member->string, config_key_names[key]) != 0)
			key++;
		if (key == N_CONFIG_KEYS)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown configuration key \"%.64s\"",
						   member->string);
		if (items[key] != NULL)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "duplicate configuration key \"%s\"",
						   config_key_names[key]);
		items[key] = member;
	}
	for (int key = 0; key < FIRST_OPTIONAL_KEY; key++)
		if (items[key] == NULL)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "missing configuration key \"%s\"",
						   config_key_names[key]);
	return GR_OK;
}

/* Decode a configuration from a parsed JSON object into cfg and validate it. */
static gr_status
config_from_tree(const cJSON *root, gr_model_config *cfg, gr_error *err)
{
	const cJSON *items[N_CONFIG_KEYS];
	const gr_layout *layout;
	int			n_items = 0,
				n_actions = 0;

	if (!cJSON_IsObject(root))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "a configuration must be a JSON object");
	GR_TRY(collect_keys(root, items, err));
	if (!cJSON_IsString(items[KEY_LAYOUT]))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"layout\" must be a string");
	layout = gr_layout_by_name(items[KEY_LAYOUT]->valuestring);
	if (layout == NULL)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "unknown layout \"%.64s\"",
					   items[KEY_LAYOUT]->valuestring);
	GR_TRY(decode_int(items[KEY_N_ITEMS], "n_items", &n_items, err));
	GR_TRY(decode_int(items[KEY_N_ACTIONS], "n_actions", &n_actions, err));
	if (n_actions < 0 || n_actions > GR_MAX_ACTIONS)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "at most %d action columns, got %d",
					   GR_MAX_ACTIONS, n_actions);
	gr_model_config_default(cfg, layout->id, n_items, n_actions);
	GR_TRY(decode_int(items[KEY_D_MODEL], "d_model", &cfg->d_model, err));
	GR_TRY(decode_int(items[KEY_N_LAYER], "n_layer", &cfg->n_layer, err));
	GR_TRY(decode_int(items[KEY_N_HEAD], "n_head", &cfg->n_head, err));
	GR_TRY(decode_int(items[KEY_MAX_LEN], "max_len", &cfg->max_len, err));
	GR_TRY(decode_int(items[KEY_N_BUCKETS], "n_buckets", &cfg->n_buckets, err));
	GR_TRY(decode_int(items[KEY_HEAD_HIDDEN], "head_hidden", &cfg->head_hidden, err));
	GR_TRY(decode_actions(items, cfg, err));
	if (!cJSON_IsNumber(items[KEY_EMB_SCALE]))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "configuration key \"emb_scale\" must be a number");
	cfg->emb_scale = (float) items[KEY_EMB_SCALE]->valuedouble;
	GR_TRY(decode_loss(items, cfg, err));
	if (items[KEY_TRUNK] != NULL)
	{
		const gr_arch *arch = cJSON_IsString(items[KEY_TRUNK]) ?
			gr_arch_by_name(items[KEY_TRUNK]->valuestring) : NULL;

		if (arch == NULL)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "configuration key \"trunk\" must be \"gpt2\" or \"hstu\"");
		cfg->trunk = arch->id;
	}
	/* absent: a file written before the action head's bias path */
	cfg->action_bias = 0;
	if (items[KEY_ACTION_BIAS] != NULL)
	{
		if (!cJSON_IsBool(items[KEY_ACTION_BIAS]))
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "configuration key \"action_bias\" must be true or false");
		cfg->action_bias = cJSON_IsTrue(items[KEY_ACTION_BIAS]);
	}
	return gr_model_config_validate(cfg, err);
}

/* Decode and validate a configuration from len bytes of JSON text. */
gr_status
gr_config_from_json(const gr_env *env, const char *json, size_t len, gr_model_config *cfg,
					gr_error *err)
{
	cJSON	   *root;
	gr_model_config decoded;
	gr_status	status;

	GR_TRY(gr_json_parse(env, json, len, &config_limits, "configuration JSON",
						 GR_ERR_INVALID_ARGUMENT, &root, err));
	status = config_from_tree(root, &decoded, err);
	gr_json_delete(root);
	if (status == GR_OK)
		*cfg = decoded;
	return status;
}
