#!/usr/bin/env bash
# test/pg/test_quiet_device.sh — quiet defaults (README "Models in memory", settings): with
# genrec.device = auto on a server without a usable GPU, sessions that score print no NOTICE
# about the CPU fallback; the server log says it once; genrec_device_info() tells it on demand;
# genrec.device = cuda still fails loudly (run by test/run_sql_tests.sh against its cluster;
# needs PGHOST/PGPORT/PGUSER and GENREC_PG_DIR).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
fail=0
db=gquiet
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}

PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db" || exit 1
psql -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION genrec" \
	-c "CREATE TABLE ev AS SELECT * FROM genrec.genrec_synthetic(40, 30, 8, 5)" \
	-c "SELECT 1 FROM genrec.genrec_train('q', 'ev', d_model => 8, n_layer => 1, max_len => 6, epochs => 1, options => '{\"head_hidden\": 8, \"n_buckets\": 4}')" \
	>/dev/null || exit 1
device=$(psql -d "$db" -At -c "SELECT device FROM genrec.genrec_device_info()")
if [ "$device" != cpu ]; then
	echo "ok - # SKIP a usable GPU is present: auto does not fall back here"
	psql -d postgres -c "DROP DATABASE $db" >/dev/null
	exit 0
fi
detail=$(psql -d "$db" -At -c "SELECT detail FROM genrec.genrec_device_info()")
check "$([ -n "$detail" ] && echo ok || echo no)" "genrec_device_info() says why the CPU is used ($detail)"
noisy=0
for i in 1 2 3; do
	out=$(psql -d "$db" -At -c "SELECT genrec.genrec_score('q', $i, '{1,2,3}')" 2>&1)
	case "$out" in *NOTICE*) noisy=$((noisy + 1)) ;; esac
done
check "$([ $noisy = 0 ] && echo ok || echo "no ($noisy sessions)")" "three new sessions score without a NOTICE about the CPU"
n=$(grep -c 'genrec.device = auto: using the CPU' "$GENREC_PG_DIR/server.log")
check "$([ "$n" = 1 ] && echo ok || echo "no ($n lines)")" "the server log says it once"
out=$(psql -d "$db" -At -c "SET genrec.device = cuda" -c "SELECT genrec.genrec_score('q', 1, '{1}')" 2>&1)
case "$out" in *"genrec.device = cuda"*) r=ok ;; *) r="no ($out)" ;; esac
check "$r" "genrec.device = cuda without a GPU is still an ERROR"
psql -d postgres -c "DROP DATABASE $db" >/dev/null
[ $fail -eq 0 ] && echo "test_quiet_device: all passed" || echo "test_quiet_device: FAILED"
exit $fail
