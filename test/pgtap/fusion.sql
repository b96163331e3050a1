-- The action-fusion layouts attnlfa and attnmvp from SQL: tiny trainings on genrec_synthetic
-- data, the catalogue row, one-pass scoring (the packed pass equals scoring each candidate
-- alone, a user without history is a cold start), retrieval through the jointly trained
-- next-item head, evaluation (HR/NDCG and the action's RMSE) and an export/import round trip
-- that scores identically.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;

CREATE TABLE fu_syn AS SELECT * FROM genrec_synthetic(120, 80, 15, 11);

CREATE TEMP TABLE fu_trained AS
  SELECT t.*
    FROM unnest(ARRAY['attnlfa', 'attnmvp']) l,
         LATERAL genrec_train('fu_' || l, 'fu_syn', layout => l, d_model => 8, n_layer => 1,
                              n_head => 2, max_len => 8, epochs => 2, batch_size => 64,
                              seed => 7, options => '{"head_hidden": 8, "n_buckets": 4}') t;

SELECT plan(16);

SELECT is((SELECT array_agg(layout ORDER BY layout) FROM fu_trained),
          ARRAY['attnlfa', 'attnmvp'], 'both layouts train from SQL');
SELECT ok((SELECT bool_and(test_rmse > 0 AND test_hr10 >= 0 AND test_ndcg10 >= 0)
             FROM fu_trained), 'training reports the action RMSE and HR/NDCG for both');
SELECT is((SELECT array_agg(layout ORDER BY name) FROM genrec.models WHERE name LIKE 'fu_%'),
          ARRAY['attnlfa', 'attnmvp'], 'the catalogue shows the layouts');

-- scoring: one value per candidate, NULL for an unknown item; the pack equals single calls
CREATE TEMP TABLE fu_scores AS
  SELECT l, genrec_score('fu_' || l, 5, '{1,2,3,999999,7}') AS s,
         ARRAY[(genrec_score('fu_' || l, 5, '{1}'))[1], (genrec_score('fu_' || l, 5, '{2}'))[1],
               (genrec_score('fu_' || l, 5, '{3}'))[1], NULL,
               (genrec_score('fu_' || l, 5, '{7}'))[1]] AS alone
    FROM unnest(ARRAY['attnlfa', 'attnmvp']) l;
SELECT is((SELECT count(*)::int FROM fu_scores
            WHERE cardinality(s) = 5 AND s[4] IS NULL AND s[1] IS NOT NULL), 2,
          'genrec_score: one score per candidate, NULL for an unknown item');
SELECT ok((SELECT bool_and(abs(s[i] - alone[i]) <= 1e-5 * greatest(1, abs(alone[i])))
             FROM fu_scores, unnest(ARRAY[1, 2, 3, 5]) i),
          'candidates do not influence each other: the pack equals each candidate alone');
SELECT ok((SELECT bool_and(s[1] BETWEEN 0 AND 6 AND s[1] <> s[2]) FROM fu_scores),
          'the scores are predicted ratings and depend on the candidate');
SELECT is((SELECT count(*)::int FROM unnest(ARRAY['attnlfa', 'attnmvp']) l,
                  LATERAL unnest(genrec_score('fu_' || l, 424242, '{1,2}')) v
            WHERE v IS NOT NULL), 4, 'a user without history is a cold start');
SELECT ok((SELECT bool_and(d.retrieval_logit IS NOT NULL AND d.known AND cardinality(d.actions) = 1)
             FROM unnest(ARRAY['attnlfa', 'attnmvp']) l,
                  LATERAL genrec_score_detail('fu_' || l, 5, '{1,2}') d),
          'genrec_score_detail gives the next-item head''s logit and the action');

-- retrieval through the jointly trained next-item head, seen items excluded
SELECT is((SELECT count(*)::int FROM genrec_recommend('fu_attnlfa', 5, 10)), 10,
          'attnlfa recommends 10 items');
SELECT is((SELECT count(*)::int FROM genrec_recommend('fu_attnmvp', 5, 10) r
            WHERE r.item_id IN (SELECT item_id FROM fu_syn WHERE user_id = 5)), 0,
          'attnmvp recommends unseen items');

-- evaluation: ranking metrics and the action's RMSE beside its bias baseline
SELECT is((SELECT count(*)::int FROM unnest(ARRAY['attnlfa', 'attnmvp']) l,
                  genrec_evaluate('fu_' || l, 'test', '{10}') e
            WHERE e.metric IN ('hr', 'ndcg', 'rmse:action', 'baseline_rmse:action')
              AND e.value >= 0), 8, 'genrec_evaluate: hr, ndcg, rmse and its baseline');
SELECT ok((SELECT value FROM genrec_evaluate('fu_attnmvp', 'test', '{10}')
            WHERE metric = 'rmse:action') < 0.5, 'attnmvp RMSE is of the normalised scale');

-- export and import: the same bytes score the same
SELECT is(genrec_import('fu_lfa_copy', genrec_export('fu_attnlfa'),
                        source => (SELECT source FROM genrec.models WHERE name = 'fu_attnlfa')),
          1, 'an exported attnlfa model imports');
SELECT is(genrec_import('fu_mvp_copy', genrec_export('fu_attnmvp'),
                        source => (SELECT source FROM genrec.models WHERE name = 'fu_attnmvp')),
          1, 'an exported attnmvp model imports');
SELECT is(genrec_score('fu_lfa_copy', 5, '{1,2,3}'), genrec_score('fu_attnlfa', 5, '{1,2,3}'),
          'the imported attnlfa model scores identically');
SELECT is(genrec_score('fu_mvp_copy', 5, '{1,2,3}'), genrec_score('fu_attnmvp', 5, '{1,2,3}'),
          'the imported attnmvp model scores identically');

SELECT * FROM finish();
ROLLBACK;
