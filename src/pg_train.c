/*
 * pg_train.c — genrec_train(): read interactions from a table, view or query through a
 * cursor, build the engine's dataset, train with the protocol (PROTOCOL.md) and add the model
 * to genrec.models as the next version of its name.
 *
 * Rows: user and item are smallint, integer or bigint; the time column is timestamptz,
 * timestamp, date or an integer (only its order matters); actions are any numeric or boolean
 * columns (boolean and options.binary_actions columns are binary, the rest continuous; NULL =
 * missing). The engine sorts each user's rows by time with a stable sort, so rows with equal
 * times keep the order in which they are read: ORDER BY user, time, tiebreak_col when a
 * tiebreak column is named; for tables and materialized views without one, ORDER BY user,
 * time, tableoid, ctid (the physical order); views and queries without one are read in the
 * order they produce (a query's own ORDER BY decides).
 *
 * Memory limits, checked before allocating (54000 above genrec.max_train_memory): the
 * engine's estimate of a run (gr_train_memory_estimate: weights, gradients, optimiser state,
 * activations, evaluation, data) for the configuration alone before any row is read; the row
 * buffers and the dataset built from them as the rows are read (the buffers grow only within
 * the budget); the exact estimate once the dataset is built, before training; and the model's
 * stored size against the 1 GB a bytea holds, before training too.
 *
 * Memory and cancellation: everything the engine allocates lives in a dedicated memory
 * context (huge allocations allowed; on the CPU the backend's buffers too, see
 * genrec_engine_env), and the context's reset callback frees the model's device buffers, so
 * an ERROR at any point leaks nothing. The engine polls for a pending cancel or
 * statement_timeout between optimiser steps and evaluation batches and unwinds; the backend's
 * own error is then raised (57014). Errors raised inside the engine's callbacks (a NOTICE that
 * fails) are caught, the engine is asked to stop, and the error is re-thrown after it returns.
 */
#include "pg_genrec.h"

#include <ctype.h>
#include <math.h>

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_io.h"
#include "gr_train.h"
#include "gr_train_options.h"
#pragma GCC diagnostic pop
#include "pg_catalog.h"
#include "pg_progress.h"
#include "pg_security.h"
#include "pg_serve.h"

#define TRAIN_FETCH_ROWS	10000
/* bytes kept for a model file's JSON header when its size is checked before training */
#define GENREC_HEADER_ROOM	(64 * 1024)
#define TRAIN_RESULT_COLS	18


/* Positions of genrec_train's arguments. */
enum
{
	A_NAME, A_SOURCE, A_USER, A_ITEM, A_ACTIONS, A_TIME, A_TIEBREAK, A_LAYOUT, A_D, A_LAYERS,
	A_HEADS, A_MAXLEN, A_EPOCHS, A_BATCH, A_LR, A_DROPOUT, A_PATIENCE, A_SEED, A_OPTIONS,
	A_DEPLOY
};

/* Names of genrec_train's arguments, by position. */
static const char *const arg_names[] = {
	"name", "source", "user_col", "item_col", "action_cols", "time_col", "tiebreak_col",
	"layout", "d_model", "n_layer", "n_head", "max_len", "epochs", "batch_size", "lr",
	"dropout", "patience", "seed", "options", "deploy"
};

/* What to train on and how: the arguments, checked, and the resolved source. */
typedef struct TrainSpec
{
	char	   *name;
	char	   *source;			/* as given */
	bool		is_query;
	char	   *relation;		/* quoted qualified name of a relation source */
	char		relkind;
	char	   *query;			/* query source without trailing semicolons */
	char	   *user_col;
	char	   *item_col;
	char	   *time_col;		/* NULL: rows are in time order */
	char	   *tiebreak_col;
	bool		actions_given;	/* action_cols was not NULL */
	int			n_actions;
	char	   *action_cols[GR_MAX_ACTIONS];
	uint8_t		action_binary[GR_MAX_ACTIONS];
	int			n_binary_names;
	char	   *binary_names[GR_MAX_ACTIONS];
	Oid			user_type;
	Oid			item_type;
	Oid			time_type;
	Oid			action_types[GR_MAX_ACTIONS];
	const gr_layout *layout;
	gr_model_config mcfg;
	gr_train_config tcfg;
	int64		seed;			/* as given */
	bool		deploy;
} TrainSpec;

/* Rows read from the source, as the engine wants them. */
typedef struct TrainRows
{
	size_t		n;
	size_t		cap;
	int64	   *user;
	int64	   *item;
	int64	   *time;
	double	   *actions;		/* [n * K] */
} TrainRows;

/* A training run: engine objects (owned by cxt) and what the callbacks need. */
typedef struct TrainState
{
	MemoryContext cxt;
	MemoryContextCallback release;
	gr_env		env;
	gr_dataset *ds;
	gr_model   *model;
	const char *name;
	bool		report_rmse;
	bool		report_items;	/* the layout has an item head (HR@10, NDCG@10) */
	int			slot;			/* progress slot or -1 */
	int			steps_per_epoch;
	size_t		memory_estimate;	/* bytes, the engine's estimate of the run */
	JsonWriter	history;		/* per-epoch records */
	ErrorData  *error;			/* raised inside a callback, re-thrown later */
} TrainState;

PG_FUNCTION_INFO_V1(genrec_train);

/* Fetch a text argument; NULL is an error unless nullable. */
static char *
arg_text(FunctionCallInfo fcinfo, int i, const char *argname, bool nullable)
{
	if (PG_ARGISNULL(i))
	{
		if (nullable)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("genrec_train: %s must not be NULL", argname)));
	}
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/* Reject a NULL argument. */
static void
arg_not_null(FunctionCallInfo fcinfo, int i)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("genrec_train: %s must not be NULL", arg_names[i])));
}

/* Whether source text is a query: it starts with SELECT, WITH, VALUES or TABLE. */
static bool
source_is_query(const char *s)
{
	static const char *const words[] = {"select", "with", "values", "table"};

	while (*s == '(' || scanner_isspace(*s))
		s++;
	for (int i = 0; i < lengthof(words); i++)
	{
		size_t		len = strlen(words[i]);

		if (pg_strncasecmp(s, words[i], len) == 0 &&
			!(isalnum((unsigned char) s[len]) || s[len] == '_' || s[len] == '$' ||
			  IS_HIGHBIT_SET(s[len])))
			return true;
	}
	return false;
}

/* Apply the options jsonb to the configurations: its text form goes to the engine's parser. */
static void
train_parse_options(Jsonb *opts, TrainSpec *spec)
{
	char	   *json = JsonbToCString(NULL, &opts->root, VARSIZE(opts));
	gr_train_option_names names;
	gr_env		env;
	gr_error	err = {0};

	genrec_cpu_env(&env, CurrentMemoryContext);
	if (gr_train_options_from_json(&env, json, strlen(json), &spec->mcfg, &spec->tcfg, &names,
								   &err) != GR_OK)
	{
		if (err.status == GR_ERR_OUT_OF_MEMORY)
			genrec_raise_engine_error(&err, "genrec_train options");
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: %s", err.message),
				 errhint("Known keys: %s.", gr_train_option_keys())));
	}
	spec->n_binary_names = names.n;
	for (int i = 0; i < names.n; i++)
		spec->binary_names[i] = names.name[i];	/* in the current context */
	pfree(json);
}

/* Check and collect the arguments (no SPI yet). */
static void
train_parse_args(FunctionCallInfo fcinfo, TrainSpec *spec)
{
	char	   *layout;

	memset(spec, 0, sizeof(*spec));
	spec->name = arg_text(fcinfo, A_NAME, "name", false);
	genrec_check_model_name("genrec_train", spec->name);
	spec->source = arg_text(fcinfo, A_SOURCE, "source", false);
	spec->user_col = arg_text(fcinfo, A_USER, "user_col", false);
	spec->item_col = arg_text(fcinfo, A_ITEM, "item_col", false);
	spec->time_col = arg_text(fcinfo, A_TIME, "time_col", true);
	spec->tiebreak_col = arg_text(fcinfo, A_TIEBREAK, "tiebreak_col", true);
	layout = arg_text(fcinfo, A_LAYOUT, "layout", false);
	if ((spec->layout = gr_layout_by_name(layout)) == NULL)
	{
		char		names[256];

		gr_layout_list(names, sizeof(names), false);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: unknown layout \"%s\"", layout),
				 errhint("Layouts are %s.", names)));
	}

	spec->actions_given = !PG_ARGISNULL(A_ACTIONS);
	if (spec->actions_given)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(A_ACTIONS), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		if (n > GR_MAX_ACTIONS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("genrec_train: at most %d action columns, got %d", GR_MAX_ACTIONS, n)));
		for (int k = 0; k < n; k++)
		{
			if (nulls[k])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("genrec_train: action_cols must not contain NULL")));
			spec->action_cols[k] = TextDatumGetCString(elems[k]);
			for (int j = 0; j < k; j++)
				if (strcmp(spec->action_cols[j], spec->action_cols[k]) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("genrec_train: action column \"%s\" is named twice",
									spec->action_cols[k])));
		}
		spec->n_actions = n;
	}

	for (int i = A_D; i <= A_DEPLOY; i++)
		if (i != A_OPTIONS)
			arg_not_null(fcinfo, i);
	gr_model_config_default(&spec->mcfg, spec->layout->id, 1, 0);
	spec->mcfg.d_model = PG_GETARG_INT32(A_D);
	spec->mcfg.n_layer = PG_GETARG_INT32(A_LAYERS);
	spec->mcfg.n_head = PG_GETARG_INT32(A_HEADS);
	spec->mcfg.max_len = PG_GETARG_INT32(A_MAXLEN);
	gr_train_config_default(&spec->tcfg);
	spec->tcfg.epochs = PG_GETARG_INT32(A_EPOCHS);
	spec->tcfg.batch_size = PG_GETARG_INT32(A_BATCH);
	spec->tcfg.lr = PG_GETARG_FLOAT4(A_LR);
	spec->tcfg.dropout = PG_GETARG_FLOAT4(A_DROPOUT);
	spec->tcfg.patience = PG_GETARG_INT32(A_PATIENCE);
	spec->seed = PG_GETARG_INT64(A_SEED);
	spec->tcfg.seed = (uint64) spec->seed;
	spec->deploy = PG_GETARG_BOOL(A_DEPLOY);
	if (!PG_ARGISNULL(A_OPTIONS))
		train_parse_options(PG_GETARG_JSONB_P(A_OPTIONS), spec);
}

/* Find a column of the source by exact name; returns its base type, or InvalidOid. */
static Oid
source_column(TupleDesc desc, const char *col)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), col) == 0)
			return getBaseType(att->atttypid);
	}
	return InvalidOid;
}

/* The type of a named column, ERROR 42703 when the source has none. */
static Oid
require_column(TrainSpec *spec, TupleDesc desc, const char *what, const char *col)
{
	Oid			type = source_column(desc, col);

	if (!OidIsValid(type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("genrec_train: %s column \"%s\" does not exist in the source", what, col),
				 errhint("The source is %s.", spec->is_query ? "a query" : spec->relation)));
	return type;
}

/* Reject a column of the wrong type (42804). */
static void
column_type_error(const char *what, const char *col, Oid type, const char *allowed)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("genrec_train: %s column \"%s\" must be %s, not %s", what, col, allowed,
					format_type_be(type))));
}

/* Whether a type is one of the integer types. */
static bool
is_integer_type(Oid t)
{
	return t == INT2OID || t == INT4OID || t == INT8OID;
}

/* Resolve the source (relation or query) and check its columns and their types. */
static void
train_resolve_source(TrainSpec *spec)
{
	StringInfoData sql;
	TupleDesc	desc;

	spec->is_query = source_is_query(spec->source);
	initStringInfo(&sql);
	if (spec->is_query)
	{
		size_t		len = strlen(spec->source);

		while (len > 0 && (spec->source[len - 1] == ';' || scanner_isspace(spec->source[len - 1])))
			len--;
		/* one plain read, checked before anything runs, stored with its names qualified */
		spec->query = genrec_check_query_source("genrec_train", pnstrdup(spec->source, len));
		appendStringInfo(&sql, "SELECT * FROM (%s\n) AS genrec_source LIMIT 0", spec->query);
	}
	else
	{
		Oid			relid;

		spec->relation = genrec_resolve_relation(spec->source, &relid, &spec->relkind);
		appendStringInfo(&sql, "SELECT * FROM %s LIMIT 0", spec->relation);
	}
	if (SPI_execute(sql.data, false, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("genrec_train: the source must be a table, view or SELECT query")));
	desc = SPI_tuptable->tupdesc;

	spec->user_type = require_column(spec, desc, "user", spec->user_col);
	if (!is_integer_type(spec->user_type))
		column_type_error("user", spec->user_col, spec->user_type, "smallint, integer or bigint");
	spec->item_type = require_column(spec, desc, "item", spec->item_col);
	if (!is_integer_type(spec->item_type))
		column_type_error("item", spec->item_col, spec->item_type, "smallint, integer or bigint");
	if (spec->time_col)
	{
		Oid			t = require_column(spec, desc, "time", spec->time_col);

		if (!is_integer_type(t) && t != TIMESTAMPTZOID && t != TIMESTAMPOID && t != DATEOID)
			column_type_error("time", spec->time_col, t,
							  "timestamptz, timestamp, date or an integer type");
		spec->time_type = t;
	}
	if (spec->tiebreak_col)
		(void) require_column(spec, desc, "tiebreak", spec->tiebreak_col);
	if (!spec->actions_given && OidIsValid(source_column(desc, "action")))
	{
		/* action_cols NULL: the column named "action" when there is one */
		spec->action_cols[0] = pstrdup("action");
		spec->n_actions = 1;
	}
	for (int k = 0; k < spec->n_actions; k++)
	{
		Oid			t = require_column(spec, desc, "action", spec->action_cols[k]);

		if (!is_integer_type(t) && t != FLOAT4OID && t != FLOAT8OID && t != NUMERICOID &&
			t != BOOLOID)
			column_type_error("action", spec->action_cols[k], t, "a numeric or boolean type");
		spec->action_types[k] = t;
		spec->action_binary[k] = (t == BOOLOID);
	}
	for (int b = 0; b < spec->n_binary_names; b++)
	{
		bool		found = false;

		for (int k = 0; k < spec->n_actions; k++)
			if (strcmp(spec->action_cols[k], spec->binary_names[b]) == 0)
			{
				spec->action_binary[k] = 1;
				found = true;
			}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("genrec_train: option \"binary_actions\" names \"%s\", which is not an action column",
							spec->binary_names[b])));
	}
	SPI_freetuptable(SPI_tuptable);
	if (spec->tcfg.n_task_weights > 0 && spec->tcfg.n_task_weights != spec->n_actions)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: option \"task_weights\" has %d weights for %d action "
						"columns", spec->tcfg.n_task_weights, spec->n_actions),
				 errhint("Give one weight per element of action_cols, in that order.")));
	if (gr_layout_needs_actions(spec->layout) && spec->n_actions == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: layout \"%s\" needs at least one action column",
						spec->layout->name),
				 errhint("Name the action columns with action_cols, or use layout => 'item'.")));
}

/* Check the model and training configurations before reading any data. */
static void
train_check_config(TrainSpec *spec)
{
	gr_error	err = {0};

	spec->mcfg.n_actions = spec->n_actions;
	if (gr_model_config_validate(&spec->mcfg, &err) != GR_OK ||
		gr_train_config_validate(&spec->tcfg, &err) != GR_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: %s", err.message)));
}

/* The query that reads the rows in the order that decides ties. */
static char *
train_read_sql(const TrainSpec *spec)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s, %s", quote_identifier(spec->user_col),
					 quote_identifier(spec->item_col));
	if (spec->time_col)
		appendStringInfo(&sql, ", %s", quote_identifier(spec->time_col));
	for (int k = 0; k < spec->n_actions; k++)
		appendStringInfo(&sql, ", %s", quote_identifier(spec->action_cols[k]));
	if (spec->is_query)
		appendStringInfo(&sql, " FROM (%s\n) AS genrec_source", spec->query);
	else
		appendStringInfo(&sql, " FROM %s", spec->relation);

	if (spec->tiebreak_col || (!spec->is_query && (spec->relkind == RELKIND_RELATION ||
												   spec->relkind == RELKIND_MATVIEW ||
												   spec->relkind == RELKIND_PARTITIONED_TABLE)))
	{
		appendStringInfo(&sql, " ORDER BY %s", quote_identifier(spec->user_col));
		if (spec->time_col)
			appendStringInfo(&sql, ", %s", quote_identifier(spec->time_col));
		if (spec->tiebreak_col)
			appendStringInfo(&sql, ", %s", quote_identifier(spec->tiebreak_col));
		if (!spec->is_query && spec->relkind != RELKIND_VIEW &&
			spec->relkind != RELKIND_FOREIGN_TABLE)
			appendStringInfoString(&sql, ", tableoid, ctid");
	}
	return sql.data;
}

/* Convert an integer id to an int64. */
static int64
id_value(Datum d, Oid type)
{
	if (type == INT2OID)
		return DatumGetInt16(d);
	if (type == INT4OID)
		return DatumGetInt32(d);
	return DatumGetInt64(d);
}


/* Convert an action value to a double; NaN stays NaN (a missing value). */
static double
action_value(Datum d, Oid type, bool binary, const char *col)
{
	double		x;

	switch (type)
	{
		case INT2OID:
			x = DatumGetInt16(d);
			break;
		case INT4OID:
			x = DatumGetInt32(d);
			break;
		case INT8OID:
			x = (double) DatumGetInt64(d);
			break;
		case FLOAT4OID:
			{
				/* the decimal a real prints as, as text files and serving read it */
				char		buf[FLOAT_SHORTEST_DECIMAL_LEN];
				float4		f = DatumGetFloat4(d);

				if (isnan(f) || isinf(f))
					x = f;
				else
				{
					float_to_shortest_decimal_buf(f, buf);
					x = strtod(buf, NULL);
				}
				break;
			}
		case FLOAT8OID:
			x = DatumGetFloat8(d);
			break;
		case BOOLOID:
			x = DatumGetBool(d) ? 1.0 : 0.0;
			break;
		default:
			x = DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
			break;
	}
	if (isinf(x))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("genrec_train: action column \"%s\" has an infinite value", col)));
	if (binary && !isnan(x) && x != 0.0 && x != 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: binary action column \"%s\" has the value %g", col, x),
				 errhint("Binary action columns hold 0 or 1 (or NULL for missing).")));
	return x;
}

/* Reject a NULL in a column that must have values. */
static void
null_value_error(const char *what, const char *col)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("genrec_train: %s column \"%s\" has a NULL value", what, col),
			 errhint("Filter the rows with a query as the source, e.g. WHERE %s IS NOT NULL.",
					 quote_identifier(col))));
}

/* genrec.max_train_memory in bytes (SIZE_MAX without a limit). */
static size_t
train_budget(void)
{
	if (genrec_max_train_memory < 0)
		return SIZE_MAX;
	return (size_t) genrec_max_train_memory * 1024 * 1024;
}

/* A byte count in MB for messages. */
static char *
train_mb(size_t bytes)
{
	return psprintf("%.1f MB", (double) bytes / (1024.0 * 1024.0));
}

/* Bytes reading n rows takes: the row buffers and the peak of building the dataset. */
static size_t
train_rows_bytes(size_t n, int K)
{
	size_t		buffers = n * (3 * sizeof(int64) + sizeof(double) * Max(K, 1));

	return buffers + gr_dataset_build_bytes((int64) n, K, false);
}

/*
 * Refuse a run whose estimate passes genrec.max_train_memory (54000), or whose model would
 * not fit the bytea of genrec.models (54000); return the estimate otherwise. what names the
 * stage ("the configuration", "the data").
 */
static size_t
train_check_memory(const TrainSpec *spec, const gr_train_sizes *sizes, const char *what,
				   gr_train_memory *out)
{
	gr_train_memory m;
	gr_error	err = {0};
	size_t		budget = train_budget();

	if (gr_train_memory_estimate(&spec->mcfg, &spec->tcfg, sizes, &m, &err) != GR_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_train: %s", err.message)));
	if (m.total > budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("genrec_train \"%s\": training on %s needs an estimated %s, more than "
						"genrec.max_train_memory (%s)", spec->name, what, train_mb(m.total),
						train_mb(budget)),
				 errdetail("Weights %s, gradients %s, optimiser state %s, activations %s, "
						   "evaluation %s, data %s.", train_mb(m.parameters),
						   train_mb(m.gradients), train_mb(m.optimiser),
						   train_mb(m.activations), train_mb(m.evaluation),
						   train_mb(m.dataset)),
				 errhint("Lower batch_size, max_len, d_model or n_layer, or train on fewer rows; "
						 "a superuser can raise genrec.max_train_memory.")));
	/* the tensors, with room for the header around them */
	if (m.weights_file > MaxAllocSize - VARHDRSZ - GENREC_HEADER_ROOM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("genrec_train \"%s\": the model would take %s, more than a bytea "
						"holds (1 GB)", spec->name, train_mb(m.weights_file)),
				 errhint("Lower d_model or n_layer, or train on fewer items.")));
	if (out != NULL)
		*out = m;
	return m.total;
}

/* Make room for more rows in the training context, within genrec.max_train_memory. */
static void
rows_grow(const TrainSpec *spec, TrainRows *r, int K, MemoryContext cxt)
{
	size_t		cap = r->cap ? r->cap * 2 : 65536;
	size_t		budget = train_budget();

	if (budget != SIZE_MAX && train_rows_bytes(cap, K) > budget)
	{
		/* the most rows that fit: the bytes grow linearly with the rows */
		size_t		per_row = train_rows_bytes(1, K) - train_rows_bytes(0, K);
		size_t		fixed = train_rows_bytes(0, K);

		cap = budget > fixed ? (budget - fixed) / per_row : 0;
		if (cap <= r->n)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("genrec_train \"%s\": the source has more than %zu rows, and "
							"reading and indexing more would take more than "
							"genrec.max_train_memory (%s)", spec->name, r->n,
							train_mb(budget)),
					 errdetail("Each row takes about %zu bytes until training starts.",
							   per_row),
					 errhint("Train on fewer rows (a query source can sample them); a "
							 "superuser can raise genrec.max_train_memory.")));
	}

	if (r->cap == 0)
	{
		r->user = MemoryContextAllocHuge(cxt, sizeof(int64) * cap);
		r->item = MemoryContextAllocHuge(cxt, sizeof(int64) * cap);
		r->time = MemoryContextAllocHuge(cxt, sizeof(int64) * cap);
		r->actions = MemoryContextAllocHuge(cxt, sizeof(double) * cap * Max(K, 1));
	}
	else
	{
		r->user = repalloc_huge(r->user, sizeof(int64) * cap);
		r->item = repalloc_huge(r->item, sizeof(int64) * cap);
		r->time = repalloc_huge(r->time, sizeof(int64) * cap);
		r->actions = repalloc_huge(r->actions, sizeof(double) * cap * Max(K, 1));
	}
	r->cap = cap;
}

/* Read every row of the source through a cursor, in batches. */
static void
train_read(const TrainSpec *spec, TrainState *st, TrainRows *r)
{
	SPIPlanPtr	plan;
	Portal		portal;
	int			K = spec->n_actions;
	int			c_time = spec->time_col ? 3 : 0;
	int			c_act = spec->time_col ? 4 : 3;

	memset(r, 0, sizeof(*r));
	plan = SPI_prepare(train_read_sql(spec), 0, NULL);
	if (plan == NULL)
		elog(ERROR, "genrec_train: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	for (;;)
	{
		SPITupleTable *tt;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, TRAIN_FETCH_ROWS);
		tt = SPI_tuptable;
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = tt->vals[i];
			bool		isnull;
			Datum		d;

			if (r->n == r->cap)
				rows_grow(spec, r, K, st->cxt);
			d = SPI_getbinval(tup, tt->tupdesc, 1, &isnull);
			if (isnull)
				null_value_error("user", spec->user_col);
			r->user[r->n] = id_value(d, spec->user_type);
			d = SPI_getbinval(tup, tt->tupdesc, 2, &isnull);
			if (isnull)
				null_value_error("item", spec->item_col);
			r->item[r->n] = id_value(d, spec->item_type);
			if (c_time)
			{
				d = SPI_getbinval(tup, tt->tupdesc, c_time, &isnull);
				if (isnull)
					null_value_error("time", spec->time_col);
				r->time[r->n] = genrec_time_value(d, spec->time_type, spec->time_col);
			}
			for (int k = 0; k < K; k++)
			{
				d = SPI_getbinval(tup, tt->tupdesc, c_act + k, &isnull);
				r->actions[r->n * K + k] = isnull ? NAN :
					action_value(d, spec->action_types[k], spec->action_binary[k],
								 spec->action_cols[k]);
			}
			r->n++;
		}
		SPI_freetuptable(tt);
		genrec_progress_phase(st->slot, "reading", (int64) r->n);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

/* Free the model's device memory when the training context goes (also on ERROR). */
static void
train_state_release(void *arg)
{
	TrainState *st = (TrainState *) arg;

	gr_model_free(st->model);
	st->model = NULL;
}

/* Report a finished epoch: NOTICE, shared progress and the history kept for the metrics. */
static void
train_on_progress(void *user, const gr_progress *p)
{
	TrainState *st = (TrainState *) user;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (st->error)
		return;
	PG_TRY();
	{
		char		rmse[64] = "";

		genrec_progress_epoch(st->slot, p);
		jw_begin_object(&st->history);
		jw_key(&st->history, "epoch");
		jw_int(&st->history, p->epoch);
		jw_key(&st->history, "steps");
		jw_int(&st->history, p->step);
		jw_key(&st->history, "train_loss");
		jw_double(&st->history, p->train_loss);
		jw_key(&st->history, "valid_hr@10");
		jw_double(&st->history, p->valid_hr10);
		jw_key(&st->history, "valid_ndcg@10");
		jw_double(&st->history, p->valid_ndcg10);
		jw_key(&st->history, "valid_rmse");
		jw_double(&st->history, p->valid_rmse);
		jw_key(&st->history, "train_seconds");
		jw_double(&st->history, p->seconds);
		jw_key(&st->history, "improved");
		jw_bool(&st->history, p->improved);
		jw_end_object(&st->history);
		if (st->report_rmse)
			snprintf(rmse, sizeof(rmse), "%s%s %.4f", st->report_items ? " " : "",
					 p->valid_action_logloss ? "log loss" : "RMSE", p->valid_action);
		if (st->report_items)
			ereport(NOTICE,
					(errmsg("genrec_train \"%s\": epoch %d/%d: loss %.4f, valid HR@10 %.4f "
							"NDCG@10 %.4f%s, %.1f s%s", st->name, p->epoch, p->epochs,
							p->train_loss, p->valid_hr10, p->valid_ndcg10, rmse, p->seconds,
							p->improved ? " (best so far)" : "")));
		else
			/* no item head (l4, l5, l7): the action metric the best epoch is chosen on */
			ereport(NOTICE,
					(errmsg("genrec_train \"%s\": epoch %d/%d: loss %.4f, valid %s, %.1f s%s",
							st->name, p->epoch, p->epochs, p->train_loss, rmse, p->seconds,
							p->improved ? " (best so far)" : "")));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(st->cxt);
		st->error = CopyErrorData();
		FlushErrorState();
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
}

/* Publish the optimiser steps taken so far in the shared progress slot. */
static void
train_on_step(void *user, int64_t steps)
{
	TrainState *st = (TrainState *) user;

	if (!st->error)
		genrec_progress_step(st->slot, steps);
}

/* Tell the engine to stop on a pending cancel or timeout, or a client that went away. */
static bool
train_interrupted(void *user)
{
	TrainState *st = (TrainState *) user;

	if (st->error)
		return true;
	/* the engine environment's test (pg_engine.c), and a client that went away */
	return InterruptPending && (QueryCancelPending || ProcDiePending || ClientConnectionLost);
}

/* Write one split's metrics as the CLI does (genrec eval --json reads the same). */
static void
metrics_json(JsonWriter *w, const gr_metrics *mt, const TrainSpec *spec, const gr_model *m)
{
	char		key[32];

	jw_begin_object(w);
	jw_key(w, "users");
	jw_int(w, mt->n_users);
	for (int pass = 0; pass < 2; pass++)
	{
		const double *hr = pass == 0 ? mt->hr : mt->hr_all;
		const double *ndcg = pass == 0 ? mt->ndcg : mt->ndcg_all;

		if (pass == 1)
		{
			jw_key(w, "nothing_excluded");
			jw_begin_object(w);
		}
		for (int j = 0; j < mt->n_ks; j++)
		{
			snprintf(key, sizeof(key), "hr@%d", mt->ks[j]);
			jw_key(w, key);
			jw_double(w, hr[j]);
		}
		for (int j = 0; j < mt->n_ks; j++)
		{
			snprintf(key, sizeof(key), "ndcg@%d", mt->ks[j]);
			jw_key(w, key);
			jw_double(w, ndcg[j]);
		}
		jw_key(w, "mrr");
		jw_double(w, pass == 0 ? mt->mrr : mt->mrr_all);
		if (pass == 1)
			jw_end_object(w);
	}
	if (!isnan(mt->pop_hr[0]))
	{
		jw_key(w, "popularity");
		jw_begin_object(w);
		for (int j = 0; j < mt->n_ks; j++)
		{
			snprintf(key, sizeof(key), "hr@%d", mt->ks[j]);
			jw_key(w, key);
			jw_double(w, mt->pop_hr[j]);
			snprintf(key, sizeof(key), "ndcg@%d", mt->ks[j]);
			jw_key(w, key);
			jw_double(w, mt->pop_ndcg[j]);
		}
		jw_end_object(w);
	}
	jw_key(w, "actions");
	jw_begin_array(w);
	for (int k = 0; k < m->cfg.n_actions; k++)
	{
		jw_begin_object(w);
		jw_key(w, "name");
		jw_string(w, spec->action_cols[k]);
		jw_key(w, "binary");
		jw_bool(w, m->cfg.action_binary[k]);
		jw_key(w, "targets");
		jw_int(w, mt->n_action_targets[k]);
		jw_key(w, "rmse");
		jw_double(w, mt->rmse[k]);
		jw_key(w, "baseline_rmse");
		jw_double(w, mt->baseline_rmse[k]);
		jw_key(w, "logloss");
		jw_double(w, mt->logloss[k]);
		jw_key(w, "ne");
		jw_double(w, mt->ne[k]);
		jw_key(w, "auc");
		jw_double(w, mt->auc[k]);
		jw_end_object(w);
	}
	jw_end_array(w);
	jw_end_object(w);
}

/* The metrics column: both splits, baselines, counters, data, device and epoch history. */
static char *
train_metrics_json(const TrainSpec *spec, const TrainState *st, const gr_train_result *res,
				   double seconds)
{
	const gr_dataset *ds = st->ds;
	const gr_model *m = st->model;
	const gr_metrics *t = &res->test;
	JsonWriter	w;

	jw_init(&w);
	jw_begin_object(&w);
	jw_key(&w, "protocol");
	jw_string(&w, "leave-one-out (last = test, second to last = validation), full-catalogue "
			  "ranking, seen items excluded, early stopping on validation log NDCG@10 - mean "
			  "log action error, test at the best epoch, action RMSE on the [0,1]-normalised "
			  "scale");
	jw_key(&w, "valid");
	metrics_json(&w, &res->valid, spec, m);
	jw_key(&w, "test");
	metrics_json(&w, t, spec, m);
	jw_key(&w, "baselines");
	jw_begin_object(&w);
	jw_key(&w, "popularity");
	jw_begin_object(&w);
	for (int j = 0; j < t->n_ks; j++)
	{
		char		key[32];

		snprintf(key, sizeof(key), "hr@%d", t->ks[j]);
		jw_key(&w, key);
		jw_double(&w, t->pop_hr[j]);
		snprintf(key, sizeof(key), "ndcg@%d", t->ks[j]);
		jw_key(&w, key);
		jw_double(&w, t->pop_ndcg[j]);
	}
	jw_end_object(&w);
	jw_key(&w, "bias_rmse");
	jw_double(&w, m->cfg.n_actions > 0 ? t->baseline_rmse[0] : NAN);
	jw_end_object(&w);
	jw_key(&w, "epochs_run");
	jw_int(&w, res->epochs_run);
	jw_key(&w, "best_epoch");
	jw_int(&w, res->best_epoch);
	jw_key(&w, "steps");
	jw_int(&w, res->steps);
	jw_key(&w, "train_seconds");
	jw_double(&w, res->train_seconds);
	jw_key(&w, "eval_seconds");
	jw_double(&w, res->eval_seconds);
	jw_key(&w, "seconds");
	jw_double(&w, seconds);
	jw_key(&w, "memory_estimate");
	jw_int(&w, (int64) st->memory_estimate);
	jw_key(&w, "device");
	jw_string(&w, st->env.ops ? st->env.ops->name : "cpu");
	jw_key(&w, "threads");
	jw_int(&w, genrec_threads);
	jw_key(&w, "data");
	jw_begin_object(&w);
	jw_key(&w, "users");
	jw_int(&w, ds->n_users);
	jw_key(&w, "items");
	jw_int(&w, ds->n_items);
	jw_key(&w, "interactions");
	jw_int(&w, (int64) ds->n_interactions);
	jw_key(&w, "max_user_len");
	jw_int(&w, ds->max_user_len);
	jw_key(&w, "actions");
	jw_begin_array(&w);
	for (int k = 0; k < ds->n_actions; k++)
	{
		jw_begin_object(&w);
		jw_key(&w, "name");
		jw_string(&w, spec->action_cols[k]);
		jw_key(&w, "binary");
		jw_bool(&w, ds->action_binary[k]);
		jw_key(&w, "min");
		jw_double(&w, ds->action_min[k]);
		jw_key(&w, "max");
		jw_double(&w, ds->action_max[k]);
		jw_end_object(&w);
	}
	jw_end_array(&w);
	jw_end_object(&w);
	jw_key(&w, "history");
	jw_begin_array(&w);
	if (st->history.buf.len > 0)
		jw_raw(&w, st->history.buf.data);
	jw_end_array(&w);
	jw_end_object(&w);
	return w.buf.data;
}

/* The source mapping as stored in genrec.models.source. */
static char *
train_source_json(const TrainSpec *spec)
{
	JsonWriter	w;

	jw_init(&w);
	jw_begin_object(&w);
	jw_key(&w, "relation");
	jw_string(&w, spec->relation);
	jw_key(&w, "query");
	jw_string(&w, spec->query);
	jw_key(&w, "user_col");
	jw_string(&w, spec->user_col);
	jw_key(&w, "item_col");
	jw_string(&w, spec->item_col);
	jw_key(&w, "action_cols");
	jw_begin_array(&w);
	for (int k = 0; k < spec->n_actions; k++)
		jw_string(&w, spec->action_cols[k]);
	jw_end_array(&w);
	jw_key(&w, "time_col");
	jw_string(&w, spec->time_col);
	jw_key(&w, "tiebreak_col");
	jw_string(&w, spec->tiebreak_col);
	jw_end_object(&w);
	return w.buf.data;
}

/* The training options as stored in config.train. */
static char *
train_options_json(const TrainSpec *spec)
{
	const gr_train_config *t = &spec->tcfg;
	JsonWriter	w;

	jw_init(&w);
	jw_begin_object(&w);
	jw_key(&w, "epochs");
	jw_int(&w, t->epochs);
	jw_key(&w, "batch_size");
	jw_int(&w, t->batch_size);
	jw_key(&w, "lr");
	jw_float4(&w, t->lr);
	jw_key(&w, "dropout");
	jw_float4(&w, t->dropout);
	jw_key(&w, "patience");
	jw_int(&w, t->patience);
	jw_key(&w, "seed");
	jw_int(&w, spec->seed);
	jw_key(&w, "beta1");
	jw_float4(&w, t->beta1);
	jw_key(&w, "beta2");
	jw_float4(&w, t->beta2);
	jw_key(&w, "eps");
	jw_float4(&w, t->eps);
	jw_key(&w, "weight_decay");
	jw_float4(&w, t->weight_decay);
	jw_key(&w, "w_item");
	jw_float4(&w, t->w_item);
	jw_key(&w, "w_action");
	jw_float4(&w, t->w_action);
	jw_key(&w, "warmup_steps");
	jw_int(&w, t->warmup_steps);
	jw_key(&w, "eval_users");
	jw_int(&w, t->eval_max_users);
	jw_key(&w, "binary_actions");
	jw_begin_array(&w);
	for (int k = 0; k < spec->n_actions; k++)
		if (spec->action_binary[k])
			jw_string(&w, spec->action_cols[k]);
	jw_end_array(&w);
	jw_key(&w, "task_weights");
	jw_begin_array(&w);
	for (int k = 0; k < spec->n_actions; k++)
		jw_float4(&w, t->n_task_weights > 0 ? t->task_weights[k] : 1.0f);
	jw_end_array(&w);
	jw_end_object(&w);
	return w.buf.data;
}

/* Optimiser steps one epoch takes (the users the engine trains on, in batches). */
static int
train_steps_per_epoch(const TrainSpec *spec, const gr_dataset *ds)
{
	int64		n = 0;

	for (int u = 0; u < ds->n_users; u++)
	{
		int			end = gr_dataset_train_end(ds, u);

		n += end >= 2 || (gr_layout_has_action_head(spec->layout) && end >= 1);
	}
	return (int) ((n + spec->tcfg.batch_size - 1) / spec->tcfg.batch_size);
}

/* A double as a result Datum, NULL when NaN. */
static Datum
result_float(double v, bool *isnull)
{
	*isnull = isnan(v);
	return Float8GetDatum(v);
}

/* Train a model from a table, view or query and add it to genrec.models. */
Datum
genrec_train(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz start = GetCurrentTimestamp();
	TrainSpec	spec;
	TrainState *st;
	MemoryContext cxt;
	TrainRows	rows;
	gr_train_result res;
	gr_error	err = {0};
	GenrecNewVersion nv = {0};
	bool		deployed = false;
	char		context[GENREC_MODEL_NAME_MAX + 32];
	Datum		values[TRAIN_RESULT_COLS];
	bool		nulls[TRAIN_RESULT_COLS] = {0};

	PreventCommandIfReadOnly("genrec_train()");
	InitMaterializedSRF(fcinfo, 0);
	train_parse_args(fcinfo, &spec);
	snprintf(context, sizeof(context), "genrec_train \"%s\"", spec.name);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "genrec_train",
								ALLOCSET_DEFAULT_SIZES);
	st = MemoryContextAllocZero(cxt, sizeof(TrainState));
	st->cxt = cxt;
	st->name = spec.name;
	st->slot = -1;
	st->release.func = train_state_release;
	st->release.arg = st;
	MemoryContextRegisterResetCallback(cxt, &st->release);

	SPI_connect();
	genrec_catalog_check_owner(spec.name, "train a new version of it");
	train_resolve_source(&spec);
	train_check_config(&spec);
	{
		/* the configuration alone (one user, one item) must fit before any row is read */
		gr_train_sizes none = {.n_interactions = 0,.n_users = 1,.n_items = 1,.max_user_len = 1};

		(void) train_check_memory(&spec, &none, "the configuration alone", NULL);
	}
	genrec_engine_env(&st->env, cxt, train_on_progress, st);
	st->env.interrupted = train_interrupted;
	st->env.step_done = train_on_step;
	st->report_rmse = gr_layout_has_action_head(spec.layout);
	st->report_items = gr_layout_has_item_head(spec.layout);
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		jw_init(&st->history);
		MemoryContextSwitchTo(oldcxt);
	}

	st->slot = genrec_progress_begin(spec.name, spec.tcfg.epochs);
	PG_TRY();
	{
		gr_raw_interactions raw = {0};
		uint8_t    *bytes;
		size_t		len;
		char	   *config_json;
		JsonWriter	extra;

		TimestampTz read_start = GetCurrentTimestamp(),
					build_start;

		genrec_progress_phase(st->slot, "reading", 0);
		train_read(&spec, st, &rows);
		build_start = GetCurrentTimestamp();
		if (rows.n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("genrec_train: the source has no rows")));
		raw.n = rows.n;
		raw.user = rows.user;
		raw.item = rows.item;
		raw.time = spec.time_col ? rows.time : NULL;
		raw.actions = spec.n_actions > 0 ? rows.actions : NULL;
		raw.n_actions = spec.n_actions;
		raw.action_binary = spec.action_binary;
		if (gr_dataset_build(&st->env, &raw, NULL, &st->ds, &err) != GR_OK)
			genrec_raise_engine_error(&err, context);
		pfree(rows.user);
		pfree(rows.item);
		pfree(rows.time);
		pfree(rows.actions);

		{
			gr_train_sizes sizes = {
				.n_interactions = (int64) st->ds->n_interactions,.n_users = st->ds->n_users,
				.n_items = st->ds->n_items,.max_user_len = st->ds->max_user_len,
			};
			gr_train_memory mem;

			spec.mcfg.n_actions = st->ds->n_actions;
			st->memory_estimate = train_check_memory(&spec, &sizes, "this data", &mem);
			ereport(NOTICE,
					(errmsg("genrec_train \"%s\": read %lld rows in %.1f s; dataset of %d users "
							"and %d items built in %.1f s; estimated peak memory %s",
							st->name, (long long) raw.n,
							(double) (build_start - read_start) / USECS_PER_SEC,
							st->ds->n_users, st->ds->n_items,
							(double) (GetCurrentTimestamp() - build_start) / USECS_PER_SEC,
							train_mb(mem.total)),
					 errdetail("Weights %s, gradients %s, optimiser state %s, activations %s, "
							   "evaluation %s, data %s.", train_mb(mem.parameters),
							   train_mb(mem.gradients), train_mb(mem.optimiser),
							   train_mb(mem.activations), train_mb(mem.evaluation),
							   train_mb(mem.dataset))));
		}
		st->steps_per_epoch = train_steps_per_epoch(&spec, st->ds);
		genrec_progress_training(st->slot, st->steps_per_epoch);
		if (gr_train(&st->env, &spec.mcfg, &spec.tcfg, st->ds, &st->model, &res, &err) != GR_OK)
		{
			if (st->error)
				ReThrowError(st->error);
			genrec_raise_engine_error(&err, context);
		}
		if (st->error)
			ReThrowError(st->error);
		genrec_progress_phase(st->slot, "saving", (int64) rows.n);
		genrec_progress_step(st->slot, res.steps);

		/* the version is known (and the name locked) before the bytes are written */
		nv.name = spec.name;
		nv.version = genrec_catalog_next_version(spec.name, "train a new version of it",
												 &nv.owner);
		nv.layout = spec.layout->name;
		nv.n_items = st->ds->n_items;
		nv.source = train_source_json(&spec);
		nv.metrics = train_metrics_json(&spec, st, &res,
										(double) (GetCurrentTimestamp() - start) / USECS_PER_SEC);
		if (gr_config_to_json(&st->env, &st->model->cfg, &config_json, &err) != GR_OK)
			genrec_raise_engine_error(&err, context);
		{
			JsonWriter	cfg;

			jw_init(&cfg);
			jw_begin_object(&cfg);
			jw_key(&cfg, "model");
			jw_raw(&cfg, config_json);
			jw_key(&cfg, "train");
			jw_raw(&cfg, train_options_json(&spec));
			jw_end_object(&cfg);
			nv.config = cfg.buf.data;
		}
		jw_init(&extra);
		jw_begin_object(&extra);
		jw_key(&extra, "created_by");
		jw_string(&extra, "genrec 0.2.0 (postgres)");
		jw_key(&extra, "model_name");
		jw_string(&extra, spec.name);
		jw_key(&extra, "version");
		jw_int(&extra, nv.version);
		jw_key(&extra, "action_names");
		jw_begin_array(&extra);
		for (int k = 0; k < spec.n_actions; k++)
			jw_string(&extra, spec.action_cols[k]);
		jw_end_array(&extra);
		jw_key(&extra, "source");
		jw_raw(&extra, nv.source);
		jw_key(&extra, "train");
		jw_raw(&extra, train_options_json(&spec));
		jw_key(&extra, "metrics");
		jw_raw(&extra, nv.metrics);
		jw_end_object(&extra);
		if (gr_model_save(st->model, extra.buf.data, &bytes, &len, &err) != GR_OK)
			genrec_raise_engine_error(&err, context);
		if (len > MaxAllocSize - VARHDRSZ)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("genrec_train: the model takes %zu bytes, more than a bytea holds",
							len)));
		nv.weights = palloc(len + VARHDRSZ);
		SET_VARSIZE(nv.weights, len + VARHDRSZ);
		memcpy(VARDATA(nv.weights), bytes, len);
		gr_free(&st->env, bytes);
		nv.deploy = spec.deploy;
		deployed = genrec_catalog_insert(&nv);
	}
	PG_FINALLY();
	{
		genrec_progress_end(st->slot);
	}
	PG_END_TRY();

	values[0] = CStringGetTextDatum(spec.name);
	values[1] = Int32GetDatum(nv.version);
	values[2] = CStringGetTextDatum(spec.layout->name);
	values[3] = BoolGetDatum(deployed);
	values[4] = CStringGetTextDatum(st->env.ops ? st->env.ops->name : "cpu");
	values[5] = Int32GetDatum(st->ds->n_users);
	values[6] = Int32GetDatum(st->ds->n_items);
	values[7] = Int64GetDatum((int64) st->ds->n_interactions);
	values[8] = Int32GetDatum(res.epochs_run);
	values[9] = Int32GetDatum(res.best_epoch);
	values[10] = result_float(res.valid.hr[0], &nulls[10]);
	values[11] = result_float(res.valid.ndcg[0], &nulls[11]);
	values[12] = result_float(st->model->cfg.n_actions > 0 && gr_layout_has_action_head(spec.layout) ?
							  res.valid.rmse[0] : NAN, &nulls[12]);
	values[13] = result_float(res.test.hr[0], &nulls[13]);
	values[14] = result_float(res.test.ndcg[0], &nulls[14]);
	values[15] = result_float(st->model->cfg.n_actions > 0 && gr_layout_has_action_head(spec.layout) ?
							  res.test.rmse[0] : NAN, &nulls[15]);
	values[16] = result_float(st->model->cfg.n_actions > 0 ? res.test.baseline_rmse[0] : NAN,
							  &nulls[16]);
	values[17] = Float8GetDatum((double) (GetCurrentTimestamp() - start) / USECS_PER_SEC);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

	SPI_finish();
	MemoryContextDelete(cxt);	/* frees the model through its reset callback */
	return (Datum) 0;
}
