-- Trust boundaries (README "Security"): a model's source runs as its owner inside a
-- security-restricted operation, whoever scores it (a superuser included); per-model grants;
-- schema-qualified SPI texts that shadow functions and operators cannot hijack; imports that
-- never trust a file's source mapping; query sources checked by the parser; the catalogue
-- written only by genrec's functions; markings; what the monitoring functions show.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;

CREATE ROLE genrec_sec_alice LOGIN;
CREATE ROLE genrec_sec_bob LOGIN;
CREATE ROLE genrec_sec_carol LOGIN;
CREATE TABLE public.sec_syn AS SELECT * FROM genrec_synthetic(60, 80, 8, 21);
CREATE INDEX ON public.sec_syn (user_id);
GRANT SELECT ON public.sec_syn TO genrec_sec_alice;

-- alice's view calls alice's function, which writes down whose rights it runs with
CREATE TABLE public.sec_log (who text, superuser text, path text);
ALTER TABLE public.sec_log OWNER TO genrec_sec_alice;
CREATE FUNCTION public.sec_spy(u bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  INSERT INTO public.sec_log
    VALUES (current_user, (SELECT rolsuper::text FROM pg_catalog.pg_roles WHERE rolname = current_user),
            current_setting('search_path'));
  RETURN true;
END
$f$;
ALTER FUNCTION public.sec_spy(bigint) OWNER TO genrec_sec_alice;
CREATE VIEW public.sec_spy_view AS SELECT * FROM public.sec_syn WHERE public.sec_spy(user_id);
ALTER VIEW public.sec_spy_view OWNER TO genrec_sec_alice;

-- Run a statement as a role; returns the rows it processed.
CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', r);
  EXECUTE q;
  GET DIAGNOSTICS n = ROW_COUNT;
  RESET ROLE;
  RETURN n;
END
$f$;
CREATE FUNCTION pg_temp.train_sql(name text, source text) RETURNS text LANGUAGE sql AS $f$
  SELECT format($q$SELECT * FROM genrec.genrec_train(%L, %L, d_model => 8, n_layer => 1,
                  max_len => 6, epochs => 1, options => '{"head_hidden": 8, "n_buckets": 4}')$q$,
                name, source)
$f$;

SELECT plan(54);

-- ---------------------------------------------------------------- 1. source execution
SELECT is(pg_temp.as_role('genrec_sec_alice', pg_temp.train_sql('sec_view', 'public.sec_spy_view')),
          1::bigint, 'alice trains a model on a view that calls her function');
DELETE FROM public.sec_log;
SELECT isnt(genrec_score('sec_view', 1, ARRAY[1, 2]::bigint[]), NULL,
            'a superuser scores alice''s model by user id');
SELECT is((SELECT array_agg(DISTINCT who) FROM public.sec_log), ARRAY['genrec_sec_alice'],
          'the view''s function ran as alice, the model''s owner');
SELECT is((SELECT array_agg(DISTINCT superuser) FROM public.sec_log), ARRAY['false'],
          'and never with superuser rights');
SELECT is((SELECT array_agg(DISTINCT path) FROM public.sec_log), ARRAY['pg_catalog, pg_temp'],
          'under search_path = pg_catalog, pg_temp');
SELECT is(current_user::text, session_user::text, 'the caller''s role is restored');
SELECT is(current_setting('search_path'), 'public, genrec', 'and its search_path');
DELETE FROM public.sec_log;
SELECT ok((SELECT count(*) FROM genrec_evaluate('sec_view')) > 0, 'a superuser evaluates it');
SELECT is((SELECT array_agg(DISTINCT who || '/' || superuser) FROM public.sec_log),
          ARRAY['genrec_sec_alice/false'], 'evaluation reads the source as alice too');
DELETE FROM public.sec_log;
SELECT ok((SELECT count(*) FROM genrec_recommend('sec_view', 2, 3)) = 3, 'and recommends from it');
SELECT is((SELECT array_agg(DISTINCT who) FROM public.sec_log), ARRAY['genrec_sec_alice'],
          'retrieval reads the history as alice');
-- an error inside the restricted section leaves the caller's rights as they were
SELECT throws_ok($$SELECT genrec_score('sec_view', 1, ARRAY[[1]]::bigint[])$$, '22023', NULL,
                 'an error while serving');
SELECT is(current_user::text, session_user::text, 'leaves the role as it was');

-- ---------------------------------------------------------------- 2. per-model privileges
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT genrec.genrec_score(''sec_view'', 1::bigint, ARRAY[1]::bigint[])')$$,
                 '42501', 'permission denied for model "sec_view"', 'bob may not score alice''s model');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT genrec.genrec_score(''sec_view'', ''{(1,3,),(2,4,)}''::genrec.genrec_history, ARRAY[1]::bigint[])')$$,
                 '42501', NULL, 'not even with a history of his own');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT * FROM genrec.genrec_recommend(''sec_view'', 1::bigint)')$$,
                 '42501', NULL, 'nor get recommendations');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT * FROM genrec.genrec_evaluate(''sec_view'')')$$,
                 '42501', NULL, 'nor evaluate it');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT genrec.genrec_export(''sec_view'')')$$,
                 '42501', NULL, 'nor export its weights');
SELECT is(pg_temp.as_role('genrec_sec_bob', $$SELECT * FROM genrec.models WHERE name = 'sec_view'$$),
          0::bigint, 'nor read its row (weights, items, source)');
SELECT is(pg_temp.as_role('genrec_sec_bob', $$SELECT * FROM genrec.model_names WHERE name = 'sec_view'$$),
          1::bigint, 'but he sees that the name exists and who owns it');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT genrec.genrec_grant(''sec_view'', ''genrec_sec_bob'')')$$,
                 '42501', NULL, 'bob cannot grant himself the use');
SELECT lives_ok($$SELECT pg_temp.as_role('genrec_sec_alice', 'SELECT genrec.genrec_grant(''sec_view'', ''genrec_sec_bob'')')$$,
                'alice grants bob the use of her model');
SELECT is(pg_temp.as_role('genrec_sec_bob', $$SELECT genrec.genrec_score('sec_view', 1::bigint, ARRAY[1]::bigint[])$$),
          1::bigint, 'bob scores it now');
SELECT is(pg_temp.as_role('genrec_sec_bob', $$SELECT * FROM genrec.models WHERE name = 'sec_view'$$),
          1::bigint, 'and reads its row');
SELECT is((SELECT array_agg(grantee::text) FROM genrec.model_privileges WHERE name = 'sec_view'),
          ARRAY['genrec_sec_bob'], 'genrec.model_privileges shows the grant');
-- a pooled connection switching roles: the check is made on every call
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_carol', 'SELECT genrec.genrec_score(''sec_view'', 1::bigint, ARRAY[1]::bigint[])')$$,
                 '42501', NULL, 'carol, on the same connection right after bob, may not');
SELECT lives_ok($$SELECT pg_temp.as_role('genrec_sec_alice', 'SELECT genrec.genrec_revoke(''sec_view'', ''genrec_sec_bob'')')$$,
                'alice revokes bob''s use');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT genrec.genrec_score(''sec_view'', 1::bigint, ARRAY[1]::bigint[])')$$,
                 '42501', NULL, 'bob''s next call is refused');
SELECT lives_ok($$SELECT pg_temp.as_role('genrec_sec_alice', 'SELECT genrec.genrec_grant(''sec_view'', ''public'')')$$,
                'alice grants the use to PUBLIC');
SELECT is(pg_temp.as_role('genrec_sec_carol', $$SELECT genrec.genrec_score('sec_view', 1::bigint, ARRAY[1]::bigint[])$$),
          1::bigint, 'then carol may score it');
SELECT throws_ok($$SELECT genrec_grant('sec_view', 'genrec_sec_nobody')$$, '42704', NULL,
                 'granting to an unknown role is 42704');
SELECT throws_ok($$SELECT genrec_grant('sec_nothing', 'public')$$, '42704', NULL,
                 'granting an unknown model is 42704');

-- ---------------------------------------------------------------- catalogue writes and locks
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_alice', 'DELETE FROM genrec.models WHERE name = ''sec_view''')$$,
                 '42501', NULL, 'not even the owner writes genrec.models directly');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'LOCK TABLE genrec.models IN ACCESS EXCLUSIVE MODE')$$,
                 '42501', NULL, 'no role can lock the catalogue against others');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_sec_bob', 'SELECT 1 FROM genrec.model_names WHERE name = ''sec_view'' FOR UPDATE')$$,
                 '42501', NULL, 'nor lock a model''s name row');
SELECT ok(NOT has_table_privilege('public', 'genrec.models', 'INSERT, UPDATE, DELETE, TRUNCATE'),
          'PUBLIC may only read the catalogue tables');

-- ---------------------------------------------------------------- 3. shadow functions and operators
CREATE TABLE public.sec_shadow_log (fn text);
GRANT INSERT ON public.sec_shadow_log TO PUBLIC;
CREATE FUNCTION public.pg_column_size(bytea) RETURNS integer LANGUAGE plpgsql AS $f$
BEGIN INSERT INTO public.sec_shadow_log VALUES ('pg_column_size'); RETURN 1; END $f$;
CREATE FUNCTION public.jsonb_build_object(text, jsonb, text, jsonb) RETURNS jsonb LANGUAGE plpgsql AS $f$
BEGIN INSERT INTO public.sec_shadow_log VALUES ('jsonb_build_object'); RETURN '{}'; END $f$;
CREATE FUNCTION public.sec_text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN INSERT INTO public.sec_shadow_log VALUES ('='); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.sec_text_eq);
-- no pgTAP call inside the window: its own functions would resolve = to the shadow
SET search_path = public, pg_catalog, genrec;
CREATE TEMP TABLE sec_shadow_results AS
  SELECT genrec_score('sec_view', 1, ARRAY[1, 2]::bigint[]) AS scored,
         genrec_import('sec_copy', genrec_export('sec_view')) AS imported;
SELECT genrec_deploy('sec_copy', 1), genrec_grant('sec_copy', 'public');
CREATE TEMP TABLE sec_shadow_eval AS SELECT * FROM genrec_evaluate('sec_view');
SET search_path = public, genrec;
SELECT ok((SELECT scored IS NOT NULL AND imported = 1 FROM sec_shadow_results),
          'under a search_path that puts public before pg_catalog, scoring and importing work');
SELECT ok((SELECT count(*) FROM sec_shadow_eval) > 0, 'and so does evaluation');
SELECT is_empty($$SELECT * FROM public.sec_shadow_log$$,
                'never calling a shadow pg_column_size, jsonb_build_object or = of another schema');
DROP OPERATOR public.= (text, text);

-- ---------------------------------------------------------------- 4. imports
SELECT is((SELECT source FROM genrec.models WHERE name = 'sec_copy'), 'null'::jsonb,
          'an import without a source has none (the file''s own mapping is not used)');
SELECT throws_ok($$SELECT genrec_score('sec_copy', 1, ARRAY[1]::bigint[])$$, '55000', NULL,
                 'so it scores histories only');
SELECT throws_ok($$SELECT genrec_import('sec_copy', genrec_export('sec_view'), true,
                   '{"query": "SELECT * FROM public.sec_syn; DROP TABLE public.sec_syn"}')$$,
                 '42601', NULL, 'an imported query source with two statements is refused');
SELECT is(genrec_import('sec_copy', genrec_export('sec_view'), true,
                        '{"query": "SELECT * FROM sec_syn WHERE user_id < 50", "action_cols": ["action"]}'), 2,
          'a single SELECT is accepted');
SELECT ok((SELECT source->>'query' FROM genrec.models WHERE name = 'sec_copy' AND version = 2)
          LIKE '%public.sec_syn%', 'and stored with its names schema-qualified');
SELECT isnt(genrec_score('sec_copy', 1, ARRAY[1]::bigint[]), NULL, 'and serves');

-- ---------------------------------------------------------------- 9. query sources
SELECT throws_ok(pg_temp.train_sql('sec_q', 'SELECT * FROM public.sec_syn; DELETE FROM public.sec_log'),
                 '42601', NULL, 'a training source with two statements is refused before it runs');
SELECT throws_ok(pg_temp.train_sql('sec_q', 'WITH d AS (DELETE FROM public.sec_log RETURNING 1) SELECT * FROM public.sec_syn'),
                 '42809', NULL, 'so is a data-modifying WITH');
SELECT throws_ok(pg_temp.train_sql('sec_q', 'SELECT * FROM public.sec_syn FOR UPDATE'),
                 '42809', NULL, 'and a query that locks rows');

-- ---------------------------------------------------------------- 6. device switch
SET genrec.shared_cache = off;
CREATE TEMP TABLE sec_dev AS
  SELECT 0 AS step, genrec_score('sec_view', '{(1,3,),(2,4,)}'::genrec_history, ARRAY[1, 2]::bigint[]) AS s,
         (SELECT loaded_at FROM genrec_cache_status() WHERE name = 'sec_view' AND state = 'private') AS at;
SET genrec.cuda_math = 'bf16';
INSERT INTO sec_dev
  SELECT 1, genrec_score('sec_view', '{(1,3,),(2,4,)}'::genrec_history, ARRAY[1, 2]::bigint[]),
         (SELECT loaded_at FROM genrec_cache_status() WHERE name = 'sec_view' AND state = 'private');
SET genrec.device = 'cpu';
INSERT INTO sec_dev
  SELECT 2, genrec_score('sec_view', '{(1,3,),(2,4,)}'::genrec_history, ARRAY[1, 2]::bigint[]),
         (SELECT loaded_at FROM genrec_cache_status() WHERE name = 'sec_view' AND state = 'private');
SELECT ok((SELECT bool_and(b.at > a.at) FROM sec_dev a JOIN sec_dev b ON b.step = a.step + 1),
          'changing genrec.cuda_math, then genrec.device, retires the cached model and builds it again');
SELECT is((SELECT count(DISTINCT s)::int FROM sec_dev), 1, 'with the same scores');
SELECT is((SELECT setting || '/' || device FROM genrec_device_info()), 'cpu/cpu',
          'genrec_device_info() reports the device in use');
RESET genrec.device;
RESET genrec.cuda_math;
RESET genrec.shared_cache;

-- ---------------------------------------------------------------- 10. markings and visibility
SELECT is((SELECT array_agg(DISTINCT proparallel) FROM pg_proc
            WHERE oid IN ('genrec_score(text,bigint,bigint[])'::regprocedure,
                          'genrec_score(bigint,bigint[])'::regprocedure,
                          'genrec_score_detail(text,bigint,bigint[])'::regprocedure,
                          'genrec_recommend(text,bigint,integer,boolean)'::regprocedure,
                          'genrec_recommend(bigint,bigint,boolean)'::regprocedure,
                          'genrec_evaluate(text,text,integer[])'::regprocedure)),
          ARRAY['r']::"char"[], 'functions that run a model''s source SQL are PARALLEL RESTRICTED');
SELECT is(pg_temp.as_role('genrec_sec_bob', $$SELECT * FROM genrec.genrec_cache_status() WHERE name = 'sec_view'$$),
          0::bigint, 'genrec_cache_status hides other roles'' models, shared or private');
SELECT is((SELECT count(*)::int FROM genrec_cache_status() WHERE name = 'sec_view' AND shared), 1,
          'a superuser sees them');

SELECT * FROM finish();
ROLLBACK;
