/*
 * pg_security.c — whose rights SQL runs with (see pg_security.h for the trust model).
 *
 * The restricted section follows PostgreSQL's maintenance commands (ANALYZE, REINDEX, REFRESH
 * MATERIALIZED VIEW since the 2020 and 2022 security releases): GetUserIdAndSecContext, then
 * SetUserIdAndSecContext(owner, ... | SECURITY_RESTRICTED_OPERATION), a new GUC nest level
 * with a local search_path, and on the way out AtEOXact_GUC and the saved context. Inside, the
 * owner's functions cannot change the session (SET ROLE, temporary objects, prepared
 * statements, ... are refused) and cannot pick up objects from a schema the caller put first
 * on the path.
 */
#include "pg_security.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#define RESTRICTED_SEARCH_PATH "pg_catalog, pg_temp"

/* Enter a security-restricted operation as role with a fixed search_path. */
void
genrec_restrict_begin(Oid role, GenrecRestricted *r)
{
	GetUserIdAndSecContext(&r->save_userid, &r->save_sec_context);
	SetUserIdAndSecContext(role, r->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	r->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", RESTRICTED_SEARCH_PATH, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/* Leave the restricted section: GUCs, then user id and security context. */
void
genrec_restrict_end(GenrecRestricted *r)
{
	AtEOXact_GUC(false, r->save_nestlevel);
	SetUserIdAndSecContext(r->save_userid, r->save_sec_context);
}

/* The owner of genrec.models (the role that installed the extension). */
static Oid
catalogue_owner(void)
{
	Oid			nsp = get_namespace_oid("genrec", false);
	Oid			relid = get_relname_relid("models", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "genrec: table genrec.models does not exist");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Write the catalogue as its owner (no GUC change: the texts are schema-qualified). */
void
genrec_catalogue_writer_begin(GenrecRestricted *r)
{
	Oid			owner = catalogue_owner();

	GetUserIdAndSecContext(&r->save_userid, &r->save_sec_context);
	SetUserIdAndSecContext(owner, r->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	r->save_nestlevel = -1;
}

/* Stop writing as the catalogue's owner. */
void
genrec_catalogue_writer_end(GenrecRestricted *r)
{
	SetUserIdAndSecContext(r->save_userid, r->save_sec_context);
}

/* Refuse a model whose owner role was dropped. */
void
genrec_require_owner_exists(Oid owner, const char *model)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of model \"%s\" (role OID %u) no longer exists", model, owner),
				 errdetail("A model's source is read with its owner's rights."),
				 errhint("Retrain or re-import the model as an existing role.")));
}

/* Whether the current role acts with role's privileges (PUBLIC: always). */
bool
genrec_has_privs_of(Oid role)
{
	return !OidIsValid(role) || has_privs_of_role(GetUserId(), role);
}

/* Refuse a role that may not use a model. */
void
genrec_require_use(const char *model, Oid owner, const Oid *grantees, int n)
{
	char	   *role;

	if (genrec_has_privs_of(owner))
		return;
	for (int i = 0; i < n; i++)
		if (genrec_has_privs_of(grantees[i]))
			return;
	role = GetUserNameFromId(owner, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for model \"%s\"", model),
			 errdetail("Model \"%s\" belongs to role %s.", model,
					   role ? quote_identifier(role) : "(dropped)"),
			 errhint("Its owner can grant its use with genrec_grant(model, role).")));
}

/* Raise the error for a query source that is not one plain read. */
static void
bad_query_source(const char *fn, int code, const char *why) pg_attribute_noreturn();
static void
bad_query_source(const char *fn, int code, const char *why)
{
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s: a query source must be exactly one SELECT, WITH, VALUES or TABLE "
					"statement: %s", fn, why)));
}

/* Parse, analyse and qualify a query source (see pg_security.h). */
char *
genrec_check_query_source(const char *fn, const char *text)
{
	List	   *raw = raw_parser(text, RAW_PARSE_DEFAULT);
	RawStmt    *stmt;
	Query	   *query;
	int			nest;
	char	   *qualified;

	if (list_length(raw) != 1)
		bad_query_source(fn, ERRCODE_SYNTAX_ERROR,
						 list_length(raw) == 0 ? "it is empty" :
						 psprintf("it has %d statements", list_length(raw)));
	stmt = linitial_node(RawStmt, raw);
	if (!IsA(stmt->stmt, SelectStmt))
		bad_query_source(fn, ERRCODE_WRONG_OBJECT_TYPE, "it is not a query");
	if (((SelectStmt *) stmt->stmt)->intoClause != NULL)
		bad_query_source(fn, ERRCODE_WRONG_OBJECT_TYPE, "SELECT INTO creates a table");
	query = parse_analyze_fixedparams(stmt, text, NULL, 0, NULL);
	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
		bad_query_source(fn, ERRCODE_WRONG_OBJECT_TYPE, "it is not a query");
	if (query->hasModifyingCTE)
		bad_query_source(fn, ERRCODE_WRONG_OBJECT_TYPE, "it has a data-modifying WITH");
	if (query->rowMarks != NIL)
		bad_query_source(fn, ERRCODE_WRONG_OBJECT_TYPE, "it locks rows (FOR UPDATE/SHARE)");

	/* deparse with only pg_catalog (and pg_temp) visible: every other name gets its schema */
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", RESTRICTED_SEARCH_PATH, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	qualified = pg_get_querydef(query, false);
	AtEOXact_GUC(false, nest);
	return qualified;
}

/* Refuse to run on SQL objects of another version than the library's (before the UPDATE). */
void
genrec_require_schema_version(void)
{
	static bool checked = false;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum("genrec")};
	char	   *version;

	if (checked)
		return;
	if (SPI_execute_with_args("SELECT e.extversion FROM pg_catalog.pg_extension e "
							  "WHERE e.extname OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed == 0)
		return;					/* not installed here (CREATE EXTENSION in progress) */
	version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(version, GENREC_LIBRARY_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the genrec library is version %s, its SQL objects in this database "
						"are version %s", GENREC_LIBRARY_VERSION, version),
				 errhint("Run ALTER EXTENSION genrec UPDATE.")));
	checked = true;
}
