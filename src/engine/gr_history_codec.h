/*
 * gr_history_codec.h — the text and binary forms of the genrec_history SQL type, parsed
 * without PostgreSQL so that they can be fuzzed (test/fuzz/fuzz_history_*.c). The glue
 * (src/pg_history.c) drives these parsers, converts timestamps with PostgreSQL's own input
 * function and turns each gr_hist_problem into the ERROR it has always raised.
 *
 * Text form: {(101,4.5,"2024-01-01 00:00:00+00"),(102,,),(103,1,2024-01-03)} — a
 * brace-enclosed, comma-separated list of (item, action, time) triples; the item is a bigint
 * and required, the action a finite real or nothing (NULL), the time quoted (no backslashes
 * inside) or bare, or nothing (NULL). Whitespace (space, tab, newline, carriage return, form
 * feed) is allowed around every token. The text parser is a pull parser: the caller asks for
 * one piece at a time, so that it can convert the time and add the interaction between the
 * pieces in the order the SQL type always has (and report errors in that order).
 *
 * Binary form: int32 n, uint32 flags (GR_HIST_*), n int64 items, n float4 actions if
 * GR_HIST_HAS_ACTIONS, n int64 times if GR_HIST_HAS_TIMES, ceil(n/8) bytes of time-NULL bitmap
 * (bit i of byte i/8 set = time i NULL) if GR_HIST_HAS_TIME_NULLS; all big-endian.
 *
 * Neither parser allocates: the text parser needs a scratch buffer of strlen(input) + 1
 * bytes, the binary decoder the caller's arrays of n entries.
 */
#ifndef GR_HISTORY_CODEC_H
#define GR_HISTORY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most interactions one history may hold. */
#define GR_HISTORY_MAX_LEN 100000

#define GR_HIST_HAS_ACTIONS		0x0001
#define GR_HIST_HAS_TIMES		0x0002
#define GR_HIST_HAS_TIME_NULLS	0x0004
#define GR_HIST_KNOWN_FLAGS		(GR_HIST_HAS_ACTIONS | GR_HIST_HAS_TIMES | GR_HIST_HAS_TIME_NULLS)

typedef enum gr_hist_error
{
	GR_HIST_OK = 0,
	GR_HIST_SYNTAX,				/* text: malformed (expected, offset, at_end) */
	GR_HIST_ITEM_RANGE,			/* text: an item id outside bigint (token) */
	GR_HIST_ACTION_NOT_FINITE,	/* text: NaN or an infinity written out (token, index);
								 * binary: an infinite action (index) */
	GR_HIST_ACTION_RANGE,		/* text: an action that overflows or underflows real (token) */
	GR_HIST_SHORT,				/* binary: the data ends before the history does */
	GR_HIST_BAD_LENGTH,			/* binary: a negative length (value) */
	GR_HIST_TOO_LONG,			/* binary: more than GR_HISTORY_MAX_LEN interactions (value) */
	GR_HIST_BAD_FLAGS,			/* binary: unknown flags, or time NULLs without times (value) */
	GR_HIST_TIME_RANGE			/* binary: a finite time outside the valid range (index) */
} gr_hist_error;

/* What went wrong, and where. */
typedef struct gr_hist_problem
{
	gr_hist_error code;
	const char *expected;		/* SYNTAX: what was expected, e.g. "Expected \"{\"" */
	size_t		offset;			/* SYNTAX: 0-based position in the text */
	bool		at_end;			/* SYNTAX: the text ends there */
	size_t		token_offset;	/* ITEM_RANGE, ACTION_*: the offending token in the text */
	size_t		token_len;
	int			index;			/* 1-based interaction */
	int64_t		value;			/* BAD_LENGTH: n; TOO_LONG: n; BAD_FLAGS: the flags */
} gr_hist_problem;

/* A text parse in progress. */
typedef struct gr_hist_text
{
	const char *input;			/* NUL-terminated */
	size_t		pos;
	int			index;			/* 1-based interaction being parsed (0 before the first) */
	char	   *scratch;		/* strlen(input) + 1 bytes, for NUL-terminated tokens */
} gr_hist_text;

/* One interaction of the text form; the time is a span of the input still to convert. */
typedef struct gr_hist_interaction
{
	int64_t		item;
	bool		has_action;
	float		action;
	bool		has_time;
	size_t		time_offset;	/* the time's text without quotes or surrounding blanks */
	size_t		time_len;
} gr_hist_interaction;

/*
 * Start parsing input: blanks, "{", blanks. *empty is set for "{}", which is then consumed
 * with what follows it (blanks only). Otherwise call gr_hist_text_interaction next.
 */
gr_hist_error gr_hist_text_begin(gr_hist_text *ps, const char *input, char *scratch,
								 bool *empty, gr_hist_problem *pb);

/* Parse "(item, action, time" and the blanks before the closing parenthesis. */
gr_hist_error gr_hist_text_interaction(gr_hist_text *ps, gr_hist_interaction *it,
									   gr_hist_problem *pb);

/* Consume the ")" that closes an interaction. */
gr_hist_error gr_hist_text_close(gr_hist_text *ps, gr_hist_problem *pb);

/*
 * After an interaction: blanks, then "," and blanks (*more = true: another interaction
 * follows), or "}" and blanks to the end of the input (*more = false: the history is done).
 */
gr_hist_error gr_hist_text_next(gr_hist_text *ps, bool *more, gr_hist_problem *pb);

/* Valid range of binary times: the two infinities, and finite times in [min_valid, end_valid). */
typedef struct gr_hist_time_range
{
	int64_t		minus_infinity;
	int64_t		plus_infinity;
	int64_t		min_valid;
	int64_t		end_valid;
} gr_hist_time_range;

/*
 * Read and check the binary form's length and flags: GR_HIST_SHORT, then BAD_LENGTH,
 * TOO_LONG and BAD_FLAGS, in that order.
 */
gr_hist_error gr_hist_binary_header(const uint8_t *buf, size_t len, int32_t *n, uint32_t *flags,
									gr_hist_problem *pb);

/*
 * Decode the n interactions that follow a checked header into the caller's arrays of n
 * entries (actions NaN where missing, times 0 and time_isnull true where NULL), in the order
 * of the data: items, each action (an infinite one is an error there), times, the bitmap,
 * then the range of every non-NULL time. *consumed receives the bytes read, header included.
 */
gr_hist_error gr_hist_binary_decode(const uint8_t *buf, size_t len, int32_t n, uint32_t flags,
									const gr_hist_time_range *range, int64_t *items,
									float *actions, int64_t *times, bool *time_isnull,
									size_t *consumed, gr_hist_problem *pb);

/* Bytes of the binary form of n interactions with these flags (header included). */
size_t		gr_hist_binary_size(int32_t n, uint32_t flags);

#endif							/* GR_HISTORY_CODEC_H */
