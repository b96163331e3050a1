-- genrec_report: the HTML report of one or several models from SQL (the engine's renderer,
-- the same page as `genrec report`); test/pg/test_report_render.sh renders it in Chromium.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;

CREATE TABLE rep_syn AS SELECT * FROM genrec_synthetic(80, 60, 10, 17);
CREATE FUNCTION pg_temp.train(name text, layout text, seed bigint) RETURNS integer
  LANGUAGE sql AS $f$
  SELECT t.version FROM genrec.genrec_train(name, 'rep_syn', layout => layout, d_model => 8,
    n_layer => 1, max_len => 6, epochs => 4, seed => seed,
    options => '{"head_hidden": 8, "n_buckets": 4}') t
$f$;
SELECT pg_temp.train('rep_lac_1', 'lac', 1), pg_temp.train('rep_lac_2', 'lac', 2),
       pg_temp.train('rep_int_1', 'int', 1), pg_temp.train('<b>&"x"', 'item', 1);
CREATE ROLE genrec_rep_bob LOGIN;

SELECT plan(16);

CREATE TEMP TABLE one AS SELECT genrec_report('rep_lac_1') AS html;
SELECT ok((SELECT html LIKE '<!DOCTYPE html>%</html>' || chr(10) FROM one), 'a whole HTML document');
SELECT ok((SELECT html NOT ILIKE '%<script%' AND html NOT ILIKE '%http://%.js%' FROM one),
          'without script or anything fetched');
SELECT is((SELECT array_agg(m[1] ORDER BY m[1]) FROM one, regexp_matches(html, 'data-chart="([a-z]+)"', 'g') m),
          ARRAY['loss', 'rmse', 'test', 'valid'],
          'charts: loss, validation ranking, validation RMSE, test against popularity');
SELECT is((SELECT count(*)::int FROM one, regexp_matches(html, '<polyline class="series" data-series="valid (HR|NDCG)@10', 'g')), 2,
          'the validation chart draws HR@10 and NDCG@10');
SELECT is((SELECT (regexp_match(html, 'data-series="training loss"[^>]*points="([^"]*)"'))[1] FROM one) ~ '^(\S+,\S+ ){4}$',
          true, 'the loss curve has one point per epoch (4)');
SELECT ok((SELECT html LIKE '%rep_lac_1 v1%' FROM one), 'titled with the model and its version');
SELECT ok((SELECT position(to_char((metrics #>> '{test,hr@10}')::float8, 'FM0.0000') IN (SELECT html FROM one)) > 0
             FROM genrec.models WHERE name = 'rep_lac_1'),
          'the table shows the stored test HR@10');
SELECT ok((SELECT position(to_char((metrics #>> '{test,actions,0,baseline_rmse}')::float8, 'FM0.0000') IN (SELECT html FROM one)) > 0
             FROM genrec.models WHERE name = 'rep_lac_1'),
          'and the bias baseline RMSE beside the model''s');
SELECT ok((SELECT genrec_report('<b>&"x"') LIKE '%&lt;b&gt;&amp;&quot;x&quot; v1%'),
          'names are escaped');
SELECT ok((SELECT genrec_report('<b>&"x"') NOT LIKE '%data-chart="rmse"%'),
          'a layout without an action head has no RMSE chart');

CREATE TEMP TABLE many AS SELECT genrec_report(ARRAY['rep_lac_1', 'rep_lac_2', 'rep_int_1']) AS html;
SELECT is((SELECT count(*)::int FROM many, regexp_matches(html, 'data-chart="comparison"', 'g')), 1,
          'several models: one comparison chart');
SELECT is((SELECT count(*)::int FROM many, regexp_matches(html, 'class="errorbar"', 'g')), 2,
          'with error bars for the layout of two models (HR@10 and NDCG@10), none for one model');
SELECT is((SELECT count(*)::int FROM many, regexp_matches(html, '<section class="model">', 'g')), 3,
          'and each model''s own section');

SELECT throws_ok($$SELECT genrec_report('rep_nothing')$$, '42704', NULL, 'an unknown model is 42704');
SELECT throws_ok($$SELECT genrec_report(ARRAY['rep_lac_1', NULL])$$, '22004', NULL, 'a NULL name is 22004');
SET LOCAL ROLE genrec_rep_bob;
SELECT throws_ok($$SELECT genrec.genrec_report('rep_lac_1')$$, '42501', NULL,
                 'another role''s model without a grant is 42501');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
