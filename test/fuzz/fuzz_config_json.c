/*
 * fuzz_config_json.c — libFuzzer target: gr_config_from_json on arbitrary bytes (the
 * "genrec.config" metadata of every model file). A configuration is either refused or valid,
 * and a valid one encodes (gr_config_to_json) to text that decodes to the same configuration,
 * bit for bit. Allocations go through a counting allocator that must end at zero.
 *
 * Build and run: make NO_PGXS=1 fuzz && build/fuzz/fuzz_config_json CORPUS_DIR
 */
#include "gr_io.h"

#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* Whether two configurations hold the same values, doubles bit for bit. */
static bool
same_config(const gr_model_config *a, const gr_model_config *b)
{
	if (a->layout != b->layout || a->trunk != b->trunk || a->n_items != b->n_items ||
		a->d_model != b->d_model || a->n_layer != b->n_layer || a->n_head != b->n_head ||
		a->max_len != b->max_len || a->n_actions != b->n_actions ||
		a->n_buckets != b->n_buckets || a->head_hidden != b->head_hidden ||
		memcmp(&a->emb_scale, &b->emb_scale, sizeof(float)) != 0)
		return false;
	for (int k = 0; k < a->n_actions; k++)
		if (a->action_binary[k] != b->action_binary[k] ||
			memcmp(&a->action_min[k], &b->action_min[k], sizeof(double)) != 0 ||
			memcmp(&a->action_max[k], &b->action_max[k], sizeof(double)) != 0)
			return false;
	return true;
}

/* Decode one input; round-trip what decodes. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long		live = 0;
	gr_env		env;
	gr_model_config cfg,
				back;
	gr_error	err = {0};
	char	   *json = NULL;

	fuzz_counting_env(&env, &live);
	if (gr_config_from_json(&env, (const char *) data, size, &cfg, &err) == GR_OK)
	{
		REQUIRE(gr_model_config_validate(&cfg, &err) == GR_OK);
		REQUIRE(gr_config_to_json(&env, &cfg, &json, &err) == GR_OK);
		REQUIRE(gr_config_from_json(&env, json, strlen(json), &back, &err) == GR_OK);
		REQUIRE(same_config(&cfg, &back));
		gr_free(&env, json);
	}
	else
		REQUIRE(err.status == GR_ERR_INVALID_ARGUMENT && err.message[0] != '\0');
	REQUIRE(live == 0);
	return 0;
}
