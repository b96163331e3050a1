#!/usr/bin/env bash
# bench/scale_bench.sh — scoring through the PL/Proxy proxy (README "Scaling out") against a
# single server, on this machine.
#
# Two clusters from scripts/scaleout.sh run side by side: one with 1 partition, one with 2.
# Both load MovieLens-100K (../shared/data/ml-100k/u.data, or $GENREC_DATA/ml-100k) and train
# the same model on their trainer (lac, d 64, 2 layers, max_len 50, 3 epochs, tiebreak item_id),
# which replicates to the partitions. The call is
#   SELECT genrec.genrec_score('movies', :u, '{10 candidates}')   u uniform in 1..943
# measured with pgbench -M prepared (CALLS calls per measurement) against:
#   single      the partition of the 1-partition cluster, called directly: a genrec server
#               holding all users (the same server the proxy calls)
#   proxy/1     the proxy of the 1-partition cluster: one more hop, same work
#   proxy/2     the proxy of the 2-partition cluster: users split over two servers
# with 1 client and with 2 clients (this machine's core count). Latencies are per call from
# pgbench --log; each measurement runs ROUNDS times interleaved and the medians of the rounds'
# p50, p99 and calls/s are printed. added = proxy p50 - single p50 (1 client).
#
# Usage (root, after make install): bench/scale_bench.sh [CALLS] [ROUNDS]   (3000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-3000}
rounds=${2:-3}
data=${GENREC_DATA:-../shared/data}/ml-100k/u.data
[ -r "$data" ] || { echo "scale_bench: $data not found" >&2; exit 1; }
data=$(cd "$(dirname "$data")" && pwd)/u.data
pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
. scripts/scaleout.sh
out=$(mktemp -d)
c1="" c2=""
cleanup() {
	[ -n "$c1" ] && genrec_scale_stop "$c1"
	[ -n "$c2" ] && genrec_scale_stop "$c2"
	rm -rf "$out"
}
trap cleanup EXIT

echo "load before: $(uptime | sed 's/.*load average/load average/')"
export GENREC_SCALE_CONF="genrec.device = 'cpu'"
genrec_scale_start --partitions 1 --port 5462 >/dev/null
c1=$GENREC_SCALE_DIR
genrec_scale_start --partitions 2 --port 5472 >/dev/null
c2=$GENREC_SCALE_DIR
train="SET client_min_messages = warning;
SELECT version, seconds FROM genrec.genrec_train('movies', 'public.ratings', action_cols => '{rating}',
       tiebreak_col => 'item_id', epochs => 3, seed => 42);"
for c in "$c1" "$c2"; do
	genrec_scale_load "$c" "$data" >/dev/null
	echo "trained on $(basename "$c"): $(genrec_scale_psql "$c" trainer -At -F' ' -c "$train") (version, s)"
done
for c in "$c1" "$c2"; do
	for ((i = 0; i < 300; i++)); do
		[ "$(genrec_scale_psql "$c" trainer -At -c "SELECT genrec_scale.missing_on('movies', 1, true)")" = "" ] && break
		sleep 0.1
	done
done

# training's read: all rows in genrec_train's order, through postgres_fdw from 1 and 2
# partitions (Merge Append of sorted remote scans) and from a local table (the 1-partition
# cluster's partition holds every row); median of 3 runs
read_sql="SELECT count(*), sum(item_id) FROM (SELECT user_id, item_id, rating, ts FROM public.ratings
	ORDER BY user_id, ts, item_id) s"
read_ms() {
	local c=$1 server=$2 i
	for i in 1 2 3; do
		genrec_scale_psql "$c" "$server" -c '\timing on' -c "$read_sql" | awk '/^Time:/ { print $2 }'
	done | sort -n | sed -n 2p
}
echo "ordered read of 100,000 rows (ms): local $(read_ms "$c1" p0), postgres_fdw 1 partition $(read_ms "$c1" trainer), 2 partitions $(read_ms "$c2" trainer)"

cands=$(seq -s, 1 50 500)
cat >"$out/score.sql" <<SQL
\\set u random(1, 943)
SELECT genrec.genrec_score('movies', :u::bigint, '{$cands}'::bigint[]);
SQL
# the same scores through every path before timing anything
check="SELECT md5(string_agg(genrec.genrec_score('movies', u, '{$cands}')::text, ';' ORDER BY u)) FROM generate_series(1, 943) u"
a=$(genrec_scale_psql "$c1" p0 -At -c "$check")
b=$(genrec_scale_psql "$c1" proxy -At -c "$check")
c=$(genrec_scale_psql "$c2" proxy -At -c "$check")
echo "scores of all 943 users (md5): single $a, proxy/1 $b, proxy/2 $c"

# p50 and p99 (microseconds) of pgbench's per-transaction logs in $1
pg_quantiles() {
	cat "$1"/pgbench_log.* | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END { printf "%.0f %.0f\n", v[int(0.5 * (NR - 1) + 1.5)], v[int(0.99 * (NR - 1) + 1.5)] }'
}
# one measurement: connection string, clients; prints "p50 p99 calls/s"
run_pgbench() {
	local conn=$1 clients=$2 dir
	dir=$(mktemp -d "$out/run.XXXXXX")
	(cd "$dir" && "$pgbin/pgbench" -n -M prepared -c "$clients" -j "$clients" \
		-t $((calls / clients)) -f "$out/score.sql" --log "$conn user=postgres" >"$dir/out" 2>&1) ||
		{ cat "$dir/out" >&2; return 1; }
	echo "$(pg_quantiles "$dir") $(awk '/^tps/ { print $3 }' "$dir/out")"
	rm -rf "$dir"
}
declare -A conn=([single]="$(genrec_scale_conninfo "$c1" p0)" [proxy1]="$(genrec_scale_conninfo "$c1" proxy)"
	[proxy2]="$(genrec_scale_conninfo "$c2" proxy)")
# warm every path: models loaded, plans prepared, PL/Proxy connections open
for m in single proxy1 proxy2; do run_pgbench "${conn[$m]}" 2 >/dev/null; done

declare -A p50 p99 tps
for r in $(seq 1 "$rounds"); do
	for m in single proxy1 proxy2; do
		for n in 1 2; do
			read -r a b c < <(run_pgbench "${conn[$m]}" "$n")
			p50[$m$n]+="$a "; p99[$m$n]+="$b "; tps[$m$n]+="$c "
		done
	done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

s50=$(median "${p50[single1]}")
printf '\n%-30s %8s %9s %9s %9s %10s\n' "genrec_score, 10 candidates" clients "p50 (us)" "p99 (us)" "calls/s" "added p50"
for m in single proxy1 proxy2; do
	case $m in
	single) label="single server (direct)" ;;
	proxy1) label="proxy -> 1 partition" ;;
	proxy2) label="proxy -> 2 partitions" ;;
	esac
	for n in 1 2; do
		m50=$(median "${p50[$m$n]}")
		added=$([ "$n" = 1 ] && [ "$m" != single ] && echo $((m50 - s50)) || echo "-")
		printf '%-30s %8s %9s %9s %9.0f %10s\n' "$label" "$n" "$m50" "$(median "${p99[$m$n]}")" \
			"$(median "${tps[$m$n]}")" "$added"
	done
done
echo
echo "rounds: $rounds x $calls calls; medians of the rounds' quantiles; $(nproc) CPUs"
echo "load after: $(uptime | sed 's/.*load average/load average/')"
