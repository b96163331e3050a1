#!/usr/bin/env bash
# test/run_sql_tests.sh — the SQL test suites of genrec against a throwaway cluster.
#
# Builds and installs the extension (PGXS `make` and `make install` into the PostgreSQL
# found by pg_config), starts a cluster with test/pg/cluster.sh, runs pg_regress
# (`make installcheck`: test/sql/*.sql against expected/*.out) and then pgTAP
# (`pg_prove` on test/pgtap/*.sql in a database with the pgtap and genrec extensions),
# stops the cluster and exits non-zero if anything failed. pg_prove's summary is the last
# thing printed.
#
# Needs (Debian): postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
# libtap-parser-sourcehandler-pgtap-perl. Run as root (make install writes to the system
# PostgreSQL directories; the cluster runs as the postgres user) or as a user who can
# write there. Set GENREC_SKIP_BUILD=1 to test what is already installed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. test/pg/cluster.sh

status=0
pgbin=$("${PG_CONFIG:-pg_config}" --bindir) || { echo "pg_config not found" >&2; exit 2; }

if [ "${GENREC_SKIP_BUILD:-0}" != 1 ]; then
	echo "== build and install"
	mkdir -p build
	if ! { make -s && make -s install; } >build/sql-tests-build.log 2>&1; then
		cat build/sql-tests-build.log
		echo "build or install failed" >&2
		exit 1
	fi
fi

echo "== start a throwaway cluster"
genrec_cluster_start || exit 1
trap 'genrec_cluster_stop' EXIT
echo "PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER"

echo "== pg_regress (make installcheck)"
rm -f regression.diffs regression.out
if ! make -s installcheck; then
	status=1
	[ -f regression.diffs ] && cat regression.diffs
	# expected errors fill the log; show only signs of a crash
	grep -E 'PANIC|TRAP|terminated by signal|was terminated' "$GENREC_PG_DIR/server.log" | tail -n 20
fi

echo "== pgTAP (pg_prove)"
if ! "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE genrec_tap' ||
	! "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -d genrec_tap \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION genrec'; then
	echo "could not prepare the pgTAP database" >&2
	exit 1
fi
if ! pg_prove --psql-bin "$pgbin/psql" --dbname genrec_tap test/pgtap/*.sql; then
	status=1
fi
exit $status
