#!/usr/bin/env bash
# test/pg/test_reference.sh — the reference cannot drift (doc/reference.md): it must equal what
# scripts/reference.sh writes from the installed extension's catalogue (pg_proc and pg_depend,
# COMMENT ON, pg_settings with genrec preloaded), which refuses an undocumented object, column
# or setting; the settings defined in src/*.c are those of the reference; every CREATE FUNCTION
# and CREATE AGGREGATE of the install and upgrade scripts states its volatility, NULL handling
# and PARALLEL (test/pg/sql_markings.pl); and the refusal itself is checked on a function added
# to the extension without a COMMENT. Run by test/run_sql_tests.sh against its cluster (needs
# PGHOST/PGPORT/PGUSER and the extension installed).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
fail=0
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

# 1. doc/reference.md is the catalogue's reference, byte for byte.
if scripts/reference.sh >"$tmp/reference.md" 2>"$tmp/reference.err"; then
	if diff -u doc/reference.md "$tmp/reference.md" >"$tmp/reference.diff"; then
		check ok "doc/reference.md equals the catalogue ($(grep -c '^### ' doc/reference.md) entries)"
	else
		head -n 60 "$tmp/reference.diff"
		echo "# doc/reference.md differs from the catalogue: run scripts/reference.sh > doc/reference.md"
		check no "doc/reference.md equals the catalogue"
	fi
else
	cat "$tmp/reference.err"
	check no "scripts/reference.sh documents every object and setting"
fi

# 2. The settings the C code defines are the settings of the reference.
grep -ho 'DefineCustom[A-Za-z]*Variable("genrec\.[a-z_0-9]*"' src/*.c | sed 's/.*("//; s/"$//' |
	sort -u >"$tmp/settings.src"
grep -o '^| `genrec\.[a-z_0-9]*`' doc/reference.md | sed 's/^| `//; s/`$//' | sort -u >"$tmp/settings.doc"
if [ -s "$tmp/settings.src" ] && diff "$tmp/settings.src" "$tmp/settings.doc" >"$tmp/settings.diff"; then
	check ok "the $(wc -l <"$tmp/settings.src") settings of src/*.c are in the reference"
else
	cat "$tmp/settings.diff"
	check no "the settings of src/*.c are those of the reference (< source, > reference)"
fi

# 3. Explicit markings in the SQL that creates the objects (the catalogue cannot tell an
# explicit VOLATILE from the default); and the checker finds an omission.
if out=$(perl test/pg/sql_markings.pl sql/parts/*.sql sql/genrec--*--*.sql); then
	check ok "explicit volatility, NULL handling and PARALLEL: ${out##*: }"
else
	echo "$out"
	check no "every CREATE FUNCTION / AGGREGATE states volatility, NULL handling and PARALLEL"
fi
printf '%s\n' 'CREATE FUNCTION f(a int) RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql IMMUTABLE;' \
	"-- it's a comment" 'CREATE AGGREGATE g(int) (sfunc = int4pl, stype = int);' >"$tmp/bad.sql"
out=$(perl test/pg/sql_markings.pl "$tmp/bad.sql")
case "$out" in
*"FUNCTION f does not state STRICT/CALLED ON NULL INPUT, PARALLEL"*"AGGREGATE g does not state PARALLEL"*)
	r=ok ;;
*) r="no ($out)" ;;
esac
check "$r" "sql_markings.pl reports a function and an aggregate without markings"

# 4. A function added to the extension without a COMMENT is refused, by name.
db=grefcheck
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db" || exit 1
psql -d "$db" -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION genrec' \
	-c 'CREATE FUNCTION genrec.genrec_undocumented() RETURNS int LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT 1 $$' \
	-c 'ALTER EXTENSION genrec ADD FUNCTION genrec.genrec_undocumented()' || exit 1
if PGDATABASE=$db scripts/reference.sh --connect >/dev/null 2>"$tmp/bad.err"; then
	r="no (accepted)"
else
	grep -q 'no COMMENT ON: function genrec_undocumented()' "$tmp/bad.err" && r=ok ||
		r="no ($(cat "$tmp/bad.err"))"
fi
check "$r" "an extension function without a COMMENT is refused by name"
psql -d "$db" -c 'COMMENT ON FUNCTION genrec.genrec_undocumented() IS $$Documented.$$' || exit 1
PGDATABASE=$db scripts/reference.sh --connect >"$tmp/connected.md" 2>"$tmp/bad.err"
grep -q '^### genrec_undocumented$' "$tmp/connected.md" && r=ok || r="no ($(cat "$tmp/bad.err"))"
check "$r" "with its COMMENT it is in the reference"
psql -d postgres -c "DROP DATABASE $db" >/dev/null

[ $fail -eq 0 ] && echo "test_reference: all passed" || echo "test_reference: FAILED"
exit $fail
