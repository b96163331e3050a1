-- Scaling out (sql/parts/70_scale.sql): the user hash and partition function against fixed
-- values (computed by an independent SplitMix64 in Python; the hash of 0 is the published
-- first SplitMix64 output for seed 0, 0xe220a8397b1dcdaf, shifted right by 33), their use as
-- a partition key, genrec_score_batch against genrec_score, and the replica triggers that make
-- serving notice a catalogue written by logical replication. The multi-server behaviour is in
-- test/pg/test_scaleout.sh.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.device = cpu;
SELECT plan(20);

CREATE TEMP TABLE fixed (user_id bigint, hash integer, p2 integer, p4 integer, p3 integer,
                         p1024 integer);
INSERT INTO fixed VALUES
  (0, 1896895516, 0, 0, 1, 28),
  (1, 1216681718, 0, 2, 2, 758),
  (2, 1269570287, 1, 3, 2, 751),
  (3, 243632754, 0, 2, 0, 626),
  (42, 1592498451, 1, 3, 0, 275),
  (943, 1760330451, 1, 3, 0, 723),
  (-1, 1919727803, 1, 3, 2, 187),
  (-42, 331524525, 1, 1, 0, 429),
  (2147483648, 312778339, 1, 3, 1, 611),
  (9223372036854775807, 355724202, 0, 2, 0, 938),
  (-9223372036854775808, 604987473, 1, 1, 0, 81),
  (123456789012, 1728406045, 1, 1, 1, 541);

SELECT is(genrec_user_hash(0), ((x'e220a8397b1dcdaf'::bigint >> 33) & 2147483647)::integer,
          'the hash of 0 is the first SplitMix64 output for seed 0, shifted right by 33');
SELECT results_eq(
  'SELECT user_id, genrec_user_hash(user_id) FROM fixed ORDER BY user_id',
  'SELECT user_id, hash FROM fixed ORDER BY user_id',
  'genrec_user_hash: fixed values, including the extremes of bigint');
SELECT results_eq(
  'SELECT user_id, genrec_partition(user_id, 2), genrec_partition(user_id, 4),
          genrec_partition(user_id, 3), genrec_partition(user_id, 1024)
     FROM fixed ORDER BY user_id',
  'SELECT user_id, p2, p4, p3, p1024 FROM fixed ORDER BY user_id',
  'genrec_partition: fixed values for 2, 4, 3 and 1024 partitions');
SELECT is((SELECT sum(genrec_user_hash(u))::bigint FROM generate_series(1, 10000) u),
          10777975716624::bigint, 'genrec_user_hash: the sum over users 1..10000');
SELECT results_eq(
  'SELECT genrec_partition(u, 2), count(*)::int FROM generate_series(1, 943) u GROUP BY 1 ORDER BY 1',
  $$VALUES (0, 468), (1, 475)$$,
  'MovieLens-100K''s 943 users on 2 partitions: 468 and 475');
SELECT results_eq(
  'SELECT genrec_partition(u, 4), count(*)::int FROM generate_series(1, 943) u GROUP BY 1 ORDER BY 1',
  $$VALUES (0, 233), (1, 235), (2, 235), (3, 240)$$,
  'the same users on 4 partitions');
SELECT is((SELECT count(*)::int FROM generate_series(-5000, 5000) u
            WHERE genrec_user_hash(u) < 0 OR genrec_partition(u, 7) NOT BETWEEN 0 AND 6
               OR genrec_partition(u, 1) <> 0
               OR genrec_partition(u, 8) <> genrec_user_hash(u) & 7), 0,
          'hashes are non-negative; partitions lie in [0, n) and equal hash & (n - 1) for 2^k (PL/Proxy''s mapping)');
SELECT throws_ok('SELECT genrec_partition(1, 0)', '22023', NULL, 'n_partitions = 0: 22023');
SELECT throws_ok('SELECT genrec_partition(1, -2)', '22023', NULL, 'negative n_partitions: 22023');
SELECT ok(genrec_partition(NULL, 2) IS NULL AND genrec_partition(1, NULL) IS NULL
          AND genrec_user_hash(NULL) IS NULL, 'NULL arguments give NULL (STRICT)');

-- a partition key: rows go where genrec_partition says
CREATE TEMP TABLE placed (user_id bigint, item_id bigint)
    PARTITION BY LIST (genrec.genrec_partition(user_id, 2));
CREATE TEMP TABLE placed_0 PARTITION OF placed FOR VALUES IN (0);
CREATE TEMP TABLE placed_1 PARTITION OF placed FOR VALUES IN (1);
INSERT INTO placed SELECT u, 1 FROM generate_series(1, 943) u;
SELECT is((SELECT count(*)::int FROM placed_1), 475, 'IMMUTABLE: usable as a partition key');
SELECT is((SELECT count(*)::int FROM placed_0 WHERE genrec_partition(user_id, 2) <> 0), 0,
          'partition 0 holds only its users');

-- genrec_score_batch = genrec_score per user, in the order given
CREATE TEMP TABLE users AS
  SELECT array_agg(u::bigint ORDER BY u DESC) AS ids FROM generate_series(1, 150) u;
SELECT results_eq(
  $$SELECT b.user_id, b.scores FROM genrec_score_batch('fx_lac', (SELECT ids FROM users),
                                                     '{1,5,9,99999}') b$$,
  $$SELECT u::bigint, genrec_score('fx_lac', u, '{1,5,9,99999}') FROM generate_series(150, 1, -1) u$$,
  'genrec_score_batch equals genrec_score for each user, in the order of user_ids');
SELECT results_eq(
  $$SELECT b.user_id, b.scores FROM genrec_score_batch('fx_int', '{3,NULL,2}', '{4}') b$$,
  $$VALUES (3::bigint, genrec_score('fx_int', 3, '{4}')), (NULL, NULL), (2, genrec_score('fx_int', 2, '{4}'))$$,
  'a NULL user id gives NULL scores in its place');
SELECT is((SELECT count(*)::int FROM genrec_score_batch('fx_lac', '{}', '{1}')), 0,
          'no users, no rows');
SELECT is((SELECT count(*)::int FROM genrec_score_batch(NULL, '{1}', '{1}')), 0,
          'STRICT: a NULL model gives no rows');
SELECT throws_ok($$SELECT * FROM genrec_score_batch('fx_nope', '{1}', '{1}')$$, '42704', NULL,
                 'an unknown model: 42704, as genrec_score');

-- replicated catalogue changes: row triggers enabled for replica sessions only
SELECT is((SELECT string_agg(format('%s on %s: enabled %s, row %s', t.tgname, c.relname, t.tgenabled,
                                    (t.tgtype & 1) = 1), '; ' ORDER BY t.tgname)
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            WHERE t.tgname IN ('models_changed_replica', 'model_grants_changed_replica')),
          'model_grants_changed_replica on model_grants: enabled R, row t; models_changed_replica on models: enabled R, row t',
          'the replica row triggers on genrec.models and genrec.model_grants');
SELECT is((SELECT t.tgenabled::text FROM pg_trigger t WHERE t.tgname = 'models_changed'), 'A',
          'the statement trigger stays ENABLE ALWAYS');
SELECT is((SELECT p.proname::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgname = 'models_changed_replica'), 'genrec_models_changed',
          'the replica trigger calls genrec_models_changed');

SELECT * FROM finish();
ROLLBACK;
