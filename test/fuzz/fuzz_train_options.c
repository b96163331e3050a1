/*
 * fuzz_train_options.c — libFuzzer target: gr_train_options_from_json on arbitrary bytes (the
 * text form of genrec_train's options jsonb). Options are refused with a message and change
 * nothing, or are applied within their documented ranges; allocations go through a counting
 * allocator that ends at zero once the names are freed.
 *
 * Build and run: make NO_PGXS=1 fuzz && build/fuzz/fuzz_train_options CORPUS_DIR
 */
#include "gr_train_options.h"

#include <math.h>
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* Parse one input and check the configurations it leaves. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long		live = 0;
	gr_env		env;
	gr_model_config m,
				m0;
	gr_train_config t,
				t0;
	gr_train_option_names names;
	gr_error	err = {0};

	fuzz_counting_env(&env, &live);
	gr_model_config_default(&m, GR_LAYOUT_LAC, 100, 1);
	gr_train_config_default(&t);
	m0 = m;
	t0 = t;
	if (gr_train_options_from_json(&env, (const char *) data, size, &m, &t, &names, &err) ==
		GR_OK)
	{
		REQUIRE(names.n >= 0 && names.n <= GR_MAX_ACTIONS);
		for (int i = 0; i < names.n; i++)
			REQUIRE(names.name[i] != NULL);
		REQUIRE(t.beta1 >= 0 && t.beta1 <= 1 && t.beta2 >= 0 && t.beta2 <= 1);
		REQUIRE(t.eps >= 1e-30f && t.eps <= 1 && t.weight_decay >= 0 && t.weight_decay <= 10);
		REQUIRE(t.w_item >= 0 && t.w_item <= 1e6f && t.w_action >= 0 && t.w_action <= 1e6f);
		REQUIRE(t.warmup_steps >= 0 && t.eval_max_users >= 0);
		REQUIRE(m.n_buckets >= 1 && m.n_buckets <= 1024);
		REQUIRE(m.head_hidden >= 1 && m.head_hidden <= 65536);
		REQUIRE(m.emb_scale >= 0 && m.emb_scale <= 1e6f);
		/* what options cannot touch stays */
		REQUIRE(t.epochs == t0.epochs && t.batch_size == t0.batch_size && t.lr == t0.lr);
		REQUIRE(m.d_model == m0.d_model && m.n_items == m0.n_items && m.layout == m0.layout);
		gr_train_option_names_free(&env, &names);
	}
	else
	{
		REQUIRE(err.status == GR_ERR_INVALID_ARGUMENT && err.message[0] != '\0');
		REQUIRE(memcmp(&t, &t0, sizeof(t)) == 0 && names.n == 0);
		REQUIRE(m.n_buckets == m0.n_buckets && m.head_hidden == m0.head_hidden &&
				m.emb_scale == m0.emb_scale);
	}
	REQUIRE(live == 0);
	return 0;
}
