-- genrec_evaluate against `genrec eval` on the same model and rows (test/pg/serve_fixture.sh:
-- genrec_fixture.cli holds the engine program's JSON for every layout, both splits and two
-- sets of cut-offs), its protocol, and its errors.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.device = cpu;
SELECT plan(24);

-- `genrec eval --json` as (layout, split, ks, metric, k, value) rows in genrec_evaluate's names
CREATE TEMP VIEW cli_eval AS
SELECT c.layout, split_part(c.split, ':', 1) AS split,
       ('{' || split_part(c.split, ':', 2) || '}')::int[] AS ks, m.metric, m.k, m.value
  FROM genrec_fixture.cli c, LATERAL (
        SELECT 'users' AS metric, NULL::int AS k, (c.doc #>> '{metrics,users}')::float8 AS value
        UNION ALL
        SELECT split_part(e.key, '@', 1), split_part(e.key, '@', 2)::int, e.value::text::float8
          FROM jsonb_each(c.doc -> 'metrics') e
         WHERE e.key LIKE '%@%' AND jsonb_typeof(e.value) = 'number'
        UNION ALL
        SELECT 'mrr', NULL, (c.doc #>> '{metrics,mrr}')::float8
        UNION ALL
        SELECT split_part(e.key, '@', 1) || '_all', split_part(e.key, '@', 2)::int, e.value::text::float8
          FROM jsonb_each(c.doc #> '{metrics,nothing_excluded}') e
         WHERE e.key LIKE '%@%' AND jsonb_typeof(e.value) = 'number'
        UNION ALL
        SELECT 'mrr_all', NULL, (c.doc #>> '{metrics,nothing_excluded,mrr}')::float8
        UNION ALL
        SELECT 'popularity_' || split_part(e.key, '@', 1), split_part(e.key, '@', 2)::int, e.value::text::float8
          FROM jsonb_each(c.doc #> '{metrics,popularity}') e
         WHERE jsonb_typeof(e.value) = 'number'
        UNION ALL
        SELECT x.metric || ':rating', NULL, (a ->> x.metric)::float8
          FROM jsonb_array_elements(c.doc #> '{metrics,actions}') a,
               unnest(ARRAY['rmse', 'baseline_rmse', 'logloss', 'ne']) x(metric)
         WHERE jsonb_typeof(a -> x.metric) = 'number'
       ) m
 WHERE c.command = 'eval' AND m.value IS NOT NULL;

-- genrec_evaluate for the same (layout, split, ks)
CREATE TEMP TABLE sql_eval AS
SELECT r.layout, r.split, r.ks, e.metric, e.k, e.value
  FROM (SELECT DISTINCT layout, split, ks FROM cli_eval) r,
       genrec_evaluate('fx_' || r.layout, r.split, r.ks) e;

SELECT is((SELECT count(DISTINCT (layout, split, ks))::int FROM sql_eval), 16,
          'genrec_evaluate ran for 4 layouts x 2 splits x 2 sets of cut-offs');
SELECT is_empty($$
    SELECT * FROM sql_eval s FULL JOIN cli_eval c
        ON (s.layout, s.split, s.ks, s.metric, coalesce(s.k, 0)) = (c.layout, c.split, c.ks, c.metric, coalesce(c.k, 0))
     WHERE s.value IS NULL OR c.value IS NULL OR abs(s.value - c.value) > 1e-9$$,
    'every metric of genrec_evaluate equals `genrec eval --json` (and no metric is missing on either side)');
SELECT is((SELECT count(*)::int FROM sql_eval WHERE layout = 'lac' AND split = 'test' AND ks = '{10,50}'), 17,
          'lac, test, K 10 and 50: users, 4 x (hr, ndcg), mrr, 4 x (hr_all, ndcg_all), mrr_all, 4 popularity, rmse and baseline rmse');
SELECT set_eq($$SELECT DISTINCT metric FROM sql_eval WHERE layout = 'item'$$,
              ARRAY['users', 'hr', 'ndcg', 'mrr', 'hr_all', 'ndcg_all', 'mrr_all', 'popularity_hr', 'popularity_ndcg'],
              'the item layout reports no action metric');
SELECT is((SELECT value FROM genrec_evaluate('fx_lac') WHERE metric = 'users'), 150::float8,
          'every user of the fixture has a test target');
SELECT set_eq($$SELECT metric, k FROM genrec_evaluate('fx_lac') WHERE k IS NOT NULL$$,
              $$VALUES ('hr', 10), ('ndcg', 10), ('hr', 50), ('ndcg', 50), ('hr_all', 10), ('ndcg_all', 10),
                       ('hr_all', 50), ('ndcg_all', 50), ('popularity_hr', 10), ('popularity_ndcg', 10),
                       ('popularity_hr', 50), ('popularity_ndcg', 50)$$,
              'the default split is test with K 10 and 50');
SELECT is(ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_lac', 'validation') e),
          ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_lac', 'valid') e),
          '''validation'' is ''valid''');
SELECT ok((SELECT bool_and(value BETWEEN 0 AND 1) FROM genrec_evaluate('fx_pc', 'test', '{1,5,20}')
            WHERE metric <> 'users'),
          'ranking metrics and normalised RMSE lie in [0, 1]');
SELECT ok((SELECT h.value >= a.value FROM genrec_evaluate('fx_lac') h, genrec_evaluate('fx_lac') a
            WHERE h.metric = 'hr' AND a.metric = 'hr_all' AND h.k = 10 AND a.k = 10),
          'excluding seen items never lowers HR@10');

-- the protocol follows the rows: shuffling the physical order changes nothing, dropping the
-- last interaction of every user turns the validation split into the test split
CREATE TABLE genrec_fixture.shuffled AS SELECT * FROM genrec_fixture.events ORDER BY md5(ts::text);
CREATE TABLE genrec_fixture.truncated AS
SELECT * FROM genrec_fixture.events e
 WHERE ts < (SELECT max(ts) FROM genrec_fixture.events l WHERE l.user_id = e.user_id);
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT n, 1, layout, config, jsonb_set(source, '{relation}', to_jsonb(r)), n_items, weights, owner, true
  FROM genrec.models, (VALUES ('fx_shuffled', 'genrec_fixture.shuffled'),
                              ('fx_truncated_rows', 'genrec_fixture.truncated')) v(n, r)
 WHERE name = 'fx_lac';
SELECT is(ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_shuffled') e),
          ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_lac') e),
          'the physical order of the source does not matter (rows are ordered by user and time)');
SELECT is((SELECT array_agg(value ORDER BY metric, k) FROM genrec_evaluate('fx_truncated_rows', 'test')
            WHERE metric IN ('hr', 'ndcg', 'mrr', 'hr_all', 'ndcg_all')),
          (SELECT array_agg(value ORDER BY metric, k) FROM genrec_evaluate('fx_lac', 'valid')
            WHERE metric IN ('hr', 'ndcg', 'mrr', 'hr_all', 'ndcg_all')),
          'leave-one-out: the test split without each user''s last row is the validation split');

-- a query source with a tiebreak column evaluates like the table
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'fx_query_eval', 1, layout, config,
       '{"query": "SELECT user_id, item_id, rating, ts, item_id AS tb FROM genrec_fixture.events", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts", "tiebreak_col": "tb"}',
       n_items, weights, owner, true
  FROM genrec.models WHERE name = 'fx_int';
SELECT is(ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_query_eval') e),
          ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_int') e),
          'a query source with a tiebreak column evaluates like the table');

-- a view without a tiebreak column is read in the order it produces rows
CREATE VIEW genrec_fixture.events_view AS SELECT * FROM genrec_fixture.events;
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'fx_view', 1, layout, config, jsonb_set(source, '{relation}', '"genrec_fixture.events_view"'),
       n_items, weights, owner, true
  FROM genrec.models WHERE name = 'fx_pc';
SELECT is(ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_view') e),
          ARRAY(SELECT row(e.*)::text FROM genrec_evaluate('fx_pc') e),
          'a view source evaluates like its table');
SELECT is(genrec_score('fx_view', 5, ARRAY[1, 2, 3]::bigint[]), genrec_score('fx_pc', 5, ARRAY[1, 2, 3]::bigint[]),
          'a view source serves like its table');

-- errors and NULLs
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_lac', 'train')$$, '22023', NULL, 'an unknown split is 22023');
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_lac', 'test', '{}')$$, '22023', NULL, 'no cut-off is 22023');
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_lac', 'test', '{0}')$$, '22023', NULL, 'a cut-off of 0 is 22023');
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_lac', 'test', '{1,2,3,4,5,6,7,8,9}')$$, '22023', NULL,
                 'more than 8 cut-offs is 22023');
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_lac', 'test', '{10,NULL}')$$, '22023', NULL,
                 'a NULL cut-off is 22023');
SELECT throws_ok($$SELECT * FROM genrec_evaluate('no_such_model')$$, '42704', NULL, 'an unknown model is 42704');
SELECT is((SELECT count(*)::int FROM genrec_evaluate(NULL)), 0, 'a NULL model gives no rows (STRICT)');
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'fx_eval_nosource', 1, layout, config, 'null', n_items, weights, owner, true
  FROM genrec.models WHERE name = 'fx_lac';
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_eval_nosource')$$, '55000', NULL,
                 'a model without a source cannot be evaluated: 55000');
CREATE TABLE genrec_fixture.empty_events AS SELECT * FROM genrec_fixture.events WHERE false;
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'fx_eval_empty', 1, layout, config, jsonb_set(source, '{relation}', '"genrec_fixture.empty_events"'),
       n_items, weights, owner, true
  FROM genrec.models WHERE name = 'fx_lac';
SELECT throws_ok($$SELECT * FROM genrec_evaluate('fx_eval_empty')$$, '22023', NULL,
                 'an empty source is 22023');
SELECT alike(obj_description('genrec.genrec_evaluate(text,text,integer[])'::regprocedure, 'pg_proc'),
            '%leave-one-out%full catalogue%excluded%', 'the COMMENT states the protocol');

SELECT * FROM finish();
ROLLBACK;
