#!/usr/bin/env bash
# bench/sql_bench.sh — scoring latency through SQL against the engine called directly.
#
# The small model: layout lac, d 64, 2 layers, 2 heads, max_len 50, trained for a few epochs
# by the engine program on `genrec synth --users 1000 --items 1000 --per-user 60`. One user's
# 50 most recent interactions are the history, items 1..100 the candidates. Measured:
#
#   engine      bench/serve_engine.c: gr_score in a loop on the same model, history and
#               candidates (one thread, like a backend with genrec.threads = 1)
#   sql 1 conn  pgbench -M prepared, one connection: SELECT genrec_score('small', user, cands)
#               (catalogue lookup, history read through the user index, scoring, round trip)
#   sql hist    the same with the history passed as a genrec_history (no source read)
#   sql 4 conn  pgbench -c 4: four connections at once (per-call latency and throughput)
#   select 1    pgbench's round trip alone, for scale
#
# Latencies are per call from pgbench --log (microseconds) and the engine's own timer; each
# measurement runs ROUNDS times interleaved and the median of the rounds' p50 and p99 is
# printed. overhead = sql p50 / engine p50. The machine's load (uptime) is printed before and
# after: on a shared machine the numbers move with it.
#
# Usage (root, after `make`): bench/sql_bench.sh [CALLS] [ROUNDS]   (defaults 3000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-3000}
rounds=${2:-3}
out=build/bench
mkdir -p "$out"
. test/pg/cluster.sh

echo "load before: $(uptime | sed 's/.*load average/load average/')"
make -s >/dev/null && make -s install >/dev/null
gcc -std=c11 -D_GNU_SOURCE -O3 -march=native -fopenmp -Isrc/engine \
	"$(pkg-config --cflags libcjson)" bench/serve_engine.c -o "$out/serve_engine" \
	build/libgrengine.a $(pkg-config --libs libcjson) -lgomp -lm -ldl -lpthread

if [ ! -f "$out/small.safetensors" ]; then
	build/genrec synth --users 1000 --items 1000 --per-user 60 --seed 11 >"$out/small.tsv"
	build/genrec train --data "$out/small.tsv" --cols 0,1,2,3 --layout lac --d 64 --layers 2 \
		--heads 2 --max-len 50 --epochs 3 --threads 2 --quiet --save "$out/small.safetensors" >/dev/null
fi
[ -f "$out/small.tsv" ] ||
	build/genrec synth --users 1000 --items 1000 --per-user 60 --seed 11 >"$out/small.tsv"

genrec_cluster_start >/dev/null
trap genrec_cluster_stop EXIT
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
user=$(psql -At -c "SELECT user_id FROM events GROUP BY user_id HAVING count(*) >= 50 ORDER BY user_id LIMIT 1")
cands=$(seq -s, 1 100)
hist=$(psql -At -c "SELECT genrec.genrec_history(array_agg(item_id ORDER BY t), array_agg(rating::real ORDER BY t))
                    FROM (SELECT * FROM events WHERE user_id = $user ORDER BY t DESC LIMIT 50) s")
psql -At -F'|' -c "SELECT string_agg(item_id::text, ' ' ORDER BY t), string_agg(rating::text, ' ' ORDER BY t)
                   FROM (SELECT * FROM events WHERE user_id = $user ORDER BY t DESC LIMIT 50) s" |
	awk -F'|' '{ print $1; print $2 }' >"$out/input.txt"
tr ',' ' ' <<<"$cands" >>"$out/input.txt"

cat >"$out/score.sql" <<SQL
SELECT genrec.genrec_score('small', $user, '{$cands}'::bigint[]);
SQL
cat >"$out/score_hist.sql" <<SQL
SELECT genrec.genrec_score('small', '$hist'::genrec.genrec_history, '{$cands}'::bigint[]);
SQL
echo "SELECT 1;" >"$out/select1.sql"
# the same numbers from both sides before timing anything
sql_first=$(psql -At -c "SET genrec.device = cpu" -c "SELECT (genrec.genrec_score('small', $user, '{$cands}'::bigint[]))[1]")
echo "user $user: history 50, 100 candidates; first score from SQL $sql_first"

# p50 and p99 (microseconds) of pgbench's per-transaction log
pg_quantiles() {
	cat "$1"/pgbench_log.* | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END { printf "%.1f %.1f\n", v[int(0.5 * (NR - 1) + 1.5)], v[int(0.99 * (NR - 1) + 1.5)] }'
}
# one pgbench measurement: clients, script; prints "p50 p99 tps"
run_pgbench() {
	local clients=$1 script=$2 dir
	dir=$(mktemp -d)
	(cd "$dir" && PGOPTIONS="-c genrec.device=cpu" pgbench -n -M prepared -c "$clients" -j "$clients" \
		-t $((calls / clients)) -f "$OLDPWD/$script" --log >"$dir/out" 2>&1) ||
		{ cat "$dir/out" >&2; return 1; }
	echo "$(pg_quantiles "$dir") $(awk '/^tps/ { print $3 }' "$dir/out")"
	rm -rf "$dir"
}
# warm every connection's model and plans once
run_pgbench 4 "$out/score.sql" >/dev/null

declare -A p50 p99 tps
for r in $(seq 1 "$rounds"); do
	read -r a b c < <("$out/serve_engine" --model "$out/small.safetensors" --input "$out/input.txt" --iters "$calls")
	p50[engine]+="$a "; p99[engine]+="$b "
	for m in "sql1 1 $out/score.sql" "hist 1 $out/score_hist.sql" "sql4 4 $out/score.sql" "sel1 1 $out/select1.sql"; do
		set -- $m
		read -r a b c < <(run_pgbench "$2" "$3")
		p50[$1]+="$a "; p99[$1]+="$b "; tps[$1]+="$c "
	done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

e50=$(median "${p50[engine]}")
printf '\n%-34s %10s %10s %10s %9s\n' "scoring 100 candidates, history 50" "p50 (us)" "p99 (us)" "calls/s" "overhead"
printf '%-34s %10s %10s %10s %9s\n' "engine (gr_score, 1 thread)" "$e50" "$(median "${p99[engine]}")" "-" "1.00"
for m in sql1 hist sql4 sel1; do
	case $m in
	sql1) label="SQL genrec_score(model, user, c)" ;;
	hist) label="SQL genrec_score(model, history, c)" ;;
	sql4) label="SQL, 4 connections" ;;
	sel1) label="SQL SELECT 1 (round trip)" ;;
	esac
	m50=$(median "${p50[$m]}")
	ratio=$([ "$m" = sel1 ] && echo "-" || awk -v a="$m50" -v b="$e50" 'BEGIN { printf "%.2f", a / b }')
	printf '%-34s %10s %10s %10.0f %9s\n' "$label" "$m50" "$(median "${p99[$m]}")" "$(median "${tps[$m]}")" "$ratio"
done
echo
echo "rounds: $rounds x $calls calls; medians of the rounds' quantiles; $(nproc) CPUs"
echo "load after: $(uptime | sed 's/.*load average/load average/')"
