#!/usr/bin/env bash
# test/pg/test_upgrade.sh — ALTER EXTENSION genrec UPDATE from 0.1.0 (run by
# test/run_sql_tests.sh against its cluster, with the fixture models copied into the data
# directory: test/pg/serve_fixture.sh).
#
# A database is created at version 0.1.0 (sql/genrec--0.1.0.sql) and its catalogue filled
# with 0.1.0 models (test/fixtures/*.safetensors, written by the 0.1.0 engine); the new library
# refuses to serve it until the update (55000 with a hint); after ALTER EXTENSION genrec
# UPDATE the models serve the same scores as the same rows in a fresh 0.2.0 database, their
# names have owners, and every object of the extension (functions with their bodies,
# markings and comments, tables, columns, constraints, indexes, policies, triggers, views,
# grants) is the same as in the fresh install.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}

fill='SET client_min_messages = warning;
CREATE TABLE events AS
  SELECT user_id, item_id, action::numeric(3,1)::float8 AS rating, ts
    FROM genrec.genrec_synthetic(150, 80, 20, 7);
CREATE INDEX ON events (user_id);
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT l, 1, l, '"'"'{}'"'"',
       '"'"'{"relation": "public.events", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts"}'"'"',
       80, pg_read_binary_file('"'"'genrec_fixtures/'"'"' || l || '"'"'.safetensors'"'"'),
       (SELECT oid FROM pg_roles WHERE rolname = current_user), true
  FROM unnest(ARRAY['"'"'lac'"'"', '"'"'int'"'"', '"'"'pc'"'"', '"'"'item'"'"']) l;'
for db in gup_old gup_new; do
	PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" \
		-c "CREATE DATABASE $db" || exit 1
done
psql -d gup_old -c "CREATE EXTENSION genrec VERSION '0.1.0'" -c "$fill" || exit 1
psql -d gup_new -c "CREATE EXTENSION genrec" -c "$fill" || exit 1
v=$(psql -d gup_old -At -c "SELECT extversion FROM pg_extension WHERE extname = 'genrec'")
check "$([ "$v" = 0.1.0 ] && echo ok || echo "no ($v)")" "a database at version 0.1.0 with four 0.1.0 models"

score="SELECT l, u, genrec.genrec_score(l, u, '{1,2,3,4,5,99999}') FROM unnest(ARRAY['lac','int','pc','item']) l, generate_series(1, 10) u ORDER BY 1, 2"
out=$(psql -d gup_old -At -c "$score" 2>&1)
case "$out" in *"ALTER EXTENSION genrec UPDATE"*) r=ok ;; *) r="no ($out)" ;; esac
check "$r" "before the update the new library refuses the 0.1.0 objects with a hint"

psql -d gup_old -c "ALTER EXTENSION genrec UPDATE" || fail=1
v=$(psql -d gup_old -At -c "SELECT extversion FROM pg_extension WHERE extname = 'genrec'")
check "$([ "$v" = 0.2.0 ] && echo ok || echo "no ($v)")" "ALTER EXTENSION genrec UPDATE reaches 0.2.0"
psql -d gup_old -At -c "$score" >"$tmp/old.scores" 2>&1 || fail=1
psql -d gup_new -At -c "$score" >"$tmp/new.scores" 2>&1 || fail=1
if cmp -s "$tmp/old.scores" "$tmp/new.scores" && [ "$(wc -l <"$tmp/old.scores")" = 40 ]; then r=ok; else r="no ($(diff "$tmp/old.scores" "$tmp/new.scores" | head -5))"; fi
check "$r" "the 0.1.0 models serve after the update exactly as in a fresh 0.2.0 database (40 users x models)"
n=$(psql -d gup_old -At -c "SELECT count(*) FROM genrec.model_names n JOIN genrec.models m USING (name, owner)")
check "$([ "$n" = 4 ] && echo ok || echo "no ($n)")" "every 0.1.0 model's name has its owner in genrec.model_names"
n=$(psql -d gup_old -At -c "SELECT count(*) FROM genrec.models WHERE weights_sha256 = sha256(weights)")
check "$([ "$n" = 4 ] && echo ok || echo "no ($n)")" "and its weights' SHA-256"
psql -d gup_old -c "SELECT genrec.genrec_deploy('lac', 1), genrec.genrec_grant('lac', 'public')" >/dev/null 2>&1
check "$([ $? = 0 ] && echo ok || echo no)" "the upgraded catalogue is managed by the 0.2.0 functions"

# every object of the extension, described in text, in both databases
describe="
SELECT 'function ' || p.oid::regprocedure || ' ' || p.provolatile::text || p.proisstrict::text
       || p.proparallel::text || p.prosecdef::text || ' ' || l.lanname || ' ' || pg_get_function_result(p.oid) || ' '
       || coalesce(array_to_string(p.proconfig, ','), '') || ' ' || md5(p.prosrc) || ' '
       || coalesce(md5(obj_description(p.oid, 'pg_proc')), 'no comment')
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'genrec'
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' rls ' || c.relrowsecurity::text || c.relforcerowsecurity::text
       || ' acl ' || coalesce(c.relacl::text, '') || ' '
       || coalesce(md5(obj_description(c.oid, 'pg_class')), 'no comment')
       || CASE WHEN c.relkind = 'v' THEN ' ' || md5(pg_get_viewdef(c.oid)) ELSE '' END
  FROM pg_class c WHERE c.relnamespace = 'genrec'::regnamespace
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' ' || a.attnotnull::text || ' ' || a.attgenerated::text || ' ' || a.attnum::text || ' '
       || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') || ' acl ' || coalesce(nullif(a.attacl::text, '{}'), '') || ' '
       || coalesce(md5(col_description(a.attrelid, a.attnum)), 'no comment')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE c.relnamespace = 'genrec'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'genrec'::regnamespace
UNION ALL
SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'genrec'
UNION ALL
SELECT 'policy ' || polname || ' ' || polcmd::text || ' ' || coalesce(pg_get_expr(polqual, polrelid), '')
       || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '')
       || ' ' || coalesce(md5(obj_description(oid, 'pg_policy')), 'no comment')
  FROM pg_policy WHERE polrelid::regclass::text LIKE 'genrec.%'
UNION ALL
SELECT 'trigger ' || tgname || ' ' || tgenabled::text || ' ' || pg_get_triggerdef(oid)
       || ' ' || coalesce(md5(obj_description(oid, 'pg_trigger')), 'no comment')
  FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'genrec.%' AND NOT tgisinternal
UNION ALL
SELECT 'type ' || t.oid::regtype || ' ' || coalesce(md5(obj_description(t.oid, 'pg_type')), 'no comment')
  FROM pg_type t WHERE t.typnamespace = 'genrec'::regnamespace AND t.typrelid = 0 AND t.typelem = 0
UNION ALL
SELECT 'config ' || array_to_string(ARRAY(SELECT x::regclass::text FROM unnest(extconfig) x ORDER BY 1), ',')
  FROM pg_extension WHERE extname = 'genrec'
ORDER BY 1"
psql -d gup_old -At -c "$describe" >"$tmp/old.objects" || fail=1
psql -d gup_new -At -c "$describe" >"$tmp/new.objects" || fail=1
if cmp -s "$tmp/old.objects" "$tmp/new.objects"; then r=ok; else r="no:
$(diff "$tmp/old.objects" "$tmp/new.objects" | head -20)"; fi
check "$r" "the upgraded objects equal a fresh 0.2.0 install ($(wc -l <"$tmp/new.objects") objects compared)"

psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE gup_old" -c "DROP DATABASE gup_new" >/dev/null
[ $fail -eq 0 ] && echo "test_upgrade: all passed" || echo "test_upgrade: FAILED"
exit $fail
