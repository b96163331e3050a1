-- genrec_train contracts: tiny trainings on genrec_synthetic data (every layout, a table, a
-- query, integer times and a binary action), what they write to genrec.models, determinism,
-- MovieLens-100K when test/run_sql_tests.sh loaded it, and every bad input with its SQLSTATE
-- (the catalogue is unchanged by failed calls).
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;

CREATE TABLE tr_syn AS SELECT * FROM genrec_synthetic(200, 300, 15, 5);
-- the same data with an integer time, a binary action, a text column and a tiebreak
CREATE TABLE tr_typed AS
  SELECT user_id::integer AS uid, item_id AS iid, extract(epoch FROM ts)::bigint AS t,
         action::numeric AS rating, action >= 3.5 AS liked, action::text AS label,
         row_number() OVER () AS seq
    FROM tr_syn;

-- tiny settings shared by the calls below
CREATE FUNCTION pg_temp.tiny(name text, source text, layout text,
                             action_cols text[] DEFAULT NULL)
  RETURNS TABLE (layout text, users integer, test_rmse double precision) LANGUAGE sql AS $f$
  SELECT t.layout, t.users, t.test_rmse
    FROM genrec.genrec_train(name, source, action_cols => action_cols, layout => layout,
                             d_model => 8, n_layer => 1, n_head => 2, max_len => 8,
                             epochs => 2, batch_size => 64, seed => 7,
                             options => '{"head_hidden": 8, "n_buckets": 4}') t
$f$;

CREATE TEMP TABLE r1 AS
  SELECT * FROM genrec_train('tr_lac', 'tr_syn', d_model => 8, n_layer => 1, n_head => 2,
                             max_len => 8, epochs => 2, batch_size => 64, seed => 7,
                             options => '{"head_hidden": 8, "n_buckets": 4}');

CREATE TABLE tr_empty (user_id bigint, item_id bigint, action real, ts timestamptz);
CREATE TABLE tr_nulls AS SELECT * FROM tr_syn;
UPDATE tr_nulls SET user_id = NULL WHERE user_id = 3;
CREATE TABLE tr_inf AS SELECT user_id, item_id, action::float8 AS action, ts FROM tr_syn;
UPDATE tr_inf SET action = 'Infinity' WHERE user_id = 3;

CREATE TEMP TABLE bad (call text, code text, why text);
INSERT INTO bad VALUES
  ($$NULL, 'tr_syn'$$,                                   '22004', 'NULL name'),
  ($$'x', NULL$$,                                        '22004', 'NULL source'),
  ($$'x', 'tr_syn', layout => NULL$$,                    '22004', 'NULL layout'),
  ($$'x', 'tr_syn', d_model => NULL$$,                   '22004', 'NULL d_model'),
  ($$'x', 'tr_syn', deploy => NULL$$,                    '22004', 'NULL deploy'),
  ($$'x', 'tr_syn', action_cols => '{action,NULL}'$$,    '22004', 'a NULL action column name'),
  ($$'', 'tr_syn'$$,                                     '22023', 'an empty name'),
  ($$repeat('x', 201), 'tr_syn'$$,                       '22023', 'a name over 200 bytes'),
  ($$'x', 'no_such_table'$$,                             '42P01', 'unknown source table'),
  ($$'x', 'no_schema.tr_syn'$$,                          '3F000', 'unknown schema'),
  ($$'x', 'SELECT * FROM no_such_table'$$,               '42P01', 'unknown table in a query'),
  ($$'x', 'SELECT user_id item_id FROM'$$,               '42601', 'a query with a syntax error'),
  ($$'x', 'tr_syn', user_col => 'uid'$$,                 '42703', 'unknown user column'),
  ($$'x', 'tr_syn', item_col => 'nope'$$,                '42703', 'unknown item column'),
  ($$'x', 'tr_syn', time_col => 'nope'$$,                '42703', 'unknown time column'),
  ($$'x', 'tr_syn', action_cols => '{nope}'$$,           '42703', 'unknown action column'),
  ($$'x', 'tr_syn', tiebreak_col => 'nope'$$,            '42703', 'unknown tiebreak column'),
  ($$'x', 'tr_syn', layout => 'hstu'$$,                  '22023', 'unknown layout'),
  ($$'x', 'tr_syn', options => '{"nope": 1}'$$,          '22023', 'unknown option'),
  ($$'x', 'tr_syn', options => '{"beta1": "high"}'$$,    '22023', 'a non-numeric option'),
  ($$'x', 'tr_syn', options => '{"warmup_steps": 1.5}'$$, '22023', 'a fractional integer option'),
  ($$'x', 'tr_syn', options => '[1, 2]'$$,               '22023', 'options not an object'),
  ($$'x', 'tr_syn', options => '{"binary_actions": ["ts"]}'$$, '22023', 'binary_actions naming a non-action column'),
  ($$'x', 'tr_syn', options => '{"n_buckets": 0}'$$,     '22023', 'an option out of range'),
  ($$'x', 'tr_syn', options => '{"loss": "nce"}'$$,      '22023', 'an unknown item loss'),
  ($$'x', 'tr_syn', options => '{"loss": "sampled", "negatives": 0}'$$, '22023', 'sampled without negatives'),
  ($$'x', 'tr_syn', options => '{"sampler": "zipf"}'$$,  '22023', 'an unknown sampler'),
  ($$'x', 'tr_syn', options => '{"negatives_per": "item"}'$$, '22023', 'an unknown negatives_per'),
  ($$'x', 'tr_syn', options => '{"loss": "infonce", "negatives_per": "user"}'$$, '22023', 'negatives_per user without the sampled loss'),
  ($$'x', 'tr_empty'$$,                                  '22023', 'an empty source'),
  ($$'x', 'SELECT * FROM tr_syn WHERE false'$$,          '22023', 'a query without rows'),
  ($$'x', 'tr_syn', d_model => -16$$,                    '22023', 'negative d_model'),
  ($$'x', 'tr_syn', d_model => 10, n_head => 3$$,        '22023', 'heads not dividing d_model'),
  ($$'x', 'tr_syn', n_layer => 0$$,                      '22023', 'no layers'),
  ($$'x', 'tr_syn', max_len => -1$$,                     '22023', 'negative max_len'),
  ($$'x', 'tr_syn', epochs => 0$$,                       '22023', 'no epochs'),
  ($$'x', 'tr_syn', batch_size => -5$$,                  '22023', 'negative batch size'),
  ($$'x', 'tr_syn', lr => 'NaN'$$,                       '22023', 'NaN learning rate'),
  ($$'x', 'tr_syn', lr => -0.1$$,                        '22023', 'negative learning rate'),
  ($$'x', 'tr_syn', dropout => 1$$,                      '22023', 'dropout 1'),
  ($$'x', 'tr_syn', patience => 0$$,                     '22023', 'patience 0'),
  ($$'x', 'tr_syn', action_cols => '{}'$$,               '22023', 'LAC without an action column'),
  ($$'x', 'tr_syn', action_cols => '{action,action}'$$,  '22023', 'an action column named twice'),
  ($$'x', 'tr_syn', action_cols => '{a,b,c,d,e,f,g,h,i}'$$, '22023', 'more action columns than the engine takes'),
  ($$'x', 'tr_typed', user_col => 'uid', item_col => 'iid', time_col => 't', action_cols => '{label}'$$,
                                                         '42804', 'a text action column'),
  ($$'x', 'tr_typed', user_col => 'label', item_col => 'iid', time_col => 't', action_cols => '{rating}'$$,
                                                         '42804', 'a text user column'),
  ($$'x', 'tr_typed', user_col => 'uid', item_col => 'iid', time_col => 'label', action_cols => '{rating}'$$,
                                                         '42804', 'a text time column'),
  ($$'x', 'tr_typed', user_col => 'uid', item_col => 'iid', time_col => 't', action_cols => '{rating}',
        options => '{"binary_actions": ["rating"]}'$$,   '22023', 'a binary column holding ratings'),
  ($$'x', 'tr_nulls'$$,                                  '22004', 'a NULL user id'),
  ($$'x', 'tr_inf'$$,                                    '22003', 'an infinite action'),
  ($$'x', 'tr_syn', options => '{"similarity": "cosine"}'$$, '22023', 'cosine logits with the full softmax');

SELECT plan(51 + (SELECT count(*)::int FROM bad));

-- the summary row
SELECT is((SELECT count(*)::int FROM r1), 1, 'genrec_train returns one row');
SELECT is((SELECT (model, version, layout, deployed)::text FROM r1), '(tr_lac,1,lac,t)',
          'first version 1 of a LAC model, deployed');
SELECT is((SELECT (users, items, interactions)::text FROM r1),
          (SELECT (count(DISTINCT user_id), count(DISTINCT item_id), count(*))::text FROM tr_syn),
          'users, items and interactions of the source');
SELECT is((SELECT epochs_run FROM r1), 2, 'two epochs run');
SELECT ok((SELECT best_epoch BETWEEN 1 AND 2 FROM r1), 'best epoch is one of them');
SELECT ok((SELECT valid_hr10 BETWEEN 0 AND 1 AND valid_ndcg10 BETWEEN 0 AND valid_hr10
              AND test_hr10 BETWEEN 0 AND 1 AND test_ndcg10 BETWEEN 0 AND test_hr10 FROM r1),
          'HR@10 and NDCG@10 in [0, 1], NDCG <= HR');
SELECT ok((SELECT valid_rmse > 0 AND test_rmse > 0 AND baseline_rmse > 0 FROM r1),
          'LAC reports action RMSE next to the bias baseline');
SELECT ok((SELECT seconds > 0 AND device = 'cpu' FROM r1), 'seconds and device reported');

-- the catalogue row
SELECT is((SELECT count(*)::int FROM genrec.models WHERE name = 'tr_lac'), 1, 'one catalogue row');
SELECT is((SELECT (layout, n_items, deployed, owner = (SELECT oid FROM pg_roles WHERE rolname = current_user))::text
             FROM genrec.models WHERE name = 'tr_lac'),
          (SELECT format('(lac,%s,t,t)', count(DISTINCT item_id)) FROM tr_syn),
          'layout, n_items, deployed and owner stored');
SELECT is((SELECT config #> '{model,d_model}' FROM genrec.models WHERE name = 'tr_lac'), '8',
          'config.model holds the engine configuration');
SELECT is((SELECT config -> 'train' ->> 'epochs' FROM genrec.models WHERE name = 'tr_lac'), '2',
          'config.train holds the training options');
SELECT is((SELECT config -> 'train' ->> 'lr' FROM genrec.models WHERE name = 'tr_lac'), '0.001',
          'real options are stored as they print');
SELECT is((SELECT source FROM genrec.models WHERE name = 'tr_lac'),
          '{"relation": "public.tr_syn", "query": null, "user_col": "user_id", "item_col": "item_id",
            "action_cols": ["action"], "time_col": "ts", "tiebreak_col": null}'::jsonb,
          'source mapping: the qualified relation, columns, the "action" column by default');
SELECT is((SELECT (metrics #>> '{test,ndcg@10}')::float8 FROM genrec.models WHERE name = 'tr_lac'),
          (SELECT test_ndcg10 FROM r1), 'metrics.test matches the summary');
SELECT is((SELECT (metrics #>> '{test,actions,0,rmse}')::float8 FROM genrec.models WHERE name = 'tr_lac'),
          (SELECT test_rmse FROM r1), 'metrics.test.actions[0].rmse matches the summary');
SELECT is((SELECT jsonb_array_length(metrics -> 'history') FROM genrec.models WHERE name = 'tr_lac'), 2,
          'metrics.history has one record per epoch');
SELECT ok((SELECT metrics ?& ARRAY['valid', 'test', 'baselines', 'epochs_run', 'best_epoch',
                                   'train_seconds', 'device', 'data']
             FROM genrec.models WHERE name = 'tr_lac'), 'metrics has the documented keys');
SELECT is((SELECT genrec_model_items('tr_lac')),
          (SELECT array_agg(DISTINCT item_id ORDER BY item_id) FROM tr_syn),
          'the item id map in the weights is the source''s items, ascending');
SELECT is((SELECT (layout, n_items, n_actions)::text FROM genrec_weights_info(genrec_export('tr_lac'))),
          (SELECT format('(lac,%s,1)', count(DISTINCT item_id)) FROM tr_syn),
          'the weights decode with the engine');
SELECT is((SELECT extra ->> 'model_name' FROM genrec_weights_info(genrec_export('tr_lac'))), 'tr_lac',
          'the weights carry the training summary');

-- determinism: the same arguments train the same model
CREATE TEMP TABLE r2 AS SELECT * FROM genrec_train('tr_lac', 'tr_syn', d_model => 8, n_layer => 1,
                             n_head => 2, max_len => 8, epochs => 2, batch_size => 64, seed => 7,
                             options => '{"head_hidden": 8, "n_buckets": 4}', deploy => false);
SELECT is((SELECT (version, deployed)::text FROM r2), '(2,f)',
          'retraining adds version 2; deploy => false keeps version 1 deployed');
SELECT is((SELECT (valid_ndcg10, test_hr10, test_ndcg10, test_rmse)::text FROM r2),
          (SELECT (valid_ndcg10, test_hr10, test_ndcg10, test_rmse)::text FROM r1),
          'same data, options and seed: same metrics');
SELECT is((SELECT array_agg(version ORDER BY version) FROM genrec.models WHERE name = 'tr_lac' AND deployed),
          ARRAY[1], 'exactly one deployed version');

-- every layout
SELECT is((SELECT (layout, test_rmse IS NULL)::text FROM pg_temp.tiny('tr_item', 'tr_syn', 'item')),
          '(item,t)', 'item layout trains; it predicts no action');
SELECT is((SELECT (layout, test_rmse > 0)::text FROM pg_temp.tiny('tr_int', 'tr_syn', 'int')),
          '(int,t)', 'int layout trains');
SELECT is((SELECT (layout, test_rmse > 0)::text FROM pg_temp.tiny('tr_pc', 'tr_syn', 'pc')),
          '(pc,t)', 'pc layout trains');
SELECT is((SELECT (layout, users)::text FROM pg_temp.tiny('tr_item0', 'tr_syn', 'item', '{}')),
          '(item,200)', 'item layout without action columns');
SELECT is((SELECT source -> 'action_cols' FROM genrec.models WHERE name = 'tr_item0'), '[]',
          'action_cols => ''{}'' stores no action column');

-- the sampled item losses: stored in the model's configuration, served over the catalogue
CREATE TEMP TABLE r_smp AS SELECT * FROM genrec_train('tr_smp', 'tr_syn',
    layout => 'item', action_cols => '{}', d_model => 8, n_layer => 1, n_head => 2,
    max_len => 8, epochs => 2, batch_size => 64, seed => 7,
    options => '{"head_hidden": 8, "loss": "sampled", "negatives": 32, "sampler": "popularity"}');
CREATE TEMP TABLE r_nce AS SELECT * FROM genrec_train('tr_nce', 'tr_syn',
    d_model => 8, n_layer => 1, n_head => 2, max_len => 8, epochs => 2, batch_size => 64, seed => 7,
    options => '{"head_hidden": 8, "loss": "infonce", "temperature": 0.5}');
SELECT is((SELECT (config #>> '{model,loss}', config #>> '{model,negatives}',
                   config #>> '{model,sampler}', config #>> '{model,negatives_per}')::text
             FROM genrec.models WHERE name = 'tr_smp'),
          '(sampled,32,popularity,user)',
          'loss => sampled is stored in the model configuration, negatives drawn per user by default');
SELECT is((SELECT count(*)::int FROM genrec_recommend('tr_smp', 5::bigint, 10)), 10,
          'a sampled-loss model recommends from the whole catalogue');
SELECT is((SELECT (config #>> '{model,loss}', config #>> '{model,negatives}')::text
             FROM genrec.models WHERE name = 'tr_nce'),
          '(infonce,0)', 'loss => infonce: in-batch negatives, every row by default');
CREATE TEMP TABLE r_cos AS SELECT * FROM genrec_train('tr_cos', 'tr_syn',
    layout => 'item', action_cols => '{}', d_model => 8, n_layer => 1, n_head => 2,
    max_len => 8, epochs => 2, batch_size => 64, seed => 7,
    options => '{"head_hidden": 8, "loss": "infonce", "similarity": "cosine", "temperature": 0.1}');
SELECT is((SELECT (config #>> '{model,similarity}', config #>> '{model,temperature}')::text
             FROM genrec.models WHERE name = 'tr_cos'),
          '(cosine,0.1)', 'similarity => cosine is stored in the model configuration');
SELECT is((SELECT count(DISTINCT item_id)::int FROM genrec_recommend('tr_cos', 5::bigint, 10)), 10,
          'a cosine model recommends ten distinct items');
SELECT is((SELECT config #> '{model}' ? 'loss' FROM genrec.models WHERE name = 'tr_lac' AND version = 1),
          false, 'the full softmax writes no loss keys (files as before)');

-- a query source, integer times, a numeric and a binary action, a tiebreak column
SELECT is((SELECT users FROM genrec_train('tr_query',
             '  (SELECT user_id, item_id, action, ts FROM tr_syn WHERE user_id <= 100);',
             d_model => 8, n_layer => 1, max_len => 8, epochs => 1,
             options => '{"head_hidden": 8}')), 100, 'a query source (parenthesised, with a semicolon)');
SELECT is((SELECT regexp_replace(source ->> 'query', '\s+', ' ', 'g') FROM genrec.models WHERE name = 'tr_query'),
          ' SELECT user_id, item_id, action, ts FROM public.tr_syn WHERE (user_id <= 100)',
          'the query is stored as PostgreSQL deparses it: names schema-qualified, no semicolon');
SELECT ok((SELECT source -> 'relation' = 'null' FROM genrec.models WHERE name = 'tr_query'),
          'a query source has no relation');
SELECT lives_ok($$SELECT * FROM genrec_train('tr_with', 'WITH s AS (SELECT * FROM tr_syn) SELECT * FROM s',
                  d_model => 8, n_layer => 1, max_len => 8, epochs => 1)$$, 'a WITH query source');
SELECT is((SELECT (users, test_rmse > 0)::text FROM genrec_train('tr_typed', 'tr_typed', user_col => 'uid',
             item_col => 'iid', time_col => 't', action_cols => '{rating,liked}', tiebreak_col => 'seq',
             d_model => 8, n_layer => 1, max_len => 8, epochs => 1, options => '{"w_action": 0.5}')),
          '(200,t)', 'integer user and time, numeric and boolean actions, a tiebreak');
SELECT is((SELECT config #> '{model,action_binary}' FROM genrec.models WHERE name = 'tr_typed'), '[0, 1]',
          'a boolean action column is binary');
SELECT is((SELECT config #> '{train,w_action}' FROM genrec.models WHERE name = 'tr_typed'), '0.5',
          'options are stored in config.train');
SELECT is((SELECT source ->> 'tiebreak_col' FROM genrec.models WHERE name = 'tr_typed'), 'seq',
          'the tiebreak column is stored');
SELECT lives_ok($$SELECT * FROM genrec_train('tr_bin', 'SELECT user_id, item_id, ts, (action >= 3)::int AS click FROM tr_syn',
                  action_cols => '{click}', d_model => 8, n_layer => 1, max_len => 8, epochs => 1,
                  options => '{"binary_actions": ["click"]}')$$, 'an integer 0/1 column as a binary action');
SELECT is((SELECT config #> '{model,action_binary}' FROM genrec.models WHERE name = 'tr_bin'), '[1]',
          'binary_actions marks it binary');
SELECT lives_ok($$SELECT * FROM genrec_train('tr_notime', 'tr_syn', time_col => NULL, d_model => 8,
                  n_layer => 1, max_len => 8, epochs => 1)$$, 'time_col NULL: rows in table order');

-- MovieLens-100K, when the test runner loaded it (public.ml100k)
SELECT CASE WHEN to_regclass('public.ml100k') IS NULL
            THEN skip('public.ml100k not loaded (../shared/data/ml-100k missing)', 1)
            ELSE is((SELECT (users, items, interactions, epochs_run)::text
                       FROM genrec_train('tr_ml100k', 'public.ml100k', action_cols => '{rating}',
                                         d_model => 16, n_layer => 1, max_len => 20, epochs => 2)),
                    '(943,1682,100000,2)', 'MovieLens-100K: 943 users, 1682 items, 100000 ratings')
       END;
SELECT CASE WHEN to_regclass('public.ml100k') IS NULL
            THEN skip('public.ml100k not loaded (../shared/data/ml-100k missing)', 1)
            ELSE ok((SELECT (metrics #>> '{test,hr@10}')::float8 > 0
                            AND (metrics #>> '{data,actions,0,max}')::int = 5
                       FROM genrec.models WHERE name = 'tr_ml100k'),
                    'MovieLens-100K: test HR@10 above zero, ratings 1..5')
       END;

-- bad input, each with its SQLSTATE; the catalogue does not change
CREATE TEMP TABLE before AS SELECT name, version FROM genrec.models;
SELECT throws_ok(format('SELECT * FROM genrec_train(%s)', call),
                 code, NULL, format('%s: %s', why, code))
  FROM bad;
SELECT throws_ok($$SELECT * FROM genrec_train('x', 'tr_syn', layout => 'hstu')$$, '22023',
                 'genrec_train: unknown layout "hstu"', 'the layout message names it');
SELECT throws_ok($$SELECT * FROM genrec_train('x', 'tr_syn', user_col => 'uid')$$, '42703',
                 'genrec_train: user column "uid" does not exist in the source',
                 'the column message names the column');
SELECT set_eq($$SELECT name, version FROM genrec.models$$, $$SELECT name, version FROM before$$,
              'failed trainings leave the catalogue unchanged');

SELECT * FROM finish();
ROLLBACK;
