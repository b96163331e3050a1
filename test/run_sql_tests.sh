#!/usr/bin/env bash
# test/run_sql_tests.sh — the SQL test suites of genrec against a throwaway cluster.
#
# Builds and installs the extension (PGXS `make` and `make install` into the PostgreSQL
# found by pg_config), starts a cluster with test/pg/cluster.sh, runs pg_regress
# (`make installcheck`: test/sql/*.sql against expected/*.out) and then pgTAP
# (`pg_prove` on test/pgtap/*.sql in a database with the pgtap and genrec extensions),
# runs the multi-session shell tests (test/pg/test_*.sh: cancel, statement_timeout, export to
# the CLI, preloading, serving during deploys, kill -9 crash recovery, pgbench during
# retraining, the reference against the catalogue, the Debian package), stops the cluster and
# exits non-zero if anything failed. pg_prove's summary is the last thing printed. MovieLens-100K is loaded into the pgTAP database as
# public.ml100k when ../shared/data/ml-100k/u.data exists ($GENREC_DATA overrides the folder).
#
# Needs (Debian): postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
# libtap-parser-sourcehandler-pgtap-perl. Run as root (make install writes to the system
# PostgreSQL directories; the cluster runs as the postgres user) or as a user who can
# write there. Set GENREC_SKIP_BUILD=1 to test what is already installed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. test/pg/cluster.sh
. test/pg/serve_fixture.sh

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
genrec_serve_copy_models || { echo "could not copy the fixture models" >&2; exit 1; }

echo "== pg_regress (make installcheck)"
rm -f regression.diffs regression.out
if ! make -s installcheck; then
	status=1
	[ -f regression.diffs ] && cat regression.diffs
	# expected errors fill the log; show only signs of a crash
	grep -E 'PANIC|TRAP|terminated by signal|was terminated' "$GENREC_PG_DIR/server.log" | tail -n 20
fi

echo "== pgTAP database"
if ! "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE genrec_tap' ||
	! "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -d genrec_tap \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION genrec'; then
	echo "could not prepare the pgTAP database" >&2
	exit 1
fi
if ! genrec_serve_fixture genrec_tap; then
	echo "could not build the serving fixtures (test/pg/serve_fixture.sh)" >&2
	exit 1
fi
# MovieLens-100K for test/pgtap/train.sql, loaded from the client side (\copy): the server's
# user may not be able to read the repository's data folder. Skipped when it is absent.
ml100k="${GENREC_DATA:-../shared/data}/ml-100k/u.data"
if [ -r "$ml100k" ]; then
	"$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -d genrec_tap \
		-c 'CREATE TABLE public.ml100k (user_id bigint, item_id bigint, rating real, ts bigint)' \
		-c "\\copy public.ml100k FROM '$ml100k'" || status=1
fi

# Shell tests that need several sessions (test/pg/test_*.sh): cancel and statement_timeout
# during training, export to the command-line program, preloading, scoring during deploys,
# kill -9 of a training or loading backend, pgbench while retraining. Their output is printed
# before pg_prove's summary.
shell_log=build/sql-tests-shell.log
: >"$shell_log"
for t in test/pg/test_*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	if ! GENREC_BIN="$PWD/build/genrec" bash "$t" 2>&1 | tee -a "$shell_log"; then
		echo "FAILED: $t"
		status=1
	fi
done

echo "== pgTAP (pg_prove)"
if ! pg_prove --psql-bin "$pgbin/psql" --dbname genrec_tap test/pgtap/*.sql; then
	status=1
fi
exit $status
