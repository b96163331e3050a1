/*
 * pg_serve.h — reading a model's interactions from its source (genrec.models.source) for
 * serving and evaluation, shared by pg_serve.c and pg_evaluate.c.
 *
 * A user's history is read as the model's owner in a security-restricted operation
 * (pg_security.h) with a prepared plan kept per backend per model version (and owner):
 *
 *     SELECT item, action... FROM source WHERE user_col = $1
 *      ORDER BY time_col DESC, tiebreak_col DESC LIMIT $2
 *
 * (reversed to oldest first), so an index on the user column (or on (user, time)) makes it
 * an index scan. Ties on time go by the tiebreak column, else, for a table, by its physical
 * order (tableoid, ctid), as genrec_train reads it; a view or query without time and tiebreak
 * columns is numbered in the order it produces rows. Item and user columns are integers;
 * action columns are any of real, double precision, numeric, integer types or boolean (real
 * values are read as the decimal they print as, e.g. 3.7, not 3.7000000476837).
 */
#ifndef PG_SERVE_H
#define PG_SERVE_H

#include "pg_cache.h"

/* The most interactions read for one user. */
#define GENREC_MAX_HISTORY_ROWS 1000000

/* One user's history, oldest first, in external ids and raw action values. */
typedef struct ServeHistory
{
	int64	   *items;
	double	   *actions;		/* [n * K], NaN = missing; NULL when no action is read */
	int64	   *times;			/* [n] in the model's time unit (genrec_time_value), for a
								 * time-aware trunk; NULL when none is read */
	int			n;
	int			K;
} ServeHistory;

/* Interactions of a whole source, ordered by user then time (for gr_dataset_build). */
typedef struct SourceRows
{
	size_t		n;
	int64	   *user;
	int64	   *item;
	double	   *actions;		/* [n * K] */
	int64	   *time;			/* [n] when has_time (genrec_time_value), else NULL */
	bool		has_time;		/* a time-aware trunk reads the source's time column */
	int			K;
} SourceRows;

/* A time column value as the engine's int64: integers as they are, dates and timestamps in
 * microseconds since 1970 (ERROR for an infinite one). */
int64		genrec_time_value(Datum d, Oid type, const char *col);

/* Whether a model's trunk reads interaction times (HSTU's time bias). */
bool		genrec_model_reads_time(const GenrecModel *m);

/* Action columns the engine reads for a model (0 when its layout reads none). */
int			genrec_model_history_actions(const GenrecModel *m);

/* The history query of a model (ERROR when it has no usable source). */
char	   *genrec_history_sql(const GenrecModel *m);

/*
 * Read a user's history from the model's source into memory of cxt: the most recent
 * history_cap + 1 interactions, or all of them (at most GENREC_MAX_HISTORY_ROWS + 1, then
 * ERROR 54000) when whole. Needs SPI connected.
 */
void		genrec_history_from_source(GenrecModel *m, int64 user, bool whole,
									   MemoryContext cxt, ServeHistory *h);

/* Read every interaction of the model's source with K action columns. Needs SPI. */
void		genrec_source_rows(GenrecModel *m, int K, MemoryContext cxt, SourceRows *rows);

/* A real read as the decimal it prints as. */
double		genrec_float4_to_double(float4 v);

#endif							/* PG_SERVE_H */
