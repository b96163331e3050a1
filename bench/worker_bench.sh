#!/usr/bin/env bash
# bench/worker_bench.sh — scoring latency and throughput with and without the serving worker
# (README "GPU worker"), in CPU mode.
#
# The small model of bench/sql_bench.sh (lac, d 64, 2 layers, max_len 50, 1,000 items,
# trained by the engine program on `genrec synth --users 1000 --items 1000 --per-user 60`).
# Each call scores 100 candidates for a random user (history read through the user index):
#   SELECT genrec_score('small', random user, items 1..100)
# on a server with genrec preloaded, restarted for each configuration:
#   off        genrec.worker = off: every backend scores itself
#   worker     genrec.worker = cpu, genrec.worker_batch_us = 0 (a pass takes what is queued)
#   worker+w   genrec.worker = cpu, genrec.worker_batch_us = 200 (the default window)
# with 1 and 4 connections (pgbench -M prepared; per-call p50 / p99 from --log, calls/s), each
# after a warm-up, ROUNDS times interleaved, medians of the rounds printed; and the worker's
# counters (passes, largest pass) of the last round. The worker runs the engine on one thread
# (genrec.threads = 1), like each backend.
#
# Usage (root, after `make`): bench/worker_bench.sh [CALLS] [ROUNDS]   (defaults 2000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-2000}
rounds=${2:-3}
out=build/bench
mkdir -p "$out"
. test/pg/cluster.sh
bindir=$("${PG_CONFIG:-pg_config}" --bindir)

echo "load before: $(uptime | sed 's/.*load average/load average/')"
make -s >/dev/null && make -s install >/dev/null
if [ ! -f "$out/small.safetensors" ]; then
	build/genrec synth --users 1000 --items 1000 --per-user 60 --seed 11 >"$out/small.tsv"
	build/genrec train --data "$out/small.tsv" --cols 0,1,2,3 --layout lac --d 64 --layers 2 \
		--heads 2 --max-len 50 --epochs 3 --threads 2 --quiet --save "$out/small.safetensors" >/dev/null
fi
[ -f "$out/small.tsv" ] ||
	build/genrec synth --users 1000 --items 1000 --per-user 60 --seed 11 >"$out/small.tsv"

genrec_cluster_start >/dev/null
trap genrec_cluster_stop EXIT
cp "$GENREC_PG_DIR/data/postgresql.conf" "$GENREC_PG_DIR/base.conf"
mkdir -p "$GENREC_PG_DIR/data/genrec_bench"
cp "$out/small.safetensors" "$GENREC_PG_DIR/data/genrec_bench/"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$GENREC_PG_DIR/data/genrec_bench"
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE EXTENSION genrec" \
	-c "CREATE TABLE events (user_id bigint, item_id bigint, rating float8, t bigint)" \
	-c "\\copy events FROM '$out/small.tsv'" \
	-c "CREATE INDEX ON events (user_id)" -c "ANALYZE events" \
	-c "INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
	    SELECT 'small', 1, 'lac', '{}', '{\"relation\": \"public.events\", \"user_col\": \"user_id\", \"item_col\": \"item_id\", \"action_cols\": [\"rating\"], \"time_col\": \"t\"}',
	           1000, pg_read_binary_file('genrec_bench/small.safetensors'),
	           (SELECT oid FROM pg_roles WHERE rolname = current_user), true"
cat >"$out/worker_score.sql" <<SQL
\\set u random(1, 1000)
SELECT genrec.genrec_score('small', :u::bigint, '{$(seq -s, 1 100)}'::bigint[]);
SQL

# Restart with genrec preloaded and these settings.
restart_with() {
	cp "$GENREC_PG_DIR/base.conf" "$GENREC_PG_DIR/data/postgresql.conf"
	printf '%s\n' "shared_preload_libraries = 'genrec'" "max_connections = 30" "$@" \
		>>"$GENREC_PG_DIR/data/postgresql.conf"
	genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" \
		-w -t 60 restart >/dev/null
	sleep 1
}
pg_quantiles() {
	cat "$1"/pgbench_log.* | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END { printf "%.1f %.1f\n", v[int(0.5 * (NR - 1) + 1.5)], v[int(0.99 * (NR - 1) + 1.5)] }'
}
# one measurement: clients; prints "p50 p99 calls/s"
run_pgbench() {
	local clients=$1 dir
	dir=$(mktemp -d)
	(cd "$dir" && PGOPTIONS="-c genrec.worker_fallback=error" pgbench -n -M prepared -c "$clients" \
		-j "$clients" -t $((calls / clients)) -f "$OLDPWD/$out/worker_score.sql" --log >"$dir/out" 2>&1) ||
		{ cat "$dir/out" >&2; return 1; }
	echo "$(pg_quantiles "$dir") $(awk '/^tps/ { print $3 }' "$dir/out")"
	rm -rf "$dir"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A p50 p99 tps stats
configs=("off|genrec.worker = off" "worker|genrec.worker = cpu|genrec.worker_batch_us = 0"
	"worker+w|genrec.worker = cpu|genrec.worker_batch_us = 200")
for r in $(seq 1 "$rounds"); do
	for c in "${configs[@]}"; do
		IFS='|' read -r name s1 s2 s3 <<<"$c"
		restart_with "$s1" ${s2:+"$s2"} ${s3:+"$s3"}
		run_pgbench 4 >/dev/null		# warm every connection's model and plans
		for clients in 1 4; do
			read -r a b t < <(run_pgbench "$clients")
			p50[$name.$clients]+="$a "
			p99[$name.$clients]+="$b "
			tps[$name.$clients]+="$t "
		done
		[ "$name" != off ] && stats[$name]=$(psql -At -c "SELECT requests, passes, max_batch, local_fallbacks FROM genrec.genrec_worker_status()")
	done
done

printf '\n%-36s %12s %12s %10s\n' "scoring 100 candidates" "p50 (us)" "p99 (us)" "calls/s"
for c in "${configs[@]}"; do
	name=${c%%|*}
	for clients in 1 4; do
		printf '%-36s %12s %12s %10.0f\n' "$name, $clients connection(s)" "$(median "${p50[$name.$clients]}")" \
			"$(median "${p99[$name.$clients]}")" "$(median "${tps[$name.$clients]}")"
	done
done
echo
for name in worker worker+w; do
	echo "$name, last round: requests|passes|max_batch|local_fallbacks = ${stats[$name]}"
done
echo "rounds: $rounds x $calls calls per measurement; medians of the rounds; $(nproc) CPUs"
echo "load after: $(uptime | sed 's/.*load average/load average/')"
