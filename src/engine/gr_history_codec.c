/*
 * gr_history_codec.c — parsers of the genrec_history text and binary forms
 * (gr_history_codec.h). Every check and its order follow the SQL type's input functions
 * exactly, so that src/pg_history.c raises the same errors as before the parsing moved here.
 */
#include "gr_history_codec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Record a syntax problem at the parser's position. */
static gr_hist_error
syntax_error(const gr_hist_text *ps, const char *expected, gr_hist_problem *pb)
{
	memset(pb, 0, sizeof(*pb));
	pb->code = GR_HIST_SYNTAX;
	pb->expected = expected;
	pb->offset = ps->pos;
	pb->at_end = ps->input[ps->pos] == '\0';
	pb->index = ps->index;
	return GR_HIST_SYNTAX;
}

/* Record a problem with the token [start, end) of the input. */
static gr_hist_error
token_error(const gr_hist_text *ps, gr_hist_error code, size_t start, size_t end,
			gr_hist_problem *pb)
{
	memset(pb, 0, sizeof(*pb));
	pb->code = code;
	pb->token_offset = start;
	pb->token_len = end - start;
	pb->index = ps->index;
	return code;
}

/* Whether c is a blank (PostgreSQL's scanner_isspace). */
static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Whether c ends a bare token. */
static bool
is_delim(char c)
{
	return c == '\0' || c == ',' || c == '(' || c == ')' || c == '{' || c == '}' ||
		c == '"' || c == '\\';
}

/* Skip blanks. */
static void
skip_blanks(gr_hist_text *ps)
{
	while (ps->input[ps->pos] != '\0' && is_blank(ps->input[ps->pos]))
		ps->pos++;
}

/* Consume the character c, or fail saying what was expected. */
static gr_hist_error
expect(gr_hist_text *ps, char c, const char *expected, gr_hist_problem *pb)
{
	if (ps->input[ps->pos] != c)
		return syntax_error(ps, expected, pb);
	ps->pos++;
	return GR_HIST_OK;
}

/* Copy the token [start, end) into the scratch buffer as a C string. */
static char *
scratch_token(gr_hist_text *ps, size_t start, size_t end)
{
	memcpy(ps->scratch, ps->input + start, end - start);
	ps->scratch[end - start] = '\0';
	return ps->scratch;
}

/* Parse an item id: an optionally signed decimal bigint. */
static gr_hist_error
parse_item(gr_hist_text *ps, int64_t *out, gr_hist_problem *pb)
{
	size_t		q = ps->pos;
	char	   *tok;
	long long	v;

	if (ps->input[q] == '+' || ps->input[q] == '-')
		q++;
	if (!isdigit((unsigned char) ps->input[q]))
		return syntax_error(ps, "Expected an item id (an integer)", pb);
	while (isdigit((unsigned char) ps->input[q]))
		q++;
	tok = scratch_token(ps, ps->pos, q);
	errno = 0;
	v = strtoll(tok, NULL, 10);
	if (errno == ERANGE)
		return token_error(ps, GR_HIST_ITEM_RANGE, ps->pos, q, pb);
	ps->pos = q;
	*out = (int64_t) v;
	return GR_HIST_OK;
}

/* Parse an optional action; *present is false when it is empty (NULL). */
static gr_hist_error
parse_action(gr_hist_text *ps, bool *present, float *out, gr_hist_problem *pb)
{
	size_t		q = ps->pos;
	char	   *tok;
	char	   *end;
	float		v;

	while (!is_delim(ps->input[q]) && !is_blank(ps->input[q]))
		q++;
	*present = q != ps->pos;
	if (!*present)
		return GR_HIST_OK;
	tok = scratch_token(ps, ps->pos, q);
	errno = 0;
	v = strtof(tok, &end);
	if (end == tok || *end != '\0')
		return syntax_error(ps, "Expected an action (a real number, or nothing for NULL)", pb);
	if (isnan(v) || (isinf(v) && errno != ERANGE))
		return token_error(ps, GR_HIST_ACTION_NOT_FINITE, ps->pos, q, pb);
	if (errno == ERANGE && (v == 0.0f || isinf(v)))
		return token_error(ps, GR_HIST_ACTION_RANGE, ps->pos, q, pb);
	ps->pos = q;
	*out = v;
	return GR_HIST_OK;
}

/* Scan an optional time, quoted or bare, into the interaction's span. */
static gr_hist_error
scan_time(gr_hist_text *ps, gr_hist_interaction *it, gr_hist_problem *pb)
{
	const char *s = ps->input;
	size_t		start,
				q;

	it->has_time = false;
	it->time_offset = ps->pos;
	it->time_len = 0;
	if (s[ps->pos] == '"')
	{
		start = ps->pos + 1;
		q = start;
		while (s[q] != '\0' && s[q] != '"' && s[q] != '\\')
			q++;
		if (s[q] != '"')
		{
			ps->pos = q;
			return syntax_error(ps, "Expected a closing double quote (no backslashes inside)",
								pb);
		}
		ps->pos = q + 1;
	}
	else
	{
		start = ps->pos;
		q = start;
		while (!is_delim(s[q]))
			q++;
		ps->pos = q;
		while (q > start && is_blank(s[q - 1]))
			q--;
		if (q == start)
			return GR_HIST_OK;
	}
	it->has_time = true;
	it->time_offset = start;
	it->time_len = q - start;
	return GR_HIST_OK;
}

/* Blanks, "{", blanks; an empty history also consumes "}" and the blanks after it. */
gr_hist_error
gr_hist_text_begin(gr_hist_text *ps, const char *input, char *scratch, bool *empty,
				   gr_hist_problem *pb)
{
	gr_hist_error e;

	ps->input = input;
	ps->pos = 0;
	ps->index = 0;
	ps->scratch = scratch;
	*empty = false;
	skip_blanks(ps);
	if ((e = expect(ps, '{', "Expected \"{\"", pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	if (input[ps->pos] != '}')
		return GR_HIST_OK;
	ps->pos++;
	*empty = true;
	skip_blanks(ps);
	if (input[ps->pos] != '\0')
		return syntax_error(ps, "Unexpected text after \"}\"", pb);
	return GR_HIST_OK;
}

/* "(" item "," action "," time, with the blanks between them and before ")". */
gr_hist_error
gr_hist_text_interaction(gr_hist_text *ps, gr_hist_interaction *it, gr_hist_problem *pb)
{
	gr_hist_error e;

	memset(it, 0, sizeof(*it));
	ps->index++;
	if ((e = expect(ps, '(', "Expected \"(\" to start an interaction", pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	if ((e = parse_item(ps, &it->item, pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	if ((e = expect(ps, ',', "Expected \",\" after the item id", pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	if ((e = parse_action(ps, &it->has_action, &it->action, pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	if ((e = expect(ps, ',', "Expected \",\" after the action", pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	if ((e = scan_time(ps, it, pb)) != GR_HIST_OK)
		return e;
	skip_blanks(ps);
	return GR_HIST_OK;
}

/* The ")" of an interaction. */
gr_hist_error
gr_hist_text_close(gr_hist_text *ps, gr_hist_problem *pb)
{
	return expect(ps, ')', "Expected \")\" to end an interaction", pb);
}

/* "," (another interaction follows) or "}" and the end of the input. */
gr_hist_error
gr_hist_text_next(gr_hist_text *ps, bool *more, gr_hist_problem *pb)
{
	const char *s = ps->input;

	*more = false;
	skip_blanks(ps);
	if (s[ps->pos] == ',')
	{
		ps->pos++;
		skip_blanks(ps);
		*more = true;
		return GR_HIST_OK;
	}
	if (s[ps->pos] != '}')
		return syntax_error(ps, "Expected \",\" or \"}\" after an interaction", pb);
	ps->pos++;
	skip_blanks(ps);
	if (s[ps->pos] != '\0')
		return syntax_error(ps, "Unexpected text after \"}\"", pb);
	return GR_HIST_OK;
}

/* ------------------------------------------------------------------------ binary form */

/* A cursor over binary data. */
typedef struct reader
{
	const uint8_t *buf;
	size_t		len;
	size_t		pos;
} reader;

/* Read n big-endian bytes as an unsigned integer; false when fewer are left. */
static bool
read_be(reader *r, int n, uint64_t *out)
{
	uint64_t	v = 0;

	if (r->len - r->pos < (size_t) n)
		return false;
	for (int i = 0; i < n; i++)
		v = v << 8 | r->buf[r->pos + i];
	r->pos += (size_t) n;
	*out = v;
	return true;
}

/* Record a problem that has no position in a text. */
static gr_hist_error
binary_error(gr_hist_error code, int index, int64_t value, gr_hist_problem *pb)
{
	memset(pb, 0, sizeof(*pb));
	pb->code = code;
	pb->index = index;
	pb->value = value;
	return code;
}

/* Length and flags of the binary form. */
gr_hist_error
gr_hist_binary_header(const uint8_t *buf, size_t len, int32_t *n, uint32_t *flags,
					  gr_hist_problem *pb)
{
	reader		r = {buf, len, 0};
	uint64_t	v;

	if (!read_be(&r, 4, &v))
		return binary_error(GR_HIST_SHORT, 0, 0, pb);
	*n = (int32_t) (uint32_t) v;
	if (!read_be(&r, 4, &v))
		return binary_error(GR_HIST_SHORT, 0, 0, pb);
	*flags = (uint32_t) v;
	if (*n < 0)
		return binary_error(GR_HIST_BAD_LENGTH, 0, *n, pb);
	if (*n > GR_HISTORY_MAX_LEN)
		return binary_error(GR_HIST_TOO_LONG, 0, *n, pb);
	if ((*flags & ~(uint32_t) GR_HIST_KNOWN_FLAGS) != 0 ||
		((*flags & GR_HIST_HAS_TIME_NULLS) && !(*flags & GR_HIST_HAS_TIMES)))
		return binary_error(GR_HIST_BAD_FLAGS, 0, (int64_t) *flags, pb);
	return GR_HIST_OK;
}

/* The arrays of the binary form, in the order they are stored. */
gr_hist_error
gr_hist_binary_decode(const uint8_t *buf, size_t len, int32_t n, uint32_t flags,
					  const gr_hist_time_range *range, int64_t *items, float *actions,
					  int64_t *times, bool *time_isnull, size_t *consumed, gr_hist_problem *pb)
{
	reader		r = {buf, len, 8};
	uint64_t	v;

	*consumed = 0;
	if (len < 8)
		return binary_error(GR_HIST_SHORT, 0, 0, pb);
	for (int i = 0; i < n; i++)
	{
		if (!read_be(&r, 8, &v))
			return binary_error(GR_HIST_SHORT, i + 1, 0, pb);
		items[i] = (int64_t) v;
	}
	for (int i = 0; i < n; i++)
	{
		if (flags & GR_HIST_HAS_ACTIONS)
		{
			uint32_t	bits;

			if (!read_be(&r, 4, &v))
				return binary_error(GR_HIST_SHORT, i + 1, 0, pb);
			bits = (uint32_t) v;
			memcpy(&actions[i], &bits, sizeof(bits));
		}
		else
			actions[i] = NAN;
		if (isinf(actions[i]))
			return binary_error(GR_HIST_ACTION_NOT_FINITE, i + 1, 0, pb);
	}
	for (int i = 0; i < n; i++)
	{
		times[i] = 0;
		if (flags & GR_HIST_HAS_TIMES)
		{
			if (!read_be(&r, 8, &v))
				return binary_error(GR_HIST_SHORT, i + 1, 0, pb);
			times[i] = (int64_t) v;
		}
		time_isnull[i] = !(flags & GR_HIST_HAS_TIMES);
	}
	if (flags & GR_HIST_HAS_TIME_NULLS)
	{
		size_t		bytes = ((size_t) n + 7) / 8;

		if (r.len - r.pos < bytes)
			return binary_error(GR_HIST_SHORT, 0, 0, pb);
		for (int i = 0; i < n; i++)
			time_isnull[i] = (r.buf[r.pos + (size_t) (i >> 3)] & (1 << (i & 7))) != 0;
		r.pos += bytes;
	}
	for (int i = 0; i < n; i++)
		if (!time_isnull[i] && times[i] != range->minus_infinity &&
			times[i] != range->plus_infinity &&
			!(times[i] >= range->min_valid && times[i] < range->end_valid))
			return binary_error(GR_HIST_TIME_RANGE, i + 1, 0, pb);
	*consumed = r.pos;
	return GR_HIST_OK;
}

/* Bytes of a binary history. */
size_t
gr_hist_binary_size(int32_t n, uint32_t flags)
{
	size_t		un = n > 0 ? (size_t) n : 0;
	size_t		size = 8 + 8 * un;

	if (flags & GR_HIST_HAS_ACTIONS)
		size += 4 * un;
	if (flags & GR_HIST_HAS_TIMES)
		size += 8 * un;
	if (flags & GR_HIST_HAS_TIME_NULLS)
		size += (un + 7) / 8;
	return size;
}
