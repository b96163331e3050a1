-- The Table-2 ablation layouts l2 ... l9 (LAYOUTS.md 4.7) through SQL: genrec_layouts() from
-- the engine's behaviours, training each one with genrec_train (and the aliases l0, l8, l10),
-- what evaluation reports for each (rankings only with an item head, RMSE only with an
-- action head), and serving: candidate-specific actions (l4, packed, cold start), the
-- user-level estimate of l5/l6/l7/l9 (the same for every candidate, refused by genrec_score
-- where there is no item head to rank by), and no retrieval without an item head.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;
SET genrec.device = cpu;
SELECT plan(28);

CREATE TABLE ab_syn AS SELECT * FROM genrec_synthetic(120, 80, 12, 3);

SELECT set_eq($$SELECT layout, alias, reads_actions, item_head, action_head, candidates,
                       action_scope, cold_start FROM genrec_layouts()
                 WHERE layout IN ('item', 'int', 'lac', 'pc', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l9')$$,
  $$VALUES ('item', 'l0', false, true, 'none', 'logit', 'none', false),
           ('int', NULL, true, true, 'state', 'packed', 'candidate', true),
           ('lac', 'l8', true, true, 'state', 'packed', 'candidate', true),
           ('pc', 'l10', true, true, 'coupler', 'coupled', 'candidate', false),
           ('l2', NULL, true, true, 'none', 'logit', 'none', false),
           ('l3', NULL, true, true, 'none', 'logit', 'none', false),
           ('l4', NULL, false, false, 'state', 'packed', 'candidate', true),
           ('l5', NULL, false, false, 'state', 'user', 'user', false),
           ('l6', NULL, false, true, 'state', 'user', 'user', false),
           ('l7', NULL, true, false, 'state', 'user', 'user', false),
           ('l9', NULL, true, true, 'state', 'user', 'user', false)$$,
  'genrec_layouts lists every layout with the behaviours of its card');

SELECT is((SELECT count(*)::int FROM genrec_layouts() l
            WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c
                               WHERE c.conname = 'models_layout_check'
                                 AND pg_get_constraintdef(c.oid) LIKE '%''' || l.layout || '''%')),
          0, 'the catalogue accepts every layout genrec_layouts lists');

CREATE TEMP TABLE ab AS
  SELECT l AS asked, t.*
    FROM unnest('{l2,l3,l4,l5,l6,l7,l9,l8}'::text[]) l,
         LATERAL genrec_train('ab_' || l, 'ab_syn', layout => l, d_model => 8, n_layer => 1,
                              n_head => 2, max_len => 6, epochs => 2, batch_size => 64,
                              seed => 3, options => '{"head_hidden": 8, "n_buckets": 4}') t;
SELECT is((SELECT count(*)::int FROM ab WHERE users = 120), 8, 'every ablation trains on 120 users');
SELECT is((SELECT layout FROM ab WHERE asked = 'l8'), 'lac', 'the alias l8 trains and stores lac');
SELECT is((SELECT layout FROM genrec.models WHERE name = 'ab_l8'), 'lac', 'the catalogue says lac');
SELECT is((SELECT array_agg(asked ORDER BY asked) FROM ab WHERE test_hr10 IS NOT NULL),
          '{l2,l3,l6,l8,l9}', 'HR@10 where the layout predicts the next item');
SELECT is((SELECT array_agg(asked ORDER BY asked) FROM ab WHERE test_rmse IS NOT NULL),
          '{l4,l5,l6,l7,l8,l9}', 'RMSE where the layout predicts actions');
SELECT ok((SELECT bool_and(best_epoch BETWEEN 1 AND 2) FROM ab),
          'every layout picks a best epoch (by validation action loss without an item head)');
SELECT ok((SELECT bool_and(test_rmse < 1 AND test_rmse > 0) FROM ab WHERE asked IN ('l4', 'l5', 'l7')),
          'action-only layouts report a test RMSE');

-- evaluation: the same split, metrics by what the layout predicts
SELECT is((SELECT count(*)::int FROM genrec_evaluate('ab_l4') WHERE metric IN ('hr', 'ndcg', 'mrr') AND value IS NOT NULL),
          0, 'l4 ranks nothing in genrec_evaluate');
SELECT is((SELECT value FROM genrec_evaluate('ab_l4') WHERE metric = 'rmse:action'),
          (SELECT test_rmse FROM ab WHERE asked = 'l4'), 'l4 evaluation RMSE equals the training summary');
SELECT isnt((SELECT value FROM genrec_evaluate('ab_l9') WHERE metric = 'hr' AND k = 10), NULL,
            'l9 ranks in genrec_evaluate');
SELECT is((SELECT count(*)::int FROM genrec_evaluate('ab_l2') WHERE metric LIKE 'rmse:%' AND value IS NOT NULL),
          0, 'l2 predicts no action');

-- serving: l4 packs candidates, each its own score; a user without history is a cold start
SELECT ok((SELECT count(DISTINCT round(s::numeric, 5)) FROM unnest(genrec_score('ab_l4', 1, '{1,2,3,4,5}')) s) > 1,
          'l4 scores candidates by their own actions');
SELECT is(array_length(genrec_score('ab_l4', 999999, '{1,2}'), 1), 2, 'l4 scores a cold start');
SELECT throws_ok($$SELECT * FROM genrec_recommend('ab_l4', 1, 5)$$, '0A000', NULL,
                 'l4 predicts no next item: genrec_recommend is refused');
SELECT is((SELECT count(*)::int FROM genrec_score_detail('ab_l4', 1, '{1,2,3}') WHERE retrieval_logit IS NULL),
          3, 'l4 has no retrieval logit');

-- l5/l7: no candidate score at all; the detail reports the user-level estimate
SELECT throws_ok($$SELECT genrec_score('ab_l5', 1, '{1,2,3}')$$, '0A000', NULL,
                 'l5: genrec_score refuses to invent a candidate score');
SELECT throws_ok($$SELECT genrec_score('ab_l7', 1, '{1,2,3}')$$, '0A000', NULL,
                 'l7: genrec_score refuses to invent a candidate score');
SELECT is((SELECT count(DISTINCT actions[1])::int FROM genrec_score_detail('ab_l5', 1, '{1,2,3,4}')),
          1, 'l5: one user-level action estimate for every candidate');
SELECT is((SELECT count(DISTINCT actions[1])::int FROM genrec_score_detail('ab_l7', 1, '{1,2,3,4}')),
          1, 'l7: one user-level action estimate for every candidate');
SELECT throws_ok($$SELECT * FROM genrec_recommend('ab_l5', 1, 5)$$, '0A000', NULL,
                 'l5 cannot recommend');
SELECT throws_ok($$SELECT genrec_score_detail('ab_l5', 999999, '{1}')$$, 'P0002', NULL,
                 'l5 needs a history');

-- l6/l9: rank by retrieval logit; the action is the user-level estimate
SELECT is(genrec_score('ab_l9', 1, '{1,2,3}'),
          ARRAY(SELECT retrieval_logit FROM genrec_score_detail('ab_l9', 1, '{1,2,3}')),
          'l9: genrec_score is the retrieval logit');
SELECT is((SELECT count(DISTINCT actions[1])::int FROM genrec_score_detail('ab_l6', 1, '{1,2,3,4}')),
          1, 'l6: one user-level action estimate for every candidate');
SELECT is((SELECT count(*)::int FROM genrec_recommend('ab_l6', 1, 5)), 5, 'l6 recommends');

-- l2/l3: no action head, score = retrieval logit
SELECT is(genrec_score('ab_l3', 1, '{1,2}'),
          ARRAY(SELECT retrieval_logit FROM genrec_score_detail('ab_l3', 1, '{1,2}')),
          'l3: genrec_score is the retrieval logit');
SELECT throws_ok($$SELECT genrec_train('ab_bad', 'ab_syn', layout => 'l1', epochs => 1)$$,
                 '22023', NULL, 'an unknown layout is refused');

SELECT * FROM finish();
ROLLBACK;
