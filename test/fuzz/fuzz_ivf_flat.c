/*
 * fuzz_ivf_flat.c — libFuzzer target: gr_ivf_view on damaged index blocks (the IVF index one
 * backend publishes in shared memory and every other maps, src/pg_index.c). The input is a
 * list of patches (2 bytes of offset, 1 byte to XOR) applied to the valid flat block of an
 * index of 7 lists over 200 fixed items, or, when it starts with 0xFF, a whole block of its
 * own. A block is either refused or, once accepted, searched without reading outside the
 * item table (ASan) and with results that are distinct in-range columns, best first.
 * Allocations go through a counting allocator that must end at zero.
 *
 * Build and run: make NO_PGXS=1 fuzz && build/fuzz/fuzz_ivf_flat CORPUS_DIR
 */
#include "gr_ivf.h"
#include "gr_rng.h"

#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define V_FUZZ 200
#define D_FUZZ 4
#define TAG 0x5eedULL

static float items[V_FUZZ * D_FUZZ];
static uint8_t *valid_block;
static size_t valid_bytes;

/* Build the fixed items and the valid block once. */
static void
setup(void)
{
	gr_env		env;
	gr_error	err = {0};
	gr_ivf	   *ivf = NULL;

	gr_env_default(&env);
	for (int i = 0; i < V_FUZZ * D_FUZZ; i++)
		items[i] = 2.0f * gr_rng_uniform(3, GR_STREAM_TEST, 1, (uint64_t) i) - 1.0f;
	REQUIRE(gr_ivf_build(&env, items, V_FUZZ, D_FUZZ, 7, 1, &ivf, &err) == GR_OK);
	valid_bytes = gr_ivf_flat_size(ivf);
	valid_block = aligned_alloc(64, (valid_bytes + 63) / 64 * 64);
	gr_ivf_flatten(ivf, TAG, valid_block);
	gr_ivf_free(&env, ivf);
}

/* Patch the valid block (or take the input as a block), view it, and search what is accepted. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long		live = 0;
	gr_env		env;
	gr_error	err = {0};
	gr_ivf	   *view = NULL;
	size_t		bytes;
	uint8_t    *block;

	if (valid_block == NULL)
		setup();
	fuzz_counting_env(&env, &live);
	if (size > 0 && data[0] == 0xFF)
	{
		bytes = size - 1;
		block = aligned_alloc(64, (bytes + 64) / 64 * 64);
		memcpy(block, data + 1, bytes);
	}
	else
	{
		bytes = valid_bytes;
		block = aligned_alloc(64, (bytes + 63) / 64 * 64);
		memcpy(block, valid_block, bytes);
		for (size_t i = 0; i + 3 <= size; i += 3)
			block[((size_t) data[i] << 8 | data[i + 1]) % bytes] ^= data[i + 2];
	}
	if (gr_ivf_view(&env, block, bytes, TAG, items, V_FUZZ, D_FUZZ, &view, &err) == GR_OK)
	{
		gr_ivf_scratch sc = {0};
		float		q[D_FUZZ] = {0.5f, -0.25f, 1.0f, 0.125f};
		int32_t		cols[10];
		float		vals[10];
		int32_t		excl[1] = {3};
		int			n = gr_ivf_search(&env, view, &sc, q, 1 + (int) (size % 7), 10, excl, 1,
									  cols, vals);

		REQUIRE(n >= 0 && n <= 10);
		for (int i = 0; i < n; i++)
		{
			REQUIRE(cols[i] >= 0 && cols[i] < V_FUZZ && cols[i] != 3);
			REQUIRE(i == 0 || vals[i] <= vals[i - 1]);
			for (int j = 0; j < i; j++)
				REQUIRE(cols[j] != cols[i]);
		}
		gr_ivf_scratch_release(&env, &sc);
		gr_ivf_free(&env, view);
	}
	else
		REQUIRE(view == NULL);
	free(block);
	REQUIRE(live == 0);
	return 0;
}
