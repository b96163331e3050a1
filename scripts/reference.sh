#!/usr/bin/env bash
# scripts/reference.sh — writes doc/reference.md, the reference of every SQL object and setting
# of genrec, from the catalogue of the installed extension: the functions, aggregates, types,
# tables and views that belong to it (pg_depend), with their signatures, results, volatility,
# NULL handling, parallel safety and COMMENT ON text, and every genrec.* setting (pg_settings,
# on a server with genrec in shared_preload_libraries so the server-start settings exist too).
#
#   scripts/reference.sh > doc/reference.md    regenerate after changing a COMMENT or a setting
#   scripts/reference.sh --connect             the same from the database of the PG* environment
#                                              (genrec created there; settings as that server has)
#
# It starts its own throwaway cluster (test/pg/cluster.sh) on the PostgreSQL that PG_CONFIG
# names, where genrec must be installed (make install). It refuses, naming them, extension
# objects without a COMMENT, table columns without one, settings without a description and
# extension objects of a kind the reference does not cover; test/pg/test_reference.sh checks
# that doc/reference.md equals its output.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
. test/pg/cluster.sh

bindir=$("${PG_CONFIG:-pg_config}" --bindir) || exit 2
if [ "${1:-}" = --connect ]; then
	# The database of the caller's PG* environment, where genrec is already created.
	q() { "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
else
	genrec_cluster_start >/dev/null || exit 1
	trap 'genrec_cluster_stop' EXIT
	echo "shared_preload_libraries = 'genrec'" >>"$GENREC_PG_DIR/data/postgresql.conf"
	if ! genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" \
		-w -t 60 restart >/dev/null 2>&1; then
		echo "reference.sh: the server did not restart with genrec preloaded" >&2
		tail -n 20 "$GENREC_PG_DIR/server.log" >&2
		exit 1
	fi
	q() { "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
	q -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION genrec' || exit 1
fi

# The extension's members; types print unqualified (search_path genrec).
members="
SET search_path = genrec, pg_catalog;
CREATE TEMP VIEW member AS
SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'genrec';
CREATE TEMP VIEW fn AS
SELECT p.*, p.oid AS fid, obj_description(p.oid, 'pg_proc') AS doc,
       EXISTS (SELECT FROM pg_type t WHERE p.oid IN (t.typinput, t.typoutput, t.typreceive, t.typsend))
       OR EXISTS (SELECT FROM pg_aggregate a WHERE p.oid IN (a.aggtransfn, a.aggfinalfn,
                  a.aggcombinefn, a.aggserialfn, a.aggdeserialfn))
       OR p.prorettype = 'trigger'::regtype AS support
FROM pg_proc p JOIN member m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid;
CREATE TEMP VIEW rel AS
SELECT c.*, c.oid AS rid, obj_description(c.oid, 'pg_class') AS doc
FROM pg_class c JOIN member m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid;
"

# Objects the reference cannot show, or shows without a description.
problems=$(q -c "$members" -c "
SELECT 'extension member of an uncovered kind: ' || pg_describe_object(classid, objid, 0)
FROM member WHERE classid NOT IN ('pg_proc'::regclass, 'pg_type'::regclass, 'pg_class'::regclass)
   OR (classid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = objid) NOT IN ('r', 'v'))
UNION ALL
SELECT 'no COMMENT ON: ' || pg_describe_object(classid, objid, 0) FROM member
WHERE coalesce(obj_description(objid, classid::regclass::name), '') = ''
UNION ALL
SELECT format('no COMMENT ON COLUMN: %s.%s', r.relname, a.attname)
FROM rel r JOIN pg_attribute a ON a.attrelid = r.rid AND a.attnum > 0 AND NOT a.attisdropped
WHERE r.relkind = 'r' AND coalesce(col_description(r.rid, a.attnum), '') = ''
UNION ALL
SELECT 'setting without a description: ' || name FROM pg_settings
WHERE name LIKE 'genrec.%' AND coalesce(short_desc, '') = ''
ORDER BY 1") || exit 1
if [ -n "$problems" ]; then
	printf 'reference.sh: %s\n' "$problems" >&2
	exit 1
fi

version=$(q -c 'SELECT extversion FROM pg_extension WHERE extname = $$genrec$$') || exit 1
cat <<EOF
# genrec $version reference

Every SQL function, aggregate, type, table and view of the extension, and every \`genrec.*\`
setting, as the catalogue of an installed genrec shows them. **This file is generated**: do not
edit it; change the \`COMMENT ON\` in \`sql/parts/*.sql\` (and the upgrade script), or a setting's
description in \`src/pg_*.c\`, then run \`scripts/reference.sh > doc/reference.md\`.
\`test/pg/test_reference.sh\` (in the SQL suites, so in CI) fails when this file differs from the
catalogue: a function, setting or column without documentation cannot be added unnoticed. The
README explains how the pieces fit together.

The objects live in the schema \`genrec\` (\`SET search_path = genrec, public\` or qualify them).
Each function is listed with its volatility, NULL handling (STRICT: a NULL argument gives NULL
without a call) and parallel safety.

EOF

# Functions and aggregates, one block per signature, grouped under their name.
{
	printf '%s\n' "$members"
	cat <<'SQL'
CREATE TEMP VIEW fn_doc AS
SELECT f.*, format(E'`%s(%s)` → `%s`  \n%s\n\n%s\n', f.proname, pg_get_function_arguments(f.fid),
          pg_get_function_result(f.fid),
          concat_ws(', ',
            CASE WHEN f.prokind = 'f' THEN
              CASE f.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END END,
            CASE WHEN f.prokind = 'f' THEN
              CASE WHEN f.proisstrict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END END,
            CASE f.proparallel WHEN 's' THEN 'PARALLEL SAFE' WHEN 'r' THEN 'PARALLEL RESTRICTED'
              ELSE 'PARALLEL UNSAFE' END,
            CASE WHEN f.prosecdef THEN 'SECURITY DEFINER' END,
            CASE WHEN f.prokind = 'f' THEN
              'LANGUAGE ' || (SELECT CASE lanname WHEN 'plpgsql' THEN lanname ELSE upper(lanname) END
                              FROM pg_language WHERE oid = f.prolang) END),
          f.doc) AS block
FROM fn f;
SELECT E'## Functions\n';
SELECT string_agg(format(E'### %s\n\n%s', proname, blocks), E'\n' ORDER BY proname)
FROM (SELECT proname, string_agg(block, E'\n' ORDER BY pg_get_function_identity_arguments(fid)) AS blocks
      FROM fn_doc WHERE prokind = 'f' AND NOT support GROUP BY proname) s;
SELECT E'## Aggregates\n';
SELECT string_agg(format(E'### %s\n\n%s', proname, block), E'\n'
                  ORDER BY proname, pg_get_function_identity_arguments(fid))
FROM fn_doc WHERE prokind = 'a';
SELECT E'## Types\n';
SELECT string_agg(format(E'### %s\n\n%s\n\nInput `%s`, output `%s`, binary receive `%s`, send `%s`.\n',
                         t.typname, obj_description(t.oid, 'pg_type'), t.typinput, t.typoutput,
                         t.typreceive, t.typsend), E'\n' ORDER BY t.typname)
FROM pg_type t JOIN member m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid;
SELECT E'## Tables and views\n';
SELECT string_agg(format(E'### genrec.%s (%s)\n\n%s\n\n%s\n%s\n',
                         r.relname, CASE r.relkind WHEN 'r' THEN 'table' ELSE 'view' END, r.doc,
                         CASE r.relkind WHEN 'r' THEN E'| column | type | description |\n|---|---|---|'
                              ELSE E'| column | type |\n|---|---|' END,
                         (SELECT string_agg(format('| `%s` | `%s` |%s', a.attname,
                                                   format_type(a.atttypid, a.atttypmod),
                                                   CASE WHEN r.relkind = 'r' THEN
                                                     ' ' || replace(col_description(r.rid, a.attnum),
                                                                    '|', '\|') || ' |' ELSE '' END),
                                           E'\n' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = r.rid AND a.attnum > 0
                            AND NOT a.attisdropped)),
                  E'\n' ORDER BY r.relkind, r.relname)
FROM rel r;
SELECT E'## Settings\n';
SELECT $t$Set by: "session" any role with SET; "superuser" SET by a superuser; "reload" in the
configuration file (pg_reload_conf()); "server start" in the configuration file, read at
start. Settings that are read at server start exist only where genrec is in
shared_preload_libraries.
$t$;
SELECT E'| setting | type | default | set by | description |\n|---|---|---|---|---|';
SELECT string_agg(format('| `%s` | %s | %s | %s | %s |', name,
                         CASE WHEN vartype = 'enum' THEN 'enum: ' || array_to_string(enumvals, ', ')
                              ELSE vartype END,
                         CASE WHEN coalesce(boot_val, '') = '' THEN '(none)'
                              ELSE concat_ws(' ', '`' || boot_val || '`', unit) END,
                         CASE context WHEN 'user' THEN 'session' WHEN 'superuser' THEN 'superuser'
                              WHEN 'sighup' THEN 'reload' WHEN 'postmaster' THEN 'server start'
                              ELSE context END,
                         replace(concat_ws(' ', short_desc, extra_desc), '|', '\|')),
                  E'\n' ORDER BY name)
FROM pg_settings WHERE name LIKE 'genrec.%';
SELECT '';
SELECT E'## Support functions\n';
SELECT $t$Called by PostgreSQL, not by users: the type's input and output, the aggregates' steps
and the catalogue's triggers.
$t$;
SELECT string_agg(format(E'### %s\n\n%s', proname, block), E'\n'
                  ORDER BY proname, pg_get_function_identity_arguments(fid))
FROM fn_doc WHERE prokind = 'f' AND support;
SQL
} | q || exit 1
