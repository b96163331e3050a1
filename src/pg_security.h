/*
 * pg_security.h — genrec's trust boundaries (README "Security"): whose rights a piece of SQL
 * runs with, who may use a model, and what a query source may be.
 *
 *  - A model's source (table, view or query) is read as the model's owner inside a
 *    security-restricted operation with search_path = pg_catalog, pg_temp, the way ANALYZE
 *    and REFRESH MATERIALIZED VIEW run a table owner's expressions: a role that scores
 *    another role's model never lends it its own rights, and a superuser never runs the
 *    owner's functions as superuser.
 *  - The catalogue (genrec.models, genrec.model_names, genrec.model_grants) is written only by
 *    genrec's functions, which check the caller's rights first and then write as the
 *    catalogue's owner, so no role holds a privilege (or a lock) on the tables themselves.
 *  - A role may use a model (score, recommend, evaluate, read its weights, items and source)
 *    when it has the privileges of the model's owner, of a role the owner granted use to
 *    (genrec_grant), or when use was granted to PUBLIC; superusers always may.
 */
#ifndef PG_SECURITY_H
#define PG_SECURITY_H

#include "postgres.h"

/* A saved user id, security context and GUC nest level, restored by genrec_restrict_end. */
typedef struct GenrecRestricted
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} GenrecRestricted;

/*
 * Run as role inside a security-restricted operation with search_path = pg_catalog, pg_temp
 * until genrec_restrict_end. An ERROR in between is unwound by the (sub)transaction abort,
 * which restores the user id, the security context and the GUCs. Not in parallel workers
 * (they cannot set GUCs): callers are PARALLEL RESTRICTED.
 */
void		genrec_restrict_begin(Oid role, GenrecRestricted *r);

/* Leave the restricted section entered by genrec_restrict_begin. */
void		genrec_restrict_end(GenrecRestricted *r);

/*
 * Run as the owner of the genrec catalogue tables (the extension's installer) inside a
 * security-restricted operation, without changing GUCs (every text run there is
 * schema-qualified): for genrec's own catalogue writes after the caller's rights were checked.
 */
void		genrec_catalogue_writer_begin(GenrecRestricted *r);
void		genrec_catalogue_writer_end(GenrecRestricted *r);

/* ERROR 42704 when a model's owner role no longer exists (its source cannot be read). */
void		genrec_require_owner_exists(Oid owner, const char *model);

/* Whether the current role has the privileges of role (InvalidOid = PUBLIC: everyone). */
bool		genrec_has_privs_of(Oid role);

/*
 * ERROR 42501 unless the current role may use a model owned by owner with use granted to
 * grantees[n] (InvalidOid = PUBLIC). Checked on every call.
 */
void		genrec_require_use(const char *model, Oid owner, const Oid *grantees, int n);

/*
 * Check a query source: exactly one SELECT, WITH, VALUES or TABLE statement without INTO,
 * row locks or data-modifying WITH, parsed and analysed with the caller's search_path (so its
 * tables must exist and be readable: ERROR 42601 / 42809 / 42P01 ...), before anything runs.
 * Returns the query deparsed with every name outside pg_catalog schema-qualified, the text
 * that is stored and later run under search_path = pg_catalog, pg_temp.
 */
char	   *genrec_check_query_source(const char *fn, const char *text);

/* The library's version; its SQL objects must be the same (genrec.control default_version). */
#define GENREC_LIBRARY_VERSION "0.2.0"

/*
 * With SPI connected: ERROR 55000 when the extension's SQL objects in this database are of
 * another version than the library (a new library before ALTER EXTENSION genrec UPDATE).
 */
void		genrec_require_schema_version(void);

#endif							/* PG_SECURITY_H */
