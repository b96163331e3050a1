#!/usr/bin/env bash
# test_crash_recovery.sh — `kill -9` of a backend, twice, in a throwaway cluster of its own:
#   A. in the middle of a genrec_train (once genrec.training_progress shows it training);
#   B. in the middle of loading a 100 MB model into shared memory: the loading backend is
#      watched through /proc/PID/smaps and stopped (SIGSTOP) as soon as its new segment is
#      partly written (0 < resident < size: blob being filled, registry lock not held);
#      genrec_cache_status() must then show the version 'loading'; the stopped backend gets
#      SIGKILL. If the watcher is too late (the segment is complete), the load is let finish,
#      evicted and retried: the kill always happens mid-write, never by luck.
# After each kill: the same postmaster reinitialises (every other backend is terminated and
# restarted, crash recovery runs, the log says so); genrec.models holds the same rows with
# the same weights, which genrec_weights_info accepts; genrec.training_progress and the model
# registry are empty; every dynamic shared memory segment the cluster had before the kill is
# gone (PostgreSQL's postmaster destroys, at a crash restart, every segment listed in its
# control segment, pinned ones included, and the control segment itself, then creates a new
# one: dsm_postmaster_shutdown/dsm_postmaster_startup), including the half-written one; the
# segment files holding this run's models (found by the model names in their headers, so
# other clusters' segments do not count) are exactly those the registry lists; and the next
# calls return exactly the scores recorded before the crash (training works: next version).
# Needs genrec installed and root or the postgres user (reads /proc of the server's processes
# and /dev/shm); dynamic_shared_memory_type = posix. test/run_sql_tests.sh runs it.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
. test/pg/cluster.sh
genrec_cluster_start >/dev/null || exit 1
T=$(mktemp -d "${TMPDIR:-/tmp}/genrec_crash.XXXXXX")
stopped=""
trap '[ -n "$stopped" ] && kill -CONT "$stopped"; session_close_all; genrec_cluster_stop; rm -rf "$T"' EXIT
db=genrec_crash
# model names unique to this run: their segments are told from other clusters' by the name
tag=crash$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
big=${tag}_big kept=${tag}_kept long=${tag}_long
failed=0
passed=0
t_begin=$(date +%s)

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
q() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# --- helpers: sessions fed through a FIFO, the server's processes and segments ---

# Open a psql session NAME reading statements from a FIFO; its output goes to $T/NAME.out.
declare -A session_fd session_job
session_open() {
	local name=$1 fd
	mkfifo "$T/$name.in" || return 1
	PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -d "$db" <"$T/$name.in" \
		>"$T/$name.out" 2>&1 &
	session_job[$name]=$!
	exec {fd}>"$T/$name.in"
	session_fd[$name]=$fd
}
# Send one line of SQL to session NAME.
session_send() { echo "$2" >&"${session_fd[$1]}"; }
# Close session NAME's input and wait for its psql to end.
session_close() {
	[ -n "${session_fd[$1]:-}" ] || return 0
	exec {session_fd[$1]}>&-
	wait "${session_job[$1]}" 2>/dev/null
	unset "session_fd[$1]" "session_job[$1]"
}
session_close_all() { local n; for n in "${!session_fd[@]}"; do session_close "$n"; done; }
# Wait up to $2 seconds until file $1 has at least $3 lines (default 1).
wait_lines() {
	local i
	for i in $(seq 1 $(($2 * 20))); do
		[ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "${3:-1}" ] && return 0
		sleep 0.05
	done
	return 1
}
# Open session NAME and set spid to its backend pid.
session_start() {
	spid=""
	session_open "$1" || return 1
	session_send "$1" "SET genrec.device = cpu; SELECT pg_backend_pid();"
	wait_lines "$T/$1.out" 30 && spid=$(head -n 1 "$T/$1.out")
}

postmaster_pid() { head -n 1 "$GENREC_PG_DIR/data/postmaster.pid"; }
# The postmaster's children as pid:start-time (a reused pid is another process).
server_processes() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v pm="$(postmaster_pid)" '$4 == pm { print $1 ":" $22 }'
}
server_children() { server_processes | cut -d: -f1; }
# Dynamic shared memory segments that exist now (posix: files in /dev/shm).
shm_files() { ls /dev/shm 2>/dev/null | grep -E '^PostgreSQL\.[0-9]+$' | sort; }
# Segments of this cluster: mapped by the postmaster (the control segment) or any child, or
# listed by the model registry.
cluster_segments() {
	{
		for p in $(postmaster_pid) $(server_children); do
			grep -o 'PostgreSQL\.[0-9]*' "/proc/$p/maps" 2>/dev/null
		done
		registry_segments
	} | sort -u
}
registry_segments() {
	q -c "SELECT 'PostgreSQL.' || segment FROM genrec.genrec_cache_status() WHERE segment IS NOT NULL"
}
# Wait until the server has gone through a crash restart after log offset $1 and accepts
# connections again; prints the seconds it took.
wait_recovered() {
	local off=$1 t0 i
	t0=$(date +%s.%N)
	for i in $(seq 1 1200); do
		if tail -c +"$((off + 1))" "$GENREC_PG_DIR/server.log" |
			grep -q 'database system is ready to accept connections' &&
			q -c 'SELECT 1' >/dev/null 2>&1; then
			awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }'
			return 0
		fi
		sleep 0.05
	done
	return 1
}
# The catalogue: every version, its deployment and a digest and validation of its weights.
catalogue() {
	q -c "SELECT string_agg(format('%s/%s/%s/%s/%s/%s', o.name, o.version, o.deployed,
	                                md5(e.w), i.layout, i.n_params), ' ' ORDER BY o.name, o.version)
	        FROM genrec.model_overview o,
	             LATERAL (SELECT genrec.genrec_export(o.name, o.version) AS w) e,
	             LATERAL genrec.genrec_weights_info(e.w) i"
}
SCORES="SET genrec.device = cpu;
SELECT m, u, genrec.genrec_score(m, u, '{1,2,3,4,5,6,7,8}')
  FROM unnest(ARRAY['$kept', '$big']) m, generate_series(1, 5) u ORDER BY 1, 2"

# Record the state before a kill: processes, segments, log offset.
before_kill() {
	old_children=$(server_processes | sort)
	files_before=$(shm_files)
	ours_before=$(cluster_segments)
	log_off=$(stat -c %s "$GENREC_PG_DIR/server.log")
}
# The checks after the kill of backend $1 (label $2).
after_kill() {
	local victim=$1 what=$2 secs left survivors log
	secs=$(wait_recovered "$log_off")
	check "$what: the server accepts connections again after the crash restart (${secs:-no} s)" \
		"$([ -n "$secs" ]; echo $?)"
	log=$(tail -c +"$((log_off + 1))" "$GENREC_PG_DIR/server.log")
	grep -q "server process (PID $victim) was terminated by signal 9" <<<"$log" &&
		grep -q 'all server processes terminated; reinitializing' <<<"$log" &&
		grep -q 'database system was not properly shut down; automatic recovery in progress' <<<"$log"
	check "$what: the postmaster saw the kill, reinitialised and ran crash recovery" $?
	[ "$(postmaster_pid)" = "$pm" ] && kill -0 "$pm"
	check "$what: the same postmaster ($pm) is still running" $?
	survivors=$(comm -12 <(echo "$old_children") <(server_processes | sort) | tr '\n' ' ')
	check "$what: every other backend and auxiliary process was restarted (survivors: ${survivors:-none})" \
		"$([ -z "$survivors" ]; echo $?)"
	[ "$(catalogue)" = "$catalogue_before" ]
	check "$what: genrec.models has the same rows, weights and deployments; genrec_weights_info accepts every version" $?
	check "$what: genrec.training_progress is empty" \
		"$([ "$(q -c 'SELECT count(*) FROM genrec.training_progress')" = 0 ]; echo $?)"
	check "$what: the model registry is empty" \
		"$([ "$(q -c 'SELECT count(*) FROM genrec.genrec_cache_status()')" = 0 ]; echo $?)"
	left=$(comm -12 <(echo "$ours_before") <(shm_files) | tr '\n' ' ')
	check "$what: none of the $(echo "$ours_before" | wc -w) segments of the cluster before the crash remains (left: ${left:-none})" \
		"$([ -z "$left" ]; echo $?)"
	q -c "$SCORES" >"$T/scores.after" 2>&1
	diff -u "$T/scores.ref" "$T/scores.after" >/dev/null
	check "$what: the next calls return exactly the scores recorded before the crash" $?
	check "$what: the scoring loaded the models into shared memory again" \
		"$([ "$(q -c "SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM genrec.genrec_cache_status()")" = "$big:ready,$kept:ready" ]; echo $?)"
	model_segments_are_registrys
	echo "# $what: /dev/shm: $(echo "$files_before" | wc -w) segment files before the kill ($(echo "$ours_before" | wc -w) of this cluster), $(shm_files | wc -w) now"
}
# The model segments of this run in /dev/shm (the model name is in the header) are exactly
# the registry's.
model_segments_are_registrys() {
	local reg f mine="" extra
	reg=$(registry_segments | sort)
	for f in $(shm_files); do
		head -c 4096 "/dev/shm/$f" 2>/dev/null | grep -qa "${tag}_" && mine+="$f"$'\n'
	done
	mine=$(printf '%s' "$mine" | sort)
	extra=$(comm -23 <(echo "$mine") <(echo "$reg") | tr '\n' ' ')
	check "$what: the segments holding this run's models are the registry's ($(echo "$mine" | wc -w) found, not in the registry: ${extra:-none})" \
		"$([ -n "$reg" ] && [ "$mine" = "$reg" ]; echo $?)"
}

# --- setup ---
pm=$(postmaster_pid)
shm_type=$(q -d postgres -c 'SHOW dynamic_shared_memory_type')
if [ "$shm_type" != posix ] || [ ! -r "/proc/$pm/maps" ]; then
	echo "test_crash_recovery: needs dynamic_shared_memory_type = posix (got $shm_type) and access to /proc/$pm"
	exit 1
fi
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "CREATE DATABASE $db" || exit 1
# kept: two tiny versions; big: 100 MB of weights (d_model 1024: loading it takes about a
# second, writing its segment 50-100 ms); events: enough rows for a long training
q -c 'CREATE EXTENSION genrec' \
	-c 'CREATE TABLE small AS SELECT * FROM genrec.genrec_synthetic(50, 60, 8, 3)' \
	-c 'CREATE INDEX ON small (user_id)' \
	-c 'CREATE TABLE events AS SELECT * FROM genrec.genrec_synthetic(1000, 1500, 40, 5)' \
	-c "SELECT count(*) FROM genrec.genrec_train('$kept', 'small', d_model => 8, n_layer => 1,
	      max_len => 6, epochs => 1, options => '{\"head_hidden\": 8}')" \
	-c "SELECT count(*) FROM genrec.genrec_train('$kept', 'small', d_model => 8, n_layer => 1,
	      max_len => 6, epochs => 2, seed => 7, options => '{\"head_hidden\": 8}')" \
	-c "SELECT count(*) FROM genrec.genrec_train('$big', 'small', d_model => 1024, n_layer => 2,
	      max_len => 8, epochs => 1, options => '{\"head_hidden\": 8}')" >/dev/null || exit 1
catalogue_before=$(catalogue)
echo "# catalogue: $catalogue_before"
q -c "$SCORES" >"$T/scores.ref" || exit 1
echo "# setup took $(($(date +%s) - t_begin)) s"

# --- A. kill -9 during training ---
# a bystander session with both models attached (their segments mapped)
session_start bystander
session_send bystander "SELECT genrec.genrec_score('$big', 1, '{1}') IS NOT NULL, genrec.genrec_score('$kept', 1, '{1}') IS NOT NULL;"
wait_lines "$T/bystander.out" 30 2
check "A: a bystander session has both models attached" \
	"$([ "$(sed -n 2p "$T/bystander.out")" = "t|t" ]; echo $?)"
psql -X -q -At -d "$db" -c 'SET genrec.threads = 1' \
	-c "SELECT * FROM genrec.genrec_train('$long', 'events', epochs => 1000, patience => 1000)" \
	>"$T/train.out" 2>&1 &
train_job=$!
trainer=""
for _ in $(seq 1 600); do
	trainer=$(q -c "SELECT pid FROM genrec.training_progress WHERE model = '$long' AND phase = 'training' AND step > 0")
	[ -n "$trainer" ] && break
	kill -0 "$train_job" 2>/dev/null || break
	sleep 0.1
done
check "A: genrec.training_progress shows the training past its first step (pid ${trainer:-none})" \
	"$([ -n "$trainer" ]; echo $?)"
if [ -n "$trainer" ]; then
	before_kill
	kill -9 "$trainer"
	wait "$train_job"
	grep -q 'server closed the connection unexpectedly' "$T/train.out"
	check "A: the training's client lost its connection" $?
	session_close bystander
	after_kill "$trainer" "A (training)"
	v=$(q -c "SELECT version FROM genrec.genrec_train('$kept', 'small', d_model => 8, n_layer => 1,
	            max_len => 6, epochs => 1, seed => 9, deploy => false, options => '{\"head_hidden\": 8}')")
	check "A: training works after the crash and gets the next version (${v:-error})" \
		"$([ "$v" = 3 ]; echo $?)"
	catalogue_before=$(catalogue)
else
	kill "$train_job" 2>/dev/null
	wait "$train_job"
fi

# --- B. kill -9 while a backend writes a model into shared memory ---
# Stop backend $1 as soon as it maps a new segment that is partly written; print the segment.
stop_mid_write() {
	# shellcheck disable=SC2016
	awk -v pid="$1" -v known="$(grep -o 'PostgreSQL\.[0-9]*' "/proc/$1/maps" | sort -u | tr '\n' ' ')" '
	BEGIN {
		f = "/proc/" pid "/smaps"
		n = split(known, k, " ")
		for (i = 1; i <= n; i++) old["/dev/shm/" k[i]] = 1
		for (iter = 0; iter < 30000; iter++) {
			seen = 0; seg = ""; part = ""; full = ""
			while ((getline line < f) > 0) {
				seen = 1
				if (line ~ /^[0-9a-f]+-[0-9a-f]+ /) {
					m = split(line, w, " ")
					seg = (w[m] ~ /^\/dev\/shm\/PostgreSQL\.[0-9]+$/ && !(w[m] in old)) ? w[m] : ""
				} else if (seg != "" && line ~ /^Size:/) {
					split(line, w, " "); size = w[2]
				} else if (seg != "" && line ~ /^Rss:/) {
					split(line, w, " ")
					if (w[2] > 0 && w[2] < size) part = seg
					else if (w[2] >= size) full = seg
				}
			}
			close(f)
			if (part != "") {
				system("kill -STOP " pid)
				sub(/^\/dev\/shm\//, "", part); print part; exit 0
			}
			if (full != "" || !seen) exit 1
		}
		exit 1
	}'
}
# Resident and total kB of segment $2 in process $1.
segment_rss() {
	awk -v seg="/dev/shm/$2" '/^[0-9a-f]+-[0-9a-f]+ / { m = ($NF == seg) } m && /^Size:/ { s = $2 }
		m && /^Rss:/ { print $2, s }' "/proc/$1/smaps"
}
caught=""
for attempt in 1 2 3 4 5 6 7 8; do
	# big must not be in memory: evict it once the backends that used it have exited
	for _ in $(seq 1 200); do
		[ "$(q -c 'SELECT genrec.genrec_cache_evict()' \
			-c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE name = '$big'" | tail -n 1)" = 0 ] &&
			break
		sleep 0.05
	done
	session_start "loader$attempt"
	loader=$spid
	session_send "loader$attempt" "SELECT genrec.genrec_score('$big', 1, '{1}') IS NOT NULL;"
	seg=$(stop_mid_write "$loader")
	if [ -n "$seg" ]; then
		stopped=$loader
		read -r rss size < <(segment_rss "$loader" "$seg")
		state=""
		# stopped while filling the segment: it holds no registry lock
		[ "${rss:-0}" -lt "${size:-0}" ] &&
			state=$(q -c "SELECT state FROM genrec.genrec_cache_status() WHERE name = '$big'")
		if [ "$state" = loading ]; then
			caught=$seg
			break
		fi
		kill -CONT "$loader"
		stopped=""
	fi
	echo "# attempt $attempt: the load was not caught mid-write; retrying"
	session_close "loader$attempt"
done
check "B: a backend was stopped while writing its model segment (attempt $attempt, $rss of $size kB written, registry state ${state:-?})" \
	"$([ -n "$caught" ]; echo $?)"
if [ -n "$caught" ]; then
	before_kill
	grep -qx "$caught" <<<"$ours_before"
	check "B: the half-written segment $caught is one of the cluster's" $?
	kill -9 "$loader"
	stopped=""
	session_close "loader$attempt"
	grep -q 'server closed the connection unexpectedly' "$T/loader$attempt.out"
	check "B: the loader's client lost its connection" $?
	after_kill "$loader" "B (loading)"
	check "B: the half-written segment is gone" "$([ ! -e "/dev/shm/$caught" ]; echo $?)"
fi

echo "test_crash_recovery: $passed passed, $failed failed ($(($(date +%s) - t_begin)) s)"
[ "$failed" -eq 0 ]
