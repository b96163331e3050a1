/*
 * fuzz_history_binary.c — libFuzzer target: the genrec_history binary decoder
 * (gr_history_codec.h) on arbitrary bytes, driven the way genrec_history_recv drives it. A
 * decode reads exactly gr_hist_binary_size(n, flags) bytes or reports one problem; decoded
 * actions are never infinite and non-NULL times are infinities or inside the valid range;
 * re-encoding what was decoded gives back the bytes that were read (apart from the time
 * bitmap's unused high bits).
 *
 * Build and run: make NO_PGXS=1 fuzz && build/fuzz/fuzz_history_binary CORPUS_DIR
 */
#include "gr_history_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "violated: %s\n", #cond); abort(); } } while (0)

/* PostgreSQL's timestamp range (microseconds from 2000-01-01): 4714-11-24 BC to 294277 AD. */
static const gr_hist_time_range pg_range = {
	INT64_MIN, INT64_MAX, -211813488000000000LL, 9223371331200000000LL
};

/* Append v as n big-endian bytes. */
static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

/* Decode one input and check what came out. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t		n;
	uint32_t	flags;
	gr_hist_problem pb;
	size_t		consumed = 0;

	if (gr_hist_binary_header(data, size, &n, &flags, &pb) != GR_HIST_OK)
	{
		REQUIRE(pb.code == GR_HIST_SHORT || pb.code == GR_HIST_BAD_LENGTH ||
				pb.code == GR_HIST_TOO_LONG || pb.code == GR_HIST_BAD_FLAGS);
		return 0;
	}
	REQUIRE(n >= 0 && n <= GR_HISTORY_MAX_LEN && (flags & ~GR_HIST_KNOWN_FLAGS) == 0);

	size_t		cap = (size_t) (n > 0 ? n : 1);
	int64_t    *items = malloc(sizeof(int64_t) * cap);
	float	   *actions = malloc(sizeof(float) * cap);
	int64_t    *times = malloc(sizeof(int64_t) * cap);
	bool	   *isnull = malloc(sizeof(bool) * cap);

	if (gr_hist_binary_decode(data, size, n, flags, &pg_range, items, actions, times, isnull,
							  &consumed, &pb) == GR_HIST_OK)
	{
		size_t		want = gr_hist_binary_size(n, flags);
		uint8_t    *again = calloc(1, want);
		size_t		o = 8;

		REQUIRE(consumed == want && consumed <= size);
		put_be(again, (uint32_t) n, 4);
		put_be(again + 4, flags, 4);
		for (int i = 0; i < n; i++, o += 8)
			put_be(again + o, (uint64_t) items[i], 8);
		for (int i = 0; i < n && (flags & GR_HIST_HAS_ACTIONS); i++, o += 4)
		{
			uint32_t	bits;

			REQUIRE(!isinf(actions[i]));
			memcpy(&bits, &actions[i], 4);
			put_be(again + o, bits, 4);
		}
		for (int i = 0; i < n && (flags & GR_HIST_HAS_TIMES); i++, o += 8)
		{
			REQUIRE(isnull[i] || times[i] == INT64_MIN || times[i] == INT64_MAX ||
					(times[i] >= pg_range.min_valid && times[i] < pg_range.end_valid));
			put_be(again + o, (uint64_t) times[i], 8);
		}
		for (int i = 0; i < n && (flags & GR_HIST_HAS_TIME_NULLS); i++)
			if (isnull[i])
				again[o + (size_t) (i >> 3)] |= (uint8_t) (1 << (i & 7));
		if (flags & GR_HIST_HAS_TIME_NULLS)
		{
			/* bits past n in the last byte are not part of the history */
			if (n % 8 != 0)
				again[o + (size_t) n / 8] |= data[o + (size_t) n / 8] & (uint8_t) (0xff << (n % 8));
			o += ((size_t) n + 7) / 8;
		}
		REQUIRE(o == want && memcmp(again, data, want) == 0);
		for (int i = 0; i < n && !(flags & GR_HIST_HAS_TIMES); i++)
			REQUIRE(isnull[i]);
		free(again);
	}
	else
		REQUIRE(pb.code == GR_HIST_SHORT || pb.code == GR_HIST_ACTION_NOT_FINITE ||
				pb.code == GR_HIST_TIME_RANGE);
	free(items);
	free(actions);
	free(times);
	free(isnull);
	return 0;
}
