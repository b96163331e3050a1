-- The model catalogue: the table, its index, row level security and dump registration, the
-- overview view, deploy / rollback / drop, export / import / weights_info / model_items, and
-- their errors with SQLSTATEs.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;

CREATE TABLE cat_syn AS SELECT * FROM genrec_synthetic(60, 80, 8, 11);
-- three versions of "cat" (v3 deployed) and one of "other"
CREATE FUNCTION pg_temp.train(name text, seed bigint, deploy boolean DEFAULT true)
  RETURNS integer LANGUAGE sql AS $f$
  SELECT t.version FROM genrec.genrec_train(name, 'cat_syn', d_model => 8, n_layer => 1,
    max_len => 6, epochs => 1, seed => seed, deploy => deploy,
    options => '{"head_hidden": 8, "n_buckets": 4}') t
$f$;
SELECT pg_temp.train('cat', 1), pg_temp.train('cat', 2), pg_temp.train('cat', 3),
       pg_temp.train('other', 4);

SELECT plan(75);

-- the table
SELECT has_table('genrec', 'models', 'genrec.models exists');
SELECT columns_are('genrec', 'models', ARRAY['name', 'version', 'layout', 'config', 'source',
                   'n_items', 'metrics', 'weights', 'owner', 'created', 'deployed',
                   'weights_sha256'],
                   'genrec.models has the documented columns');
SELECT col_type_is('genrec', 'models', 'config', 'jsonb', 'config is jsonb');
SELECT col_type_is('genrec', 'models', 'weights', 'bytea', 'weights is bytea');
SELECT col_type_is('genrec', 'models', 'owner', 'oid', 'owner is an oid');
SELECT col_is_pk('genrec', 'models', ARRAY['name', 'version'], 'primary key (name, version)');
SELECT is((SELECT indexdef FROM pg_indexes WHERE schemaname = 'genrec' AND indexname = 'models_one_deployed'),
          'CREATE UNIQUE INDEX models_one_deployed ON genrec.models USING btree (name) WHERE deployed',
          'a unique partial index allows one deployed version per name');
SELECT is((SELECT (relrowsecurity, relforcerowsecurity)::text FROM pg_class
            WHERE oid = 'genrec.models'::regclass), '(t,f)',
          'row level security enabled (genrec writes as the table owner)');
SELECT is((SELECT array_agg(polname::text ORDER BY polname) FROM pg_policy
            WHERE polrelid = 'genrec.models'::regclass),
          ARRAY['models_select'], 'one policy: who may read a model');
SELECT ok((SELECT 'genrec.models'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'genrec'),
          'pg_dump dumps the rows (extension configuration table)');
SELECT ok(has_table_privilege('public', 'genrec.models', 'SELECT')
          AND has_table_privilege('public', 'genrec.model_names', 'SELECT')
          AND has_table_privilege('public', 'genrec.model_grants', 'SELECT'),
          'PUBLIC may SELECT the catalogue tables (rows of genrec.models are guarded by the policy)');
SELECT ok(NOT has_any_column_privilege('public', 'genrec.models', 'INSERT, UPDATE')
          AND NOT has_table_privilege('public', 'genrec.models', 'DELETE, TRUNCATE')
          AND NOT has_any_column_privilege('public', 'genrec.model_names', 'INSERT, UPDATE')
          AND NOT has_any_column_privilege('public', 'genrec.model_grants', 'INSERT, UPDATE'),
          'PUBLIC may not write them: genrec''s functions do');
SELECT isnt(obj_description('genrec.models'::regclass, 'pg_class'), NULL, 'the table has a comment');
SELECT is_empty($$SELECT attname FROM pg_attribute WHERE attrelid = 'genrec.models'::regclass
                   AND attnum > 0 AND col_description(attrelid, attnum) IS NULL$$,
                'every column has a comment');
SELECT has_view('genrec', 'model_overview', 'genrec.model_overview exists');
SELECT has_view('genrec', 'training_progress', 'genrec.training_progress exists');
SELECT isnt(obj_description('genrec.model_overview'::regclass, 'pg_class'), NULL, 'the overview has a comment');
SELECT isnt(obj_description('genrec.training_progress'::regclass, 'pg_class'), NULL, 'the progress view has a comment');
SELECT is_empty($$SELECT * FROM genrec.training_progress WHERE pid = pg_backend_pid()$$,
                'no training in progress in this session');

-- versions and the overview
SELECT is((SELECT array_agg((version, deployed)::text ORDER BY version) FROM genrec.models WHERE name = 'cat'),
          ARRAY['(1,f)', '(2,f)', '(3,t)'], 'three versions; the newest is deployed');
SELECT is((SELECT count(*)::int FROM genrec.model_overview), (SELECT count(*)::int FROM genrec.models),
          'the overview has one row per version');
SELECT is((SELECT (owner, layout, weights_bytes = (SELECT octet_length(weights) FROM genrec.models
                                                     WHERE name = 'cat' AND version = 3))::text
             FROM genrec.model_overview WHERE name = 'cat' AND version = 3),
          format('(%s,lac,t)', current_user), 'the overview names the owner and the weights size');
SELECT is((SELECT (n_users, epochs_run, test_ndcg10 IS NOT NULL, device)::text
             FROM genrec.model_overview WHERE name = 'cat' AND version = 3),
          '(60,1,t,cpu)', 'the overview shows key metrics');
SELECT hasnt_column('genrec', 'model_overview', 'weights', 'the overview does not carry the bytes');

-- deploy
SELECT lives_ok($$SELECT genrec_deploy('cat', 1)$$, 'deploy version 1');
SELECT is((SELECT array_agg(version) FROM genrec.models WHERE name = 'cat' AND deployed), ARRAY[1],
          'version 1 is the only deployed version');
SELECT is((SELECT array_agg(version) FROM genrec.models WHERE name = 'other' AND deployed), ARRAY[1],
          'other models are untouched');
SELECT lives_ok($$SELECT genrec_deploy('cat', 1)$$, 'deploying the deployed version is a no-op');
SELECT throws_ok($$UPDATE genrec.models SET deployed = true WHERE name = 'cat' AND version = 2$$,
                 '23505', NULL, 'a second deployed version violates the unique index');
SELECT throws_ok($$SELECT genrec_deploy('cat', 9)$$, '42704', 'model "cat" has no version 9',
                 'deploying an unknown version');
SELECT throws_ok($$SELECT genrec_deploy('nope', 1)$$, '42704', 'model "nope" does not exist',
                 'deploying an unknown model');
SELECT throws_ok($$SELECT genrec_deploy(NULL, 1)$$, '22004', NULL, 'NULL name');
SELECT throws_ok($$SELECT genrec_deploy('cat', NULL)$$, '22004', NULL, 'NULL version');

-- rollback
SELECT lives_ok($$SELECT genrec_deploy('cat', 3)$$, 'deploy version 3 again');
SELECT is(genrec_rollback('cat'), 2, 'rollback from 3 deploys 2');
SELECT is((SELECT array_agg(version) FROM genrec.models WHERE name = 'cat' AND deployed), ARRAY[2],
          'version 2 is deployed');
SELECT is(genrec_rollback('cat'), 1, 'rollback from 2 deploys 1');
SELECT throws_ok($$SELECT genrec_rollback('cat')$$, '55000',
                 'model "cat" has no version before the deployed version 1',
                 'no version before the first');
SELECT is((SELECT array_agg(version) FROM genrec.models WHERE name = 'cat' AND deployed), ARRAY[1],
          'a failed rollback changes nothing');
SELECT throws_ok($$SELECT genrec_rollback('nope')$$, '42704', NULL, 'rollback of an unknown model');
SELECT throws_ok($$SELECT genrec_rollback(NULL)$$, '22004', NULL, 'rollback of NULL');
UPDATE genrec.models SET deployed = false WHERE name = 'other';
SELECT throws_ok($$SELECT genrec_rollback('other')$$, '55000', NULL, 'rollback with nothing deployed');

-- export, weights_info, model_items
SELECT is(genrec_export('cat'), (SELECT weights FROM genrec.models WHERE name = 'cat' AND version = 1),
          'export without a version: the deployed one');
SELECT is(genrec_export('other'), (SELECT weights FROM genrec.models WHERE name = 'other' AND version = 1),
          'export without a deployed version: the newest');
SELECT is(genrec_export('cat', 2), (SELECT weights FROM genrec.models WHERE name = 'cat' AND version = 2),
          'export of a given version');
SELECT is(genrec_export(NULL), NULL, 'export of NULL is NULL');
SELECT throws_ok($$SELECT genrec_export('cat', 9)$$, '42704', NULL, 'export of an unknown version');
SELECT throws_ok($$SELECT genrec_export('nope')$$, '42704', NULL, 'export of an unknown model');
SELECT is((SELECT (layout, n_items, n_actions, n_params > 0, config ->> 'd_model')::text
             FROM genrec_weights_info(genrec_export('cat'))), '(lac,' ||
          (SELECT count(DISTINCT item_id) FROM cat_syn) || ',1,t,8)', 'weights_info describes the bytes');
SELECT is(genrec_model_items('cat'), (SELECT array_agg(DISTINCT item_id ORDER BY item_id) FROM cat_syn),
          'model_items: the item id map');
SELECT is(genrec_model_items('cat', 2), (SELECT item_ids FROM genrec_weights_info(genrec_export('cat', 2))),
          'model_items of a version');
SELECT is(genrec_model_items(NULL), NULL, 'model_items of NULL is NULL');
SELECT throws_ok($$SELECT genrec_model_items('nope')$$, '42704', NULL, 'model_items of an unknown model');
SELECT throws_ok($$SELECT genrec_weights_info('\x00'::bytea)$$, 'XX001', NULL, 'weights_info of junk');

-- import
SELECT is(genrec_import('copy', genrec_export('cat', 2)), 1, 'import a model as version 1 of a new name');
SELECT is((SELECT (weights = (SELECT weights FROM genrec.models WHERE name = 'cat' AND version = 2),
                   deployed, layout, n_items)::text FROM genrec.models WHERE name = 'copy'),
          (SELECT format('(t,t,lac,%s)', n_items) FROM genrec.models WHERE name = 'cat' AND version = 2),
          'the bytes are stored as they are; the first version is deployed');
SELECT is((SELECT (c.config -> 'model' = m.config -> 'model', c.source = 'null',
                   c.metrics -> 'test' = m.metrics -> 'test', c.metrics -> 'valid' = m.metrics -> 'valid',
                   c.metrics -> 'epochs_run' = m.metrics -> 'epochs_run', c.metrics ? 'data',
                   c.metrics -> 'imported')::text
             FROM genrec.models c, genrec.models m
            WHERE c.name = 'copy' AND m.name = 'cat' AND m.version = 2),
          '(t,t,t,t,t,f,true)',
          'the model config and the well-typed metrics come from the bytes; their source mapping does not');
SELECT is(genrec_import('copy', genrec_export('cat', 3), false,
                        '{"relation": "cat_syn", "action_cols": ["action"], "tiebreak_col": null}'), 2,
          'import a second version with a source mapping, not deployed');
SELECT is((SELECT (deployed, source ->> 'relation', source ->> 'user_col', source ->> 'time_col')::text
             FROM genrec.models WHERE name = 'copy' AND version = 2),
          '(f,public.cat_syn,user_id,ts)', 'the mapping is completed with the defaults');
SELECT throws_ok($$SELECT genrec_import('x', '\x0102030405060708'::bytea)$$, 'XX001', NULL,
                 'import of junk bytes');
SELECT throws_ok($$SELECT genrec_import('x', substring(genrec_export('cat') FROM 1 FOR 400))$$, 'XX001',
                 NULL, 'import of truncated bytes');
SELECT throws_ok($$SELECT genrec_import('x', overlay(genrec_export('cat') PLACING '\xffffffff'::bytea FROM 3))$$,
                 'XX001', NULL, 'import of bytes with a corrupt header length');
SELECT throws_ok($$SELECT genrec_import('x', NULL)$$, '22004', NULL, 'import of NULL bytes');
SELECT throws_ok($$SELECT genrec_import(NULL, genrec_export('cat'))$$, '22004', NULL, 'import under a NULL name');
SELECT throws_ok($$SELECT genrec_import('x', genrec_export('cat'), true, '{"nope": 1}')$$, '22023', NULL,
                 'a source mapping with an unknown key');
SELECT throws_ok($$SELECT genrec_import('x', genrec_export('cat'), true, '{"relation": "no_such_table"}')$$,
                 '42P01', NULL, 'a source mapping naming an unknown table');
SELECT throws_ok($$SELECT genrec_import('x', genrec_export('cat'), true, '{"relation": "cat_syn", "query": "SELECT 1"}')$$,
                 '22023', NULL, 'a source mapping with a relation and a query');
SELECT is((SELECT count(*)::int FROM genrec.models WHERE name = 'x'), 0, 'failed imports add nothing');

-- drop
SELECT is(genrec_drop_model('cat', 2), 1, 'drop one version');
SELECT is((SELECT array_agg(version ORDER BY version) FROM genrec.models WHERE name = 'cat'), ARRAY[1, 3],
          'the other versions stay');
SELECT throws_ok($$SELECT genrec_drop_model('cat', 2)$$, '42704', 'model "cat" has no version 2',
                 'dropping a dropped version');
SELECT is(genrec_drop_model('cat'), 2, 'drop every version');
SELECT is((SELECT count(*)::int FROM genrec.models WHERE name = 'cat'), 0, 'the model is gone');
SELECT throws_ok($$SELECT genrec_drop_model('cat')$$, '42704', NULL, 'dropping an unknown model');
SELECT throws_ok($$SELECT genrec_drop_model(NULL)$$, '22004', NULL, 'dropping NULL');

SELECT * FROM finish();
ROLLBACK;
