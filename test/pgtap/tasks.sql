-- Several action tasks at once (README "Several action tasks"): a table with one continuous
-- and one binary column trained together with per-task loss weights; what genrec_evaluate and
-- the catalogue report per task (RMSE; log loss, NE against the training base rate, AUC);
-- task weights that change the model; bad task weights.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;
SET genrec.device = cpu;
SELECT plan(14);

CREATE TABLE tk_syn AS
  SELECT user_id, item_id, action AS rating, action >= 3.5 AS liked, ts
    FROM genrec_synthetic(200, 100, 20, 9);

CREATE FUNCTION pg_temp.tk(name text, weights text) RETURNS integer LANGUAGE sql AS $f$
  SELECT users FROM genrec_train(name, 'tk_syn', action_cols => '{rating,liked}', layout => 'lac',
                             d_model => 16, n_layer => 1, n_head => 2, max_len => 12,
                             epochs => 4, batch_size => 32, lr => 3e-3, seed => 5,
                             options => format('{"head_hidden": 16, "task_weights": %s}', weights)::jsonb)
$f$;

SELECT is(pg_temp.tk('tk_a', '[1, 1]'), 200, 'trains on a continuous and a binary column at once');
SELECT is(pg_temp.tk('tk_b', '[1, 0.25]'), 200, 'with per-task weights');
SELECT is((SELECT config #> '{train,task_weights}' FROM genrec.models WHERE name = 'tk_b'),
          '[1, 0.25]'::jsonb, 'the catalogue keeps the task weights');
SELECT is((SELECT config #> '{train,binary_actions}' FROM genrec.models WHERE name = 'tk_b'),
          '["liked"]'::jsonb, 'the boolean column is the binary task');

CREATE TEMP TABLE ev AS SELECT metric, value FROM genrec_evaluate('tk_a');
SELECT ok((SELECT value FROM ev WHERE metric = 'rmse:rating') BETWEEN 0 AND 1,
          'RMSE of the continuous task');
SELECT ok(NOT EXISTS (SELECT 1 FROM ev WHERE metric IN ('logloss:rating', 'ne:rating', 'auc:rating', 'rmse:liked')),
          'no binary metrics for the continuous task, no RMSE for the binary one');
SELECT ok((SELECT value FROM ev WHERE metric = 'logloss:liked') > 0, 'log loss of the binary task');
SELECT ok((SELECT value FROM ev WHERE metric = 'auc:liked') BETWEEN 0.55 AND 1,
          'AUC of the binary task: it learned something');
-- NE = log loss / entropy of the training split''s positive rate (users'' last two rows held out)
SELECT ok(abs((SELECT value FROM ev WHERE metric = 'ne:liked') -
              (SELECT value FROM ev WHERE metric = 'logloss:liked') /
              (SELECT -(p * ln(p) + (1 - p) * ln(1 - p))
                 FROM (SELECT avg(liked::int)::float8 AS p
                         FROM (SELECT liked, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC) AS back
                                 FROM tk_syn) x WHERE back > 2) b)) < 1e-6,
          'NE divides the log loss by the entropy of the training base rate');
SELECT is((SELECT (metrics #>> '{test,actions,1,auc}')::float8 FROM genrec.models WHERE name = 'tk_a'),
          (SELECT value FROM ev WHERE metric = 'auc:liked'), 'the training summary stores the test AUC');
SELECT isnt((SELECT value FROM genrec_evaluate('tk_b') WHERE metric = 'logloss:liked'),
            (SELECT value FROM ev WHERE metric = 'logloss:liked'), 'the weights change the model');

SELECT throws_ok($$SELECT pg_temp.tk('tk_c', '[1]')$$, '22023', NULL,
                 'one task weight for two action columns');
SELECT throws_ok($$SELECT pg_temp.tk('tk_c', '[1, -2]')$$, '22023', NULL, 'a negative task weight');
SELECT is((SELECT count(*)::int FROM genrec.models WHERE name = 'tk_c'), 0, 'failed calls store nothing');

SELECT * FROM finish();
ROLLBACK;
