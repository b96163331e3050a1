/*
 * pg_history.c — the genrec_history type: text and binary I/O, the ordered aggregate, the
 * constructor from arrays and the accessors. The layout is described in pg_history.h.
 *
 * Text format (what genrec_history_out writes and genrec_history_in reads):
 *
 *     {(101,4.5,"2024-01-01 00:00:00+00"),(102,,),(103,1,"2024-01-03 10:00:00+00")}
 *
 * A brace-enclosed, comma-separated list of interactions, each a parenthesised triple
 * (item, action, time). The item is a bigint and is required. The action is a finite real
 * or nothing (NULL); it is printed in the shortest form that reads back exactly. The time is
 * a timestamptz or nothing (NULL); it is printed in double quotes in the session's DateStyle
 * and TimeZone, and read quoted or bare, like any timestamptz literal. Whitespace is allowed
 * around every token. {} is the empty history. Output reads back to the identical value.
 *
 * Binary format (send/receive): int32 n, int32 flags (the GH_* bits of pg_history.h), n int64
 * items, then n float4 actions (NaN = NULL) if GH_HAS_ACTIONS, n int64 times (microseconds
 * since 2000-01-01 UTC) if GH_HAS_TIMES, and ceil(n/8) bytes of time-NULL bitmap (bit i of
 * byte i/8 set = time i is NULL) if GH_HAS_TIME_NULLS. Receive validates like text input.
 *
 * Both input forms are parsed by the engine (src/engine/gr_history_codec.c, which needs no
 * PostgreSQL and is fuzzed on its own); this file converts the times with timestamptz_in and
 * turns each problem the parser reports into the ERROR below.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/timestamp.h"

#include "pg_history.h"

/* How much of an input literal an error message repeats. */
#define GH_ECHO_LEN 64

/* Interactions collected before a history is built: parallel, growable arrays. */
typedef struct GhBuilder
{
	int			n;
	int			cap;
	int64	   *items;
	float4	   *actions;		/* NaN = NULL */
	int64	   *times;
	bool	   *time_isnull;
} GhBuilder;

PG_FUNCTION_INFO_V1(genrec_history_in);
PG_FUNCTION_INFO_V1(genrec_history_out);
PG_FUNCTION_INFO_V1(genrec_history_recv);
PG_FUNCTION_INFO_V1(genrec_history_send);
PG_FUNCTION_INFO_V1(genrec_history_agg_trans);
PG_FUNCTION_INFO_V1(genrec_history_agg_final);
PG_FUNCTION_INFO_V1(genrec_history_from_arrays);
PG_FUNCTION_INFO_V1(genrec_history_items);
PG_FUNCTION_INFO_V1(genrec_history_actions);
PG_FUNCTION_INFO_V1(genrec_history_times);
PG_FUNCTION_INFO_V1(genrec_history_length);
PG_FUNCTION_INFO_V1(genrec_history_tail);

/* Build a history from parallel arrays, with minimal flags. */
GenrecHistory *
genrec_history_build(int n, const int64 *items, const float4 *actions,
					 const int64 *times, const bool *time_isnull)
{
	bool		has_actions = false;
	int			n_time_nulls = 0;
	uint32		flags = 0;
	Size		size;
	GenrecHistory *h;
	char	   *p;

	if (n < 0 || n > GENREC_HISTORY_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("genrec_history cannot hold more than %d interactions",
						GENREC_HISTORY_MAX_LEN)));

	for (int i = 0; actions != NULL && i < n && !has_actions; i++)
		has_actions = !isnan(actions[i]);
	if (times != NULL)
	{
		for (int i = 0; time_isnull != NULL && i < n; i++)
			n_time_nulls += time_isnull[i] ? 1 : 0;
		if (n > 0 && n_time_nulls < n)
			flags |= GH_HAS_TIMES;
		if (n_time_nulls > 0 && n_time_nulls < n)
			flags |= GH_HAS_TIME_NULLS;
	}
	if (has_actions)
		flags |= GH_HAS_ACTIONS;

	size = sizeof(GenrecHistory) + sizeof(int64) * (Size) n;
	if (flags & GH_HAS_TIMES)
		size += sizeof(int64) * (Size) n;
	if (flags & GH_HAS_ACTIONS)
		size += sizeof(float4) * (Size) n;
	if (flags & GH_HAS_TIME_NULLS)
		size += (n + 7) / 8;

	h = (GenrecHistory *) palloc0(size);
	SET_VARSIZE(h, size);
	h->n = n;
	h->flags = flags;

	p = (char *) gh_items(h);
	if (n > 0)
		memcpy(p, items, sizeof(int64) * n);
	p += sizeof(int64) * n;
	if (flags & GH_HAS_TIMES)
	{
		int64	   *t = (int64 *) p;

		for (int i = 0; i < n; i++)
			t[i] = (time_isnull != NULL && time_isnull[i]) ? 0 : times[i];
		p += sizeof(int64) * n;
	}
	if (flags & GH_HAS_ACTIONS)
	{
		float4	   *a = (float4 *) p;

		/* one NaN bit pattern for every missing action */
		for (int i = 0; i < n; i++)
			a[i] = isnan(actions[i]) ? get_float4_nan() : actions[i];
		p += sizeof(float4) * n;
	}
	if (flags & GH_HAS_TIME_NULLS)
	{
		bits8	   *bits = (bits8 *) p;

		for (int i = 0; i < n; i++)
			if (time_isnull[i])
				bits[i >> 3] |= (bits8) (1 << (i & 7));
	}
	return h;
}

/* Start an empty builder whose arrays live in cxt. */
static void
gh_builder_init(GhBuilder *b, MemoryContext cxt, int cap)
{
	cap = Max(cap, 8);
	cap = Min(cap, GENREC_HISTORY_MAX_LEN);
	b->n = 0;
	b->cap = cap;
	b->items = MemoryContextAlloc(cxt, sizeof(int64) * cap);
	b->actions = MemoryContextAlloc(cxt, sizeof(float4) * cap);
	b->times = MemoryContextAlloc(cxt, sizeof(int64) * cap);
	b->time_isnull = MemoryContextAlloc(cxt, sizeof(bool) * cap);
}

/* Reject an action that is not a finite number. */
static void
gh_check_action(float4 action)
{
	if (isnan(action) || isinf(action))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("genrec_history action must be a finite number"),
				 errhint("Use NULL for a missing action.")));
}

/* Append one interaction, enforcing the length limit and finite actions. */
static void
gh_builder_add(GhBuilder *b, int64 item, bool action_isnull, float4 action,
			   bool time_isnull, TimestampTz time)
{
	if (b->n >= GENREC_HISTORY_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("genrec_history cannot hold more than %d interactions",
						GENREC_HISTORY_MAX_LEN)));
	if (!action_isnull)
		gh_check_action(action);
	if (b->n == b->cap)
	{
		int			cap = Min(b->cap * 2, GENREC_HISTORY_MAX_LEN);

		/* repalloc keeps each array in the context it was allocated in */
		b->items = repalloc(b->items, sizeof(int64) * cap);
		b->actions = repalloc(b->actions, sizeof(float4) * cap);
		b->times = repalloc(b->times, sizeof(int64) * cap);
		b->time_isnull = repalloc(b->time_isnull, sizeof(bool) * cap);
		b->cap = cap;
	}
	b->items[b->n] = item;
	b->actions[b->n] = action_isnull ? get_float4_nan() : action;
	b->time_isnull[b->n] = time_isnull;
	b->times[b->n] = time_isnull ? 0 : time;
	b->n++;
}

/* Build the history a builder holds, in the current memory context. */
static GenrecHistory *
gh_builder_finish(const GhBuilder *b)
{
	return genrec_history_build(b->n, b->items, b->actions, b->times, b->time_isnull);
}

/* ---------------------------------------------------------------- text I/O */

/* Return the start of an input literal, clipped for an error message. */
static char *
gh_echo(const char *input)
{
	int			len = strlen(input);

	if (len <= GH_ECHO_LEN)
		return pstrdup(input);
	len = pg_mbcliplen(input, len, GH_ECHO_LEN);
	return psprintf("%.*s...", len, input);
}

/* Raise the ERROR for a problem the engine's text parser reported in input. */
static void
pg_attribute_noreturn()
gh_text_error(const char *input, const gr_hist_problem *pb)
{
	char	   *tok = pnstrdup(input + pb->token_offset, pb->token_len);

	switch (pb->code)
	{
		case GR_HIST_SYNTAX:
			if (pb->at_end)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("malformed genrec_history literal: \"%s\"", gh_echo(input)),
						 errdetail("%s at end of input.", pb->expected)));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("malformed genrec_history literal: \"%s\"", gh_echo(input)),
					 errdetail("%s at position %d.", pb->expected, (int) pb->offset + 1)));
			break;
		case GR_HIST_ITEM_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("item id %s is out of range for type bigint", tok)));
			break;
		case GR_HIST_ACTION_NOT_FINITE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("genrec_history action must be a finite number"),
					 errdetail("Interaction %d has action \"%s\".", pb->index, tok),
					 errhint("Leave the action empty for a missing action.")));
			break;
		case GR_HIST_ACTION_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("action \"%s\" is out of range for type real", tok)));
			break;
		default:
			break;
	}
	elog(ERROR, "genrec_history: unexpected text parser result %d", (int) pb->code);
	pg_unreachable();
}

/* Name the interaction being parsed in the context of an error from timestamptz input. */
static void
gh_parse_error_callback(void *arg)
{
	int		   *index = (int *) arg;

	errcontext("genrec_history interaction %d", *index);
}

/* Convert the time text of interaction index with timestamptz input. */
static TimestampTz
gh_parse_time(const char *input, const gr_hist_interaction *it, int index)
{
	char	   *tok = pnstrdup(input + it->time_offset, it->time_len);
	ErrorContextCallback errcb;
	TimestampTz time;

	errcb.callback = gh_parse_error_callback;
	errcb.arg = &index;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	time = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(tok),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
	error_context_stack = errcb.previous;
	pfree(tok);
	return time;
}

/* Parse the text form of a history. */
Datum
genrec_history_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	char	   *scratch = palloc(strlen(input) + 1);
	gr_hist_text ps;
	gr_hist_problem pb;
	GhBuilder	b;
	bool		empty;
	bool		more = true;

	gh_builder_init(&b, CurrentMemoryContext, 16);
	if (gr_hist_text_begin(&ps, input, scratch, &empty, &pb) != GR_HIST_OK)
		gh_text_error(input, &pb);
	while (!empty && more)
	{
		gr_hist_interaction it;
		TimestampTz time = 0;

		if (gr_hist_text_interaction(&ps, &it, &pb) != GR_HIST_OK)
			gh_text_error(input, &pb);
		if (it.has_time)
			time = gh_parse_time(input, &it, ps.index);
		if (gr_hist_text_close(&ps, &pb) != GR_HIST_OK)
			gh_text_error(input, &pb);
		gh_builder_add(&b, it.item, !it.has_action, it.has_action ? it.action : 0,
					   !it.has_time, time);
		if (gr_hist_text_next(&ps, &more, &pb) != GR_HIST_OK)
			gh_text_error(input, &pb);
	}
	pfree(scratch);
	PG_RETURN_GENREC_HISTORY_P(gh_builder_finish(&b));
}

/* Write the text form of a history. */
Datum
genrec_history_out(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = PG_GETARG_GENREC_HISTORY_P(0);
	int64	   *items = gh_items(h);
	float4	   *actions = gh_actions(h);
	int64	   *times = gh_times(h);
	StringInfoData buf;
	char		num[Max(MAXINT8LEN, FLOAT_SHORTEST_DECIMAL_LEN) + 1];

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < h->n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoChar(&buf, '(');
		appendBinaryStringInfo(&buf, num, pg_lltoa(items[i], num));
		appendStringInfoChar(&buf, ',');
		if (actions != NULL && !isnan(actions[i]))
			appendBinaryStringInfo(&buf, num, float_to_shortest_decimal_buf(actions[i], num));
		appendStringInfoChar(&buf, ',');
		if (times != NULL && !gh_time_isnull(h, i))
		{
			char	   *ts = DatumGetCString(DirectFunctionCall1(timestamptz_out,
																TimestampTzGetDatum(times[i])));

			appendStringInfoChar(&buf, '"');
			appendStringInfoString(&buf, ts);
			appendStringInfoChar(&buf, '"');
			pfree(ts);
		}
		appendStringInfoChar(&buf, ')');
	}
	appendStringInfoChar(&buf, '}');
	PG_RETURN_CSTRING(buf.data);
}

/* ---------------------------------------------------------------- binary I/O */

/* Raise the ERROR for a problem the engine's binary decoder reported. */
static void
pg_attribute_noreturn()
gh_binary_error(const gr_hist_problem *pb)
{
	switch (pb->code)
	{
		case GR_HIST_SHORT:
			/* what pq_getmsgbytes says */
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("insufficient data left in message")));
			break;
		case GR_HIST_BAD_LENGTH:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid genrec_history length %d in binary data", (int) pb->value)));
			break;
		case GR_HIST_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("genrec_history cannot hold more than %d interactions",
							GENREC_HISTORY_MAX_LEN)));
			break;
		case GR_HIST_BAD_FLAGS:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid genrec_history flags 0x%x in binary data",
							(unsigned int) pb->value)));
			break;
		case GR_HIST_ACTION_NOT_FINITE:
			gh_check_action(get_float4_infinity());
			break;
		case GR_HIST_TIME_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range in genrec_history interaction %d",
							pb->index)));
			break;
		default:
			break;
	}
	elog(ERROR, "genrec_history: unexpected binary decoder result %d", (int) pb->code);
	pg_unreachable();
}

/* Read the binary form of a history, validating it like text input. */
Datum
genrec_history_recv(PG_FUNCTION_ARGS)
{
	static const gr_hist_time_range range = {
		DT_NOBEGIN, DT_NOEND, MIN_TIMESTAMP, END_TIMESTAMP
	};
	StringInfo	msg = (StringInfo) PG_GETARG_POINTER(0);
	const uint8 *data = (const uint8 *) msg->data + msg->cursor;
	size_t		len = (size_t) (msg->len - msg->cursor);
	gr_hist_problem pb;
	int32		n;
	uint32		flags;
	size_t		consumed;
	int64	   *items;
	float4	   *actions;
	int64	   *times;
	bool	   *time_isnull;

	if (gr_hist_binary_header(data, len, &n, &flags, &pb) != GR_HIST_OK)
		gh_binary_error(&pb);
	items = palloc(sizeof(int64) * Max(n, 1));
	actions = palloc(sizeof(float4) * Max(n, 1));
	times = palloc(sizeof(int64) * Max(n, 1));
	time_isnull = palloc(sizeof(bool) * Max(n, 1));
	if (gr_hist_binary_decode(data, len, n, flags, &range, items, actions, times, time_isnull,
							  &consumed, &pb) != GR_HIST_OK)
		gh_binary_error(&pb);
	msg->cursor += (int) consumed;
	PG_RETURN_GENREC_HISTORY_P(genrec_history_build(n, items, actions, times, time_isnull));
}

/* Write the binary form of a history. */
Datum
genrec_history_send(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = PG_GETARG_GENREC_HISTORY_P(0);
	int64	   *items = gh_items(h);
	float4	   *actions = gh_actions(h);
	int64	   *times = gh_times(h);
	bits8	   *nulls = gh_time_nulls(h);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, h->n);
	pq_sendint32(&buf, h->flags);
	for (int i = 0; i < h->n; i++)
		pq_sendint64(&buf, items[i]);
	for (int i = 0; actions != NULL && i < h->n; i++)
		pq_sendfloat4(&buf, actions[i]);
	for (int i = 0; times != NULL && i < h->n; i++)
		pq_sendint64(&buf, times[i]);
	if (nulls != NULL)
		pq_sendbytes(&buf, (const char *) nulls, (h->n + 7) / 8);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------------------------------------------------------------- constructors */

/*
 * Append one row to the aggregate's state. The state lives in the aggregate's memory
 * context; rows are kept in the order they arrive (ORDER BY ts inside the call gives that
 * order; ties keep the order the executor delivers, which SQL leaves undefined).
 */
Datum
genrec_history_agg_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	GhBuilder  *b;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "genrec_history_agg_trans called in non-aggregate context");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("genrec_history item must not be NULL"),
				 errhint("Filter the rows, e.g. with FILTER (WHERE item IS NOT NULL).")));

	if (PG_ARGISNULL(0))
	{
		b = MemoryContextAlloc(aggcxt, sizeof(GhBuilder));
		gh_builder_init(b, aggcxt, 64);
	}
	else
		b = (GhBuilder *) PG_GETARG_POINTER(0);

	gh_builder_add(b, PG_GETARG_INT64(1),
				   PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_FLOAT4(2),
				   PG_ARGISNULL(3), PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3));
	PG_RETURN_POINTER(b);
}

/* Build the aggregate's history; the state is left untouched (window use calls this often). */
Datum
genrec_history_agg_final(PG_FUNCTION_ARGS)
{
	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "genrec_history_agg_final called in non-aggregate context");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_GENREC_HISTORY_P(gh_builder_finish((GhBuilder *) PG_GETARG_POINTER(0)));
}

/* Deconstruct a one-dimensional array argument of a builtin by-value element type. */
static int
gh_array_arg(ArrayType *a, const char *argname, Oid elemtype, int16 elmlen, char elmalign,
			 Datum **elems, bool **nulls)
{
	int			n;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname)));
	if (ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) > GENREC_HISTORY_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("genrec_history cannot hold more than %d interactions",
						GENREC_HISTORY_MAX_LEN)));
	deconstruct_array(a, elemtype, elmlen, true, elmalign, elems, nulls, &n);
	return n;
}

/* Build a history from arrays of items and, optionally, actions and times. */
Datum
genrec_history_from_arrays(PG_FUNCTION_ARGS)
{
	Datum	   *items,
			   *actions = NULL,
			   *times = NULL;
	bool	   *items_null,
			   *actions_null = NULL,
			   *times_null = NULL;
	int			n;
	GhBuilder	b;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	n = gh_array_arg(PG_GETARG_ARRAYTYPE_P(0), "items", INT8OID, sizeof(int64),
					 TYPALIGN_DOUBLE, &items, &items_null);
	if (!PG_ARGISNULL(1))
	{
		int			na = gh_array_arg(PG_GETARG_ARRAYTYPE_P(1), "actions", FLOAT4OID,
									  sizeof(float4), TYPALIGN_INT, &actions, &actions_null);

		if (na != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("actions and items must have the same length"),
					 errdetail("items has %d elements, actions has %d.", n, na)));
	}
	if (!PG_ARGISNULL(2))
	{
		int			nt = gh_array_arg(PG_GETARG_ARRAYTYPE_P(2), "ts", TIMESTAMPTZOID,
									  sizeof(TimestampTz), TYPALIGN_DOUBLE, &times, &times_null);

		if (nt != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("ts and items must have the same length"),
					 errdetail("items has %d elements, ts has %d.", n, nt)));
	}

	gh_builder_init(&b, CurrentMemoryContext, n);
	for (int i = 0; i < n; i++)
	{
		bool		a_null = actions == NULL || actions_null[i];
		bool		t_null = times == NULL || times_null[i];

		if (items_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("genrec_history item must not be NULL"),
					 errdetail("Element %d of items is NULL.", i + 1)));
		gh_builder_add(&b, DatumGetInt64(items[i]),
					   a_null, a_null ? 0 : DatumGetFloat4(actions[i]),
					   t_null, t_null ? 0 : DatumGetTimestampTz(times[i]));
	}
	PG_RETURN_GENREC_HISTORY_P(gh_builder_finish(&b));
}

/* ---------------------------------------------------------------- accessors */

/* Return the item ids as bigint[]. */
Datum
genrec_history_items(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = PG_GETARG_GENREC_HISTORY_P(0);
	int64	   *items = gh_items(h);
	Datum	   *d;

	if (h->n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	d = palloc(sizeof(Datum) * h->n);
	for (int i = 0; i < h->n; i++)
		d[i] = Int64GetDatum(items[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, h->n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
}

/* Return the actions as real[], NULL where an action is missing. */
Datum
genrec_history_actions(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = PG_GETARG_GENREC_HISTORY_P(0);
	float4	   *actions = gh_actions(h);
	Datum	   *d;
	bool	   *nulls;
	int			dims[1] = {h->n};
	int			lbs[1] = {1};

	if (h->n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(FLOAT4OID));
	d = palloc(sizeof(Datum) * h->n);
	nulls = palloc(sizeof(bool) * h->n);
	for (int i = 0; i < h->n; i++)
	{
		nulls[i] = actions == NULL || isnan(actions[i]);
		d[i] = nulls[i] ? (Datum) 0 : Float4GetDatum(actions[i]);
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(d, nulls, 1, dims, lbs, FLOAT4OID,
											 sizeof(float4), true, TYPALIGN_INT));
}

/* Return the times as timestamptz[], NULL where a time is missing. */
Datum
genrec_history_times(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = PG_GETARG_GENREC_HISTORY_P(0);
	int64	   *times = gh_times(h);
	Datum	   *d;
	bool	   *nulls;
	int			dims[1] = {h->n};
	int			lbs[1] = {1};

	if (h->n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TIMESTAMPTZOID));
	d = palloc(sizeof(Datum) * h->n);
	nulls = palloc(sizeof(bool) * h->n);
	for (int i = 0; i < h->n; i++)
	{
		nulls[i] = gh_time_isnull(h, i);
		d[i] = nulls[i] ? (Datum) 0 : TimestampTzGetDatum(times[i]);
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(d, nulls, 1, dims, lbs, TIMESTAMPTZOID,
											 sizeof(TimestampTz), FLOAT8PASSBYVAL,
											 TYPALIGN_DOUBLE));
}

/* Return the number of interactions, reading only the header. */
Datum
genrec_history_length(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = (GenrecHistory *) PG_DETOAST_DATUM_SLICE(PG_GETARG_DATUM(0), 0,
																sizeof(GenrecHistory));

	PG_RETURN_INT32(h->n);
}

/* Return the last n interactions (all of them when there are fewer). */
Datum
genrec_history_tail(PG_FUNCTION_ARGS)
{
	GenrecHistory *h = PG_GETARG_GENREC_HISTORY_P(0);
	int32		want = PG_GETARG_INT32(1);
	float4	   *actions = gh_actions(h);
	int64	   *times = gh_times(h);
	bool	   *time_isnull = NULL;
	int			k;
	int			start;

	if (want < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_history_tail length must not be negative")));
	k = Min(want, h->n);
	start = h->n - k;
	if (k == h->n)
		PG_RETURN_GENREC_HISTORY_P(h);
	if (times != NULL)
	{
		time_isnull = palloc(sizeof(bool) * Max(k, 1));
		for (int i = 0; i < k; i++)
			time_isnull[i] = gh_time_isnull(h, start + i);
	}
	PG_RETURN_GENREC_HISTORY_P(genrec_history_build(k, gh_items(h) + start,
													actions ? actions + start : NULL,
													times ? times + start : NULL,
													time_isnull));
}
