#!/usr/bin/env bash
# test/pg/test_serve_concurrency.sh — scoring from several sessions while another session
# keeps deploying new versions of the model (run by test/run_sql_tests.sh against its cluster;
# needs PGHOST/PGPORT/PGUSER and GENREC_PG_DIR with the fixture models copied in).
#
# Four psql sessions each run 3,000 genrec_score statements (users 1..20, five candidates;
# every 50th statement scores all 20 users in its select list) while a fifth inserts versions
# 3, 4, ... of model cc (alternately the lac and the int fixture's weights) and deploys each
# one. Checks: every call succeeds; every result is exactly the lac model's or the int
# model's result for that user (a call never sees a half-loaded or mixed model); all rows of
# one statement come from one version; both were seen; afterwards the registry holds one
# version of cc, and no
# shared memory segment of an evicted version survives (its /dev/shm file is gone), nor any
# after genrec_cache_evict().
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
db=genrec_concurrency
sessions=4
calls=3000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}

PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || exit 1
psql -d "$db" <<'SQL' || exit 1
SET client_min_messages = warning;
CREATE EXTENSION genrec;
CREATE TABLE events AS
  SELECT user_id, item_id, action::numeric(3,1)::float8 AS rating, ts
    FROM genrec.genrec_synthetic(150, 80, 20, 7);
CREATE INDEX ON events (user_id);
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT n, v, l, '{}',
       '{"relation": "public.events", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts"}',
       80, pg_read_binary_file('genrec_fixtures/' || l || '.safetensors'),
       (SELECT oid FROM pg_roles WHERE rolname = current_user), v = 1
  FROM (VALUES ('cc', 1, 'lac'), ('cc', 2, 'int'), ('ref_lac', 1, 'lac'), ('ref_int', 1, 'int')) x(n, v, l);
SQL

# the two possible answers per user
psql -d "$db" -At -F'|' -c "SET genrec.device = cpu" \
	-c "SELECT u, genrec.genrec_score('ref_lac', u, '{1,2,3,4,5}'), genrec.genrec_score('ref_int', u, '{1,2,3,4,5}') FROM generate_series(1, 20) u" \
	>"$tmp/ref" || exit 1

# one call per statement, and every 50th statement scores all 20 users at once (one
# snapshot: all its rows must come from one version)
# a session sees each catalogue change committed by another session in its next statement
# (serving remembers lookups across transactions until the catalogue changes)
other="$pgbin/psql -X -q -v ON_ERROR_STOP=1 -d $db"
psql -d "$db" -At -F'|' >"$tmp/switch" 2>&1 <<SQL
SET genrec.device = cpu;
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'sw', 1, layout, config, source, n_items, weights, owner, true FROM genrec.models WHERE name = 'ref_lac';
SELECT 'a', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
SELECT 'a', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
\! $other -c "INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner) SELECT 'sw', 2, layout, config, source, n_items, weights, owner FROM genrec.models WHERE name = 'ref_int'"
SELECT 'b', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
\! $other -c "BEGIN; UPDATE genrec.models SET deployed = false WHERE name = 'sw'; UPDATE genrec.models SET deployed = true WHERE name = 'sw' AND version = 2; COMMIT;"
SELECT 'c', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
SELECT 'c', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
\! $other -c "DELETE FROM genrec.models WHERE name = 'sw' AND version = 2"
SELECT 'd', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
\! $other -c "INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner) SELECT 'sw', 3, layout, config, source, n_items, weights, owner FROM genrec.models WHERE name = 'ref_int'" -c "UPDATE genrec.models SET deployed = false WHERE name = 'sw'"
SELECT 'e', genrec.genrec_score('sw', 1, '{1,2,3,4,5}');
SQL
lac1=$(awk -F'|' '$1 == 1 { print $2 }' "$tmp/ref")
int1=$(awk -F'|' '$1 == 1 { print $3 }' "$tmp/ref")
got=$(awk -F'|' -v l="$lac1" -v i="$int1" '{ printf "%s%s ", $1, ($2 == l) ? "lac" : ($2 == i) ? "int" : "?" }' "$tmp/switch")
check "$([ "$got" = "alac alac blac cint cint dlac eint " ] && echo ok)" \
	"another session's insert, deploy, delete and undeploy show in the next statement ($got)"

# a second connection maps the segment the first one loaded: same load time, no reload
first=$(psql -d "$db" -At -c "SELECT loaded_at, segment FROM genrec.genrec_cache_status() WHERE name = 'ref_lac'")
second=$(psql -d "$db" -At -c "SET genrec.device = cpu" -c "SELECT genrec.genrec_score('ref_lac', 1, '{1}') IS NOT NULL" \
	-c "SELECT loaded_at, segment FROM genrec.genrec_cache_status() WHERE name = 'ref_lac' AND in_this_backend")
check "$([ -n "$first" ] && [ "$second" = "t
$first" ] && echo ok)" "a new connection attaches to the loaded model instead of loading it again"

for s in $(seq 1 "$sessions"); do
	awk -v s="$s" -v calls="$calls" 'BEGIN {
		print "SET genrec.device = cpu;"
		for (i = 1; i <= calls; i++) {
			u = (i + s) % 20 + 1
			if (i % 50 == 0)
				printf "SELECT %d, u, genrec.genrec_score(\x27cc\x27, u, \x27{1,2,3,4,5}\x27) FROM generate_series(1, 20) u;\n", i
			else
				printf "SELECT %d, %d, genrec.genrec_score(\x27cc\x27, %d, \x27{1,2,3,4,5}\x27);\n", i, u, u
		}
	}' >"$tmp/score$s.sql"
done
for s in $(seq 1 "$sessions"); do
	psql -d "$db" -At -F'|' -f "$tmp/score$s.sql" >"$tmp/out$s" 2>"$tmp/err$s" &
	echo $! >"$tmp/pid$s"
done

# deploy new versions while any scorer runs; record the segments the registry shows
deploy_fn=$(psql -d "$db" -At -c "SELECT to_regprocedure('genrec.genrec_deploy(text,integer)') IS NOT NULL")
v=2
while :; do
	alive=0
	for s in $(seq 1 "$sessions"); do
		kill -0 "$(cat "$tmp/pid$s")" 2>/dev/null && alive=1
	done
	[ "$alive" = 1 ] || break
	v=$((v + 1))
	if [ "$deploy_fn" = t ]; then
		deploy="SELECT genrec.genrec_deploy('cc', $v);"
	else
		deploy="UPDATE genrec.models SET deployed = false WHERE name = 'cc' AND deployed;
		        UPDATE genrec.models SET deployed = true WHERE name = 'cc' AND version = $v;"
	fi
	psql -d "$db" >>"$tmp/deploy.log" 2>&1 <<SQL || { echo "deploy of version $v failed"; fail=1; }
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner)
SELECT name, $v, layout, config, source, n_items, weights, owner FROM genrec.models
 WHERE name = 'cc' AND version = $((v % 2 + 1));
BEGIN;
$deploy
COMMIT;
SQL
	psql -d "$db" -At -c "SELECT segment FROM genrec.genrec_cache_status() WHERE name = 'cc' AND segment IS NOT NULL" \
		>>"$tmp/segments" 2>>"$tmp/deploy.log"
	sleep 0.01
done
status=0
for s in $(seq 1 "$sessions"); do
	wait "$(cat "$tmp/pid$s")" || status=1
done
echo "# deployed versions 3..$v while $sessions sessions made $calls calls each"

check "$([ "$status" = 0 ] && ! grep -q . "$tmp"/err* && echo ok)" \
	"every genrec_score call succeeded during the deploys"
[ "$status" = 0 ] || head -n 5 "$tmp"/err*
lines=$(cat "$tmp"/out* | wc -l)
expect=$((sessions * (calls + 19 * (calls / 50))))
check "$([ "$lines" = "$expect" ] && echo ok)" "every call returned its rows ($lines)"
for s in $(seq 1 "$sessions"); do sed "s/^/$s:/" "$tmp/out$s"; done >"$tmp/all"
awk -F'|' 'NR == FNR { lac[$1] = $2; int_[$1] = $3; next }
	{ v = ($3 == lac[$2]) ? "lac" : ($3 == int_[$2]) ? "int" : "bad" }
	v == "bad" { bad++ } v == "lac" { a++ } v == "int" { b++ }
	{ if (($1 in seen) && seen[$1] != v) mixed++; seen[$1] = v }
	END { printf "%d %d %d %d\n", a, b, bad, mixed }' "$tmp/ref" "$tmp/all" >"$tmp/counts"
read -r n_lac n_int n_bad n_mixed <"$tmp/counts"
echo "# results: $n_lac from lac versions, $n_int from int versions, $n_bad other"
check "$([ "$n_bad" = 0 ] && echo ok)" "every result is exactly the old or the new version's"
check "$([ "$n_mixed" = 0 ] && echo ok)" "all rows of one statement come from one version ($n_mixed mixed)"
check "$([ "$n_lac" -gt 0 ] && [ "$n_int" -gt 0 ] && echo ok)" "both versions served during the run"

# the registry after every scorer has gone: one version of cc, the rest evicted
sleep 0.2
n_cc=$(psql -d "$db" -At -c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE name = 'cc'")
check "$([ "$n_cc" -le 1 ] && echo ok)" "the registry keeps one version of cc ($n_cc), superseded ones are evicted"
shm_type=$(psql -d "$db" -At -c "SHOW dynamic_shared_memory_type")
if [ "$shm_type" = posix ]; then
	live=$(psql -d "$db" -At -c "SELECT segment FROM genrec.genrec_cache_status() WHERE segment IS NOT NULL")
	leaked=0
	for h in $(sort -u "$tmp/segments"); do
		if [ -e "/dev/shm/PostgreSQL.$h" ] && ! grep -qx "$h" <<<"$live"; then
			leaked=$((leaked + 1))
		fi
	done
	check "$([ "$leaked" = 0 ] && echo ok)" \
		"no segment of an evicted version remains ($(sort -u "$tmp/segments" | wc -l) seen, $leaked left)"
	psql -d "$db" -At -c "SELECT genrec.genrec_cache_evict()" >/dev/null
	left=0
	for h in $(sort -u "$tmp/segments") $live; do
		[ -e "/dev/shm/PostgreSQL.$h" ] && left=$((left + 1))
	done
	check "$([ "$left" = 0 ] && echo ok)" "genrec_cache_evict() frees every segment ($left left)"
else
	echo "# dynamic_shared_memory_type = $shm_type: segment files not checked"
fi
psql -d postgres -c "DROP DATABASE $db"
exit $fail
