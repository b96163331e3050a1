#!/usr/bin/env bash
# test/pg/test_index_shared.sh — the IVF retrieval index is built once per server and shared
# (README "Retrieval over large catalogues"; src/pg_index.c), in several sessions (run by
# test/run_sql_tests.sh against its cluster; needs PGHOST/PGPORT/PGUSER):
#
#  1. the first indexed retrieval builds the index and publishes it beside the model
#     (NOTICE "shared by every session"; genrec_cache_status shows its lists and bytes,
#     counted in the model's bytes)
#  2. another session uses it without building (no NOTICE) and returns the same items and
#     scores; with every list probed the items are exact retrieval's
#  3. a session asking for another list count (genrec.ivf_lists) builds its own and keeps it,
#     with a NOTICE that says why
#  4. four sessions starting at once on a freshly loaded model build the index once between
#     them (the others wait for the builder) and agree on the result
#  5. a build cancelled in a session that stays connected hands the job back: the next session
#     builds and publishes (it would wait for the stale builder otherwise)
#  6. an index that does not fit genrec.shared_cache_size beside the model is kept by the
#     session, with the same items as the shared one
#  7. the index goes with its model: after genrec_cache_evict() no index is listed
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
db=genrec_index
psql() { "$pgbin/psql" -X -q "$@"; }
q() { psql -At -d "$db" "$@"; }
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}
eq() { [ "$1" = "$2" ] && echo ok || echo "no (got '$1', want '$2')"; }
has() { case "$1" in *"$2"*) echo ok ;; *) echo "no (no '$2' in: $(echo "$1" | tr '\n' ' '))" ;; esac; }
hasnt() { case "$1" in *"$2"*) echo "no ('$2' in: $(echo "$1" | tr '\n' ' '))" ;; *) echo ok ;; esac; }

PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db" || exit 1
# about 37,000 items: an index of 4,096 lists takes seconds to build, the default one ~0.1 s
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION genrec" \
	-c "CREATE TABLE ev AS SELECT * FROM genrec.genrec_synthetic(2000, 100000, 50, 3)" \
	-c "SELECT 1 FROM genrec.genrec_train('m', 'ev', layout => 'item', d_model => 16,
	      n_layer => 1, max_len => 20, epochs => 1,
	      options => '{\"loss\": \"sampled\", \"negatives\": 64, \"eval_users\": 100}')" \
	>/dev/null || exit 1
V=$(q -c "SELECT n_items FROM genrec.models WHERE name = 'm'")
lists=$(awk -v v="$V" 'BEGIN { printf "%d", sqrt(v) + 0.5 }')
top="SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank) FROM genrec.genrec_recommend('m', 7::bigint, 20)"
items="SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM genrec.genrec_recommend('m', 7::bigint, 20)"
status="SELECT coalesce(index_lists, 0) || ' ' || coalesce(index_bytes, 0) || ' ' || bytes FROM genrec.genrec_cache_status() WHERE name = 'm' AND state = 'ready'"
evict() { q -c "SELECT genrec.genrec_cache_evict()" >/dev/null; }

# ---- 1. built once, published
out=$(q -c "SET genrec.ivf_probes = 4" -c "$top" 2>&1)
check "$(has "$out" "built an IVF index of $lists lists over the $V items of model \"m\" version 1")" \
	"the first indexed retrieval builds the default index ($lists lists over $V items)"
check "$(has "$out" "shared by every session")" "and publishes it"
a_top=$(echo "$out" | tail -n 1)
read -r s_lists s_bytes s_total <<<"$(q -c "$status")"
check "$(eq "$s_lists" "$lists")" "genrec_cache_status shows the shared index's lists"
check "$([ "${s_bytes:-0}" -ge $((4 * V)) ] && [ "${s_total:-0}" -gt "${s_bytes:-0}" ] && echo ok || echo "no ($s_bytes of $s_total)")" \
	"its bytes (at least 4 an item: $s_bytes) are counted in the model's ($s_total)"

# ---- 2. another session maps it
out=$(q -c "SET genrec.ivf_probes = 4" -c "$top" 2>&1)
check "$(hasnt "$out" "built an IVF index")" "a second session uses the shared index without building one"
check "$(eq "$(echo "$out" | tail -n 1)" "$a_top")" "and returns the same items and scores"
exact=$(q -c "$items")
all=$(q -c "SET genrec.ivf_probes = $lists" -c "$items" 2>&1)
check "$(eq "$all" "$exact")" "with every list probed the shared index returns exact retrieval's items"

# ---- 3. another list count: private, with the reason
out=$(q -c "SET genrec.ivf_probes = 4" -c "SET genrec.ivf_lists = 20" -c "$top" 2>&1)
check "$(has "$out" "kept by this session")" "a session with genrec.ivf_lists = 20 keeps its own index"
check "$(has "$out" "The shared index has $lists lists")" "and the NOTICE says why"

# ---- 4. four sessions at once build once
evict
check "$(eq "$(q -c "$status")" "")" "genrec_cache_evict() drops the model and its index"
for i in 1 2 3 4; do
	q -c "SET genrec.ivf_probes = 4" -c "SET genrec.ivf_lists = 1024" -c "$top" >"$tmp/burst$i" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
pids=()
builds=$(cat "$tmp"/burst* | grep -c "built an IVF index")
shared=$(cat "$tmp"/burst* | grep -c "shared by every session")
check "$(eq "$builds $shared" "1 1")" "four sessions starting together build the 1,024-list index once ($builds builds)"
distinct=$(for i in 1 2 3 4; do tail -n 1 "$tmp/burst$i"; done | sort -u | wc -l)
check "$(eq "$distinct" 1)" "and all four return the same items"

# ---- 5. a cancelled build hands the job back
evict
q -c "SET genrec.ivf_probes = 4" -c "SET genrec.ivf_lists = 4096" -c "$top" -c "SELECT pg_sleep(90)" \
	>"$tmp/cancelled" 2>&1 &
holder=$!
pids+=($holder)
pid=""
for _ in $(seq 1 100); do
	pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND query LIKE '%genrec_recommend%' AND pid <> pg_backend_pid()")
	[ -n "$pid" ] && break
	sleep 0.1
done
sleep 0.5   # the build takes ~3 s on this machine: cancel well inside it
q -c "SELECT pg_cancel_backend(${pid:-0})" >/dev/null
for _ in $(seq 1 100); do
	grep -q "canceling statement" "$tmp/cancelled" && break
	sleep 0.1
done
check "$(has "$(cat "$tmp/cancelled")" "canceling statement due to user request")" \
	"the 4,096-list build is cancelled (its session stays connected)"
out=$(q -c "SET statement_timeout = '60s'" -c "SET genrec.ivf_probes = 4" -c "SET genrec.ivf_lists = 4096" \
	-c "$top" 2>&1)
check "$(has "$out" "shared by every session")" "the next session builds and publishes the index instead"
q -c "SELECT pg_terminate_backend(${pid:-0})" >/dev/null
wait "$holder" 2>/dev/null
pids=()

# ---- 6. no room beside the model: private. The model is loaded first; genrec.shared_cache_size
# (1 MB) is then smaller than it, which leaves the loaded model alone and refuses the index.
evict
q -c "SELECT 1 FROM genrec.genrec_model_info('m')" >/dev/null
psql -d "$db" -c "SELECT genrec.genrec_version()" -c "ALTER SYSTEM SET genrec.shared_cache_size = 1" \
	-c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
out=$(q -c "SET genrec.ivf_probes = 4" -c "SET genrec.ivf_lists = 4096" -c "$top" \
	-c "SELECT string_agg(state, ',') FROM genrec.genrec_cache_status() WHERE name = 'm'" 2>&1)
psql -d "$db" -c "SELECT genrec.genrec_version()" -c "ALTER SYSTEM RESET genrec.shared_cache_size" \
	-c "SELECT pg_reload_conf()" >/dev/null
check "$(eq "$(echo "$out" | tail -n 1)" ready)" "with genrec.shared_cache_size below the loaded model, the model stays shared"
check "$(has "$out" "kept by this session")" "but the index is kept by the session"
check "$(has "$out" "does not fit genrec.shared_cache_size")" "and the NOTICE says why"
cap_top=$(echo "$out" | grep ':' | tail -n 1)
ref=$(q -c "SET genrec.ivf_probes = 4" -c "SET genrec.ivf_lists = 4096" -c "$top" 2>/dev/null | tail -n 1)
check "$(eq "$cap_top" "$ref")" "with the same items as the shared index of 4,096 lists"

# ---- 7. the index goes with its model
evict
check "$(eq "$(q -c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE index_lists IS NOT NULL")" 0)" \
	"after genrec_cache_evict() no index is listed"

psql -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
exit $fail
