/*
 * fuzz_safetensors.c — libFuzzer target: gr_model_load on arbitrary bytes must either build a
 * model or return an error, without crashing, reading out of bounds or leaking.
 *
 * Build and run: make NO_PGXS=1 fuzz && build/fuzz/fuzz_safetensors CORPUS_DIR
 * (a seed corpus can be written by build/unit/test_io with GR_TEST_IO_SEED_DIR set).
 */
#include "gr_io.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Load one input and free whatever the load returned. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gr_env		env;
	gr_model   *model = NULL;
	char	   *extra = NULL;
	gr_error	err = {0};

	gr_env_default(&env);
	if (gr_model_load(&env, data, size, &model, &extra, &err) == GR_OK)
	{
		gr_model_free(model);
		gr_free(&env, extra);
	}
	return 0;
}
