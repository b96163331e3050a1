/*
 * fuzz_history_text.c — libFuzzer target: the genrec_history text parser
 * (gr_history_codec.h) on arbitrary text, driven the way genrec_history_in drives it. Every
 * parse ends in a history or one reported problem, never reads outside the input, and every
 * position and span it reports lies inside the input; a parsed history prints back (items,
 * actions, time spans) to text that parses to the same interactions.
 *
 * Build and run: make NO_PGXS=1 fuzz && build/fuzz/fuzz_history_text CORPUS_DIR
 */
#include "gr_history_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop the fuzzer on a broken invariant. */
#define REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "violated: %s\n", #cond); abort(); } } while (0)

/* Parse text; on success return the interactions (at most max) in out and their count. */
static int
parse(const char *text, gr_hist_interaction *out, int max, gr_hist_problem *pb)
{
	size_t		len = strlen(text);
	char	   *scratch = malloc(len + 1);
	gr_hist_text ps;
	bool		empty,
				more = true;
	int			n = 0;

	if (gr_hist_text_begin(&ps, text, scratch, &empty, pb) != GR_HIST_OK)
		n = -1;
	while (n >= 0 && !empty && more)
	{
		gr_hist_interaction it;

		if (gr_hist_text_interaction(&ps, &it, pb) != GR_HIST_OK ||
			gr_hist_text_close(&ps, pb) != GR_HIST_OK)
		{
			n = -1;
			break;
		}
		REQUIRE(it.time_offset <= len && it.time_len <= len - it.time_offset);
		REQUIRE(memchr(text + it.time_offset, '"', it.time_len) == NULL &&
				memchr(text + it.time_offset, '\\', it.time_len) == NULL);
		REQUIRE(!it.has_time || it.time_len > 0 || text[it.time_offset - 1] == '"');
		REQUIRE(!it.has_action || isfinite(it.action));
		if (n < max)
			out[n] = it;
		if (++n > GR_HISTORY_MAX_LEN)
			break;				/* the glue stops here: too long */
		if (gr_hist_text_next(&ps, &more, pb) != GR_HIST_OK)
			n = -1;
	}
	REQUIRE(ps.pos <= len);
	if (n < 0)
	{
		REQUIRE(pb->code != GR_HIST_OK);
		if (pb->code == GR_HIST_SYNTAX)
			REQUIRE(pb->offset <= len && pb->expected != NULL &&
					pb->at_end == (text[pb->offset] == '\0'));
		else
			REQUIRE(pb->token_offset <= len && pb->token_len > 0 &&
					pb->token_len <= len - pb->token_offset);
	}
	free(scratch);
	return n;
}

/* Print interactions as text the parser reads back (times as their spans of text). */
static char *
print(const char *text, const gr_hist_interaction *it, int n)
{
	size_t		cap = 16 + strlen(text) * 2 + (size_t) n * 64;
	char	   *out = malloc(cap);
	size_t		o = 0;

	o += (size_t) snprintf(out + o, cap - o, "{");
	for (int i = 0; i < n; i++)
	{
		o += (size_t) snprintf(out + o, cap - o, "%s(%lld,", i ? "," : "", (long long) it[i].item);
		if (it[i].has_action)
			o += (size_t) snprintf(out + o, cap - o, "%.9g", (double) it[i].action);
		if (it[i].has_time)
			o += (size_t) snprintf(out + o, cap - o, ",\"%.*s\")", (int) it[i].time_len,
								   text + it[i].time_offset);
		else
			o += (size_t) snprintf(out + o, cap - o, ",)");
	}
	snprintf(out + o, cap - o, "}");
	return out;
}

/* Parse one input; parse what it prints back and compare. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum
	{
		MAX_KEPT = 64
	};
	char	   *text = malloc(size + 1);
	gr_hist_interaction first[MAX_KEPT],
				again[MAX_KEPT];
	gr_hist_problem pb;
	int			n;

	memcpy(text, data, size);
	text[size] = '\0';			/* a cstring: the first NUL ends it */
	n = parse(text, first, MAX_KEPT, &pb);
	if (n > 0 && n <= MAX_KEPT)
	{
		char	   *printed = print(text, first, n);

		REQUIRE(parse(printed, again, MAX_KEPT, &pb) == n);
		for (int i = 0; i < n; i++)
		{
			REQUIRE(again[i].item == first[i].item);
			REQUIRE(again[i].has_action == first[i].has_action);
			REQUIRE(!first[i].has_action || again[i].action == first[i].action);
			REQUIRE(again[i].has_time == first[i].has_time);
			REQUIRE(again[i].time_len == first[i].time_len &&
					memcmp(printed + again[i].time_offset, text + first[i].time_offset,
						   first[i].time_len) == 0);
		}
		free(printed);
	}
	free(text);
	return 0;
}
