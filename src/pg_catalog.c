/*
 * pg_catalog.c — the model catalogue from C (see pg_catalog.h): name locks, ownership,
 * inserting versions, genrec_weights_info() and genrec_import(), and JSON helpers.
 *
 * Deploy, rollback, drop and export are plain SQL/PL/pgSQL (sql/parts/40_catalog.sql); they
 * take the same advisory lock and apply the same ownership rule.
 */
#include "pg_catalog.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_io.h"
#pragma GCC diagnostic pop
#include "pg_genrec.h"

PG_FUNCTION_INFO_V1(genrec_weights_info);
PG_FUNCTION_INFO_V1(genrec_import);

/* Allocate engine memory in the context given as user; NULL on failure. */
static void *
cpu_env_alloc(void *user, size_t bytes)
{
	return MemoryContextAllocExtended((MemoryContext) user, bytes,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/* Free engine memory. */
static void
cpu_env_free(void *user, void *ptr)
{
	pfree(ptr);
}

/* Fill a CPU engine environment over a memory context. */
void
genrec_cpu_env(gr_env *env, MemoryContext mcxt)
{
	gr_env_default(env);
	env->allocator.alloc = cpu_env_alloc;
	env->allocator.free = cpu_env_free;
	env->allocator.user = mcxt;
}

/* Reject an empty or overlong model name. */
void
genrec_check_model_name(const char *fn, const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > GENREC_MODEL_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: a model name must have 1 to %d bytes, got %zu", fn,
						GENREC_MODEL_NAME_MAX, len)));
}

/* Return the owner of a model name (InvalidOid if new), raising 42501 without its privileges. */
Oid
genrec_catalog_check_owner(const char *name, const char *verb)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner;

	if (SPI_execute_with_args("SELECT owner, pg_catalog.pg_has_role(owner, 'USAGE') "
							  "FROM genrec.models WHERE name = $1 ORDER BY version LIMIT 1",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec: could not read genrec.models");
	if (SPI_processed == 0)
		return InvalidOid;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
	{
		char	   *role = GetUserNameFromId(owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of model \"%s\" to %s", name, verb),
				 errdetail("Model \"%s\" belongs to role %s.", name,
						   role ? quote_identifier(role) : "unknown")));
	}
	return owner;
}

/* Lock a model name, check its owner and return the next version. */
int32
genrec_catalog_next_version(const char *name, const char *verb, Oid *owner)
{
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		args[2] = {Int32GetDatum(GENREC_CATALOG_LOCK_KEY), CStringGetTextDatum(name)};
	bool		isnull;

	if (SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "genrec: could not lock model \"%s\"", name);
	*owner = genrec_catalog_check_owner(name, verb);
	if (!OidIsValid(*owner))
	{
		*owner = GetUserId();
		return 1;
	}
	if (SPI_execute_with_args("SELECT max(version) FROM genrec.models WHERE name = $1",
							  1, argtypes + 1, args + 1, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec: could not read genrec.models");
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									   &isnull)) + 1;
}

/* Insert a new version, undeploying the previous one when it is to be deployed. */
bool
genrec_catalog_insert(const GenrecNewVersion *nv)
{
	Oid			argtypes[10] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID,
	BYTEAOID, OIDOID, BOOLOID};
	Datum		args[10];
	char		nulls[11] = "          ";
	bool		deploy = nv->deploy || nv->version == 1;

	if (deploy &&
		SPI_execute_with_args("UPDATE genrec.models SET deployed = false "
							  "WHERE name = $1 AND deployed",
							  1, argtypes, (Datum[]) {CStringGetTextDatum(nv->name)}, NULL,
							  false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "genrec: could not update genrec.models");
	args[0] = CStringGetTextDatum(nv->name);
	args[1] = Int32GetDatum(nv->version);
	args[2] = CStringGetTextDatum(nv->layout);
	args[3] = CStringGetTextDatum(nv->config);
	args[4] = CStringGetTextDatum(nv->source);
	args[5] = Int32GetDatum(nv->n_items);
	args[6] = nv->metrics ? CStringGetTextDatum(nv->metrics) : (Datum) 0;
	nulls[6] = nv->metrics ? ' ' : 'n';
	args[7] = PointerGetDatum(nv->weights);
	args[8] = ObjectIdGetDatum(nv->owner);
	args[9] = BoolGetDatum(deploy);
	if (SPI_execute_with_args("INSERT INTO genrec.models (name, version, layout, config, source, "
							  "n_items, metrics, weights, owner, deployed) "
							  "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7::jsonb, $8, $9, $10)",
							  10, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "genrec: could not insert into genrec.models");
	return deploy;
}

/* Resolve a relation name for reading and return its quoted qualified name. */
char *
genrec_resolve_relation(const char *text, Oid *relid, char *relkind)
{
	List	   *names = stringToQualifiedNameList(text);
	RangeVar   *rv = makeRangeVarFromNameList(names);

	*relid = RangeVarGetRelid(rv, AccessShareLock, false);
	*relkind = get_rel_relkind(*relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(*relid)),
									  get_rel_name(*relid));
}

/* Reject a non-object or an object with an unknown key. */
void
genrec_jsonb_check_keys(Jsonb *jb, const char *const *known, const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData list;

	initStringInfo(&list);
	for (int i = 0; known[i]; i++)
		appendStringInfo(&list, "%s%s", i ? ", " : "", known[i]);
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what),
				 errhint("Known keys: %s.", list.data)));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; known[i] && !ok; i++)
			ok = strlen(known[i]) == (size_t) v.val.string.len &&
				strncmp(known[i], v.val.string.val, v.val.string.len) == 0;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%.*s\" in %s", v.val.string.len, v.val.string.val,
							what),
					 errhint("Known keys: %s.", list.data)));
	}
}

/* Look up a top-level key of an object. */
bool
genrec_jsonb_get(Jsonb *jb, const char *key, JsonbValue *out)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), out);

	return v != NULL;
}

/* --- JSON writer --- */

/* Start an empty JSON text. */
void
jw_init(JsonWriter *w)
{
	initStringInfo(&w->buf);
	w->depth = 0;
	w->need_comma[0] = false;
	w->after_key = false;
}

/* Write the separator a new value needs. */
static void
jw_sep(JsonWriter *w)
{
	if (w->after_key)
		w->after_key = false;
	else if (w->need_comma[w->depth])
		appendStringInfoChar(&w->buf, ',');
	w->need_comma[w->depth] = true;
}

/* Open an object. */
void
jw_begin_object(JsonWriter *w)
{
	jw_sep(w);
	appendStringInfoChar(&w->buf, '{');
	Assert(w->depth + 1 < lengthof(w->need_comma));
	w->need_comma[++w->depth] = false;
}

/* Close an object. */
void
jw_end_object(JsonWriter *w)
{
	appendStringInfoChar(&w->buf, '}');
	w->depth--;
}

/* Open an array. */
void
jw_begin_array(JsonWriter *w)
{
	jw_begin_object(w);
	w->buf.data[w->buf.len - 1] = '[';
}

/* Close an array. */
void
jw_end_array(JsonWriter *w)
{
	appendStringInfoChar(&w->buf, ']');
	w->depth--;
}

/* Write an object key. */
void
jw_key(JsonWriter *w, const char *key)
{
	jw_sep(w);
	escape_json(&w->buf, key);
	appendStringInfoChar(&w->buf, ':');
	w->after_key = true;
}

/* Write a double in its shortest exact form, null when not finite. */
void
jw_double(JsonWriter *w, double v)
{
	jw_sep(w);
	if (isfinite(v))
		appendStringInfoString(&w->buf, float8out_internal(v));
	else
		appendStringInfoString(&w->buf, "null");
}

/* Write a float in its shortest exact form (as float4 prints it), null when not finite. */
void
jw_float4(JsonWriter *w, float v)
{
	jw_sep(w);
	if (isfinite(v))
		appendStringInfoString(&w->buf,
							   DatumGetCString(DirectFunctionCall1(float4out, Float4GetDatum(v))));
	else
		appendStringInfoString(&w->buf, "null");
}

/* Write an integer. */
void
jw_int(JsonWriter *w, int64 v)
{
	jw_sep(w);
	appendStringInfo(&w->buf, INT64_FORMAT, v);
}

/* Write a boolean. */
void
jw_bool(JsonWriter *w, bool v)
{
	jw_sep(w);
	appendStringInfoString(&w->buf, v ? "true" : "false");
}

/* Write a string, or null. */
void
jw_string(JsonWriter *w, const char *s)
{
	jw_sep(w);
	if (s)
		escape_json(&w->buf, s);
	else
		appendStringInfoString(&w->buf, "null");
}

/* Write JSON text as it is, or null. */
void
jw_raw(JsonWriter *w, const char *json)
{
	jw_sep(w);
	appendStringInfoString(&w->buf, json ? json : "null");
}

/* --- safetensors bytes --- */

/* What a model's bytes hold, copied out of the engine. */
typedef struct WeightsInfo
{
	const char *layout;
	int32		n_items;
	int32		n_actions;
	int64		n_params;
	char	   *config;			/* JSON text */
	char	   *extra;			/* JSON text, or NULL when absent or not valid JSON */
	Datum		item_ids;		/* bigint[] */
} WeightsInfo;

/* Whether text is one valid JSON value PostgreSQL can store as jsonb. */
static bool
json_text_valid(char *text)
{
	size_t		len = strlen(text);
	JsonLexContext *lex;

	if (!pg_verifymbstr(text, (int) len, true))
		return false;
	lex = makeJsonLexContextCstringLen(text, (int) len, GetDatabaseEncoding(), true);
	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/* Validate model bytes with the engine and copy out what the catalogue needs. */
static void
weights_read(bytea *bytes, const char *fn, WeightsInfo *out)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "genrec weights",
											  ALLOCSET_DEFAULT_SIZES);
	gr_env		env;
	gr_model   *model = NULL;
	char	   *extra = NULL;
	char	   *config = NULL;
	gr_error	err = {0};

	genrec_cpu_env(&env, cxt);
	if (gr_model_load(&env, (const uint8_t *) VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes),
					  &model, &extra, &err) != GR_OK)
		genrec_raise_engine_error(&err, fn);
	PG_TRY();
	{
		Datum	   *ids;

		if (gr_config_to_json(&env, &model->cfg, &config, &err) != GR_OK)
			genrec_raise_engine_error(&err, fn);
		out->layout = model->layout->name;
		out->n_items = model->cfg.n_items;
		out->n_actions = model->cfg.n_actions;
		out->n_params = (int64) model->n_params;
		out->config = pstrdup(config);
		out->extra = extra && json_text_valid(extra) ? pstrdup(extra) : NULL;
		ids = palloc_extended(sizeof(Datum) * Max(model->cfg.n_items, 1), MCXT_ALLOC_HUGE);
		for (int i = 0; i < model->cfg.n_items; i++)
			ids[i] = Int64GetDatum(model->item_ids[i + 1]);
		out->item_ids = PointerGetDatum(construct_array(ids, model->cfg.n_items, INT8OID,
														sizeof(int64), FLOAT8PASSBYVAL,
														TYPALIGN_DOUBLE));
	}
	PG_FINALLY();
	{
		gr_model_free(model);
	}
	PG_END_TRY();
	MemoryContextDelete(cxt);
}

/* Describe model bytes: layout, sizes, configuration, summary and item ids. */
Datum
genrec_weights_info(PG_FUNCTION_ARGS)
{
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);
	TupleDesc	tupdesc;
	WeightsInfo wi;
	Datum		values[7];
	bool		nulls[7] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "genrec_weights_info: return type must be a row type");
	weights_read(bytes, "genrec_weights_info", &wi);
	values[0] = CStringGetTextDatum(wi.layout);
	values[1] = Int32GetDatum(wi.n_items);
	values[2] = Int32GetDatum(wi.n_actions);
	values[3] = Int64GetDatum(wi.n_params);
	values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(wi.config));
	if (wi.extra)
		values[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(wi.extra));
	nulls[5] = wi.extra == NULL;
	values[6] = wi.item_ids;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* Return a string-or-null key of an import source, or dflt when the key is absent. */
static const char *
source_string(Jsonb *src, const char *key, const char *dflt, bool nullable)
{
	JsonbValue	v;

	if (!genrec_jsonb_get(src, key, &v))
		return dflt;
	if (v.type == jbvNull && nullable)
		return NULL;
	if (v.type != jbvString || v.val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_import: source key \"%s\" must be a non-empty string%s", key,
						nullable ? " or null" : "")));
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* Build the source mapping of an imported model as JSON text. */
static char *
import_source(Jsonb *src)
{
	static const char *const known[] = {"relation", "query", "user_col", "item_col",
	"action_cols", "time_col", "tiebreak_col", NULL};
	const char *relation;
	const char *query;
	JsonbValue	v;
	JsonWriter	w;

	genrec_jsonb_check_keys(src, known, "genrec_import source");
	relation = source_string(src, "relation", NULL, true);
	query = source_string(src, "query", NULL, true);
	if (relation && query)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_import: source names both a relation and a query")));
	if (relation)
	{
		Oid			relid;
		char		relkind;

		relation = genrec_resolve_relation(relation, &relid, &relkind);
	}
	jw_init(&w);
	jw_begin_object(&w);
	jw_key(&w, "relation");
	jw_string(&w, relation);
	jw_key(&w, "query");
	jw_string(&w, query);
	jw_key(&w, "user_col");
	jw_string(&w, source_string(src, "user_col", "user_id", false));
	jw_key(&w, "item_col");
	jw_string(&w, source_string(src, "item_col", "item_id", false));
	jw_key(&w, "action_cols");
	jw_begin_array(&w);
	if (genrec_jsonb_get(src, "action_cols", &v))
	{
		JsonbIterator *it;
		JsonbValue	e;
		JsonbIteratorToken tok;

		if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("genrec_import: source key \"action_cols\" must be an array of strings")));
		it = JsonbIteratorInit(v.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (e.type != jbvString || e.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("genrec_import: source key \"action_cols\" must be an array of strings")));
			jw_string(&w, pnstrdup(e.val.string.val, e.val.string.len));
		}
	}
	jw_end_array(&w);
	jw_key(&w, "time_col");
	jw_string(&w, source_string(src, "time_col", "ts", true));
	jw_key(&w, "tiebreak_col");
	jw_string(&w, source_string(src, "tiebreak_col", NULL, true));
	jw_end_object(&w);
	return w.buf.data;
}

/* Add model bytes as the next version of a model; returns the version. */
Datum
genrec_import(PG_FUNCTION_ARGS)
{
	const char *fn = "genrec_import";
	char	   *name;
	bytea	   *bytes;
	WeightsInfo wi;
	GenrecNewVersion nv = {0};
	char	   *source = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char		nulls[3] = "  ";
	bool		isnull;

	PreventCommandIfReadOnly("genrec_import()");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("genrec_import: name, weights and deploy must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	genrec_check_model_name(fn, name);
	bytes = PG_GETARG_BYTEA_P(1);
	weights_read(bytes, fn, &wi);
	if (!PG_ARGISNULL(3))
		source = import_source(PG_GETARG_JSONB_P(3));

	SPI_connect();
	/* config, metrics and (when not given) the source come from the stored summary */
	args[0] = CStringGetTextDatum(wi.config);
	args[1] = wi.extra ? CStringGetTextDatum(wi.extra) : (Datum) 0;
	nulls[1] = wi.extra ? ' ' : 'n';
	if (SPI_execute_with_args(
							  "WITH x AS (SELECT coalesce($2::jsonb, '{}') AS e) "
							  "SELECT jsonb_build_object('model', $1::jsonb, 'train', "
							  "  CASE WHEN jsonb_typeof(e->'train') = 'object' THEN e->'train' "
							  "  ELSE '{}' END)::text, "
							  " (CASE WHEN jsonb_typeof(e->'metrics') = 'object' THEN e->'metrics' "
							  "  WHEN e ? 'test' THEN jsonb_strip_nulls(jsonb_build_object("
							  "   'valid', e->'valid', 'test', e->'test', "
							  "   'epochs_run', e#>'{result,epochs_run}', "
							  "   'best_epoch', e#>'{result,best_epoch}', "
							  "   'train_seconds', e#>'{result,train_seconds}')) END "
							  "  || '{\"imported\": true}')::text, "
							  " (CASE WHEN jsonb_typeof(e->'source') = 'object' THEN e->'source' END)::text "
							  "FROM x",
							  2, argtypes, args, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec_import: could not read the model summary");
	nv.config = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	nv.metrics = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (source == NULL)
	{
		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		/* no mapping given or stored: JSON null (scoring then needs explicit histories) */
		source = isnull ? "null" :
			SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	}

	nv.name = name;
	nv.version = genrec_catalog_next_version(name, "import a new version of it", &nv.owner);
	nv.layout = wi.layout;
	nv.source = source;
	nv.n_items = wi.n_items;
	nv.weights = bytes;
	nv.deploy = PG_GETARG_BOOL(2);
	genrec_catalog_insert(&nv);
	SPI_finish();
	PG_RETURN_INT32(nv.version);
}
