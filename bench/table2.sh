#!/usr/bin/env bash
# bench/table2.sh — Table 2 of the LAC paper (LAYOUTS.md §5) with genrec_compare_layouts on
# this machine: every layout (item = L0, l2 … l9, lac = L8, pc = L10, int) for SEEDS seeds on
#   syn     genrec_synthetic(USERS, ITEMS, PER_USER, 1)
#   ml100k  MovieLens-100K ratings (../shared/data/ml-100k/u.data, or $GENREC_DATA), when found
#   ml1m    MovieLens-1M users 1-2999 with ratings (ml-1m/ratings_users0001-2999.dat.gz under
#           the same directory), max_len ML1M_MAX_LEN (default 200), when found
# in a throwaway cluster (test/pg/cluster.sh), CPU, one thread, with the same options for all
# (d 32, 2 layers, 2 heads, batch 64, lr 3e-3, patience 5, EPOCHS epochs, max_len 30 / 50).
# Prints test HR@10, NDCG@10 and RMSE per layout (mean, sd, change vs L0) beside the
# popularity and bias baselines, one line per row (data|layout|metric|mean|sd|n|change%).
#
# Usage (root, after make install): bench/table2.sh   (USERS=1500 ITEMS=500 PER_USER=30
#   EPOCHS=20 PATIENCE=5 SEEDS='{1,2,3}' DATASETS='syn ml100k ml1m' ML1M_MAX_LEN=200)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
ml=${GENREC_DATA:-../shared/data}/ml-100k/u.data
ml1m=${GENREC_DATA:-../shared/data}/ml-1m/ratings_users0001-2999.dat.gz
. test/pg/cluster.sh
genrec_cluster_start >/dev/null || exit 1
trap 'genrec_cluster_stop' EXIT
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c 'CREATE DATABASE bench' && psql -d bench -c 'CREATE EXTENSION genrec' || exit 1
layouts='{item,l2,l3,l4,l5,l6,l7,lac,l9,pc,int}'
for data in ${DATASETS:-syn ml100k ml1m}; do
	case $data in
	syn)
		psql -d bench -c "CREATE TABLE syn AS SELECT * FROM genrec.genrec_synthetic(${USERS:-1500}, ${ITEMS:-500}, ${PER_USER:-30}, 1)"
		args="'syn', '$layouts', '${SEEDS:-{1,2,3\}}', max_len => 30" ;;
	ml100k)
		[ -r "$ml" ] || { echo "table2: $ml not found, skipped" >&2; continue; }
		psql -d bench -c 'CREATE TABLE ml100k (user_id bigint, item_id bigint, rating real, ts bigint)' \
			-c "\\copy ml100k FROM '$ml'"
		args="'ml100k', '$layouts', '${SEEDS:-{1,2,3\}}', action_cols => '{rating}', max_len => 50" ;;
	ml1m)
		[ -r "$ml1m" ] || { echo "table2: $ml1m not found, skipped" >&2; continue; }
		psql -d bench -c 'CREATE TABLE ml1m (user_id bigint, item_id bigint, rating real, ts bigint)' || exit 1
		zcat "$ml1m" | sed 's/::/\t/g' | psql -d bench -c '\copy ml1m FROM STDIN' || exit 1
		args="'ml1m', '$layouts', '${SEEDS:-{1,2,3\}}', action_cols => '{rating}', max_len => ${ML1M_MAX_LEN:-200}" ;;
	esac
	t0=$SECONDS
	psql -d bench -At -F '|' <<SQL || exit 1
SET genrec.threads = 1;
SET genrec.device = cpu;
SET client_min_messages = warning;
SELECT '$data', layout, metric, round(mean::numeric, 4), round(sd::numeric, 4), n_seeds,
       round((100 * change)::numeric, 1)
  FROM genrec.genrec_compare_layouts($args, d_model => 32, n_layer => 2, n_head => 2,
                                     epochs => ${EPOCHS:-20}, batch_size => 64, lr => 0.003,
                                     patience => ${PATIENCE:-5}, reference => 'item', model_prefix => 't2')
 WHERE metric IN ('hr@10', 'ndcg@10') OR metric LIKE 'rmse:%'
 ORDER BY metric, layout;
SQL
	echo "$data: $((SECONDS - t0)) s"
done
