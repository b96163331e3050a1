-- Privileges on the model catalogue: a role reads the models it may use (owner, grantees,
-- superusers); only a role with the privileges of a model's owner (the owner, an inheriting
-- member, a superuser) may retrain, import, deploy, roll back, drop or grant it (42501); no
-- role writes the catalogue tables directly. Roles are created inside the test's transaction
-- and rolled back with it. (test/pgtap/security.sql covers grants and source execution.)
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;

CREATE ROLE genrec_tap_alice LOGIN;
CREATE ROLE genrec_tap_bob LOGIN;
CREATE ROLE genrec_tap_team NOLOGIN;
CREATE ROLE genrec_tap_carol LOGIN IN ROLE genrec_tap_team;
CREATE TABLE priv_syn AS SELECT * FROM genrec_synthetic(60, 80, 8, 13);
GRANT SELECT ON priv_syn TO PUBLIC;

-- Run a statement as a role; returns the rows it processed. An error rolls the role back
-- with the subtransaction that throws_ok wraps around it.
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
CREATE FUNCTION pg_temp.train_sql(name text) RETURNS text LANGUAGE sql AS $f$
  SELECT format($q$SELECT * FROM genrec.genrec_train(%L, 'public.priv_syn', d_model => 8,
                  n_layer => 1, max_len => 6, epochs => 1,
                  options => '{"head_hidden": 8, "n_buckets": 4}')$q$, name)
$f$;

SELECT plan(38);

-- alice trains a model; bob may not use it until she grants it, and may never change it
SELECT is(pg_temp.as_role('genrec_tap_alice', pg_temp.train_sql('alice_m')), 1::bigint,
          'alice trains alice_m');
SELECT is((SELECT owner FROM genrec.models WHERE name = 'alice_m'),
          (SELECT oid FROM pg_roles WHERE rolname = 'genrec_tap_alice'), 'alice owns it');
SELECT is(pg_temp.as_role('genrec_tap_bob', $$SELECT name FROM genrec.models WHERE name = 'alice_m'$$),
          0::bigint, 'bob cannot read alice''s model');
SELECT lives_ok($$SELECT pg_temp.as_role('genrec_tap_alice', 'SELECT genrec.genrec_grant(''alice_m'', ''genrec_tap_bob'')')$$,
                'alice grants bob its use');
SELECT is(pg_temp.as_role('genrec_tap_bob', $$SELECT genrec.genrec_model_items('alice_m')$$), 1::bigint,
          'then bob can decode its items (and export it)');
SELECT throws_ok(format('SELECT pg_temp.as_role(%L, %L)', 'genrec_tap_bob', pg_temp.train_sql('alice_m')),
                 '42501', 'must be owner of model "alice_m" to train a new version of it',
                 'bob cannot retrain alice''s model');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'SELECT genrec.genrec_deploy(''alice_m'', 1)')$$,
                 '42501', 'must be owner of model "alice_m" to deploy it', 'bob cannot deploy it');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'SELECT genrec.genrec_rollback(''alice_m'')')$$,
                 '42501', 'must be owner of model "alice_m" to roll it back', 'bob cannot roll it back');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'SELECT genrec.genrec_drop_model(''alice_m'')')$$,
                 '42501', 'must be owner of model "alice_m" to drop it', 'bob cannot drop it');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'SELECT genrec.genrec_drop_model(''alice_m'', 1)')$$,
                 '42501', NULL, 'bob cannot drop one of its versions');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob',
                     'SELECT genrec.genrec_import(''alice_m'', genrec.genrec_export(''alice_m''))')$$,
                 '42501', 'must be owner of model "alice_m" to import a new version of it',
                 'bob cannot import a version of it');
SELECT is(current_user::text, session_user::text, 'the failed calls left the role as it was');

-- direct DML by bob: no role may write the catalogue tables
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'UPDATE genrec.models SET deployed = false WHERE name = ''alice_m''')$$,
                 '42501', NULL, 'bob may not UPDATE genrec.models');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'DELETE FROM genrec.models WHERE name = ''alice_m''')$$,
                 '42501', NULL, 'nor DELETE from it');
SELECT is((SELECT (count(*), bool_or(deployed))::text FROM genrec.models WHERE name = 'alice_m'), '(1,t)',
          'alice''s model is intact and deployed');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'UPDATE genrec.models SET weights = ''\x00'' WHERE name = ''alice_m''')$$,
                 '42501', NULL, 'nor UPDATE the weights');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob',
                     'INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner)
                      SELECT ''alice_m'', 2, layout, config, source, n_items, weights,
                             (SELECT oid FROM pg_roles WHERE rolname = ''genrec_tap_bob'')
                        FROM genrec.models WHERE name = ''alice_m''')$$,
                 '42501', NULL, 'bob cannot INSERT a version under alice''s name');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob',
                     'INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner)
                      SELECT ''bob_fake'', 1, layout, config, source, n_items, weights, owner
                        FROM genrec.models WHERE name = ''alice_m''')$$,
                 '42501', NULL, 'bob cannot INSERT a row owned by alice');

-- bob's own model
SELECT is(pg_temp.as_role('genrec_tap_bob', pg_temp.train_sql('bob_m')), 1::bigint, 'bob trains his own model');
SELECT is(pg_temp.as_role('genrec_tap_bob', pg_temp.train_sql('bob_m')), 1::bigint, 'and retrains it');
SELECT is(pg_temp.as_role('genrec_tap_bob', $$SELECT genrec.genrec_rollback('bob_m')$$), 1::bigint,
          'and rolls it back');
SELECT is((SELECT array_agg(version) FROM genrec.models WHERE name = 'bob_m' AND deployed), ARRAY[1],
          'version 1 of bob''s model is deployed');
SELECT is(pg_temp.as_role('genrec_tap_bob', $$SELECT genrec.genrec_import('bob_copy', genrec.genrec_export('alice_m'))$$),
          1::bigint, 'bob, a grantee, may import a copy of alice''s model under his own name');
SELECT is((SELECT owner FROM genrec.models WHERE name = 'bob_copy'),
          (SELECT oid FROM pg_roles WHERE rolname = 'genrec_tap_bob'), 'the copy is bob''s');
SELECT is(pg_temp.as_role('genrec_tap_bob', $$SELECT genrec.genrec_drop_model('bob_m')$$), 1::bigint,
          'bob drops his model');
SELECT is((SELECT count(*)::int FROM genrec.models WHERE name = 'bob_m'), 0, 'it is gone');

-- alice manages her own model
SELECT is(pg_temp.as_role('genrec_tap_alice', pg_temp.train_sql('alice_m')), 1::bigint,
          'alice retrains her model');
SELECT is(pg_temp.as_role('genrec_tap_alice', $$SELECT genrec.genrec_deploy('alice_m', 1)$$), 1::bigint,
          'alice deploys version 1');
SELECT is((SELECT array_agg(version) FROM genrec.models WHERE name = 'alice_m' AND deployed), ARRAY[1],
          'version 1 of alice''s model is deployed');

-- a group role: members with its privileges manage its models
SELECT is(pg_temp.as_role('genrec_tap_team', pg_temp.train_sql('team_m')), 1::bigint, 'the team trains a model');
SELECT is(pg_temp.as_role('genrec_tap_carol', pg_temp.train_sql('team_m')), 1::bigint,
          'a member retrains it');
SELECT is((SELECT array_agg(DISTINCT owner) FROM genrec.models WHERE name = 'team_m'),
          ARRAY[(SELECT oid FROM pg_roles WHERE rolname = 'genrec_tap_team')],
          'every version of a name keeps the name''s owner');
SELECT throws_ok(format('SELECT pg_temp.as_role(%L, %L)', 'genrec_tap_bob', pg_temp.train_sql('team_m')),
                 '42501', NULL, 'a non-member cannot');

-- a query source runs as its owner (alice): a grantee scores through it with alice's rights
SELECT is(pg_temp.as_role('genrec_tap_alice',
          $q$SELECT * FROM genrec.genrec_train('alice_q', 'SELECT * FROM public.priv_syn', d_model => 8,
                  n_layer => 1, max_len => 6, epochs => 1, options => '{"head_hidden": 8, "n_buckets": 4}')$q$),
          1::bigint, 'alice trains a model on a query source');
SELECT throws_ok($$SELECT pg_temp.as_role('genrec_tap_bob', 'SELECT genrec.genrec_score(''alice_q'', 1::bigint, ARRAY[1,2]::bigint[])')$$,
                 '42501', 'permission denied for model "alice_q"', 'bob may not score it without a grant');
SELECT is(pg_temp.as_role('genrec_tap_alice', $$SELECT genrec.genrec_score('alice_q', 1::bigint, ARRAY[1,2]::bigint[])$$),
          1::bigint, 'alice can');

-- the superuser manages every model
SELECT lives_ok($$SELECT genrec_deploy('alice_m', 2)$$, 'a superuser deploys alice''s model');
SELECT is(genrec_drop_model('alice_m'), 2, 'a superuser drops alice''s model');

SELECT * FROM finish();
ROLLBACK;
