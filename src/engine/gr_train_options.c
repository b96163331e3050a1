/*
 * gr_train_options.c — the training options object from JSON text (gr_train_options.h).
 */
#include "gr_train_options.h"
#include "gr_arch.h"
#include "gr_json.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* The options object is small: a dozen keys and a short array of names. */
static const gr_json_limits options_limits = {65536, 1024, 16};

typedef enum option_kind
{
	OPT_FLOAT,					/* a number within [lo, hi] */
	OPT_INT,					/* an integral number within [lo, hi] */
	OPT_NAMES,					/* an array of strings */
	OPT_NUMBERS					/* an array of numbers within [lo, hi] */,
	OPT_WORD					/* one of a few names */
} option_kind;

/* One known option: where it goes and what it accepts. */
typedef struct option_spec
{
	const char *key;
	option_kind kind;
	double		lo;
	double		hi;
} option_spec;

static const option_spec option_specs[] = {
	{"beta1", OPT_FLOAT, 0, 1},
	{"beta2", OPT_FLOAT, 0, 1},
	{"eps", OPT_FLOAT, 1e-30, 1},
	{"weight_decay", OPT_FLOAT, 0, 10},
	{"w_item", OPT_FLOAT, 0, 1e6},
	{"w_action", OPT_FLOAT, 0, 1e6},
	{"warmup_steps", OPT_INT, 0, INT_MAX},
	{"eval_users", OPT_INT, 0, INT_MAX},
	{"n_buckets", OPT_INT, 1, 1024},
	{"emb_scale", OPT_FLOAT, 0, 1e6},
	{"head_hidden", OPT_INT, 1, 65536},
	{"binary_actions", OPT_NAMES, 0, 0},
	{"task_weights", OPT_NUMBERS, 0, 1e6},
	{"loss", OPT_WORD, 0, 0},
	{"negatives", OPT_INT, 0, GR_MAX_NEGATIVES},
	{"sampler", OPT_WORD, 0, 0},
	{"negatives_per", OPT_WORD, 0, 0},
	{"trunk", OPT_WORD, 0, 0},
	{"temperature", OPT_FLOAT, 1e-3, 1e3},
	{"item_update", OPT_WORD, 0, 0},
	{"similarity", OPT_WORD, 0, 0},
};

#define N_OPTIONS ((int) (sizeof(option_specs) / sizeof(option_specs[0])))

/* The known keys, comma-separated. */
const char *
gr_train_option_keys(void)
{
	return "beta1, beta2, eps, weight_decay, w_item, w_action, warmup_steps, eval_users, "
		"n_buckets, emb_scale, head_hidden, binary_actions, task_weights, loss, negatives, sampler,"
		" negatives_per, temperature, item_update, trunk, similarity";
}

/* Index of a known option key. */
static int
option_index(const char *key)
{
	int			k = 0;

	while (k < N_OPTIONS - 1 && strcmp(option_specs[k].key, key) != 0)
		k++;
	return k;
}

/* Read the number of an option, checking its kind and range. */
static gr_status
option_number(const cJSON *item, const option_spec *spec, double *out, gr_error *err)
{
	double		x;

	if (!cJSON_IsNumber(item))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "option \"%s\" must be a number",
					   spec->key);
	x = item->valuedouble;
	if (!(x >= spec->lo && x <= spec->hi) || (spec->kind == OPT_INT && x != floor(x)))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "option \"%s\" must be %s in [%g, %g], "
					   "got %g", spec->key, spec->kind == OPT_INT ? "an integer" : "a number",
					   spec->lo, spec->hi, x);
	*out = x;
	return GR_OK;
}

/* Store a number in the configuration field of its key. */
static void
apply_number(const char *key, double x, gr_model_config *m, gr_train_config *t)
{
	if (strcmp(key, "beta1") == 0)
		t->beta1 = (float) x;
	else if (strcmp(key, "beta2") == 0)
		t->beta2 = (float) x;
	else if (strcmp(key, "eps") == 0)
		t->eps = (float) x;
	else if (strcmp(key, "weight_decay") == 0)
		t->weight_decay = (float) x;
	else if (strcmp(key, "w_item") == 0)
		t->w_item = (float) x;
	else if (strcmp(key, "w_action") == 0)
		t->w_action = (float) x;
	else if (strcmp(key, "warmup_steps") == 0)
		t->warmup_steps = (int) x;
	else if (strcmp(key, "eval_users") == 0)
		t->eval_max_users = (int) x;
	else if (strcmp(key, "n_buckets") == 0)
		m->n_buckets = (int) x;
	else if (strcmp(key, "emb_scale") == 0)
		m->emb_scale = (float) x;
	else if (strcmp(key, "head_hidden") == 0)
		m->head_hidden = (int) x;
	else if (strcmp(key, "negatives") == 0)
		m->negatives = (int) x;
	else if (strcmp(key, "temperature") == 0)
		m->temperature = (float) x;
}

/* Store "loss", "sampler", "negatives_per", "item_update", "trunk" or "similarity" by name. */
static gr_status
option_word(const cJSON *item, const char *key, gr_model_config *m, gr_train_config *t,
			gr_error *err)
{
	bool		loss = strcmp(key, "loss") == 0;
	int			id = -1;

	if (strcmp(key, "trunk") == 0)
	{
		const gr_arch *arch = cJSON_IsString(item) ? gr_arch_by_name(item->valuestring) : NULL;

		if (arch == NULL)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "option \"trunk\" must be \"gpt2\" or \"hstu\"");
		m->trunk = arch->id;
		return GR_OK;
	}
	if (strcmp(key, "similarity") == 0)
	{
		if (cJSON_IsString(item))
			id = gr_similarity_by_name(item->valuestring);
		if (id < 0)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "option \"similarity\" must be \"dot\" or \"cosine\"");
		m->similarity = id;
		return GR_OK;
	}
	if (strcmp(key, "negatives_per") == 0)
	{
		if (cJSON_IsString(item))
			id = gr_negatives_per_by_name(item->valuestring);
		if (id < 0)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "option \"negatives_per\" must be \"batch\" or \"user\"");
		m->negatives_per = id;
		return GR_OK;
	}
	if (strcmp(key, "item_update") == 0)
	{
		if (cJSON_IsString(item))
			id = gr_item_update_by_name(item->valuestring);
		if (id < 0)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "option \"item_update\" must be \"auto\", \"dense\" or \"lazy\"");
		t->item_update = id;
		return GR_OK;
	}

	if (cJSON_IsString(item))
		id = loss ? gr_item_loss_by_name(item->valuestring) :
			gr_sampler_by_name(item->valuestring);
	if (id < 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, loss ?
					   "option \"loss\" must be \"full\", \"sampled\" or \"infonce\"" :
					   "option \"sampler\" must be \"uniform\" or \"popularity\"");
	if (loss)
		m->item_loss = id;
	else
		m->sampler = id;
	return GR_OK;
}

/* Copy the strings of "binary_actions" through env. */
static gr_status
option_names(const gr_env *env, const cJSON *item, gr_train_option_names *names,
			 gr_error *err)
{
	const cJSON *e;

	if (!cJSON_IsArray(item))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "option \"binary_actions\" must be an array of column names");
	cJSON_ArrayForEach(e, item)
	{
		size_t		len;

		if (!cJSON_IsString(e) || names->n >= GR_MAX_ACTIONS)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "option \"binary_actions\" must be an "
						   "array of at most %d column names", GR_MAX_ACTIONS);
		len = strlen(e->valuestring);
		names->name[names->n] = gr_alloc(env, len + 1);
		if (names->name[names->n] == NULL)
			return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for option names");
		memcpy(names->name[names->n++], e->valuestring, len + 1);
	}
	return GR_OK;
}

/* Read "task_weights": one weight per action column, in the order of the columns. */
static gr_status
option_numbers(const cJSON *item, const option_spec *spec, gr_train_config *t, gr_error *err)
{
	const cJSON *e;

	if (!cJSON_IsArray(item))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "option \"%s\" must be an array of numbers", spec->key);
	t->n_task_weights = 0;
	cJSON_ArrayForEach(e, item)
	{
		double		x;

		if (t->n_task_weights >= GR_MAX_ACTIONS)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "option \"%s\" takes at most %d "
						   "numbers", spec->key, GR_MAX_ACTIONS);
		GR_TRY(option_number(e, spec, &x, err));
		t->task_weights[t->n_task_weights++] = (float) x;
	}
	if (t->n_task_weights == 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "option \"%s\" must not be empty",
					   spec->key);
	return GR_OK;
}

/* Apply every member of a parsed options object to copies of the configurations. */
static gr_status
apply_options(const gr_env *env, const cJSON *root, gr_model_config *m, gr_train_config *t,
			  gr_train_option_names *names, gr_error *err)
{
	const cJSON *member;
	bool		seen[N_OPTIONS] = {false};

	if (!cJSON_IsObject(root))
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "training options must be a JSON object");
	cJSON_ArrayForEach(member, root)
	{
		int			k = 0;
		double		x = 0.0;

		while (k < N_OPTIONS && strcmp(member->string, option_specs[k].key) != 0)
			k++;
		if (k == N_OPTIONS)
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "unknown key \"%.64s\" in training options", member->string);
		if (seen[k])
			return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
						   "duplicate key \"%s\" in training options", option_specs[k].key);
		seen[k] = true;
		if (option_specs[k].kind == OPT_NAMES)
			GR_TRY(option_names(env, member, names, err));
		else if (option_specs[k].kind == OPT_NUMBERS)
			GR_TRY(option_numbers(member, &option_specs[k], t, err));
		else if (option_specs[k].kind == OPT_WORD)
			GR_TRY(option_word(member, option_specs[k].key, m, t, err));
		else
		{
			GR_TRY(option_number(member, &option_specs[k], &x, err));
			apply_number(option_specs[k].key, x, m, t);
		}
	}
	/* in-batch negatives default to every other row of the batch */
	if (m->item_loss == GR_LOSS_INFONCE && !seen[option_index("negatives")])
		m->negatives = 0;
	/* a new sampled model draws its negatives per user unless told otherwise */
	if (m->item_loss == GR_LOSS_SAMPLED && !seen[option_index("negatives_per")])
		m->negatives_per = GR_NEGATIVES_PER_USER;
	return GR_OK;
}

/* Parse an options object and apply it. */
gr_status
gr_train_options_from_json(const gr_env *env, const char *json, size_t len,
						   gr_model_config *mcfg, gr_train_config *tcfg,
						   gr_train_option_names *names, gr_error *err)
{
	gr_model_config m = *mcfg;
	gr_train_config t = *tcfg;
	cJSON	   *root;
	gr_status	status;

	memset(names, 0, sizeof(*names));
	GR_TRY(gr_json_parse(env, json, len, &options_limits, "training options",
						 GR_ERR_INVALID_ARGUMENT, &root, err));
	status = apply_options(env, root, &m, &t, names, err);
	gr_json_delete(root);
	if (status != GR_OK)
	{
		gr_train_option_names_free(env, names);
		return status;
	}
	*mcfg = m;
	*tcfg = t;
	return GR_OK;
}

/* Free the names of a parse. */
void
gr_train_option_names_free(const gr_env *env, gr_train_option_names *names)
{
	for (int i = 0; i < names->n; i++)
		gr_free(env, names->name[i]);
	memset(names, 0, sizeof(*names));
}
