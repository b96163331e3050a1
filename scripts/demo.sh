#!/usr/bin/env bash
# scripts/demo.sh — the genrec demo on a fresh Debian 12 machine (run as root): installs what
# is missing, builds and installs the extension, starts a throwaway cluster, generates
# synthetic interactions with genrec_synthetic() (Zipfian item popularity, per-user taste,
# ratings that depend on the item and on the user's previous rating), trains an LAC and an
# interleaved (INT) model from SQL, prints recommendations and candidate scores for a few
# users and the evaluation table of both models, then stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh demo
echo "== build and install"
make -s -j2 >/dev/null
make -s install >/dev/null

. test/pg/cluster.sh
genrec_cluster_start
trap 'genrec_cluster_stop' EXIT
psql() { "$(pg_config --bindir)/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

psql <<'SQL'
\pset footer off
CREATE EXTENSION genrec;
SET search_path = genrec, public;

\echo
\echo == synthetic data: 2000 users, 300 items, about 40 ratings each
CREATE TABLE interactions AS SELECT * FROM genrec_synthetic(2000, 300, 40, 7);
CREATE INDEX ON interactions (user_id);
SELECT count(*) AS interactions, count(DISTINCT user_id) AS users,
       count(DISTINCT item_id) AS items, round(avg(action)::numeric, 2) AS mean_rating
FROM interactions;

\echo
\echo == train LAC (lagged action conditioning) and INT (interleaved, HSTU-style)
\echo    (each epoch also reports a NOTICE and a row in genrec.training_progress; hidden here)
SET client_min_messages = warning;
SELECT model, version, layout, epochs_run, best_epoch, round(test_hr10::numeric, 4) AS test_hr10,
       round(test_ndcg10::numeric, 4) AS test_ndcg10, round(test_rmse::numeric, 4) AS test_rmse,
       round(seconds::numeric, 1) AS seconds
FROM genrec_train('demo_lac', 'interactions', action_cols => '{action}', layout => 'lac',
                  d_model => 32, max_len => 30, epochs => 30, patience => 8);
SELECT model, version, layout, epochs_run, best_epoch, round(test_hr10::numeric, 4) AS test_hr10,
       round(test_ndcg10::numeric, 4) AS test_ndcg10, round(test_rmse::numeric, 4) AS test_rmse,
       round(seconds::numeric, 1) AS seconds
FROM genrec_train('demo_int', 'interactions', action_cols => '{action}', layout => 'int',
                  d_model => 32, max_len => 30, epochs => 30, patience => 8);

\echo
\echo == top-5 recommendations (LAC, seen items excluded)
SELECT u AS user_id, r.rank, r.item_id, round(r.score::numeric, 3) AS score
FROM generate_series(1, 3) AS u, genrec_recommend('demo_lac', u, 5) AS r
ORDER BY u, r.rank;

\echo
\echo == predicted rating of 5 candidates per user, one pass each (LAC), as analysts call it
SET genrec.default_model = 'demo_lac';
SELECT u AS user_id, genrec_score(u::bigint, ARRAY[1, 2, 3, 50, 299]::bigint[]) AS predicted
FROM generate_series(1, 3) AS u;

\echo
\echo == evaluation (leave-one-out, full-catalogue ranking, seen items excluded)
SELECT e.metric, e.k, round(e.value::numeric, 4) AS lac, round(i.value::numeric, 4) AS int
FROM genrec_evaluate('demo_lac') AS e
JOIN genrec_evaluate('demo_int') AS i USING (metric)
WHERE e.k IS NOT DISTINCT FROM i.k
ORDER BY e.metric LIKE 'popularity%', e.metric, e.k;

\echo
SELECT name, version, layout, deployed, owner, weights_bytes FROM model_overview ORDER BY name;
SQL
