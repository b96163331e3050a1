-- Serving: genrec_score, genrec_score_detail, genrec_recommend, genrec_model_info and the model
-- cache, against the engine program's output for the same models and histories
-- (test/pg/serve_fixture.sh: genrec_fixture.events, genrec_fixture.cli, models fx_<layout>).
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.device = cpu;
SELECT plan(71);

CREATE TEMP TABLE cands AS
  SELECT array_agg(i::bigint ORDER BY i) || 99999::bigint AS c FROM generate_series(1, 20) i;
CREATE TEMP TABLE layouts (layout text, acts boolean);
INSERT INTO layouts VALUES ('lac', true), ('int', true), ('pc', true), ('item', false);

-- what `genrec score` printed, one row per candidate
CREATE TEMP VIEW cli_score AS
SELECT f.layout, f.split AS who, x.ord::int AS ord, (x.c ->> 'item')::bigint AS item,
       (x.c ->> 'known')::boolean AS known, (x.c ->> 'logit')::float8 AS logit,
       (SELECT e.value::float8 FROM jsonb_each_text(x.c -> 'actions') e LIMIT 1) AS action
  FROM genrec_fixture.cli f, jsonb_array_elements(f.doc -> 'candidates') WITH ORDINALITY x(c, ord)
 WHERE f.command = 'score';

-- the histories of users 1..3 as genrec_history values
CREATE TEMP TABLE hist AS
SELECT user_id, 'user' || user_id AS who,
       genrec_history(array_agg(item_id ORDER BY ts), array_agg(rating::real ORDER BY ts)) AS h
  FROM genrec_fixture.events WHERE user_id IN (1, 2, 3) GROUP BY user_id;

-- "a" close to "b" (relative 1e-5), NULL matching NULL
CREATE FUNCTION pg_temp.near(a float8, b float8) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT (a IS NULL AND b IS NULL) OR abs(a - b) <= 1e-5 * greatest(1, abs(b)) $$;

-- EXPLAIN output of a query as one text
CREATE FUNCTION pg_temp.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
    t text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (COSTS OFF, VERBOSE) ' || q LOOP
        t := t || r || E'\n';
    END LOOP;
    RETURN t;
END $$;

-- ---------------------------------------------------------------- scores equal the engine's

CREATE TEMP TABLE sql_user AS
SELECT l.layout, h.who, s.ord::int AS ord, s.v
  FROM layouts l, hist h, cands,
       unnest(genrec_score('fx_' || l.layout, h.user_id, cands.c)) WITH ORDINALITY s(v, ord);
SELECT is((SELECT count(*)::int FROM sql_user), 4 * 3 * 21,
          'genrec_score returns one value per candidate for every layout and user');
SELECT is_empty($$
    SELECT s.* FROM sql_user s JOIN layouts l USING (layout) JOIN cli_score c USING (layout, who, ord)
     WHERE (s.v IS NULL) <> (NOT c.known)
        OR (s.v IS NOT NULL AND NOT pg_temp.near(s.v, CASE WHEN l.acts THEN c.action ELSE c.logit END))$$,
    'genrec_score(model, user_id, candidates) equals `genrec score --history` (first action; logit for item); unknown items are NULL');
SELECT is((SELECT count(*)::int FROM sql_user s JOIN cli_score c USING (layout, who, ord)), 4 * 3 * 21,
          'every SQL score has its engine counterpart');

CREATE TEMP TABLE sql_hist AS
SELECT l.layout, h.who, s.ord::int AS ord, s.v
  FROM layouts l, hist h, cands,
       unnest(genrec_score('fx_' || l.layout, h.h, cands.c)) WITH ORDINALITY s(v, ord);
SELECT is_empty($$
    SELECT s.* FROM sql_hist s JOIN layouts l USING (layout) JOIN cli_score c USING (layout, who, ord)
     WHERE (s.v IS NULL) <> (NOT c.known)
        OR (s.v IS NOT NULL AND NOT pg_temp.near(s.v, CASE WHEN l.acts THEN c.action ELSE c.logit END))$$,
    'genrec_score(model, history, candidates) equals `genrec score --history` for the same history');
SELECT is((SELECT count(*)::int FROM sql_hist), 4 * 3 * 21, 'the history overload scores every candidate');

CREATE TEMP TABLE sql_detail AS
SELECT l.layout, h.who, d.*
  FROM layouts l, hist h, cands,
       genrec_score_detail('fx_' || l.layout, h.user_id, cands.c)
         WITH ORDINALITY d(item_id, known, retrieval_logit, actions, ord);
SELECT is_empty($$
    SELECT d.* FROM sql_detail d JOIN layouts l USING (layout) JOIN cli_score c USING (layout, who, ord)
     WHERE d.item_id <> c.item OR d.known <> c.known
        OR (c.known AND NOT pg_temp.near(d.retrieval_logit, c.logit))
        OR (c.known AND l.acts AND NOT pg_temp.near(d.actions[1], c.action))
        OR (NOT l.acts AND d.actions IS NOT NULL)
        OR (NOT c.known AND (d.retrieval_logit IS NOT NULL OR d.actions IS NOT NULL))$$,
    'genrec_score_detail equals the engine''s logits and actions, in candidate order');
SELECT is((SELECT count(*)::int FROM sql_detail), 4 * 3 * 21, 'genrec_score_detail returns one row per candidate');
SELECT is_empty($$
    SELECT 1 FROM layouts l, hist h, cands
     WHERE ARRAY(SELECT row(d.*)::text FROM genrec_score_detail('fx_' || l.layout, h.h, cands.c) d)
           IS DISTINCT FROM
           ARRAY(SELECT row(d.*)::text FROM genrec_score_detail('fx_' || l.layout, h.user_id, cands.c) d)$$,
    'genrec_score_detail(model, history, ...) equals genrec_score_detail(model, user_id, ...) for the whole history');

-- ---------------------------------------------------------------- shapes and NULLs

SELECT is(genrec_score('fx_lac', 1, '{}'::bigint[]), '{}'::real[], 'an empty candidate array gives an empty array');
SELECT is((SELECT count(*)::int FROM genrec_score_detail('fx_lac', 1, '{}'::bigint[])), 0,
          'genrec_score_detail of no candidates has no rows');
SELECT ok((SELECT s[2] IS NULL AND s[1] IS NOT NULL AND s[3] IS NOT NULL AND cardinality(s) = 3
             FROM genrec_score('fx_lac', 1, ARRAY[1, NULL, 2]::bigint[]) s),
          'a NULL candidate gives NULL at its position');
SELECT is(genrec_score('fx_lac', 1, '[5:6]={1,2}'::bigint[]), genrec_score('fx_lac', 1, '{1,2}'::bigint[]),
          'results are indexed from 1 whatever the candidates'' lower bound');
SELECT is(genrec_score(NULL::text, 1, ARRAY[1]::bigint[]), NULL, 'NULL model: NULL (STRICT)');
SELECT is(genrec_score('fx_lac', NULL::bigint, ARRAY[1]::bigint[]), NULL, 'NULL user: NULL (STRICT)');
SELECT is(genrec_score('fx_lac', 1, NULL::bigint[]), NULL, 'NULL candidates: NULL (STRICT)');
SELECT is(genrec_score('fx_lac', 1, ARRAY[1, 1, 1]::bigint[]),
          array_fill((genrec_score('fx_lac', 1, ARRAY[1]::bigint[]))[1], ARRAY[3]),
          'a repeated candidate gets the same score each time');

-- ---------------------------------------------------------------- many rows in one statement

CREATE TEMP TABLE one_by_one (user_id int, lac real[], pc real[]);
DO $$
BEGIN
    FOR u IN 1..150 LOOP
        INSERT INTO one_by_one
        VALUES (u, genrec.genrec_score('fx_lac', u, ARRAY[4, 5, 6]::bigint[]),
                   genrec.genrec_score('fx_pc', u, ARRAY[4, 5, 6]::bigint[]));
    END LOOP;
END $$;
SELECT is((SELECT count(*)::int FROM (
             SELECT u, genrec_score('fx_lac', u, ARRAY[4, 5, 6]::bigint[]) AS lac,
                    genrec_score('fx_pc', u, ARRAY[4, 5, 6]::bigint[]) AS pc
               FROM generate_series(1, 150) u) x
             JOIN one_by_one o ON o.user_id = x.u AND o.lac = x.lac AND o.pc = x.pc
            WHERE cardinality(x.lac) = 3 AND array_position(x.lac, NULL) IS NULL),
          150, 'genrec_score in a select list over 150 users (two models interleaved) equals one call per user');

-- ---------------------------------------------------------------- recommend

SELECT is_empty($$
    SELECT l.layout FROM layouts l, genrec_fixture.cli c
     WHERE c.command = 'recommend' AND c.layout = l.layout
       AND ARRAY(SELECT r.item_id FROM genrec_recommend('fx_' || l.layout, 1, 10) r ORDER BY r.rank)
           IS DISTINCT FROM ARRAY(SELECT (e ->> 'item')::bigint FROM jsonb_array_elements(c.doc -> 'items') e)$$,
    'genrec_recommend(model, user_id, 10) ranks the items `genrec recommend --user --data` ranks, for every layout');
SELECT is_empty($$
    SELECT 1 FROM layouts l, genrec_fixture.cli c, genrec_recommend('fx_' || l.layout, 1, 10) r,
           jsonb_array_elements(c.doc -> 'items') e
     WHERE c.command = 'recommend' AND c.layout = l.layout AND (e ->> 'rank')::int = r.rank
       AND NOT pg_temp.near(r.score, (e ->> 'logit')::float8)$$,
    'genrec_recommend scores equal the engine''s retrieval logits');
SELECT is_empty($$
    SELECT u.u, r.item_id FROM generate_series(1, 30) u, genrec_recommend('fx_lac', u.u, 20) r,
           genrec_fixture.events e
     WHERE e.user_id = u.u AND e.item_id = r.item_id$$,
    'genrec_recommend excludes every item the user has seen');
SELECT ok((SELECT count(*) FROM genrec_recommend('fx_lac', 1, 20, false) r
             JOIN genrec_fixture.events e ON e.user_id = 1 AND e.item_id = r.item_id) > 0,
          'with exclude_seen => false seen items may come back');
SELECT is((SELECT array_agg(rank ORDER BY rank) FROM genrec_recommend('fx_lac', 1, 5)), ARRAY[1, 2, 3, 4, 5],
          'ranks are 1..k');
SELECT ok((SELECT bool_and(score >= coalesce(prev, score)) FROM (
             SELECT score, lag(score) OVER (ORDER BY rank DESC) AS prev FROM genrec_recommend('fx_lac', 1, 10)) x),
          'scores do not increase with rank');
SELECT is((SELECT count(*)::int FROM genrec_recommend('fx_item', 1, 1000, false)), 80,
          'k above the catalogue returns the whole catalogue');
SELECT is((SELECT count(*)::int FROM genrec_recommend('fx_item', 1, 1000)),
          80 - (SELECT count(DISTINCT item_id)::int FROM genrec_fixture.events WHERE user_id = 1),
          'k above the catalogue returns every unseen item');
SELECT is(ARRAY(SELECT row(r.*)::text FROM genrec_recommend('fx_pc', (SELECT h FROM hist WHERE user_id = 2), 7) r),
          ARRAY(SELECT row(r.*)::text FROM genrec_recommend('fx_pc', 2, 7) r),
          'genrec_recommend(model, history) equals genrec_recommend(model, user_id) for the whole history');

-- ---------------------------------------------------------------- default model

SET LOCAL genrec.default_model = 'fx_int';
SELECT is(genrec_score(2, (SELECT c FROM cands)), genrec_score('fx_int', 2, (SELECT c FROM cands)),
          'genrec_score(user_id, candidates) uses genrec.default_model');
SELECT is(ARRAY(SELECT row(r.*)::text FROM genrec_recommend(2, 5) r),
          ARRAY(SELECT row(r.*)::text FROM genrec_recommend('fx_int', 2, 5) r),
          'genrec_recommend(user_id, k) uses genrec.default_model');
SET LOCAL genrec.default_model = '';
SELECT throws_ok($$SELECT genrec_score(2, ARRAY[1]::bigint[])$$, '22023', NULL,
                 'genrec_score without a model and without genrec.default_model: 22023');
SELECT throws_ok($$SELECT * FROM genrec_recommend(2::bigint)$$, '22023', NULL,
                 'genrec_recommend without a model and without genrec.default_model: 22023');

-- ---------------------------------------------------------------- users without history

SELECT ok((SELECT array_position(s, NULL) IS NULL AND cardinality(s) = 3
             FROM genrec_score('fx_lac', 999999, ARRAY[1, 2, 3]::bigint[]) s),
          'lac scores a user without interactions as a cold start');
SELECT ok((SELECT array_position(s, NULL) IS NULL FROM genrec_score('fx_int', 999999, ARRAY[1, 2, 3]::bigint[]) s),
          'int scores a user without interactions as a cold start');
SELECT is(genrec_score('fx_lac', 999999, ARRAY[1, 2, 3]::bigint[]),
          genrec_score('fx_lac', genrec_history('{}'::bigint[]), ARRAY[1, 2, 3]::bigint[]),
          'a user without interactions scores like an empty history');
SELECT throws_ok($$SELECT genrec_score('fx_item', 999999, ARRAY[1]::bigint[])$$, 'P0002', NULL,
                 'item: a user without interactions is P0002');
SELECT throws_ok($$SELECT genrec_score('fx_pc', 999999, ARRAY[1]::bigint[])$$, 'P0002', NULL,
                 'pc: a user without interactions is P0002');
SELECT throws_ok($$SELECT genrec_score('fx_pc', genrec_history('{}'::bigint[]), ARRAY[1]::bigint[])$$, 'P0002', NULL,
                 'pc: an empty history is P0002');
SELECT throws_ok($$SELECT * FROM genrec_recommend('fx_lac', 999999)$$, 'P0002', NULL,
                 'genrec_recommend for a user without interactions is P0002');

-- ---------------------------------------------------------------- errors

SELECT throws_ok($$SELECT genrec_score('no_such_model', 1, ARRAY[1]::bigint[])$$, '42704', NULL,
                 'an unknown model is 42704 (genrec_score)');
SELECT throws_ok($$SELECT * FROM genrec_recommend('no_such_model', 1)$$, '42704', NULL,
                 'an unknown model is 42704 (genrec_recommend)');
SELECT throws_ok($$SELECT * FROM genrec_model_info('no_such_model')$$, '42704', NULL,
                 'an unknown model is 42704 (genrec_model_info)');
SELECT throws_ok($$SELECT * FROM genrec_recommend('fx_lac', 1, 0)$$, '22023', NULL, 'k = 0 is 22023');
SELECT is(ARRAY(SELECT row(r.*)::text FROM genrec_recommend('fx_lac', 4) r),
          ARRAY(SELECT row(r.*)::text FROM genrec_recommend('fx_lac', 4::bigint, 10, true) r),
          'genrec_recommend(''model'', 4) resolves to the model-name overload');
SELECT throws_ok($$SELECT genrec_score('fx_lac', 1, '{{1,2},{3,4}}'::bigint[])$$, '22023', NULL,
                 'a two-dimensional candidate array is 22023');

INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT n, 1, 'lac', '{}', s::jsonb, 80, w, (SELECT oid FROM pg_roles WHERE rolname = current_user), true
  FROM (VALUES
    ('fx_garbage', '{"relation": "genrec_fixture.events", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts"}',
     '\x000102030405060708'::bytea),
    ('fx_truncated', '{"relation": "genrec_fixture.events", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts"}',
     substring(pg_read_binary_file('genrec_fixtures/lac.safetensors') FROM 1 FOR 5000)),
    ('fx_nosource', 'null', pg_read_binary_file('genrec_fixtures/lac.safetensors')),
    ('fx_badsource', '{"relation": "genrec_fixture.events"}', pg_read_binary_file('genrec_fixtures/lac.safetensors')),
    ('fx_texttype', '{"relation": "genrec_fixture.events", "user_col": "user_id", "item_col": "item_id", "action_cols": ["ts"], "time_col": "ts"}',
     pg_read_binary_file('genrec_fixtures/lac.safetensors')),
    ('fx_notable', '{"relation": "genrec_fixture.no_such_table", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts"}',
     pg_read_binary_file('genrec_fixtures/lac.safetensors')),
    ('fx_query', '{"query": "SELECT * FROM genrec_fixture.events WHERE rating > 0", "user_col": "user_id", "item_col": "item_id", "action_cols": ["rating"], "time_col": "ts"}',
     pg_read_binary_file('genrec_fixtures/lac.safetensors'))
  ) v(n, s, w);

SELECT throws_ok($$SELECT genrec_score('fx_garbage', 1, ARRAY[1]::bigint[])$$, 'XX001', NULL,
                 'weights that are not safetensors are XX001');
SELECT throws_ok($$SELECT genrec_score('fx_truncated', 1, ARRAY[1]::bigint[])$$, 'XX001', NULL,
                 'truncated weights are XX001');
SELECT throws_ok($$SELECT genrec_score('fx_nosource', 1, ARRAY[1]::bigint[])$$, '55000', NULL,
                 'a user id for a model without a source is 55000');
SELECT is(genrec_score('fx_nosource', (SELECT h FROM hist WHERE user_id = 1), ARRAY[1, 2]::bigint[]),
          genrec_score('fx_lac', 1, ARRAY[1, 2]::bigint[]),
          'a model without a source still scores a given history');
SELECT throws_ok($$SELECT genrec_score('fx_badsource', 1, ARRAY[1]::bigint[])$$, '42P17', NULL,
                 'a source mapping without user and item columns is 42P17');
SELECT throws_ok($$SELECT genrec_score('fx_texttype', 1, ARRAY[1]::bigint[])$$, '42804', NULL,
                 'an action column of an unsupported type is 42804');
SELECT throws_ok($$SELECT genrec_score('fx_notable', 1, ARRAY[1]::bigint[])$$, '42P01', NULL,
                 'a source table that does not exist is 42P01');
SELECT is(genrec_score('fx_query', 3, (SELECT c FROM cands)), genrec_score('fx_lac', 3, (SELECT c FROM cands)),
          'a query source serves like the table it reads');

-- ---------------------------------------------------------------- versions and deploys

INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'fx_switch', v, l, '{}', source, 80, pg_read_binary_file('genrec_fixtures/' || l || '.safetensors'),
       owner, v = 1
  FROM genrec.models, (VALUES (1, 'lac'), (2, 'int')) x(v, l)
 WHERE name = 'fx_lac';
SELECT is(genrec_score('fx_switch', 1, (SELECT c FROM cands)), genrec_score('fx_lac', 1, (SELECT c FROM cands)),
          'the deployed version serves (version 1)');
UPDATE genrec.models SET deployed = false WHERE name = 'fx_switch';
UPDATE genrec.models SET deployed = true WHERE name = 'fx_switch' AND version = 2;
SELECT is(genrec_score('fx_switch', 1, (SELECT c FROM cands)), genrec_score('fx_int', 1, (SELECT c FROM cands)),
          'deploying version 2 switches the next statement to it');
SELECT is((SELECT version FROM genrec_model_info('fx_switch')), 2, 'genrec_model_info reports the deployed version');
UPDATE genrec.models SET deployed = false WHERE name = 'fx_switch';
UPDATE genrec.models SET deployed = true WHERE name = 'fx_switch' AND version = 1;
SELECT is(genrec_score('fx_switch', 1, (SELECT c FROM cands)), genrec_score('fx_lac', 1, (SELECT c FROM cands)),
          'rolling back to version 1 switches back');
UPDATE genrec.models SET deployed = false WHERE name = 'fx_switch';
SELECT is((SELECT row(version, deployed)::text FROM genrec_model_info('fx_switch')), '(2,f)',
          'with no version deployed the newest serves');

-- ---------------------------------------------------------------- the cache

SELECT is((SELECT row(shared, layout, n_items, n_actions, action_cols, d_model, n_layer, max_len)::text
             FROM genrec_model_info('fx_lac')),
          '(t,lac,80,1,{rating},16,1,20)', 'genrec_model_info describes the model and says it is shared');
SELECT ok((SELECT bool_and(state IN ('ready', 'superseded') AND shared AND attached >= 1 AND bytes > 0
                            AND segment IS NOT NULL)
             FROM genrec_cache_status() WHERE in_this_backend AND name LIKE 'fx\_%'),
          'models this backend uses are ready in shared memory and attached');
SELECT is((SELECT count(*)::int FROM genrec_cache_status() WHERE name IN ('fx_lac', 'fx_int', 'fx_pc', 'fx_item')
             AND state = 'ready' AND in_this_backend), 4, 'each fixture model is in the registry once');
SELECT ok(pg_temp.plan_text(format('SELECT * FROM (%s) q',
                                   replace(replace((SELECT history_query FROM genrec_model_info('fx_lac')),
                                                   '$1', '1'), '$2', '20'))) ~ 'Index',
          'the history query uses the index on the user column');

INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner, deployed)
SELECT 'fx_private', 1, layout, config, source, n_items, weights, owner, true FROM genrec.models WHERE name = 'fx_pc';
SET LOCAL genrec.shared_cache = off;
SELECT is(genrec_score('fx_private', 1, (SELECT c FROM cands)), genrec_score('fx_pc', 1, (SELECT c FROM cands)),
          'a private copy (genrec.shared_cache = off) scores like the shared one');
SELECT is((SELECT state || ' ' || shared FROM genrec_cache_status() WHERE name = 'fx_private'), 'private false',
          'genrec_cache_status lists the private copy');
RESET genrec.shared_cache;

-- ---------------------------------------------------------------- a parallel plan

-- the history forms run in parallel workers; the user-id forms read the owner's source with a
-- switched user and search_path, which workers cannot do, so they run above the Gather
CREATE TABLE genrec_fixture.requests AS
SELECT u AS user_id,
       (SELECT genrec_history(e.item_id, e.rating::real, e.ts ORDER BY e.ts)
          FROM genrec_fixture.events e WHERE e.user_id = u) AS h
  FROM generate_series(1, 150) u;
CREATE TEMP TABLE serial AS
SELECT user_id, genrec_score('fx_lac', h, ARRAY[1, 2, 3]::bigint[]) AS s,
       genrec_score('fx_lac', user_id, ARRAY[1, 2, 3]::bigint[]) AS su FROM genrec_fixture.requests;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SELECT ok(pg_temp.plan_text($$SELECT user_id, genrec.genrec_score('fx_lac', h, ARRAY[1, 2, 3]::bigint[])
                                FROM genrec_fixture.requests$$) ~ 'Parallel Seq Scan.*\n.*Output: user_id, genrec_score',
          'genrec_score of a history runs below Gather, in parallel workers');
SELECT is((SELECT count(*)::int FROM (
             SELECT user_id, genrec_score('fx_lac', h, ARRAY[1, 2, 3]::bigint[]) AS s
               FROM genrec_fixture.requests) p JOIN serial USING (user_id) WHERE p.s = serial.s), 150,
          'parallel workers score like the leader');
SELECT ok(pg_temp.plan_text($$SELECT user_id, genrec.genrec_score('fx_lac', user_id, ARRAY[1, 2, 3]::bigint[])
                                FROM genrec_fixture.requests$$) !~ 'Parallel Seq Scan.*\n.*Output: user_id, genrec_score',
          'genrec_score of a user id stays above the Gather (PARALLEL RESTRICTED)');
SELECT is((SELECT count(*)::int FROM serial WHERE s = su), 150,
          'a user''s stored history scores like the same history given as a value');

-- ---------------------------------------------------------------- retrieval through an IVF index

CREATE TEMP TABLE exact_top AS SELECT * FROM genrec_recommend('fx_item', 1, 10);
SET genrec.ivf_lists = 4;
SET genrec.ivf_probes = 4;
CREATE TEMP TABLE ivf_all AS SELECT * FROM genrec_recommend('fx_item', 1, 10);
SELECT results_eq($$SELECT rank, item_id FROM ivf_all ORDER BY rank$$,
                  $$SELECT rank, item_id FROM exact_top ORDER BY rank$$,
                  'an IVF index probed in all of its lists retrieves what exact retrieval does');
SELECT is_empty($$SELECT * FROM ivf_all a JOIN exact_top e USING (rank)
                   WHERE NOT pg_temp.near(a.score, e.score)$$,
                'with the same scores');
SET genrec.ivf_probes = 1;
CREATE TEMP TABLE ivf_one AS SELECT * FROM genrec_recommend('fx_item', 1, 10);
SELECT ok((SELECT count(*) BETWEEN 1 AND 10 FROM ivf_one), 'one probe of four returns up to k items');
SELECT is_empty($$SELECT o.* FROM ivf_one o, cands
                   WHERE NOT pg_temp.near(o.score, (genrec_score('fx_item', 1, ARRAY[o.item_id]))[1])
                      OR o.item_id IN (SELECT item_id FROM genrec_fixture.events WHERE user_id = 1)$$,
                'an indexed retrieval scores every item it returns exactly and excludes seen items');
SET genrec.ivf_probes = 0;
SELECT results_eq($$SELECT rank, item_id FROM genrec_recommend('fx_item', 1, 10) ORDER BY rank$$,
                  $$SELECT rank, item_id FROM exact_top ORDER BY rank$$,
                  'genrec.ivf_probes = 0 is exact retrieval again');
RESET genrec.ivf_lists;

SELECT * FROM finish();
ROLLBACK;
