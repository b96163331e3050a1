/*
 * pg_catalog.c — the model catalogue from C (see pg_catalog.h): name locks, ownership,
 * inserting versions, genrec_weights_info() and genrec_import(), and JSON helpers.
 *
 * Writes happen here and in pg_admin.c only, as the catalogue's owner after the caller's
 * rights were checked (pg_security.h); a change to a name locks its genrec.model_names row.
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
#include "pg_security.h"

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

/* Run a catalogue statement as the catalogue's owner; returns SPI's result code. */
int
genrec_catalogue_exec(const char *sql, int nargs, Oid *types, Datum *values,
					  const char *nulls, bool read_only, long tcount)
{
	GenrecRestricted r;
	int			rc;

	genrec_catalogue_writer_begin(&r);
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, tcount);
	genrec_catalogue_writer_end(&r);
	return rc;
}

/* Raise 42501 for a role without the privileges of a name's owner. */
static void
not_owner(const char *name, const char *verb, Oid owner) pg_attribute_noreturn();
static void
not_owner(const char *name, const char *verb, Oid owner)
{
	char	   *role = GetUserNameFromId(owner, true);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of model \"%s\" to %s", name, verb),
			 errdetail("Model \"%s\" belongs to role %s.", name,
					   role ? quote_identifier(role) : "(dropped)")));
}

/* Return the owner of a model name (InvalidOid if new), raising 42501 without its privileges. */
Oid
genrec_catalog_check_owner(const char *name, const char *verb)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner;

	genrec_require_schema_version();
	if (SPI_execute_with_args("SELECT n.owner FROM genrec.model_names n "
							  "WHERE n.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec: could not read genrec.model_names");
	if (SPI_processed == 0)
		return InvalidOid;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull));
	if (!genrec_has_privs_of(owner))
		not_owner(name, verb, owner);
	return owner;
}

/* Lock an existing name's row for a change; its owner, or InvalidOid when there is none. */
static Oid
lock_name(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		isnull;

	if (genrec_catalogue_exec("SELECT n.owner FROM genrec.model_names n "
							  "WHERE n.name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec: could not lock model \"%s\"", name);
	if (SPI_processed == 0)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										  &isnull));
}

/* Lock a model name for a change by its owner; ERROR 42704 when absent, 42501 when not owner. */
Oid
genrec_catalog_lock_existing(const char *name, const char *verb)
{
	Oid			owner;

	genrec_require_schema_version();
	owner = lock_name(name);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
	if (!genrec_has_privs_of(owner))
		not_owner(name, verb, owner);
	return owner;
}

/*
 * Lock a model name, claiming it for the current role when it is new, check its owner and
 * return the next version. The primary key of genrec.model_names decides concurrent claims:
 * the second waits for the first and then finds the name taken (42501), never a second owner.
 */
int32
genrec_catalog_next_version(const char *name, const char *verb, Oid *owner)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(GetUserId())};
	bool		isnull;

	genrec_require_schema_version();
	*owner = lock_name(name);
	if (!OidIsValid(*owner))
	{
		if (genrec_catalogue_exec("INSERT INTO genrec.model_names (name, owner) "
								  "VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
								  2, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "genrec: could not claim model name \"%s\"", name);
		if (SPI_processed == 1)
		{
			*owner = GetUserId();
			return 1;
		}
		/* another transaction claimed it first and committed */
		*owner = lock_name(name);
		if (!OidIsValid(*owner))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("model name \"%s\" was claimed by a concurrent transaction", name),
					 errhint("Retry the transaction.")));
	}
	if (!genrec_has_privs_of(*owner))
		not_owner(name, verb, *owner);
	if (genrec_catalogue_exec("SELECT pg_catalog.max(m.version) FROM genrec.models m "
							  "WHERE m.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec: could not read genrec.models");
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		return isnull ? 1 : DatumGetInt32(d) + 1;
	}
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
		genrec_catalogue_exec("UPDATE genrec.models m SET deployed = false "
							  "WHERE m.name OPERATOR(pg_catalog.=) $1 AND m.deployed",
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
	if (genrec_catalogue_exec("INSERT INTO genrec.models (name, version, layout, config, source, "
							  "n_items, metrics, weights, owner, deployed) "
							  "VALUES ($1, $2, $3, $4::pg_catalog.jsonb, $5::pg_catalog.jsonb, "
							  "$6, $7::pg_catalog.jsonb, $8, $9, $10)",
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
	if ((relation == NULL) == (query == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_import: source names %s", relation ? "both a relation and a query" :
						"neither a relation nor a query")));
	if (relation)
	{
		Oid			relid;
		char		relkind;

		relation = genrec_resolve_relation(relation, &relid, &relkind);
	}
	else
		query = genrec_check_query_source("genrec_import", query);
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

/*
 * Check that the importer can read the named columns of its source: a LIMIT 0 read with the
 * caller's rights (42P01, 42703, 42501 as PostgreSQL raises them).
 */
static void
import_probe_source(const char *source_json)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(source_json)};
	StringInfoData sql;
	char	   *rel,
			   *query;
	bool		isnull;

	if (SPI_execute_with_args("SELECT s OPERATOR(pg_catalog.->>) 'relation', "
							  "s OPERATOR(pg_catalog.->>) 'query', "
							  "pg_catalog.quote_ident(s OPERATOR(pg_catalog.->>) 'user_col') "
							  "OPERATOR(pg_catalog.||) ', ' OPERATOR(pg_catalog.||) "
							  "pg_catalog.quote_ident(s OPERATOR(pg_catalog.->>) 'item_col') "
							  "OPERATOR(pg_catalog.||) COALESCE((SELECT "
							  "pg_catalog.string_agg(', ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c), '') "
							  "FROM pg_catalog.jsonb_array_elements_text(s OPERATOR(pg_catalog.->) 'action_cols') c), '') "
							  "OPERATOR(pg_catalog.||) COALESCE(', ' OPERATOR(pg_catalog.||) "
							  "pg_catalog.quote_ident(s OPERATOR(pg_catalog.->>) 'time_col'), '') "
							  "OPERATOR(pg_catalog.||) COALESCE(', ' OPERATOR(pg_catalog.||) "
							  "pg_catalog.quote_ident(s OPERATOR(pg_catalog.->>) 'tiebreak_col'), '') "
							  "FROM (SELECT $1::pg_catalog.jsonb AS s) AS x",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec_import: could not read the source mapping");
	rel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	query = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s", SPI_getvalue(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 3));
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		appendStringInfo(&sql, " FROM %s LIMIT 0", rel);
	else
		appendStringInfo(&sql, " FROM (%s\n) AS genrec_source LIMIT 0", query);
	if (SPI_execute(sql.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "genrec_import: could not read the source");
}

/*
 * The summary of an imported file, keeping only what the catalogue shows and only with the
 * types it expects (a file is untrusted: a string where a number belongs would break
 * genrec.model_overview for every reader): of the file's "metrics" object (or its valid/test
 * objects, per-epoch history and result counts) the valid, test and baselines objects and the
 * history array whose numbers are at most
 * 1e300 in magnitude and whose strings have at most 255 characters, and the seconds and epoch
 * counts when they are numbers in [0, 1e9] (whole for the counts); nothing else.
 */
static const char *const import_metric_objects[] = {"valid", "test", "baselines", "history", NULL};

/* Top-level numbers kept: in [0, 1e9], and whole for the epoch counts. */
static const char *const import_metric_counts[] = {"epochs_run", "best_epoch", "train_seconds",
NULL};

/* A NULL-terminated list of keys as a text[] datum. */
static Datum
keys_array(const char *const *keys)
{
	Datum		elems[8];
	int			n = 0;

	for (; keys[n]; n++)
	{
		Assert(n < lengthof(elems));
		elems[n] = CStringGetTextDatum(keys[n]);
	}
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
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
	Datum		args[2];
	char		nulls[5] = "    ";

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
	/* the file's source mapping is never used: the importer names one, or there is none */
	if (source != NULL)
		import_probe_source(source);
	else
		source = "null";
	/* config from the engine; metrics: only well-typed known keys (NULL when none) */
	args[0] = CStringGetTextDatum(wi.config);
	args[1] = wi.extra ? CStringGetTextDatum(wi.extra) : (Datum) 0;
	nulls[1] = wi.extra ? ' ' : 'n';
	if (SPI_execute_with_args(
							  "WITH x AS (SELECT COALESCE($2::pg_catalog.jsonb, '{}') AS e), "
							  "m AS (SELECT CASE WHEN pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'metrics') "
							  "  OPERATOR(pg_catalog.=) 'object' THEN e OPERATOR(pg_catalog.->) 'metrics' "
							  "  ELSE pg_catalog.jsonb_build_object('valid', e OPERATOR(pg_catalog.->) 'valid', "
							  "  'test', e OPERATOR(pg_catalog.->) 'test', "
							  "  'history', e OPERATOR(pg_catalog.->) 'history', "
							  "  'epochs_run', e OPERATOR(pg_catalog.#>) '{result,epochs_run}', "
							  "  'best_epoch', e OPERATOR(pg_catalog.#>) '{result,best_epoch}', "
							  "  'train_seconds', e OPERATOR(pg_catalog.#>) '{result,train_seconds}') END AS mt "
							  "  FROM x), "
							  "k AS (SELECT kv.key, kv.value FROM m, pg_catalog.jsonb_each(m.mt) kv "
							  "  WHERE (kv.key OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[]) "
							  "   AND pg_catalog.jsonb_typeof(kv.value) OPERATOR(pg_catalog.=) "
							  "    CASE WHEN kv.key OPERATOR(pg_catalog.=) 'history' THEN 'array' ELSE 'object' END "
							  "   AND NOT pg_catalog.jsonb_path_exists(kv.value, "
							  "    'strict $.** ? ((@.type() == \"number\" && (@ > 1e300 || @ < -1e300)) "
							  "    || (@.type() == \"string\" && !(@ like_regex \"^.{0,255}$\" flag \"s\")))')) "
							  "  OR (kv.key OPERATOR(pg_catalog.=) ANY ($4::pg_catalog.text[]) "
							  "   AND pg_catalog.jsonb_typeof(kv.value) OPERATOR(pg_catalog.=) 'number' "
							  "   AND pg_catalog.jsonb_path_exists(kv.value, '$ ? (@ >= 0 && @ <= 1000000000)') "
							  "   AND (kv.key OPERATOR(pg_catalog.=) 'train_seconds' "
							  "    OR pg_catalog.jsonb_path_exists(kv.value, '$ ? (@ == @.floor())')))) "
							  "SELECT pg_catalog.jsonb_build_object('model', $1::pg_catalog.jsonb, 'train', "
							  "  '{}'::pg_catalog.jsonb)::pg_catalog.text, "
							  " ((SELECT pg_catalog.jsonb_object_agg(k.key, k.value) FROM k) "
							  "  OPERATOR(pg_catalog.||) '{\"imported\": true}'::pg_catalog.jsonb)::pg_catalog.text "
							  "FROM x",
							  4, (Oid[]) {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID},
							  (Datum[]) {args[0], args[1], keys_array(import_metric_objects),
							  keys_array(import_metric_counts)},
							  nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "genrec_import: could not read the model summary");
	nv.config = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	nv.metrics = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

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
