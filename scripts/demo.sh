#!/usr/bin/env bash
# scripts/demo.sh — the genrec demo on a fresh Debian 12 machine (run as root):
# installs what is missing, builds and installs the extension, starts a throwaway cluster,
# generates synthetic interactions with genrec_synthetic() (Zipfian items, per-user taste,
# ratings that depend on the item and on the user's previous rating), trains an LAC and an
# interleaved (INT) model on them, prints recommendations for a few users and the evaluation
# table of both models, then stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
echo "== build"
make -s -j2 >/dev/null
make -s install >/dev/null

. test/pg/cluster.sh
genrec_cluster_start
work=$(mktemp -d)
trap 'genrec_cluster_stop; rm -rf "$work"' EXIT
pgbin=$(pg_config --bindir)
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== synthetic data: 1500 users, 400 items, ~40 interactions each"
psql -c "CREATE EXTENSION genrec"
psql -c "CREATE TABLE interactions AS SELECT * FROM genrec.genrec_synthetic(1500, 400, 40, 7)"
psql -c "SELECT count(*) AS interactions, count(DISTINCT user_id) AS users,
                count(DISTINCT item_id) AS items, round(avg(action)::numeric, 2) AS mean_rating
         FROM interactions"
psql -A -t -F $'\t' -c "COPY (SELECT user_id, item_id, action, extract(epoch FROM ts)::bigint
                              FROM interactions) TO STDOUT" >"$work/interactions.tsv"

for layout in lac int; do
	echo
	echo "== train $layout"
	build/genrec train --data "$work/interactions.tsv" --cols 0,1,2,3 --layout "$layout" \
		--d 32 --heads 2 --layers 2 --max-len 30 --epochs 40 --patience 8 --threads 2 \
		--save "$work/$layout.safetensors" --quiet
done

echo
echo "== recommendations (LAC model, top 5, seen items excluded)"
for user in 1 2 3; do
	echo "user $user:"
	build/genrec recommend --model "$work/lac.safetensors" --user "$user" \
		--data "$work/interactions.tsv" --cols 0,1,2,3 --k 5
done
echo
echo "== scores of 5 candidates for user 1 (predicted rating and retrieval logit)"
build/genrec score --model "$work/lac.safetensors" --user 1 --data "$work/interactions.tsv" \
	--cols 0,1,2,3 --candidates 1,2,3,50,399
