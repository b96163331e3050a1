#!/usr/bin/env bash
# test/pg/test_security_shm.sh — the shared-memory and catalogue parts of the trust boundaries
# (README "Security and privileges", "Models in memory"), each in several sessions (run by
# test/run_sql_tests.sh against its cluster; needs PGHOST/PGPORT/PGUSER and GENREC_PG_DIR):
#
#  1. a model row of another database with the same name, version, creation time and size is
#     never served in place of this database's (the registry is keyed by database and SHA-256)
#  2. a long multibyte model name matches its slot (one slot, however many sessions)
#  3. an idle session that attached 64 models does not push another session's next model into
#     a private copy (slots are not held for a backend's lifetime)
#  4. genrec.shared_cache_size caps the shared segments: a model that does not fit is served
#     from a private copy with a NOTICE, with the same scores
#  5. no role can block another's deploy with an advisory lock, and two roles' concurrent first
#     trainings of one name leave one owner (the other gets 42501)
#  6. with no room left for a segment (a server whose dynamic shared memory lives on a 2 MB
#     tmpfs), serving falls back to a private copy with a NOTICE, never an ERROR (skipped when
#     this machine cannot mount a tmpfs)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}
eq() { [ "$1" = "$2" ] && echo ok || echo "no (got '$1', want '$2')"; }

train='d_model => 8, n_layer => 1, max_len => 6, epochs => 1, options => '"'"'{"head_hidden": 8, "n_buckets": 4}'"'"
for db in gsec_a gsec_b; do
	PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" \
		-c "CREATE DATABASE $db" || exit 1
	psql -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION genrec" \
		-c "CREATE TABLE ev AS SELECT * FROM genrec.genrec_synthetic(80, 60, 10, 3)" \
		-c "CREATE INDEX ON ev (user_id)" || exit 1
done

# ---- 1. same name, version, created and size in two databases, different weights
psql -d gsec_a -c "SET client_min_messages = warning" \
	-c "SELECT 1 FROM genrec.genrec_train('twin', 'ev', seed => 1, $train)" >/dev/null || exit 1
psql -d gsec_a -At -c "SELECT encode(genrec.genrec_export('twin'), 'hex')" | xxd -r -p >"$tmp/twin" || exit 1
# negate every parameter (the sign bit of each F32): same length, other weights
python3 - "$tmp/twin" "$tmp/twin_b" <<'PY' || exit 1
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
head = json.loads(raw[8:8 + n])
out = bytearray(raw)
for k, t in head.items():
    if k != '__metadata__' and t['dtype'] == 'F32':
        lo, hi = t['data_offsets']
        for at in range(8 + n + lo + 3, 8 + n + hi, 4):
            out[at] ^= 0x80
open(sys.argv[2], 'wb').write(out)
PY
created=$(psql -d gsec_a -At -c "SELECT created FROM genrec.models WHERE name = 'twin'")
psql -d gsec_b -q -c "SET client_min_messages = warning" \
	-c "SELECT genrec.genrec_import('twin', decode('$(xxd -p "$tmp/twin_b" | tr -d '\n')', 'hex'), true,
	       '{\"relation\": \"public.ev\", \"action_cols\": [\"action\"]}')" \
	-c "UPDATE genrec.models SET created = '$created' WHERE name = 'twin'" >/dev/null || exit 1
same=$(psql -d gsec_b -At -c "SELECT (SELECT pg_column_size(weights) FROM genrec.models WHERE name = 'twin')
	= $(psql -d gsec_a -At -c "SELECT pg_column_size(weights) FROM genrec.models WHERE name = 'twin'")")
check "$(eq "$same" t)" "the two databases' rows have the same name, version, created time and size"
score="SELECT genrec.genrec_score('twin', u, '{1,2,3,4,5}') FROM generate_series(1, 5) u"
bigscore="SELECT genrec.genrec_score('big', u, '{1,2,3,4,5}') FROM generate_series(1, 5) u"
a_shared=$(psql -d gsec_a -At -c "$score")
b_shared=$(psql -d gsec_b -At -c "$score")
b_private=$(psql -d gsec_b -At -c "SET genrec.shared_cache = off" -c "SET client_min_messages = warning" -c "$score")
a_private=$(psql -d gsec_a -At -c "SET genrec.shared_cache = off" -c "SET client_min_messages = warning" -c "$score")
check "$(eq "$b_shared" "$b_private")" "database b is served its own weights after database a loaded its twin"
check "$(eq "$a_shared" "$a_private")" "and database a its own"
[ "$a_shared" != "$b_shared" ] && r=ok || r="no (the twins score alike: the test proves nothing)"
check "$r" "the twins' scores differ"
slots=$(psql -d gsec_a -At -c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE name = 'twin' AND shared")
check "$(eq "$slots" 2)" "each database has its own shared slot for the twin (superuser view)"

# ---- 2. a long multibyte name
long=$(python3 -c "print('é' * 45)")
psql -d gsec_a -c "SET client_min_messages = warning" \
	-c "SELECT 1 FROM genrec.genrec_train('$long', 'ev', $train)" >/dev/null || exit 1
for i in 1 2 3; do
	psql -d gsec_a -At -c "SELECT genrec.genrec_score('$long', 1, '{1,2}')" >/dev/null || fail=1
done
n=$(psql -d gsec_a -At -c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE name LIKE 'éé%'")
check "$(eq "$n" 1)" "a 90-byte multibyte name keeps one slot across three sessions"

# ---- 3. an idle session holding 64 models
psql -d gsec_a -c "SET client_min_messages = warning" \
	-c "SELECT genrec.genrec_import('many_' || i, genrec.genrec_export('twin'), true, '{\"relation\": \"public.ev\", \"action_cols\": [\"action\"]}')
	      FROM generate_series(1, 65) i" >/dev/null || exit 1
psql -d gsec_a -c "SELECT genrec.genrec_cache_evict()" >/dev/null
psql -d gsec_a -At -c "SET client_min_messages = warning" \
	-c "SELECT count(genrec.genrec_score('many_' || i, '{(1,3,),(2,4,)}'::genrec.genrec_history, '{1}')) FROM generate_series(1, 64) i" \
	-c "SELECT pg_sleep(60)" >"$tmp/idle.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
	held=$(psql -d gsec_a -At -c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE name LIKE 'many\_%' AND attached > 0")
	[ "$held" -ge 64 ] && break
	sleep 0.2
done
check "$(eq "$held" 64)" "an idle session has 64 models attached"
out=$(psql -d gsec_a -At -c "SELECT genrec.genrec_score('many_65', '{(1,3,),(2,4,)}'::genrec.genrec_history, '{1}')" \
	-c "SELECT state || ' ' || in_this_backend FROM genrec.genrec_cache_status() WHERE name = 'many_65'" 2>&1)
check "$(eq "$(echo "$out" | tail -n 1)" "ready true")" "another session's next model is still shared ($(echo "$out" | tr '\n' ' '))"
case "$out" in *NOTICE*) r="no (a NOTICE: $out)" ;; *) r=ok ;; esac
check "$r" "without a NOTICE about private copies"
psql -d gsec_a -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null

# ---- 4. genrec.shared_cache_size
psql -d gsec_a -c "SELECT genrec.genrec_version()" -c "ALTER SYSTEM SET genrec.shared_cache_size = 0" -c "SELECT pg_reload_conf()" >/dev/null || exit 1
sleep 0.5
out=$(psql -d gsec_a -At -c "SELECT genrec.genrec_cache_evict()" -c "$score" \
	-c "SELECT string_agg(state, ',') FROM genrec.genrec_cache_status() WHERE name = 'twin' AND in_this_backend" 2>&1)
psql -d gsec_a -c "SELECT genrec.genrec_version()" -c "ALTER SYSTEM RESET genrec.shared_cache_size" -c "SELECT pg_reload_conf()" >/dev/null
case "$out" in *"NOTICE:  model \"twin\" version 1 is kept in this backend's memory"*) r=ok ;; *) r="no ($out)" ;; esac
check "$r" "with genrec.shared_cache_size = 0 a model is kept privately, with a NOTICE"
check "$(eq "$(echo "$out" | grep -v NOTICE | grep -v DETAIL | tail -n 1)" private)" "its cache entry is private"
check "$(eq "$(echo "$out" | grep '^{' )" "$a_private")" "and scores the same"

# ---- 5. locks and owners
psql -d gsec_a -c "SET client_min_messages = warning" \
	-c "DROP ROLE IF EXISTS gsec_alice" -c "DROP ROLE IF EXISTS gsec_bob" \
	-c "CREATE ROLE gsec_alice LOGIN" -c "CREATE ROLE gsec_bob LOGIN" \
	-c "GRANT SELECT ON ev TO gsec_alice, gsec_bob" || exit 1
psql -d gsec_a -U gsec_alice -c "SET client_min_messages = warning" \
	-c "SELECT 1 FROM genrec.genrec_train('alice_m', 'public.ev', $train)" \
	-c "SELECT 1 FROM genrec.genrec_train('alice_m', 'public.ev', $train)" >/dev/null || exit 1
# bob holds the advisory lock 0.1.0 serialised changes on, in an open transaction
psql -d gsec_a -U gsec_bob -c "BEGIN" \
	-c "SELECT pg_advisory_xact_lock(1734700658, hashtext('alice_m'))" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
pids+=($!)
sleep 1
out=$(psql -d gsec_a -U gsec_alice -At -c "SET statement_timeout = '10s'" \
	-c "SELECT genrec.genrec_deploy('alice_m', 1)" -c "SELECT 'deployed'" 2>&1)
check "$(eq "$(echo "$out" | tail -n 1)" deployed)" "bob's advisory lock does not block alice's deploy ($out)"
psql -d gsec_a -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'gsec_bob'" >/dev/null

# concurrent first trainings of one name: bob's commits while alice's is waiting to claim it
psql -d gsec_a -U gsec_bob -c "SET client_min_messages = warning" -c "BEGIN" \
	-c "SELECT 1 FROM genrec.genrec_train('dup', 'public.ev', $train)" -c "SELECT pg_sleep(3)" \
	-c "COMMIT" >"$tmp/bob.out" 2>&1 &
bob=$!
sleep 1
psql -d gsec_a -U gsec_alice -c "SET client_min_messages = warning" \
	-c "SELECT 1 FROM genrec.genrec_train('dup', 'public.ev', $train)" >"$tmp/alice.out" 2>&1
alice_rc=$?
wait "$bob"
bob_rc=$?
check "$(eq "$bob_rc/$alice_rc" 0/1)" "of two concurrent first trainings of one name, the first to commit wins"
case "$(cat "$tmp/alice.out")" in *'must be owner of model "dup"'*) r=ok ;; *) r="no ($(cat "$tmp/alice.out"))" ;; esac
check "$r" "the other gets 42501 must be owner"
owners=$(psql -d gsec_a -At -c "SELECT (SELECT count(DISTINCT owner) FROM genrec.models WHERE name = 'dup') || '/' ||
	(SELECT pg_get_userbyid(owner) FROM genrec.model_names WHERE name = 'dup')")
check "$(eq "$owners" 1/gsec_bob)" "the name has one owner"


# ---- 6. dynamic shared memory exhausted: a server of its own, its segments on a full tmpfs
(
	. test/pg/cluster.sh
	genrec_cluster_start >/dev/null || exit 1
	# stop the server, then unmount, then remove the cluster (in that order: the tmpfs is busy
	# while the server runs, and the directory cannot go while it is mounted)
	trap 'genrec_cluster_run "$pgbin/pg_ctl" -D "$GENREC_PG_DIR/data" -m fast -w stop >/dev/null 2>&1
	      umount "$GENREC_PG_DIR/data/pg_dynshmem" 2>/dev/null; genrec_cluster_stop' EXIT
	genrec_cluster_run "$pgbin/pg_ctl" -D "$GENREC_PG_DIR/data" -w stop >/dev/null || exit 1
	# segments as files in pg_dynshmem, mounted as a 2 MB tmpfs: the server's own statistics
	# take about 1 MB of it at start, the model's segment (1.6 MB) cannot fit in the rest
	printf "dynamic_shared_memory_type = mmap\nmax_parallel_workers_per_gather = 0\n" \
		>>"$GENREC_PG_DIR/data/postgresql.conf"
	if ! mount -t tmpfs -o size=2m,mode=700,uid="$(id -u postgres 2>/dev/null || id -u)" tmpfs \
		"$GENREC_PG_DIR/data/pg_dynshmem" 2>/dev/null; then
		echo "ok - # SKIP dynamic shared memory exhaustion: cannot mount a tmpfs here"
		exit 0
	fi
	genrec_cluster_run "$pgbin/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" -w \
		start >/dev/null || exit 1
	psql -d postgres -c "SET client_min_messages = warning" -c "CREATE EXTENSION genrec" \
		-c "CREATE TABLE ev AS SELECT * FROM genrec.genrec_synthetic(80, 60, 10, 3)" \
		-c "SELECT 1 FROM genrec.genrec_train('big', 'ev', d_model => 128, n_layer => 2, max_len => 6, epochs => 1)" \
		>/dev/null || exit 1
	out=$(psql -d postgres -At -c "$bigscore" 2>&1)
	rc=$?
	want=$(psql -d postgres -At -c "SET genrec.shared_cache = off" -c "SET client_min_messages = warning" -c "$bigscore" 2>&1)
	case "$out" in *'NOTICE:  model "big" version 1 is kept in this backend'*) r=ok ;; *) r="no ($out)" ;; esac
	[ $rc = 0 ] || r="no (rc $rc: $out)"
	check "$r" "a full /dev/shm (here: a full tmpfs) gives a NOTICE and a private copy, not an ERROR"
	check "$(eq "$(echo "$out" | grep '^{')" "$want")" "which scores like any private copy"
	exit $fail
) || fail=1
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE gsec_a" -c "DROP DATABASE gsec_b" \
	-c "DROP ROLE gsec_alice" -c "DROP ROLE gsec_bob" >/dev/null
[ $fail -eq 0 ] && echo "test_security_shm: all passed" || echo "test_security_shm: FAILED"
exit $fail
