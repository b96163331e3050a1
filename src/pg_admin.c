/*
 * pg_admin.c — changing a model's catalogue rows: genrec_deploy, genrec_rollback,
 * genrec_drop_model, genrec_grant and genrec_revoke.
 *
 * Each one locks the name's row in genrec.model_names (a row lock only genrec's functions can
 * take), checks that the current role has the privileges of the name's owner (42501
 * otherwise), and then writes as the catalogue's owner with fixed, schema-qualified
 * statements (pg_catalog.h, pg_security.h). No role holds privileges on the tables
 * themselves, so none can change a row, or lock the tables, behind these functions' backs.
 */
#include "pg_catalog.h"
#include "pg_security.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(genrec_deploy);
PG_FUNCTION_INFO_V1(genrec_rollback);
PG_FUNCTION_INFO_V1(genrec_drop_model);
PG_FUNCTION_INFO_V1(genrec_grant);
PG_FUNCTION_INFO_V1(genrec_revoke);
PG_FUNCTION_INFO_V1(genrec_has_privs_of_sql);

/* Raise 22004 for a NULL argument a function needs. */
static void
require_args(FunctionCallInfo fcinfo, int n, const char *fn, const char *what)
{
	for (int i = 0; i < n; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s: %s must not be NULL", fn, what)));
}

/* Connect SPI, refuse read-only transactions, and lock the name for its owner. */
static char *
admin_begin(FunctionCallInfo fcinfo, const char *fn, const char *verb)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PreventCommandIfReadOnly(psprintf("%s()", fn));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) genrec_catalog_lock_existing(name, verb);
	return name;
}

/* Run a catalogue statement over (name) or (name, version); returns rows processed. */
static uint64
admin_exec(const char *sql, const char *name, int32 version, bool with_version, int expect)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	int			rc = genrec_catalogue_exec(sql, with_version ? 2 : 1, types, values, NULL,
										   false, 0);

	if (rc != expect)
		elog(ERROR, "genrec: catalogue statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* The int4 in column 1 of the first row, or -1 when there is no row or it is NULL. */
static int32
first_int(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_processed == 0)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt32(d);
}

/* Deploy a version, undeploying the previous one in the same transaction. */
static void
deploy_version(const char *name, int32 version)
{
	/* undeploy first: the unique index admits one deployed row per name at every moment */
	admin_exec("UPDATE genrec.models m SET deployed = false "
			   "WHERE m.name OPERATOR(pg_catalog.=) $1 AND m.deployed "
			   "AND m.version OPERATOR(pg_catalog.<>) $2", name, version, true, SPI_OK_UPDATE);
	admin_exec("UPDATE genrec.models m SET deployed = true "
			   "WHERE m.name OPERATOR(pg_catalog.=) $1 AND m.version OPERATOR(pg_catalog.=) $2 "
			   "AND NOT m.deployed", name, version, true, SPI_OK_UPDATE);
}

/* Deploy one version of a model. */
Datum
genrec_deploy(PG_FUNCTION_ARGS)
{
	char	   *name;
	int32		version;

	require_args(fcinfo, 2, "genrec_deploy", "name and version");
	name = admin_begin(fcinfo, "genrec_deploy", "deploy it");
	version = PG_GETARG_INT32(1);
	if (admin_exec("SELECT 1 FROM genrec.models m WHERE m.name OPERATOR(pg_catalog.=) $1 "
				   "AND m.version OPERATOR(pg_catalog.=) $2", name, version, true,
				   SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no version %d", name, version)));
	deploy_version(name, version);
	SPI_finish();
	PG_RETURN_VOID();
}

/* Deploy the newest version older than the deployed one; return it. */
Datum
genrec_rollback(PG_FUNCTION_ARGS)
{
	char	   *name;
	int32		current,
				previous;

	require_args(fcinfo, 1, "genrec_rollback", "name");
	name = admin_begin(fcinfo, "genrec_rollback", "roll it back");
	admin_exec("SELECT m.version FROM genrec.models m "
			   "WHERE m.name OPERATOR(pg_catalog.=) $1 AND m.deployed", name, 0, false,
			   SPI_OK_SELECT);
	current = first_int();
	if (current < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no deployed version to roll back", name),
				 errhint("Deploy a version with genrec_deploy(name, version).")));
	admin_exec("SELECT pg_catalog.max(m.version) FROM genrec.models m "
			   "WHERE m.name OPERATOR(pg_catalog.=) $1 AND m.version OPERATOR(pg_catalog.<) $2",
			   name, current, true, SPI_OK_SELECT);
	previous = first_int();
	if (previous < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no version before the deployed version %d", name,
						current)));
	deploy_version(name, previous);
	SPI_finish();
	PG_RETURN_INT32(previous);
}

/* Drop one version, or all; the name and its grants go with the last version. */
Datum
genrec_drop_model(PG_FUNCTION_ARGS)
{
	char	   *name;
	uint64		dropped;

	require_args(fcinfo, 1, "genrec_drop_model", "name");
	name = admin_begin(fcinfo, "genrec_drop_model", "drop it");
	if (PG_ARGISNULL(1))
	{
		dropped = admin_exec("DELETE FROM genrec.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
							 name, 0, false, SPI_OK_DELETE);
	}
	else
	{
		int32		version = PG_GETARG_INT32(1);
		bool		was_deployed;
		bool		isnull;

		dropped = admin_exec("DELETE FROM genrec.models m WHERE m.name OPERATOR(pg_catalog.=) $1 "
							 "AND m.version OPERATOR(pg_catalog.=) $2 RETURNING m.deployed",
							 name, version, true, SPI_OK_DELETE_RETURNING);
		if (dropped == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" has no version %d", name, version)));
		was_deployed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
		if (was_deployed &&
			admin_exec("SELECT 1 FROM genrec.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
					   name, 0, false, SPI_OK_SELECT) > 0)
			ereport(NOTICE,
					(errmsg("model \"%s\" has no deployed version now; its newest version "
							"serves it", name),
					 errhint("Deploy one with genrec_deploy(name, version).")));
	}
	/* a name without versions is free again (its grants go with it) */
	if (admin_exec("SELECT 1 FROM genrec.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
				   name, 0, false, SPI_OK_SELECT) == 0)
		admin_exec("DELETE FROM genrec.model_names n WHERE n.name OPERATOR(pg_catalog.=) $1",
				   name, 0, false, SPI_OK_DELETE);
	SPI_finish();
	PG_RETURN_INT32((int32) dropped);
}

/* The OID of a grantee: a role name, or InvalidOid for PUBLIC (42704 for an unknown role). */
static Oid
grantee_oid(const char *role)
{
	if (pg_strcasecmp(role, "public") == 0)
		return InvalidOid;
	return get_role_oid(role, false);
}

/* Let a role (or PUBLIC) use a model. */
Datum
genrec_grant(PG_FUNCTION_ARGS)
{
	char	   *grantee_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			grantee = grantee_oid(grantee_name);
	char	   *name = admin_begin(fcinfo, "genrec_grant", "grant its use");
	Oid			types[3] = {TEXTOID, OIDOID, OIDOID};
	Datum		values[3] = {CStringGetTextDatum(name), ObjectIdGetDatum(grantee),
	ObjectIdGetDatum(GetUserId())};

	if (genrec_catalogue_exec("INSERT INTO genrec.model_grants (name, grantee, grantor) "
							  "VALUES ($1, $2, $3) ON CONFLICT (name, grantee) DO NOTHING",
							  3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "genrec_grant: could not write genrec.model_grants");
	SPI_finish();
	PG_RETURN_VOID();
}

/* Take back a grant. */
Datum
genrec_revoke(PG_FUNCTION_ARGS)
{
	char	   *grantee_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			grantee = grantee_oid(grantee_name);
	char	   *name = admin_begin(fcinfo, "genrec_revoke", "revoke its use");
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(grantee)};

	if (genrec_catalogue_exec("DELETE FROM genrec.model_grants g "
							  "WHERE g.name OPERATOR(pg_catalog.=) $1 "
							  "AND g.grantee OPERATOR(pg_catalog.=) $2",
							  2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "genrec_revoke: could not write genrec.model_grants");
	SPI_finish();
	PG_RETURN_VOID();
}

/* SQL: whether the current role has the privileges of a role (0 = PUBLIC). */
Datum
genrec_has_privs_of_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(genrec_has_privs_of(PG_GETARG_OID(0)));
}
