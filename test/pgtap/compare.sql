-- genrec_compare_layouts: Table 2's shape from one call on a small synthetic table — the
-- metrics each layout reports, the baselines, mean/sd over seeds equal to the models'
-- own metrics, the change against the reference, models dropped or kept, names that exist
-- already, bad arguments, and the source read with the caller's rights (a role that may not
-- read it gets 42501 from the genrec_train underneath).
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;
SET genrec.device = cpu;
SELECT plan(18);

CREATE TABLE cp_syn AS SELECT * FROM genrec_synthetic(80, 60, 10, 6);

CREATE TEMP TABLE cp AS
  SELECT * FROM genrec_compare_layouts('cp_syn', '{lac,l4,item}', '{1,2}', d_model => 8,
                                       n_layer => 1, n_head => 2, max_len => 6, epochs => 2,
                                       batch_size => 32,
                                       options => '{"head_hidden": 8, "n_buckets": 4}',
                                       keep_models => true, model_prefix => 'cpk');

SELECT set_eq($$SELECT metric FROM cp WHERE layout = 'lac'$$,
              $$VALUES ('hr@10'), ('ndcg@10'), ('hr@50'), ('ndcg@50'), ('mrr'), ('rmse:action')$$,
              'lac: ranking metrics and the RMSE of its action');
SELECT set_eq($$SELECT metric FROM cp WHERE layout = 'l4'$$, $$VALUES ('rmse:action')$$,
              'l4: an RMSE only (no item head)');
SELECT set_eq($$SELECT metric FROM cp WHERE layout = 'item'$$,
              $$VALUES ('hr@10'), ('ndcg@10'), ('hr@50'), ('ndcg@50'), ('mrr')$$,
              'item: rankings only');
SELECT set_eq($$SELECT layout, metric FROM cp WHERE layout IN ('popularity', 'bias')$$,
              $$VALUES ('popularity', 'hr@10'), ('popularity', 'ndcg@10'), ('popularity', 'hr@50'),
                       ('popularity', 'ndcg@50'), ('bias', 'rmse:action')$$,
              'the popularity and bias baselines');
SELECT ok((SELECT bool_and(n_seeds = 2) FROM cp), 'every mean is over two seeds');
SELECT ok((SELECT bool_and(sd IS NOT NULL AND sd >= 0) FROM cp), 'a sample sd for every metric');
SELECT is((SELECT mean FROM cp WHERE layout = 'lac' AND metric = 'hr@10'),
          (SELECT avg((metrics #>> '{test,hr@10}')::float8) FROM genrec.models
            WHERE name IN ('cpk_lac_s1', 'cpk_lac_s2')),
          'the mean is that of the kept models'' test metrics');
SELECT is((SELECT mean FROM cp WHERE layout = 'l4' AND metric = 'rmse:action'),
          (SELECT avg(test_rmse) FROM genrec.model_overview WHERE name IN ('cpk_l4_s1', 'cpk_l4_s2')),
          'l4''s RMSE is that of its models');
SELECT ok((SELECT bool_and(change = 0) FROM cp WHERE layout = 'lac'), 'the reference changes by 0');
SELECT ok((SELECT abs(i.change - (i.mean - l.mean) / l.mean) < 1e-12
             FROM cp i JOIN cp l ON l.layout = 'lac' AND l.metric = i.metric
            WHERE i.layout = 'item' AND i.metric = 'ndcg@10'),
          'change is relative to the reference layout');
SELECT is((SELECT count(*)::int FROM genrec.models WHERE name LIKE 'cpk\_%'), 6,
          'keep_models keeps one model per layout and seed');

-- without keep_models nothing stays; the same seeds give the same numbers
SELECT is((SELECT array_agg(mean ORDER BY layout, metric)
             FROM genrec_compare_layouts('cp_syn', '{lac,l4,item}', '{1,2}', d_model => 8,
                                         n_layer => 1, n_head => 2, max_len => 6, epochs => 2,
                                         batch_size => 32,
                                         options => '{"head_hidden": 8, "n_buckets": 4}',
                                         model_prefix => 'cpd')),
          (SELECT array_agg(mean ORDER BY layout, metric) FROM cp),
          'a second comparison reproduces the first');
SELECT is((SELECT count(*)::int FROM genrec.model_names WHERE name LIKE 'cpd\_%'), 0,
          'the models are dropped again by default');

-- baselines come from the first model that has them: item reports no bias, l4 no popularity
SELECT set_eq($$SELECT layout, metric, n_seeds FROM genrec_compare_layouts('cp_syn', '{item,l4}', '{1}',
                   d_model => 8, n_layer => 1, n_head => 2, max_len => 6, epochs => 1,
                   options => '{"head_hidden": 8, "n_buckets": 4}', model_prefix => 'cpb')
                 WHERE layout IN ('popularity', 'bias')$$,
              $$VALUES ('popularity', 'hr@10', 1), ('popularity', 'ndcg@10', 1), ('popularity', 'hr@50', 1),
                       ('popularity', 'ndcg@50', 1), ('bias', 'rmse:action', 1)$$,
              'both baselines whichever layout comes first');
SELECT throws_ok($$SELECT * FROM genrec_compare_layouts('cp_syn', '{lac}', '{1}', epochs => 1,
                   model_prefix => 'cpk')$$, '42710', NULL, 'a model name that exists already');
SELECT throws_ok($$SELECT * FROM genrec_compare_layouts('cp_syn', '{lac}', '{1,1}', epochs => 1)$$,
                 '22023', NULL, 'repeated seeds');
SELECT throws_ok($$SELECT * FROM genrec_compare_layouts('cp_syn', '{lac,item}', '{1}', epochs => 1,
                   reference => 'pc')$$, '22023', NULL, 'a reference outside the layouts');

-- the source is read with the caller's rights
CREATE ROLE cp_nobody;
GRANT USAGE ON SCHEMA public TO cp_nobody;
SET ROLE cp_nobody;
SELECT throws_ok($$SELECT * FROM genrec.genrec_compare_layouts('public.cp_syn', '{lac}', '{1}', epochs => 1,
                   model_prefix => 'cpn')$$, '42501', NULL,
                 'a role that may not read the source cannot compare on it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
