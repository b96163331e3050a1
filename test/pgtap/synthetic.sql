-- genrec_synthetic contracts: argument validation with SQLSTATE 22023, STRICT NULL handling,
-- determinism and the documented shape of the output.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;

CREATE TEMP TABLE bad_args (call text, why text);
INSERT INTO bad_args VALUES
  ('0, 10',                    'no users'),
  ('-5, 10',                   'negative users'),
  ('10000001, 10',             'more than 10000000 users'),
  ('10, 0',                    'no items'),
  ('10, -1',                   'negative items'),
  ('10, 100000001',            'more than 100000000 items'),
  ('10, 10, 0',                'no interactions per user'),
  ('10, 10, -50',              'negative interactions per user'),
  ('10, 10, 100001',           'more interactions per user than a genrec_history holds'),
  ('10000000, 10, 101',        'more than 10^9 interactions in all'),
  ('2147483647, 2147483647, 2147483647', 'int4 maxima');

SELECT plan(11 + (SELECT count(*)::int FROM bad_args));

SELECT throws_ok(format('SELECT count(*) FROM genrec_synthetic(%s)', call), '22023', NULL,
                 format('rejects %s', why))
  FROM bad_args;
SELECT throws_ok($$SELECT * FROM genrec_synthetic(0, 10)$$, '22023',
                 'genrec_synthetic: users must be between 1 and 10000000, got 0',
                 'the message names the argument and its range');

SELECT is((SELECT count(*)::int FROM genrec_synthetic(NULL, 10)), 0, 'NULL users: no rows (STRICT)');
SELECT is((SELECT count(*)::int FROM genrec_synthetic(10, 10, 5, NULL)), 0, 'NULL seed: no rows (STRICT)');
SELECT lives_ok($$SELECT count(*) FROM genrec_synthetic(1, 1, 1)$$, 'the smallest arguments work');
SELECT lives_ok($$SELECT count(*) FROM genrec_synthetic(1, 100000000, 1, -1)$$,
                'the largest catalogue and a negative seed work');

SELECT results_eq($$SELECT * FROM genrec_synthetic(20, 300, 15, 99)$$,
                  $$SELECT * FROM genrec_synthetic(20, 300, 15, 99)$$,
                  'same arguments give the same rows in the same order');
SELECT results_ne($$SELECT * FROM genrec_synthetic(20, 300, 15, 99)$$,
                  $$SELECT * FROM genrec_synthetic(20, 300, 15, 100)$$,
                  'another seed gives other rows');
SELECT is_empty($$SELECT 1 FROM genrec_synthetic(200, 300, 15, 5)
                  WHERE user_id IS NULL OR item_id IS NULL OR action IS NULL OR ts IS NULL
                     OR item_id NOT BETWEEN 1 AND 300 OR action NOT BETWEEN 1 AND 5$$,
                'no NULLs; items and actions in range');
SELECT is_empty($$SELECT user_id FROM genrec_synthetic(200, 300, 15, 5)
                  GROUP BY user_id HAVING count(*) NOT BETWEEN 8 AND 22$$,
                'per-user counts lie in [N - N/2, N + N/2]');
SELECT is((SELECT count(DISTINCT user_id)::int FROM genrec_synthetic(200, 300, 15, 5)), 200,
          'every user has interactions');
SELECT ok((SELECT bool_and(ts > prev) FROM
            (SELECT ts, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev
               FROM genrec_synthetic(200, 300, 15, 5)) t WHERE prev IS NOT NULL),
          'times strictly increase per user');

SELECT * FROM finish();
ROLLBACK;
