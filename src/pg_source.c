/*
 * pg_source.c — a model's interactions read from its source with SPI (see pg_serve.h).
 *
 * Every read runs as the model's owner inside a security-restricted operation with
 * search_path = pg_catalog, pg_temp (pg_security.h), whoever calls: the source is the owner's
 * SQL (a view or query may call the owner's functions) and must never run with the caller's
 * rights. The texts built here name their operators and functions with their schema, and a
 * query source was stored schema-qualified by genrec_train or genrec_import.
 */
#include "pg_serve.h"
#include "pg_security.h"
#include "gr_arch.h"

#include <math.h>
#include <stdlib.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define SOURCE_FETCH_ROWS 10000

/* Action columns the engine reads for a model. */
int
genrec_model_history_actions(const GenrecModel *m)
{
	return gr_layout_needs_actions(m->model->layout) ? m->model->cfg.n_actions : 0;
}

/* Raise the error for a model without a source mapping or whose owner was dropped. */
static void
require_source(const GenrecModel *m)
{
	if (m->source.user_col == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no source table", m->name),
				 errhint("Pass a genrec_history instead of a user id, or name a source when "
						 "importing the model.")));
	genrec_require_owner_exists(m->source.owner, m->name);
}

/* Check that the source names enough action columns for K. */
static void
require_actions(const GenrecModel *m, int K)
{
	if (K > m->source.n_actions)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("model \"%s\" reads %d action column(s), its source names %d",
						m->name, K, m->source.n_actions)));
}

/*
 * Append the FROM clause of the source and its ordering keys after the user column: time,
 * tiebreak, then for a table without a tiebreak column its physical order (tableoid, ctid;
 * as genrec_train reads it). A view or query without a tiebreak column is numbered in the
 * order it produces rows (row_number() OVER ()) when that order matters: always for a whole
 * read (whole), and for a user's history only when there is no time column either (the
 * numbering reads the whole source, so give such sources a time or tiebreak column).
 */
static void
append_from(StringInfo sql, const GenrecSource *s, bool desc, bool whole, StringInfo order)
{
	const char *dir = desc ? " DESC" : "";
	bool		numbered = !s->physical && s->tiebreak_col == NULL &&
		(whole || s->time_col == NULL);

	if (numbered)
		appendStringInfo(sql, " FROM (SELECT genrec_q.*, pg_catalog.row_number() OVER () AS genrec_rn "
						 "FROM %s%s%s AS genrec_q) AS genrec_source",
						 s->relation ? "" : "(", s->relation ? s->relation : s->query,
						 s->relation ? "" : ")");
	else if (s->relation)
		appendStringInfo(sql, " FROM %s", s->relation);
	else
		appendStringInfo(sql, " FROM (%s) AS genrec_source", s->query);
	if (s->time_col)
		appendStringInfo(order, "%s%s", s->time_col, dir);
	if (s->tiebreak_col)
		appendStringInfo(order, "%s%s%s", order->len > 0 ? ", " : "", s->tiebreak_col, dir);
	else if (s->physical)
		appendStringInfo(order, "%stableoid%s, ctid%s", order->len > 0 ? ", " : "", dir, dir);
	else if (numbered)
		appendStringInfo(order, "%sgenrec_rn%s", order->len > 0 ? ", " : "", dir);
	if (order->len == 0)
		appendStringInfoString(order, "1");
}

/* 1970-01-01 in PostgreSQL timestamps (microseconds since 2000-01-01) */
#define GENREC_UNIX_EPOCH_USECS \
	((int64) (UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY)

/* Convert a time value to an int64 (microseconds since 1970 for dates and timestamps). */
int64
genrec_time_value(Datum d, Oid type, const char *col)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT8OID:
			return DatumGetInt64(d);
		case DATEOID:
			if (DATE_NOT_FINITE(DatumGetDateADT(d)))
				break;
			return (int64) DatumGetDateADT(d) * USECS_PER_DAY - GENREC_UNIX_EPOCH_USECS;
		default:
			if (TIMESTAMP_NOT_FINITE(DatumGetTimestamp(d)))
				break;
			return DatumGetTimestamp(d) - GENREC_UNIX_EPOCH_USECS;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("time column \"%s\" has an infinite value", col)));
	return 0;
}

/* Whether the model's trunk reads times and its source has a time column to give them. */
bool
genrec_model_reads_time(const GenrecModel *m)
{
	return m->model->arch->reads_time && m->source.time_col != NULL;
}

/* A time of a source row, which must not be NULL. */
static int64
source_time(HeapTuple tup, TupleDesc desc, int col, const GenrecModel *m)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("time column %s of the source of model \"%s\" has a NULL value",
						m->source.time_col, m->name),
				 errhint("A model whose trunk reads times (hstu) needs a time for every "
						 "interaction.")));
	return genrec_time_value(d, TupleDescAttr(desc, col - 1)->atttypid, m->source.time_col);
}

/* The history query of a model with its source: $1 = user id, $2 = row limit or NULL. */
char *
genrec_history_sql(const GenrecModel *m)
{
	const GenrecSource *s = &m->source;
	int			K = genrec_model_history_actions(m);
	StringInfoData sql,
				order;

	require_source(m);
	require_actions(m, K);
	initStringInfo(&sql);
	initStringInfo(&order);
	appendStringInfo(&sql, "SELECT %s", s->item_col);
	for (int k = 0; k < K; k++)
		appendStringInfo(&sql, ", %s", s->action_cols[k]);
	if (genrec_model_reads_time(m))
		appendStringInfo(&sql, ", %s", s->time_col);
	append_from(&sql, s, true, false, &order);
	appendStringInfo(&sql, " WHERE %s OPERATOR(pg_catalog.=) $1 ORDER BY %s LIMIT $2",
					 s->user_col, order.data);
	pfree(order.data);
	return sql.data;
}

/* Prepare and keep the model's history plan (inside the owner's restricted section). */
static void
prepare_history_plan(GenrecModel *m)
{
	Oid			types[2] = {INT8OID, INT8OID};
	char	   *sql = genrec_history_sql(m);
	SPIPlanPtr	plan;

	if (m->history_plan != NULL)
	{
		SPI_freeplan(m->history_plan);
		m->history_plan = NULL;
	}
	plan = SPI_prepare(sql, 2, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the history query of model \"%s\": %s", m->name,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	m->history_plan = plan;
	m->plan_owner = m->source.owner;
	pfree(sql);
}

/* An integer column value as int64. */
static int64
datum_int64(Datum d, Oid type, const GenrecModel *m, const char *col)
{
	switch (type)
	{
		case INT8OID:
			return DatumGetInt64(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT2OID:
			return DatumGetInt16(d);
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %s of the source of model \"%s\" is of type %s", col,
							m->name, format_type_be(type)),
					 errhint("User and item columns must be smallint, integer or bigint.")));
	}
	pg_unreachable();
}

/* A real read as the decimal it prints as. */
double
genrec_float4_to_double(float4 v)
{
	char		buf[FLOAT_SHORTEST_DECIMAL_LEN];

	if (isnan(v) || isinf(v))
		return (double) v;
	float_to_shortest_decimal_buf(v, buf);
	return strtod(buf, NULL);
}

/* An action column value as a double (NaN for NULL). */
static double
datum_double(Datum d, bool isnull, Oid type, const GenrecModel *m, const char *col)
{
	if (isnull)
		return NAN;
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case FLOAT4OID:
			return genrec_float4_to_double(DatumGetFloat4(d));
		case INT8OID:
			return (double) DatumGetInt64(d);
		case INT4OID:
			return (double) DatumGetInt32(d);
		case INT2OID:
			return (double) DatumGetInt16(d);
		case BOOLOID:
			return DatumGetBool(d) ? 1.0 : 0.0;
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("action column %s of the source of model \"%s\" is of type %s",
							col, m->name, format_type_be(type)),
					 errhint("Action columns must be real, double precision, numeric, an "
							 "integer type or boolean.")));
	}
	pg_unreachable();
}

/* Read a user's history from the model's source. */
void
genrec_history_from_source(GenrecModel *m, int64 user, bool whole, MemoryContext cxt,
						   ServeHistory *h)
{
	int			K = genrec_model_history_actions(m);
	int			cap = m->model->layout->history_cap(m->model->cfg.max_len) + 1;
	/* a whole history is capped in the query too, so SPI never holds more rows */
	int64		limit = whole ? (int64) GENREC_MAX_HISTORY_ROWS + 1 : cap;
	Datum		values[2];
	int			rc;
	uint64		n;
	TupleDesc	desc;
	GenrecRestricted r;

	require_source(m);
	genrec_restrict_begin(m->source.owner, &r);
	if (m->history_plan == NULL || m->plan_owner != m->source.owner)
		prepare_history_plan(m);
	values[0] = Int64GetDatum(user);
	values[1] = Int64GetDatum(limit);
	rc = SPI_execute_plan(m->history_plan, values, NULL, true, limit);
	genrec_restrict_end(&r);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "history query of model \"%s\" failed: %s", m->name,
			 SPI_result_code_string(rc));
	n = SPI_processed;
	if (n > (uint64) GENREC_MAX_HISTORY_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("user " INT64_FORMAT " has more than %d interactions", user,
						GENREC_MAX_HISTORY_ROWS)));
	desc = SPI_tuptable->tupdesc;
	h->K = K;
	h->n = 0;
	h->items = MemoryContextAlloc(cxt, sizeof(int64) * (n + 1));
	h->actions = K > 0 ? MemoryContextAlloc(cxt, sizeof(double) * (n + 1) * K) : NULL;
	h->times = genrec_model_reads_time(m) ? MemoryContextAlloc(cxt, sizeof(int64) * (n + 1)) :
		NULL;
	/* rows arrive newest first: fill from the end */
	for (uint64 r = 0; r < n; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		Datum		d = SPI_getbinval(tup, desc, 1, &isnull);
		int			i;

		if (isnull)
			continue;
		i = (int) (n - 1 - h->n);
		h->items[i] = datum_int64(d, TupleDescAttr(desc, 0)->atttypid, m, m->source.item_col);
		for (int k = 0; k < K; k++)
		{
			Datum		a = SPI_getbinval(tup, desc, k + 2, &isnull);

			h->actions[(size_t) i * K + k] =
				datum_double(a, isnull, TupleDescAttr(desc, k + 1)->atttypid, m,
							 m->source.action_cols[k]);
		}
		if (h->times)
			h->times[i] = source_time(tup, desc, K + 2, m);
		h->n++;
	}
	/* rows with a NULL item were skipped: move the kept ones to the front */
	if ((uint64) h->n < n)
	{
		int			skip = (int) (n - h->n);

		memmove(h->items, h->items + skip, sizeof(int64) * h->n);
		if (K > 0)
			memmove(h->actions, h->actions + (size_t) skip * K, sizeof(double) * h->n * K);
		if (h->times)
			memmove(h->times, h->times + skip, sizeof(int64) * h->n);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Grow the row arrays to hold at least need rows. */
static void
rows_reserve(SourceRows *rows, size_t need, size_t *cap, MemoryContext cxt)
{
	size_t		c = *cap;

	if (need <= c)
		return;
	while (c < need)
		c = c ? 2 * c : 65536;
	if (*cap == 0)
	{
		rows->user = MemoryContextAllocHuge(cxt, sizeof(int64) * c);
		rows->item = MemoryContextAllocHuge(cxt, sizeof(int64) * c);
		rows->actions = MemoryContextAllocHuge(cxt, sizeof(double) * c * Max(rows->K, 1));
		if (rows->has_time)
			rows->time = MemoryContextAllocHuge(cxt, sizeof(int64) * c);
	}
	else
	{
		rows->user = repalloc_huge(rows->user, sizeof(int64) * c);
		rows->item = repalloc_huge(rows->item, sizeof(int64) * c);
		rows->actions = repalloc_huge(rows->actions, sizeof(double) * c * Max(rows->K, 1));
		if (rows->has_time)
			rows->time = repalloc_huge(rows->time, sizeof(int64) * c);
	}
	*cap = c;
}

/* Read every interaction of the source, ordered by user and time, through a cursor. */
void
genrec_source_rows(GenrecModel *m, int K, MemoryContext cxt, SourceRows *rows)
{
	const GenrecSource *s = &m->source;
	int			K_read = K <= s->n_actions ? K : 0;
	StringInfoData sql,
				order;
	SPIPlanPtr	plan;
	Portal		portal;
	size_t		cap = 0;
	GenrecRestricted r;

	require_source(m);
	if (K_read < K && gr_layout_needs_actions(m->model->layout))
		require_actions(m, K);
	genrec_restrict_begin(s->owner, &r);
	initStringInfo(&sql);
	initStringInfo(&order);
	appendStringInfo(&sql, "SELECT %s, %s", s->user_col, s->item_col);
	for (int k = 0; k < K_read; k++)
		appendStringInfo(&sql, ", %s", s->action_cols[k]);
	if (genrec_model_reads_time(m))
		appendStringInfo(&sql, ", %s", s->time_col);
	append_from(&sql, s, false, true, &order);
	appendStringInfo(&sql, " ORDER BY %s, %s", s->user_col, order.data);
	plan = SPI_prepare(sql.data, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the source query of model \"%s\": %s", m->name,
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	memset(rows, 0, sizeof(*rows));
	rows->K = K;
	rows->has_time = genrec_model_reads_time(m);
	for (;;)
	{
		TupleDesc	desc;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, SOURCE_FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		desc = SPI_tuptable->tupdesc;
		rows_reserve(rows, rows->n + SPI_processed, &cap, cxt);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			bool		nu,
						ni;
			Datum		du = SPI_getbinval(tup, desc, 1, &nu);
			Datum		di = SPI_getbinval(tup, desc, 2, &ni);
			size_t		i = rows->n;

			if (nu || ni)
				continue;
			rows->user[i] = datum_int64(du, TupleDescAttr(desc, 0)->atttypid, m, s->user_col);
			rows->item[i] = datum_int64(di, TupleDescAttr(desc, 1)->atttypid, m, s->item_col);
			for (int k = 0; k < K; k++)
			{
				bool		na = true;
				Datum		a = k < K_read ? SPI_getbinval(tup, desc, k + 3, &na) : (Datum) 0;

				rows->actions[i * K + k] =
					datum_double(a, na, k < K_read ? TupleDescAttr(desc, k + 2)->atttypid :
								 FLOAT8OID, m, k < K_read ? s->action_cols[k] : "");
			}
			if (rows->has_time)
				rows->time[i] = source_time(tup, desc, K_read + 3, m);
			rows->n++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	genrec_restrict_end(&r);
}
