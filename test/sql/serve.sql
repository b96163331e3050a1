-- Serving with small fixed models (test/fixtures/*.safetensors, trained by the engine program
-- on genrec_synthetic(150, 80, 20, 7)), read by psql on the client side (base64 in a variable;
-- pg_regress runs psql from the repository root), so `make installcheck` needs nothing in the
-- server's data directory. Floats are rounded so that the output is stable.
SET client_min_messages = warning;
SET search_path = public, genrec;
SET genrec.device = cpu;
SET extra_float_digits = 0;

CREATE TABLE events AS
  SELECT user_id, item_id, action::numeric(3,1)::float8 AS rating, ts
    FROM genrec_synthetic(150, 80, 20, 7);
CREATE INDEX events_user_idx ON events (user_id);
ANALYZE events;

\set fx_lac `base64 -w0 test/fixtures/lac.safetensors`
\set fx_int `base64 -w0 test/fixtures/int.safetensors`
\set fx_pc `base64 -w0 test/fixtures/pc.safetensors`
\set fx_item `base64 -w0 test/fixtures/item.safetensors`
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'rg_' || l, 1, l, '{}',
       jsonb_build_object('relation', 'public.events', 'user_col', 'user_id', 'item_col', 'item_id',
                          'action_cols', CASE WHEN l = 'item' THEN '[]'::jsonb ELSE '["rating"]'::jsonb END,
                          'time_col', 'ts', 'tiebreak_col', NULL),
       80, decode(CASE l WHEN 'lac' THEN :'fx_lac' WHEN 'int' THEN :'fx_int'
                         WHEN 'pc' THEN :'fx_pc' ELSE :'fx_item' END, 'base64'),
       (SELECT oid FROM pg_roles WHERE rolname = current_user), true
  FROM unnest(ARRAY['lac', 'int', 'pc', 'item']) l;

-- one score per candidate: the predicted rating (lac, int, pc), the retrieval logit (item);
-- NULL for a NULL or unknown candidate
SELECT l AS layout,
       (SELECT array_agg(round(v::numeric, 3) ORDER BY o)
          FROM unnest(genrec_score('rg_' || l, 1, ARRAY[1, 2, 3, NULL, 99999]::bigint[]))
               WITH ORDINALITY s(v, o)) AS scores
  FROM unnest(ARRAY['lac', 'int', 'pc', 'item']) l;

SELECT item_id, known, round(retrieval_logit::numeric, 3) AS logit,
       (SELECT array_agg(round(a::numeric, 3)) FROM unnest(actions) a) AS actions
  FROM genrec_score_detail('rg_int', 7, ARRAY[10, 20, 30, NULL, 99999]::bigint[]);

-- many users in one statement
SELECT user_id, (SELECT array_agg(round(v::numeric, 2)) FROM unnest(s) v) AS scores
  FROM (SELECT u AS user_id, genrec_score('rg_lac', u, ARRAY[5, 6]::bigint[]) AS s
          FROM generate_series(1, 5) u) x;

-- the same history given as a value
SELECT (SELECT array_agg(round(v::numeric, 3))
          FROM unnest(genrec_score('rg_lac', h, ARRAY[1, 2, 3]::bigint[])) v) AS from_history
  FROM (SELECT genrec_history(array_agg(item_id ORDER BY ts), array_agg(rating::real ORDER BY ts)) AS h
          FROM events WHERE user_id = 1) x;

-- top 5, seen items excluded (and not)
SELECT rank, item_id, round(score::numeric, 3) AS score FROM genrec_recommend('rg_item', 1, 5);
SELECT rank, item_id FROM genrec_recommend('rg_lac', 1, 5, exclude_seen => false);
SELECT count(*) AS seen_in_top20
  FROM genrec_recommend('rg_pc', 3, 20) r JOIN events e ON e.user_id = 3 AND e.item_id = r.item_id;

-- cold start (lac, int) and the errors of the layouts that need a history
SELECT (SELECT array_agg(round(v::numeric, 3)) FROM unnest(genrec_score('rg_lac', 424242, ARRAY[1, 2]::bigint[])) v)
       AS cold_start;
SELECT genrec_score('rg_item', 424242, ARRAY[1, 2]::bigint[]);
SELECT genrec_score('rg_pc', 424242, ARRAY[1, 2]::bigint[]);
SELECT * FROM genrec_recommend('rg_lac', 424242);

-- the default model
SELECT genrec_score(1, ARRAY[1]::bigint[]);
SET genrec.default_model = 'rg_int';
SELECT (SELECT array_agg(round(v::numeric, 3)) FROM unnest(genrec_score(7, ARRAY[10, 20]::bigint[])) v) AS scores;
SELECT rank, item_id FROM genrec_recommend(7, 3);
RESET genrec.default_model;

-- other errors
SELECT genrec_score('nope', 1, ARRAY[1]::bigint[]);
SELECT * FROM genrec_recommend('rg_lac', 1, 0);
SELECT genrec_score('rg_lac', 1, '{{1},{2}}'::bigint[]);
SELECT * FROM genrec_evaluate('rg_lac', 'train');
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
VALUES ('rg_corrupt', 1, 'lac', '{}', 'null', 80, '\x0800000000000000'::bytea,
        (SELECT oid FROM pg_roles WHERE rolname = current_user), true);
SELECT genrec_score('rg_corrupt', genrec_history(ARRAY[1]::bigint[]), ARRAY[1]::bigint[]);
SELECT genrec_score('rg_lac', 1, '{}'::bigint[]) AS no_candidates;

-- evaluation (leave-one-out, full catalogue, seen items excluded)
SELECT metric, k, round(value::numeric, 4) AS value FROM genrec_evaluate('rg_lac');
SELECT metric, k, round(value::numeric, 4) AS value FROM genrec_evaluate('rg_item', 'valid', '{5}');

-- what is loaded
SELECT name, version, deployed, layout, n_items, n_actions, action_cols, d_model, n_layer, n_head,
       max_len, n_params, bytes, shared
  FROM genrec_model_info('rg_pc');
SELECT name, version, state, shared, bytes, attached, in_this_backend
  FROM genrec_cache_status() WHERE name LIKE 'rg\_%' ORDER BY name;

-- the history query an index serves
SELECT history_query FROM genrec_model_info('rg_lac');
SET plan_cache_mode = force_generic_plan;
DO $$ BEGIN EXECUTE format('PREPARE hq(bigint, bigint) AS %s',
                           (SELECT history_query FROM genrec.genrec_model_info('rg_lac'))); END $$;
EXPLAIN (COSTS OFF) EXECUTE hq(1, 20);
DEALLOCATE hq;
RESET plan_cache_mode;

-- a deploy switches the next statement
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'rg_lac', 2, 'int', config, source, n_items, weights, owner, false FROM genrec.models WHERE name = 'rg_int';
SELECT version, layout FROM genrec_model_info('rg_lac');
BEGIN;
UPDATE genrec.models SET deployed = false WHERE name = 'rg_lac';
UPDATE genrec.models SET deployed = true WHERE name = 'rg_lac' AND version = 2;
SELECT version, layout FROM genrec_model_info('rg_lac');
ROLLBACK;
SELECT version, layout FROM genrec_model_info('rg_lac');

DELETE FROM genrec.models WHERE name LIKE 'rg\_%';
SELECT genrec_cache_evict('rg_lac') >= 1 AS evicted;
DROP TABLE events;
