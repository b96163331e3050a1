#!/usr/bin/env bash
# test_cancel.sh — a running genrec_train ends promptly and cleanly when it is cancelled:
#   1. pg_cancel_backend from another session once training steps advance: the training session
#      ends within 1 s of the cancel with SQLSTATE 57014, genrec.models is unchanged, the
#      progress slot is released; meanwhile genrec.training_progress showed the training
#      from the other session, with steps advancing (the slots live in the main shared
#      memory segment even without shared_preload_libraries).
#   2. statement_timeout = 3 s: the statement ends within 1 s of the timeout with 57014.
#   3. four trainings stopped by statement_timeout in one session: the backend's memory
#      contexts and its resident size do not grow from the second to the fourth (the first
#      warms up allocator arenas and thread pools; a leaked model would add tens of MB each).
# Prints the measured latencies. Starts its own throwaway cluster (test/pg/cluster.sh) with
# glibc's mmap threshold fixed at 64 kB, so that every large allocation is its own mapping and
# memory freed leaves the resident size at once: a leaked buffer then shows as growth. Needs
# genrec installed; test/run_sql_tests.sh runs it. Exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
. test/pg/cluster.sh
MALLOC_MMAP_THRESHOLD_=65536 genrec_cluster_start >/dev/null || exit 1
echo "# postmaster environment: $(tr '\0' '\n' <"/proc/$(head -1 "$GENREC_PG_DIR/data/postmaster.pid")/environ" | grep MALLOC)"
trap 'genrec_cluster_stop; rm -rf "$T"' EXIT
db=genrec_cancel
T=$(mktemp -d "${TMPDIR:-/tmp}/genrec_cancel.XXXXXX")
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

q() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -d "$db" "$@"; }
now() { date +%s.%N; }
# Print a - b with millisecond precision; less A B is true when a < b.
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db" || exit 1
# 2,000 users x 3,000 items (about 100,000 rows): one optimiser step of the default model
# (d 64, 2 layers, batch 128, max_len 50) takes about 0.1-0.2 s on one core
q -c 'CREATE EXTENSION genrec' \
	-c 'CREATE TABLE big AS SELECT * FROM genrec.genrec_synthetic(2000, 3000, 50, 3)' \
	-c 'CREATE TABLE small AS SELECT * FROM genrec.genrec_synthetic(50, 60, 8, 3)' \
	-c "SELECT version FROM genrec.genrec_train('kept', 'small', d_model => 8, n_layer => 1,
	      max_len => 6, epochs => 1, options => '{\"head_hidden\": 8}')" >/dev/null || exit 1
catalogue() { q -c "SELECT string_agg(format('%s/%s/%s/%s', name, version, deployed, md5(weights)), ',' ORDER BY name, version) FROM genrec.models"; }
before=$(catalogue)
TRAIN="SELECT * FROM genrec.genrec_train('long', 'big', epochs => 1000, patience => 1000)"

# --- 1. pg_cancel_backend ---
(
	psql -X -d "$db" -v VERBOSITY=verbose -c 'SET genrec.threads = 1' -c "$TRAIN" >"$T/cancel.out" 2>&1
	now >"$T/cancel.end"
) &
job=$!
pid=""
for _ in $(seq 1 300); do
	pid=$(q -c "SELECT pid FROM genrec.training_progress WHERE model = 'long' AND phase = 'training'")
	[ -n "$pid" ] && break
	sleep 0.1
done
check "genrec.training_progress shows the training from another session" "$([ -n "$pid" ]; echo $?)"
# The step must advance while the training runs; how soon depends on the machine's load, so
# poll for up to 60 s rather than assume a step takes under a second.
step1=$(q -c "SELECT step FROM genrec.training_progress WHERE pid = '${pid:-0}'")
step2=$step1
for _ in $(seq 1 600); do
	sleep 0.1
	step2=$(q -c "SELECT step FROM genrec.training_progress WHERE pid = '${pid:-0}'")
	[ -n "$step1" ] && [ -n "$step2" ] && [ "$step2" -gt "$step1" ] && break
done
check "the progress view's step advances ($step1 -> $step2)" \
	"$([ -n "$step1" ] && [ -n "$step2" ] && [ "$step2" -gt "$step1" ]; echo $?)"
shm=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'genrec progress'")
check "the progress slots are in the main shared memory segment (${shm:-none} bytes)" \
	"$([ -n "$shm" ]; echo $?)"
t_cancel=$(now)
q -c "SELECT pg_cancel_backend(${pid:-0})" >/dev/null
wait "$job"
latency=$(diff_s "$(cat "$T/cancel.end")" "$t_cancel")
echo "# pg_cancel_backend -> session ended: ${latency} s"
less "$latency" 1.0
check "the cancelled training ends within 1 s of pg_cancel_backend (${latency} s)" $?
grep -q "ERROR:  57014: canceling statement due to user request" "$T/cancel.out"
check "the cancelled training fails with 57014" $?
[ "$(catalogue)" = "$before" ]
check "a cancelled training leaves genrec.models unchanged" $?
[ -z "$(q -c "SELECT pid FROM genrec.training_progress")" ]
check "the progress slot is released" $?

# --- 2. statement_timeout ---
t_start=$(now)
psql -X -d "$db" -v VERBOSITY=verbose -c 'SET genrec.threads = 1' \
	-c "SET statement_timeout = '3s'" -c "$TRAIN" >"$T/timeout.out" 2>&1
t_end=$(now)
latency=$(diff_s "$(diff_s "$t_end" "$t_start")" 3)
echo "# statement_timeout 3 s -> session ended ${latency} s after the timeout"
less "$latency" 1.0
check "statement_timeout ends the training within 1 s (${latency} s late)" $?
grep -q "ERROR:  57014: canceling statement due to statement timeout" "$T/timeout.out"
check "the timed-out training fails with 57014" $?
[ "$(catalogue)" = "$before" ]
check "a timed-out training leaves genrec.models unchanged" $?

# --- 3. nothing leaks ---
{
	echo "SET genrec.threads = 1;"
	for i in 1 2 3 4; do
		echo "SET statement_timeout = '1s';"
		echo "$TRAIN;"
		echo "RESET statement_timeout;"
		echo "SELECT $i, (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),"
		echo "       substring(pg_read_file('/proc/self/status') FROM 'VmRSS:\\s+(\\d+)');"
	done
} >"$T/leak.sql"
psql -X -q -At -d "$db" -f "$T/leak.sql" >"$T/leak.out" 2>"$T/leak.err"
read -r ctx2 rss2 < <(awk -F'|' '$1 == 2 { print $2, $3 }' "$T/leak.out")
read -r ctx4 rss4 < <(awk -F'|' '$1 == 4 { print $2, $3 }' "$T/leak.out")
echo "# after 2 and 4 timed-out trainings: memory contexts ${ctx2:-?} -> ${ctx4:-?} bytes, RSS ${rss2:-?} -> ${rss4:-?} kB"
[ "$(grep -c 'canceling statement due to statement timeout' "$T/leak.err")" -eq 4 ]
check "four trainings timed out in one session" $?
[ -n "${ctx4:-}" ] && [ $((ctx4 - ctx2)) -lt 262144 ]
check "memory contexts do not grow across cancelled trainings" $?
[ -n "${rss4:-}" ] && [ $((rss4 - rss2)) -lt 8192 ]
check "resident memory does not grow across cancelled trainings (engine buffers are freed)" $?

echo "test_cancel: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
