/*
 * pg_catalog.h — the model catalogue (genrec.models) from C: the name lock, ownership checks,
 * adding a version, resolving a source relation, and the small JSON helpers that training and
 * import share.
 *
 * Ownership: all versions of a name share one owner (genrec.model_names); a role may add a
 * version, deploy, roll back, drop or grant only with the privileges of that owner (the owner,
 * an inheriting member, a superuser), else ERROR 42501. No role may write the catalogue tables
 * directly: genrec's functions write them as the catalogue's owner.
 */
#ifndef PG_CATALOG_H
#define PG_CATALOG_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "gr_common.h"

/* The longest model name, in bytes (genrec.models has the same CHECK). */
#define GENREC_MODEL_NAME_MAX 200

/* An engine environment on the CPU ops whose allocations live in mcxt (no callbacks). */
void		genrec_cpu_env(gr_env *env, MemoryContext mcxt);

/* Reject a bad model name: too long or empty (22023). */
void		genrec_check_model_name(const char *fn, const char *name);

/*
 * With SPI connected: run a fixed, schema-qualified catalogue statement as the catalogue's
 * owner (the caller has checked the current role's rights); returns SPI's result code.
 */
int			genrec_catalogue_exec(const char *sql, int nargs, Oid *types, Datum *values,
								  const char *nulls, bool read_only, long tcount);

/*
 * With SPI connected: the owner of an existing model name, or InvalidOid for a new name.
 * ERROR 42501 when the current role lacks the owner's privileges; verb completes "must be
 * owner of model "x" to ...". Takes no lock.
 */
Oid			genrec_catalog_check_owner(const char *name, const char *verb);

/*
 * With SPI connected: lock an existing name's row (to the end of the transaction) for a change
 * by a role with its owner's privileges; ERROR 42704 when the name does not exist, 42501 when
 * the role may not. Returns the owner.
 */
Oid			genrec_catalog_lock_existing(const char *name, const char *verb);

/*
 * With SPI connected: lock the name's row (claiming the name for the current role when it is
 * new), check ownership and return the next version; *owner receives the owner the new
 * version gets.
 */
int32		genrec_catalog_next_version(const char *name, const char *verb, Oid *owner);

/* A version to add to genrec.models. */
typedef struct GenrecNewVersion
{
	const char *name;
	int32		version;		/* from genrec_catalog_next_version */
	Oid			owner;
	const char *layout;
	const char *config;			/* JSON text */
	const char *source;			/* JSON text */
	int32		n_items;
	const char *metrics;		/* JSON text or NULL */
	bytea	   *weights;
	bool		deploy;			/* deploy it (the first version always is) */
} GenrecNewVersion;

/* With SPI connected and the name locked: insert the version; returns whether it is deployed. */
bool		genrec_catalog_insert(const GenrecNewVersion *nv);

/*
 * Resolve a table or view name (regclass syntax) for reading; ERROR 42P01 when it does not
 * exist. Returns its schema-qualified, quoted name; *relkind receives its kind.
 */
char	   *genrec_resolve_relation(const char *text, Oid *relid, char *relkind);

/* Reject a JSON value that is not an object or has a key outside known (22023). */
void		genrec_jsonb_check_keys(Jsonb *jb, const char *const *known, const char *what);

/* Look up a top-level key of a JSON object; false when absent. */
bool		genrec_jsonb_get(Jsonb *jb, const char *key, JsonbValue *out);

/*
 * A JSON text writer: objects and arrays nest, commas are placed automatically, numbers are
 * written in their shortest exact form and non-finite numbers as null.
 */
typedef struct JsonWriter
{
	StringInfoData buf;
	int			depth;
	bool		need_comma[32];
	bool		after_key;
} JsonWriter;

void		jw_init(JsonWriter *w);
void		jw_begin_object(JsonWriter *w);
void		jw_end_object(JsonWriter *w);
void		jw_begin_array(JsonWriter *w);
void		jw_end_array(JsonWriter *w);
void		jw_key(JsonWriter *w, const char *key);
void		jw_double(JsonWriter *w, double v);
void		jw_float4(JsonWriter *w, float v);
void		jw_int(JsonWriter *w, int64 v);
void		jw_bool(JsonWriter *w, bool v);
void		jw_string(JsonWriter *w, const char *s);	/* NULL writes null */
void		jw_raw(JsonWriter *w, const char *json);	/* NULL writes null */

#endif							/* PG_CATALOG_H */
