#!/usr/bin/env bash
# test_preload.sh — genrec in shared_preload_libraries: a second throwaway cluster starts with
# it, the training progress slots are reserved at server start (pg_shmem_allocations lists
# "genrec progress" before any session has used genrec), and training, the progress view and
# the catalogue work. (Without preloading, test_cancel.sh shows the slots allocated at first
# use.) test/run_sql_tests.sh runs it. Exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
. test/pg/cluster.sh
failed=0
passed=0

# Record one check: check NAME STATUS.
check() {
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $1"
	else
		failed=$((failed + 1))
		echo "not ok - $1"
	fi
}

bindir=$("${PG_CONFIG:-pg_config}" --bindir)
genrec_cluster_start >/dev/null || exit 1
trap genrec_cluster_stop EXIT
echo "shared_preload_libraries = 'genrec'" >>"$GENREC_PG_DIR/data/postgresql.conf"
genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" -w \
	-t 60 restart >/dev/null 2>&1
check "the server restarts with shared_preload_libraries = 'genrec'" $?
q() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -d postgres "$@"; }

size=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'genrec progress'")
check "the progress slots are reserved at server start (${size:-none} bytes)" "$([ -n "$size" ]; echo $?)"
q -c 'CREATE EXTENSION genrec' \
	-c 'CREATE TABLE syn AS SELECT * FROM genrec.genrec_synthetic(80, 100, 10, 2)' >/dev/null
check "CREATE EXTENSION genrec" $?
v=$(q -c "SELECT version FROM genrec.genrec_train('pre', 'syn', d_model => 8, n_layer => 1,
            max_len => 8, epochs => 1)")
check "genrec_train works in a preloaded server" "$([ "$v" = 1 ]; echo $?)"
n=$(q -c "SELECT count(*) FROM genrec.training_progress")
check "the progress view is empty after the training" "$([ "$n" = 0 ]; echo $?)"
size2=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'genrec progress'")
check "training used the reserved slots (no second allocation)" "$([ "$size2" = "$size" ]; echo $?)"

echo "test_preload: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
