#!/usr/bin/env bash
# bench/sql_retrieval.sh — top-k retrieval latency from SQL over a large catalogue: exact
# retrieval against the IVF index (genrec.ivf_probes), p50/p99 from one connection, and the
# index's recall@k against exact retrieval measured in SQL on the same histories.
#
# The model: MODEL (a `genrec train --save` file) and DATA (its interactions, TSV user, item,
# ... with each user's rows contiguous and in time order); by default an item model trained
# for one epoch with sampled softmax on `genrec synth --users 40000 --items 1000000
# --per-user 50` (d 64, 2 layers; about 4.6 x 10^5 distinct items occur), built under
# build/bench once. USERS histories (the last 50 interactions of the first USERS users with at
# least 50) are genrec_history values in a table; every pgbench transaction
#
#   SELECT count(*) FROM hist, genrec.genrec_recommend('big', hist.h, K) r WHERE hist.i = :u
#
# picks one at random (one connection, -M prepared, CALLS transactions; the first, which
# loads the model and builds the index, is left out of the quantiles). Printed per setting:
# p50, p99 (ms), recall@K mean and minimum over the USERS histories. Before the table: the
# first call of a new connection, exact and indexed (building the shared index, then mapping
# it).
#
# Usage (root, after `make`): bench/sql_retrieval.sh   (MODEL= DATA= K=100 CALLS=1000
#   USERS=200 PROBES='8 16 32 64')
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
k=${K:-100}
calls=${CALLS:-1000}
users=${USERS:-200}
model=${MODEL:-$out/big.safetensors}
data=${DATA:-$out/big.tsv}
. test/pg/cluster.sh

echo "load before: $(uptime | sed 's/.*load average/load average/')"
make -s >/dev/null && make -s install >/dev/null
if [ ! -f "$model" ]; then
	build/genrec synth --users 40000 --items 1000000 --per-user 50 --seed 1 >"$data"
	build/genrec train --data "$data" --layout item --loss sampled --negatives 256 --epochs 1 \
		--d 64 --threads 2 --seed 1 --quiet --save "$model" >/dev/null
fi

genrec_cluster_start >/dev/null
trap genrec_cluster_stop EXIT
mkdir -p "$GENREC_PG_DIR/data/genrec_bench"
cp "$model" "$GENREC_PG_DIR/data/genrec_bench/big.safetensors"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$GENREC_PG_DIR/data/genrec_bench"
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
# the last 50 items of the first USERS users with at least 50 rows, as one array per line
awk -F'\t' -v want="$users" '
	$1 != cur { if (n >= 50) { line = "{"; for (j = 0; j < 50; j++) line = line (j ? "," : "") r[(n + j) % 50]
	                          print line "}"; if (++got == want) exit }
	            cur = $1; n = 0 }
	{ r[n++ % 50] = $2 }' "$data" >"$out/hist.txt"
psql -c "CREATE EXTENSION genrec" \
	-c "SELECT genrec.genrec_import('big', pg_read_binary_file('genrec_bench/big.safetensors'))" \
	-c "CREATE TABLE hist_items (a bigint[])" -c "\\copy hist_items FROM '$out/hist.txt'" \
	-c "CREATE TABLE hist AS SELECT row_number() OVER ()::int AS i, genrec.genrec_history(a) AS h FROM hist_items" \
	-c "CREATE UNIQUE INDEX ON hist (i)" -c "ANALYZE hist"
n_hist=$(psql -At -c "SELECT count(*) FROM hist")
items=$(psql -At -c "SELECT n_items FROM genrec.models WHERE name = 'big'")
echo "model: $model ($items items); $n_hist histories of 50 from $data; top-$k; $calls calls per setting"

cat >"$out/recommend.sql" <<SQL
\\set u random(1, $n_hist)
SELECT count(*) FROM hist, genrec.genrec_recommend('big', hist.h, $k) r WHERE hist.i = :u;
SQL
# p50 and p99 (ms) of pgbench's per-transaction log, the first transaction left out
run_pgbench() {
	local probes=$1 dir
	dir=$(mktemp -d)
	(cd "$dir" && PGOPTIONS="-c genrec.device=cpu -c genrec.ivf_probes=$probes -c client_min_messages=warning" \
		pgbench -n -M prepared -c 1 -t "$calls" -f "$OLDPWD/$out/recommend.sql" --log >"$dir/out" 2>&1) ||
		{ cat "$dir/out" >&2; return 1; }
	cat "$dir"/pgbench_log.* | awk 'NR > 1 { print $3 / 1000 }' | sort -n |
		awk '{ v[NR] = $1 } END { printf "%.2f %.2f\n", v[int(0.5 * (NR - 1) + 1.5)], v[int(0.99 * (NR - 1) + 1.5)] }'
	rm -rf "$dir"
}
# recall@k of the indexed lists against exact ones, in SQL: mean and minimum over histories
recall() {
	psql -At -F' ' <<SQL
SET genrec.device = cpu;
SET client_min_messages = warning;
SET genrec.ivf_probes = 0;
CREATE TEMP TABLE ex AS SELECT i, r.item_id FROM hist, genrec.genrec_recommend('big', h, $k) r;
SET genrec.ivf_probes = $1;
CREATE TEMP TABLE ap AS SELECT i, r.item_id FROM hist, genrec.genrec_recommend('big', h, $k) r;
SELECT round(avg(rc)::numeric, 4), round(min(rc)::numeric, 4),
       (SELECT count(DISTINCT item_id) FROM ex)
  FROM (SELECT e.i, count(a.item_id)::float8 / count(*) AS rc
          FROM ex e LEFT JOIN ap a USING (i, item_id) GROUP BY e.i) s;
SQL
}

# The first call of a new connection, the model already in shared memory: exact; indexed in
# the connection that builds and publishes the index; indexed in the next one, which maps it.
first_call() {
	psql -At -c "SET genrec.device = cpu" -c "SET client_min_messages = warning" \
		-c "SET genrec.ivf_probes = $1" -c '\timing on' \
		-c "SELECT count(*) FROM hist, genrec.genrec_recommend('big', hist.h, $k) r WHERE hist.i = 1" |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}
first_call 0 >/dev/null
t_exact=$(first_call 0)
t_build=$(first_call 8)
t_mapped=$(first_call 8)
echo
echo "first call of a connection (ms): exact $t_exact; indexed, building and publishing the index $t_build; indexed, mapping the published index $t_mapped"

printf '\n| retrieval | p50 ms | p99 ms | recall@%s mean | min |\n|---|---:|---:|---:|---:|\n' "$k"
read -r a b < <(run_pgbench 0)
echo "| exact | $a | $b | 1 | 1 |"
distinct=
for p in ${PROBES:-8 16 32 64}; do
	read -r a b < <(run_pgbench "$p")
	read -r rm rmin distinct < <(recall "$p")
	echo "| IVF, $p probes | $a | $b | $rm | $rmin |"
done
echo
echo "the exact top-$k lists of the $n_hist histories hold $distinct distinct items; $(nproc) CPUs"
echo "load after: $(uptime | sed 's/.*load average/load average/')"
