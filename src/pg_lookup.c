/*
 * pg_lookup.c — genrec.models as the serving code reads it: the version that serves a name
 * (deployed, else newest) and a version's source mapping.
 *
 * The lookup runs once per call unless remembered. Two memos avoid it:
 *  - per snapshot: two snapshots of one (sub)transaction with the same xmin, xmax, in-progress
 *    lists and command id see the same rows, so a statement scoring many rows reads the
 *    catalogue once;
 *  - across transactions: a statement trigger on genrec.models (genrec_models_changed) counts,
 *    in shared memory just before commit (or PREPARE), every transaction that wrote the table
 *    and remembers the newest such xid. A lookup may be reused while that count is unchanged,
 *    by a snapshot whose xmin is past that xid (every writer had finished before the snapshot
 *    was taken, so it sees what the remembered lookup saw), and never by a transaction that
 *    itself wrote genrec.models. Anything else runs the query. (Writes with the trigger
 *    disabled, e.g. ALTER TABLE ... DISABLE TRIGGER ALL, are not seen by the second memo.)
 */
#include "pg_cache.h"
#include "pg_security.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "storage/proc.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"

static SPIPlanPtr lookup_plan = NULL;
static SPIPlanPtr source_plan = NULL;

/* Prepare and keep a plan. */
SPIPlanPtr
genrec_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* Run a kept plan over (name) or (name, version) in the caller's snapshot. */
static void
run_catalogue_plan(SPIPlanPtr plan, const char *name, int32 version)
{
	Datum		values[2];
	int			rc;

	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	rc = SPI_execute_plan(plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading genrec.models failed: %s", SPI_result_code_string(rc));
}

/*
 * The snapshot a lookup ran in. Two snapshots of one transaction and subtransaction with the
 * same xmin, xmax, in-progress lists and command id see the same rows, so a lookup made in
 * one answers for the other: a statement scoring many rows reads genrec.models once.
 */
typedef struct SnapKey
{
	LocalTransactionId lxid;
	SubTransactionId subxid;
	TransactionId xmin;
	TransactionId xmax;
	CommandId	curcid;
	uint32		xcnt;
	int32		subxcnt;
	bool		suboverflowed;
	uint64		xip_hash;
} SnapKey;

#define LOOKUP_MEMO_SIZE	8
#define LOOKUP_MEMO_NAME	NAMEDATALEN * 4

typedef struct LookupMemo
{
	bool		valid;
	SnapKey		key;
	char		name[LOOKUP_MEMO_NAME];
	GenrecIdent id;
} LookupMemo;

static LookupMemo lookup_memo[LOOKUP_MEMO_SIZE];
static int	lookup_memo_next = 0;

/* Describe the active snapshot; false when there is none. */
static bool
snap_key(SnapKey *k)
{
	Snapshot	snap;

	if (!ActiveSnapshotSet())
		return false;
	snap = GetActiveSnapshot();
	memset(k, 0, sizeof(*k));
	k->lxid = MyProc->lxid;
	k->subxid = GetCurrentSubTransactionId();
	k->xmin = snap->xmin;
	k->xmax = snap->xmax;
	k->curcid = snap->curcid;
	k->xcnt = snap->xcnt;
	k->subxcnt = snap->subxcnt;
	k->suboverflowed = snap->suboverflowed;
	k->xip_hash = snap->xcnt > 0 ?
		hash_bytes_extended((const unsigned char *) snap->xip,
							(int) (sizeof(TransactionId) * snap->xcnt), 0) : 0;
	if (snap->subxcnt > 0)
		k->xip_hash = hash_combine64(k->xip_hash,
									 hash_bytes_extended((const unsigned char *) snap->subxip,
														 (int) (sizeof(TransactionId) * snap->subxcnt), 1));
	return true;
}

/* A lookup of name made in an equivalent snapshot, if remembered. */
static bool
lookup_memo_find(const char *name, const SnapKey *k, GenrecIdent *id)
{
	for (int i = 0; i < LOOKUP_MEMO_SIZE; i++)
	{
		LookupMemo *e = &lookup_memo[i];

		if (e->valid && memcmp(&e->key, k, sizeof(SnapKey)) == 0 && strcmp(e->name, name) == 0)
		{
			*id = e->id;
			id->name = name;
			return true;
		}
	}
	return false;
}

/* Remember a lookup. */
static void
lookup_memo_add(const char *name, const SnapKey *k, const GenrecIdent *id)
{
	LookupMemo *e = &lookup_memo[lookup_memo_next];

	if (strlen(name) >= LOOKUP_MEMO_NAME)
		return;
	lookup_memo_next = (lookup_memo_next + 1) % LOOKUP_MEMO_SIZE;
	e->valid = true;
	e->key = *k;
	strcpy(e->name, name);
	e->id = *id;
	e->id.name = NULL;
}

/* A lookup remembered across transactions, valid while the catalogue's count is gen. */
typedef struct XactMemo
{
	bool		valid;
	uint64		gen;
	char		name[LOOKUP_MEMO_NAME];
	GenrecIdent id;
} XactMemo;

static XactMemo xact_memo[LOOKUP_MEMO_SIZE];
static int	xact_memo_next = 0;
static bool catalogue_written = false;	/* this transaction wrote genrec.models */
static bool lookup_hook_set = false;

/* A lookup of name remembered at catalogue count gen, if any. */
static bool
xact_memo_find(const char *name, uint64 gen, GenrecIdent *id)
{
	for (int i = 0; i < LOOKUP_MEMO_SIZE; i++)
	{
		XactMemo   *e = &xact_memo[i];

		if (e->valid && e->gen == gen && strcmp(e->name, name) == 0)
		{
			*id = e->id;
			id->name = name;
			return true;
		}
	}
	return false;
}

/* Remember a lookup made at catalogue count gen (replacing an older one of name). */
static void
xact_memo_add(const char *name, uint64 gen, const GenrecIdent *id)
{
	XactMemo   *e = NULL;

	if (strlen(name) >= LOOKUP_MEMO_NAME)
		return;
	for (int i = 0; i < LOOKUP_MEMO_SIZE && e == NULL; i++)
		if (xact_memo[i].valid && strcmp(xact_memo[i].name, name) == 0)
			e = &xact_memo[i];
	if (e == NULL)
	{
		e = &xact_memo[xact_memo_next];
		xact_memo_next = (xact_memo_next + 1) % LOOKUP_MEMO_SIZE;
	}
	e->valid = true;
	e->gen = gen;
	strcpy(e->name, name);
	e->id = *id;
	e->id.name = NULL;
}

/* Count this transaction's writes of genrec.models just before others can see them. */
static void
lookup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (catalogue_written)
				genrec_catalogue_bump(GetTopTransactionIdIfAny());
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			catalogue_written = false;
			break;
		default:
			break;
	}
}

PG_FUNCTION_INFO_V1(genrec_models_changed);

/* Trigger of genrec.models: note that this transaction changes the catalogue. */
Datum
genrec_models_changed(PG_FUNCTION_ARGS)
{
	uint64		gen;
	TransactionId writer;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("genrec_models_changed() must be called as a trigger")));
	if (!lookup_hook_set)
	{
		RegisterXactCallback(lookup_xact_callback, NULL);
		lookup_hook_set = true;
	}
	catalogue_written = true;
	/* attach the registry now, not at commit */
	(void) genrec_catalogue_generation(&gen, &writer);
	return PointerGetDatum(NULL);
}

/* Raise the error for a name the lookup did not find: 42501 if it exists, else 42704. */
static void
lookup_not_found(const char *name) pg_attribute_noreturn();
static void
lookup_not_found(const char *name)
{
	static SPIPlanPtr names_plan = NULL;
	bool		isnull;
	Oid			owner;

	if (names_plan == NULL)
	{
		Oid			types[1] = {TEXTOID};

		names_plan = genrec_keep_plan("SELECT n.owner FROM genrec.model_names n "
									  "WHERE n.name OPERATOR(pg_catalog.=) $1", 1, types);
	}
	run_catalogue_plan(names_plan, name, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("Models are the rows of genrec.models.")));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull));
	genrec_require_use(name, owner, NULL, 0);
	/* the owner's privileges but no visible row: the name has no version */
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" has no version", name)));
}

/* Fill id's owner and grantees from column 6 and 7 of the lookup row. */
static void
lookup_read_access(HeapTuple tup, TupleDesc desc, GenrecIdent *id)
{
	bool		isnull;
	Datum		d;

	id->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
	id->n_grantees = 0;
	d = SPI_getbinval(tup, desc, 7, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
						  &elems, &nulls, &n);
		if (n > GENREC_MEMO_GRANTEES)
			id->n_grantees = -1;
		else
		{
			for (int i = 0; i < n; i++)
				id->grantees[i] = DatumGetObjectId(elems[i]);
			id->n_grantees = n;
		}
	}
}

/*
 * The version that serves name in the current snapshot (deployed, else the newest), and a
 * check on every call that the current role may use it: a remembered lookup may have been
 * made by another role (SET ROLE on a pooled connection).
 */
void
genrec_catalogue_lookup(const char *name, GenrecIdent *id)
{
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	SnapKey		key;
	bool		have_key = snap_key(&key);
	bool		reusable = false;
	uint64		gen = 0;
	TransactionId writer;

	if (have_key && lookup_memo_find(name, &key, id))
	{
		genrec_require_use(name, id->owner, id->grantees, id->n_grantees);
		return;
	}
	if (have_key && !catalogue_written && genrec_catalogue_generation(&gen, &writer))
		reusable = !TransactionIdIsValid(writer) || TransactionIdPrecedes(writer, key.xmin);
	if (reusable && xact_memo_find(name, gen, id))
	{
		genrec_require_use(name, id->owner, id->grantees, id->n_grantees);
		lookup_memo_add(name, &key, id);
		return;
	}

	if (lookup_plan == NULL)
	{
		Oid			types[1] = {TEXTOID};

		/* every function, operator and type schema-qualified: the caller's search_path */
		lookup_plan = genrec_keep_plan(
									   "SELECT m.version::pg_catalog.int4, "
									   "COALESCE(m.deployed, false), "
									   "m.created::pg_catalog.timestamptz, "
									   "pg_catalog.pg_column_size(m.weights)::pg_catalog.int8, "
									   "m.weights_sha256, m.owner, "
									   "ARRAY(SELECT g.grantee FROM genrec.model_grants g "
									   "WHERE g.name OPERATOR(pg_catalog.=) m.name "
									   "ORDER BY g.grantee) "
									   "FROM genrec.models m "
									   "WHERE m.name OPERATOR(pg_catalog.=) $1 "
									   "ORDER BY m.deployed DESC NULLS LAST, m.version DESC "
									   "LIMIT 1", 1, types);
	}
	run_catalogue_plan(lookup_plan, name, 0);
	if (SPI_processed == 0)
		lookup_not_found(name);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	memset(id, 0, sizeof(*id));
	id->name = name;
	id->version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	id->deployed = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	id->created = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d has no weights", name, id->version)));
	id->stored_size = DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	if (isnull || VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) != sizeof(id->sha256))
		elog(ERROR, "model \"%s\" version %d has no weights_sha256", name, id->version);
	memcpy(id->sha256, VARDATA_ANY(DatumGetByteaPP(d)), sizeof(id->sha256));
	lookup_read_access(tup, desc, id);
	genrec_require_use(name, id->owner, id->grantees, Max(id->n_grantees, 0));
	id->name_hash = hash_bytes_extended((const unsigned char *) name, (int) strlen(name), 0);
	id->key = hash_combine64(hash_combine64(id->name_hash, (uint64) MyDatabaseId),
							 hash_combine64((uint64) (uint32) id->version,
											hash_combine64((uint64) id->created,
														   (uint64) id->stored_size)));
	id->key = hash_combine64(id->key, hash_bytes_extended(id->sha256, sizeof(id->sha256), 0));
	if (id->n_grantees < 0)
		return;					/* too many grantees to remember: look up every call */
	if (have_key)
		lookup_memo_add(name, &key, id);
	if (reusable)
		xact_memo_add(name, gen, id);
}

/* Quote a qualified name "schema.table" part by part. */
static char *
quote_qualified(const char *text)
{
	List	   *names = stringToQualifiedNameList(text);
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoChar(&buf, '.');
		appendStringInfoString(&buf, quote_identifier(strVal(lfirst(lc))));
	}
	return buf.data;
}

/* A relation name that resolves to a table, partitioned table or materialized view. */
static bool
relation_is_physical(const char *text)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(text));
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);
	char		kind = OidIsValid(relid) ? get_rel_relkind(relid) : RELKIND_RELATION;

	return kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE ||
		kind == RELKIND_MATVIEW;
}

/* Text column i of the current SPI row, copied, or NULL. */
static char *
spi_text(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Raise the error for an unusable source mapping. */
static void
bad_source(const char *name, const char *why) pg_attribute_noreturn();
static void
bad_source(const char *name, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("model \"%s\": invalid source mapping: %s", name, why),
			 errhint("genrec.models.source is {\"relation\" or \"query\", \"user_col\", "
					 "\"item_col\", \"action_cols\", \"time_col\", \"tiebreak_col\"}.")));
}

/* Read a model version's source mapping into m (in m->cxt); absent source = no user_col. */
void
genrec_read_source(GenrecModel *m)
{
	GenrecSource *s = &m->source;
	MemoryContext old;
	bool		isnull;
	Datum		arr;

	if (source_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT4OID};

		source_plan = genrec_keep_plan(
									   "SELECT m.source OPERATOR(pg_catalog.->>) 'relation', "
									   "m.source OPERATOR(pg_catalog.->>) 'query', "
									   "m.source OPERATOR(pg_catalog.->>) 'user_col', "
									   "m.source OPERATOR(pg_catalog.->>) 'item_col', "
									   "CASE WHEN pg_catalog.jsonb_typeof(m.source OPERATOR(pg_catalog.->) "
									   "'action_cols') OPERATOR(pg_catalog.=) 'array' "
									   "THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text("
									   "m.source OPERATOR(pg_catalog.->) 'action_cols')) "
									   "WHEN pg_catalog.jsonb_typeof(m.source OPERATOR(pg_catalog.->) "
									   "'action_cols') OPERATOR(pg_catalog.=) 'string' "
									   "THEN ARRAY[m.source OPERATOR(pg_catalog.->>) 'action_cols'] END, "
									   "m.source OPERATOR(pg_catalog.->>) 'time_col', "
									   "m.source OPERATOR(pg_catalog.->>) 'tiebreak_col', "
									   "pg_catalog.jsonb_typeof(m.source), m.owner "
									   "FROM genrec.models m WHERE m.name OPERATOR(pg_catalog.=) $1 "
									   "AND m.version OPERATOR(pg_catalog.=) $2",
									   2, types);
	}
	run_catalogue_plan(source_plan, m->name, m->version);
	if (SPI_processed == 0)
		return;
	old = MemoryContextSwitchTo(m->cxt);
	{
		char	   *kind = spi_text(8);
		char	   *rel = spi_text(1),
				   *query = spi_text(2),
				   *user = spi_text(3),
				   *item = spi_text(4);

		if (kind == NULL || strcmp(kind, "null") == 0)
		{
			MemoryContextSwitchTo(old);
			return;
		}
		if (strcmp(kind, "object") != 0)
			bad_source(m->name, "not a JSON object");
		if ((rel == NULL) == (query == NULL))
			bad_source(m->name, "give exactly one of \"relation\" and \"query\"");
		if (user == NULL || item == NULL)
			bad_source(m->name, "\"user_col\" and \"item_col\" are required");
		s->relation = rel ? quote_qualified(rel) : NULL;
		s->physical = rel != NULL && relation_is_physical(rel);
		s->query = query;
		s->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 9, &isnull));
		s->user_col = pstrdup(quote_identifier(user));
		s->item_col = pstrdup(quote_identifier(item));
		s->time_col = spi_text(6);
		if (s->time_col)
			s->time_col = pstrdup(quote_identifier(s->time_col));
		s->tiebreak_col = spi_text(7);
		if (s->tiebreak_col)
			s->tiebreak_col = pstrdup(quote_identifier(s->tiebreak_col));
		arr = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &n);
			if (n > GR_MAX_ACTIONS)
				bad_source(m->name, psprintf("more than %d action columns", GR_MAX_ACTIONS));
			for (int k = 0; k < n; k++)
			{
				if (nulls[k])
					bad_source(m->name, "a null action column name");
				s->action_names[k] = TextDatumGetCString(elems[k]);
				s->action_cols[k] = pstrdup(quote_identifier(s->action_names[k]));
			}
			s->n_actions = n;
		}
	}
	MemoryContextSwitchTo(old);
}

