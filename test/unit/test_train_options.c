/*
 * test_train_options.c — the training options object from JSON text (gr_train_options.h):
 * every key lands in its field, names are copied, and each bad input is refused with its
 * key named and nothing changed.
 */
#include "gr_train_options.h"
#include "unit.h"

#include <string.h>

/* Parse json into fresh defaults; returns the status (names freed unless keep). */
static gr_status
parse(const gr_env *env, const char *json, gr_model_config *m, gr_train_config *t,
	  gr_train_option_names *names, gr_error *err)
{
	gr_model_config_default(m, GR_LAYOUT_LAC, 10, 2);
	gr_train_config_default(t);
	return gr_train_options_from_json(env, json, strlen(json), m, t, names, err);
}

/* Expect json to be refused with a message containing needle, leaving the defaults. */
static void
expect_refused(const gr_env *env, const char *json, const char *needle)
{
	gr_model_config m,
				m0;
	gr_train_config t,
				t0;
	gr_train_option_names names;
	gr_error	err = {0};

	gr_model_config_default(&m0, GR_LAYOUT_LAC, 10, 2);
	gr_train_config_default(&t0);
	CHECK_MSG(parse(env, json, &m, &t, &names, &err) == GR_ERR_INVALID_ARGUMENT, "%s", json);
	CHECK_MSG(strstr(err.message, needle) != NULL, "%s: %s", json, err.message);
	CHECK(names.n == 0 && memcmp(&t, &t0, sizeof(t)) == 0 && m.n_buckets == m0.n_buckets &&
		  m.head_hidden == m0.head_hidden && m.emb_scale == m0.emb_scale);
}

/* Count live blocks so that the names' copies are seen to be freed. */
static void *
counted_alloc(void *user, size_t bytes)
{
	(*(long *) user)++;
	return malloc(bytes);
}

/* Release a counted block. */
static void
counted_free(void *user, void *ptr)
{
	(*(long *) user)--;
	free(ptr);
}

/* Run the options tests. */
int
main(void)
{
	gr_env		env;
	gr_model_config m;
	gr_train_config t;
	gr_train_option_names names;
	gr_error	err = {0};
	long		live = 0;

	gr_env_default(&env);
	env.allocator.alloc = counted_alloc;
	env.allocator.free = counted_free;
	env.allocator.user = &live;

	CHECK_OK(parse(&env, "{}", &m, &t, &names, &err), &err);
	CHECK(names.n == 0 && t.beta1 == 0.9f && m.n_buckets == 8);
	CHECK_OK(parse(&env, "{\"beta1\": 0.5, \"beta2\": 0.75, \"eps\": 1e-6, \"weight_decay\": 0.01, "
				   "\"w_item\": 2, \"w_action\": 0.25, \"warmup_steps\": 100, \"eval_users\": 7.0, "
				   "\"n_buckets\": 4, \"emb_scale\": 3, \"head_hidden\": 16, "
				   "\"binary_actions\": [\"click\", \"caf\\u00e9\"]}", &m, &t, &names, &err), &err);
	CHECK(t.beta1 == 0.5f && t.beta2 == 0.75f && t.eps == 1e-6f && t.weight_decay == 0.01f);
	CHECK(t.w_item == 2.0f && t.w_action == 0.25f && t.warmup_steps == 100 &&
		  t.eval_max_users == 7);
	CHECK(m.n_buckets == 4 && m.emb_scale == 3.0f && m.head_hidden == 16);
	CHECK(names.n == 2 && strcmp(names.name[0], "click") == 0 &&
		  strcmp(names.name[1], "caf\xc3\xa9") == 0);
	CHECK(t.epochs == 200 && t.lr == 1e-3f && m.d_model == 64);
	gr_train_option_names_free(&env, &names);
	CHECK(live == 0);

	/* the item loss */
	CHECK_OK(parse(&env, "{\"loss\": \"sampled\", \"negatives\": 512, \"sampler\": "
				   "\"popularity\", \"temperature\": 0.05}", &m, &t, &names, &err), &err);
	CHECK(m.item_loss == GR_LOSS_SAMPLED && m.negatives == 512 &&
		  m.sampler == GR_SAMPLER_POPULARITY && m.temperature == 0.05f);
	/* sampled draws per user unless negatives_per says batch */
	CHECK(m.negatives_per == GR_NEGATIVES_PER_USER);
	CHECK_OK(parse(&env, "{\"loss\": \"sampled\", \"negatives_per\": \"batch\"}", &m, &t,
				   &names, &err), &err);
	CHECK(m.negatives_per == GR_NEGATIVES_PER_BATCH);
	CHECK_OK(parse(&env, "{\"loss\": \"full\"}", &m, &t, &names, &err), &err);
	CHECK(m.negatives_per == GR_NEGATIVES_PER_BATCH);
	expect_refused(&env, "{\"negatives_per\": \"item\"}", "option \"negatives_per\" must be");
	expect_refused(&env, "{\"negatives_per\": 1}", "option \"negatives_per\" must be");
	CHECK_OK(parse(&env, "{\"loss\": \"infonce\"}", &m, &t, &names, &err), &err);
	CHECK(m.item_loss == GR_LOSS_INFONCE && m.negatives == 0 && m.temperature == 1.0f);
	CHECK_OK(parse(&env, "{\"loss\": \"infonce\", \"negatives\": 64}", &m, &t, &names, &err),
			 &err);
	CHECK(m.item_loss == GR_LOSS_INFONCE && m.negatives == 64);
	CHECK_OK(parse(&env, "{\"loss\": \"full\"}", &m, &t, &names, &err), &err);
	CHECK(m.item_loss == GR_LOSS_FULL && m.negatives == GR_DEFAULT_NEGATIVES);
	expect_refused(&env, "{\"loss\": \"softmax\"}", "option \"loss\" must be");
	expect_refused(&env, "{\"loss\": 2}", "option \"loss\" must be");
	expect_refused(&env, "{\"sampler\": \"zipf\"}", "option \"sampler\" must be");
	expect_refused(&env, "{\"negatives\": 65537}", "option \"negatives\"");
	expect_refused(&env, "{\"temperature\": 0}", "option \"temperature\"");
	CHECK_OK(parse(&env, "{\"loss\": \"infonce\", \"similarity\": \"cosine\"}", &m, &t,
				   &names, &err), &err);
	CHECK(m.similarity == GR_SIMILARITY_COSINE);
	expect_refused(&env, "{\"similarity\": \"l2\"}", "option \"similarity\" must be");
	/* the item table's update */
	CHECK(t.item_update == GR_ITEM_UPDATE_AUTO);
	CHECK_OK(parse(&env, "{\"loss\": \"sampled\", \"item_update\": \"dense\"}", &m, &t,
				   &names, &err), &err);
	CHECK(m.item_loss == GR_LOSS_SAMPLED && t.item_update == GR_ITEM_UPDATE_DENSE);
	CHECK_OK(parse(&env, "{\"item_update\": \"lazy\"}", &m, &t, &names, &err), &err);
	CHECK(t.item_update == GR_ITEM_UPDATE_LAZY);
	expect_refused(&env, "{\"item_update\": \"sparse\"}", "option \"item_update\" must be");
	expect_refused(&env, "{\"item_update\": 1}", "option \"item_update\" must be");

	expect_refused(&env, "[1, 2]", "must be a JSON object");
	expect_refused(&env, "{\"nope\": 1}", "unknown key \"nope\"");
	expect_refused(&env, "{\"beta1\": 0.5, \"beta1\": 0.6}", "duplicate key \"beta1\"");
	expect_refused(&env, "{\"beta1\": \"high\"}", "option \"beta1\" must be a number");
	expect_refused(&env, "{\"warmup_steps\": 1.5}", "must be an integer");
	expect_refused(&env, "{\"n_buckets\": 0}", "option \"n_buckets\" must be an integer in [1, 1024]");
	expect_refused(&env, "{\"eps\": 0}", "option \"eps\"");
	expect_refused(&env, "{\"beta2\": 1e999}", "beta2");
	expect_refused(&env, "{\"binary_actions\": \"click\"}", "array of column names");
	expect_refused(&env, "{\"binary_actions\": [1]}", "at most 8 column names");
	expect_refused(&env, "{\"binary_actions\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\","
				   "\"i\"]}", "at most 8 column names");
	expect_refused(&env, "{\"head_hidden\": 8", "not valid JSON");
	expect_refused(&env, "{\"head_hidden\": 8} x", "trailing characters");
	expect_refused(&env, "", "empty");
	/* names copied before a later key fails are freed */
	expect_refused(&env, "{\"binary_actions\": [\"a\"], \"zz\": 1}", "unknown key");
	CHECK(live == 0);
	return unit_finish("test_train_options");
}
