/*
 * test_history_codec.c — the genrec_history parsers without PostgreSQL: text pieces, spans,
 * every problem with its position or token, and the binary decoder's checks in order (the
 * SQL behaviour itself is tested by test/sql/history.sql and test/pgtap/history.sql).
 */
#include "gr_history_codec.h"
#include "unit.h"

#include <string.h>

/* Parse text fully; returns the interactions parsed (up to 8 kept in it) or -1 with *pb. */
static int
parse_all(const char *text, gr_hist_interaction *it, gr_hist_problem *pb)
{
	char		scratch[256];
	gr_hist_text ps;
	bool		empty,
				more = true;
	int			n = 0;

	if (gr_hist_text_begin(&ps, text, scratch, &empty, pb) != GR_HIST_OK)
		return -1;
	while (!empty && more)
	{
		gr_hist_interaction one;

		if (gr_hist_text_interaction(&ps, &one, pb) != GR_HIST_OK ||
			gr_hist_text_close(&ps, pb) != GR_HIST_OK)
			return -1;
		if (n < 8)
			it[n] = one;
		n++;
		if (gr_hist_text_next(&ps, &more, pb) != GR_HIST_OK)
			return -1;
	}
	return n;
}

/* Expect a syntax problem at a 1-based position (0 = at the end) naming what was expected. */
static void
expect_syntax(const char *text, int position, const char *expected)
{
	gr_hist_interaction it[8];
	gr_hist_problem pb;

	CHECK_MSG(parse_all(text, it, &pb) == -1 && pb.code == GR_HIST_SYNTAX, "%s", text);
	if (pb.code != GR_HIST_SYNTAX)
		return;
	if (position == 0)
		CHECK_MSG(pb.at_end, "%s: at %zu", text, pb.offset);
	else
		CHECK_MSG(!pb.at_end && (int) pb.offset + 1 == position, "%s: at %zu", text, pb.offset);
	CHECK_MSG(strstr(pb.expected, expected) != NULL, "%s: %s", text, pb.expected);
}

/* Expect a token problem with the given token. */
static void
expect_token(const char *text, gr_hist_error code, const char *token, int index)
{
	gr_hist_interaction it[8];
	gr_hist_problem pb;

	CHECK_MSG(parse_all(text, it, &pb) == -1 && pb.code == code, "%s: %d", text, pb.code);
	CHECK_MSG(pb.token_len == strlen(token) &&
			  memcmp(text + pb.token_offset, token, pb.token_len) == 0 && pb.index == index,
			  "%s", text);
}

/* The text form: pieces, spans and problems. */
static void
test_text(void)
{
	gr_hist_interaction it[8];
	gr_hist_problem pb;
	const char *t;

	CHECK(parse_all("{}", it, &pb) == 0);
	CHECK(parse_all(" \t{ \n}\f ", it, &pb) == 0);
	t = "{(1,,),( -7 , 2.5 ,\"2024-01-01 00:00:00+00\"),(+3,1e-3, 2024-01-03 10:00 )}";
	CHECK(parse_all(t, it, &pb) == 3);
	CHECK(it[0].item == 1 && !it[0].has_action && !it[0].has_time);
	CHECK(it[1].item == -7 && it[1].has_action && it[1].action == 2.5f && it[1].has_time);
	CHECK(it[1].time_len == 22 && memcmp(t + it[1].time_offset, "2024-01-01 00:00:00+00", 22) == 0);
	CHECK(it[2].item == 3 && it[2].action == 1e-3f && it[2].has_time);
	CHECK(it[2].time_len == 16 && memcmp(t + it[2].time_offset, "2024-01-03 10:00", 16) == 0);
	CHECK(parse_all("{(9223372036854775807,,),(-9223372036854775808,,)}", it, &pb) == 2);
	CHECK(it[0].item == INT64_MAX && it[1].item == INT64_MIN);
	/* an empty quoted time is a time (timestamptz input refuses it), a blank bare one NULL */
	CHECK(parse_all("{(1,,\"\"),(2,,  )}", it, &pb) == 2);
	CHECK(it[0].has_time && it[0].time_len == 0 && !it[1].has_time);

	expect_syntax("", 0, "Expected \"{\"");
	expect_syntax("  [", 3, "Expected \"{\"");
	expect_syntax("{1}", 2, "Expected \"(\"");
	expect_syntax("{(x,,)}", 3, "item id");
	expect_syntax("{(1 2,,)}", 5, "after the item id");
	expect_syntax("{(1,2x,)}", 5, "Expected an action");
	expect_syntax("{(1,2 3,)}", 7, "after the action");
	expect_syntax("{(1,,\"2024)}", 0, "closing double quote");
	expect_syntax("{(1,,\"20\\24\")}", 9, "closing double quote");
	expect_syntax("{(1,,)", 0, "\",\" or \"}\"");
	expect_syntax("{(1,,)(2,,)}", 7, "\",\" or \"}\"");
	expect_syntax("{(1,,) x", 8, "\",\" or \"}\"");
	expect_syntax("{(1,,\"t\" x)}", 10, "\")\"");
	expect_syntax("{} x", 4, "Unexpected text");
	expect_syntax("{(1,,)} }", 9, "Unexpected text");
	expect_token("{(1,,),(99999999999999999999,,)}", GR_HIST_ITEM_RANGE,
				 "99999999999999999999", 2);
	expect_token("{(1,nan,)}", GR_HIST_ACTION_NOT_FINITE, "nan", 1);
	expect_token("{(1,-Infinity,)}", GR_HIST_ACTION_NOT_FINITE, "-Infinity", 1);
	expect_token("{(1,1e39,)}", GR_HIST_ACTION_RANGE, "1e39", 1);
	expect_token("{(1,1e-50,)}", GR_HIST_ACTION_RANGE, "1e-50", 1);
	/* a subnormal action is a value */
	CHECK(parse_all("{(1,1e-40,)}", it, &pb) == 1 && it[0].action > 0.0f);
	/* "nan(...)": the action token ends at the parenthesis */
	expect_token("{(1,nan(1),)}", GR_HIST_ACTION_NOT_FINITE, "nan", 1);
}

/* Write v as n big-endian bytes at p. */
static uint8_t *
put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
	return p + n;
}

static const gr_hist_time_range range = {INT64_MIN, INT64_MAX, -1000, 1000};

/* Decode buf; returns the problem code (GR_HIST_OK with the arrays filled). */
static gr_hist_error
decode(const uint8_t *buf, size_t len, int64_t *items, float *actions, int64_t *times,
	   bool *isnull, size_t *consumed, gr_hist_problem *pb)
{
	int32_t		n;
	uint32_t	flags;
	gr_hist_error e = gr_hist_binary_header(buf, len, &n, &flags, pb);

	if (e != GR_HIST_OK)
		return e;
	return gr_hist_binary_decode(buf, len, n, flags, &range, items, actions, times, isnull,
								 consumed, pb);
}

/* The binary form: a full round of every array, and each check in its order. */
static void
test_binary(void)
{
	uint8_t		buf[128],
			   *p;
	int64_t		items[4],
				times[4];
	float		actions[4];
	bool		isnull[4];
	size_t		consumed = 0;
	gr_hist_problem pb;
	uint32_t	bits;
	float		f = 2.5f;

	memcpy(&bits, &f, 4);
	p = put(buf, 3, 4);
	p = put(p, GR_HIST_HAS_ACTIONS | GR_HIST_HAS_TIMES | GR_HIST_HAS_TIME_NULLS, 4);
	p = put(p, 10, 8);
	p = put(p, (uint64_t) -20, 8);
	p = put(p, 30, 8);
	p = put(p, bits, 4);
	p = put(p, 0x7fc00000u, 4);	/* NaN: a missing action */
	p = put(p, bits, 4);
	p = put(p, 5, 8);
	p = put(p, 0, 8);
	p = put(p, (uint64_t) INT64_MAX, 8);	/* +infinity */
	p = put(p, 0x02, 1);		/* time 2 (index 1) NULL */
	CHECK(decode(buf, (size_t) (p - buf), items, actions, times, isnull, &consumed, &pb) ==
		  GR_HIST_OK);
	CHECK(consumed == (size_t) (p - buf) &&
		  consumed == gr_hist_binary_size(3, GR_HIST_KNOWN_FLAGS));
	CHECK(items[0] == 10 && items[1] == -20 && items[2] == 30);
	CHECK(actions[0] == 2.5f && isnan(actions[1]) && actions[2] == 2.5f);
	CHECK(times[0] == 5 && !isnull[0] && isnull[1] && times[2] == INT64_MAX && !isnull[2]);
	/* trailing bytes are left to the caller */
	CHECK(decode(buf, sizeof(buf), items, actions, times, isnull, &consumed, &pb) == GR_HIST_OK &&
		  consumed == (size_t) (p - buf));
	/* every truncation is short */
	for (size_t len = 0; len < (size_t) (p - buf); len++)
		CHECK_MSG(decode(buf, len, items, actions, times, isnull, &consumed, &pb) ==
				  GR_HIST_SHORT, "truncated to %zu", len);

	/* the header's checks, in order */
	p = put(put(buf, (uint64_t) (uint32_t) -1, 4), 0xff, 4);
	CHECK(decode(buf, 8, items, actions, times, isnull, &consumed, &pb) == GR_HIST_BAD_LENGTH &&
		  pb.value == -1);
	put(put(buf, GR_HISTORY_MAX_LEN + 1, 4), 0xff, 4);
	CHECK(decode(buf, 8, items, actions, times, isnull, &consumed, &pb) == GR_HIST_TOO_LONG);
	put(put(buf, 0, 4), 0x8, 4);
	CHECK(decode(buf, 8, items, actions, times, isnull, &consumed, &pb) == GR_HIST_BAD_FLAGS &&
		  pb.value == 8);
	put(put(buf, 0, 4), GR_HIST_HAS_TIME_NULLS, 4);
	CHECK(decode(buf, 8, items, actions, times, isnull, &consumed, &pb) == GR_HIST_BAD_FLAGS);
	put(put(buf, 0, 4), 0, 4);
	CHECK(decode(buf, 8, items, actions, times, isnull, &consumed, &pb) == GR_HIST_OK &&
		  consumed == 8);

	/* an infinite action before a truncation is reported first, as it is read first */
	p = put(put(buf, 2, 4), GR_HIST_HAS_ACTIONS, 4);
	p = put(put(p, 1, 8), 2, 8);
	p = put(p, 0x7f800000u, 4);
	CHECK(decode(buf, (size_t) (p - buf), items, actions, times, isnull, &consumed, &pb) ==
		  GR_HIST_ACTION_NOT_FINITE && pb.index == 1);
	/* a finite time out of range, after all data is read */
	p = put(put(buf, 2, 4), GR_HIST_HAS_TIMES, 4);
	p = put(put(p, 1, 8), 2, 8);
	p = put(put(p, 0, 8), 1000, 8);
	CHECK(decode(buf, (size_t) (p - buf), items, actions, times, isnull, &consumed, &pb) ==
		  GR_HIST_TIME_RANGE && pb.index == 2);
	CHECK(decode(buf, (size_t) (p - buf) - 1, items, actions, times, isnull, &consumed, &pb) ==
		  GR_HIST_SHORT);
}

/* Run the codec tests. */
int
main(void)
{
	test_text();
	test_binary();
	return unit_finish("test_history_codec");
}
