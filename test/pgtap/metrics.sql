-- Metric contracts: invalid ranks and cut-offs raise 22023, a NULL k in an aggregate 22004,
-- malformed aggregate states are rejected; NULL handling is as documented.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;

CREATE TEMP TABLE bad_calls (sql text, code text, why text);
INSERT INTO bad_calls VALUES
  ('SELECT genrec_hr(0, 10)',                      '22023', 'genrec_hr: rank 0'),
  ('SELECT genrec_hr(-1, 10)',                     '22023', 'genrec_hr: negative rank'),
  ('SELECT genrec_hr(1, 0)',                       '22023', 'genrec_hr: k 0'),
  ('SELECT genrec_hr(1, -10)',                     '22023', 'genrec_hr: negative k'),
  ('SELECT genrec_ndcg(0, 10)',                    '22023', 'genrec_ndcg: rank 0'),
  ('SELECT genrec_ndcg(1, 0)',                     '22023', 'genrec_ndcg: k 0'),
  ('SELECT genrec_ndcg(-2147483648, 1)',           '22023', 'genrec_ndcg: int4 minimum rank'),
  ('SELECT genrec_mrr(0)',                         '22023', 'genrec_mrr: rank 0'),
  ('SELECT genrec_mrr(-7)',                        '22023', 'genrec_mrr: negative rank'),
  ('SELECT genrec_hit_rate(r, 0) FROM (VALUES (1)) v(r)',      '22023', 'genrec_hit_rate: k 0'),
  ('SELECT genrec_hit_rate(r, 10) FROM (VALUES (0)) v(r)',     '22023', 'genrec_hit_rate: rank 0'),
  ('SELECT genrec_hit_rate(r, NULL) FROM (VALUES (1)) v(r)',   '22004', 'genrec_hit_rate: NULL k'),
  ('SELECT genrec_hit_rate(r, 0) FROM (VALUES (NULL::int)) v(r)', '22023', 'genrec_hit_rate: k 0 with NULL rank'),
  ('SELECT genrec_mean_ndcg(r, -1) FROM (VALUES (1)) v(r)',    '22023', 'genrec_mean_ndcg: negative k'),
  ('SELECT genrec_mean_ndcg(r, 10) FROM (VALUES (-1)) v(r)',   '22023', 'genrec_mean_ndcg: negative rank'),
  ('SELECT genrec_mean_ndcg(r, NULL) FROM (VALUES (1)) v(r)',  '22004', 'genrec_mean_ndcg: NULL k'),
  ('SELECT genrec_mean_mrr(r) FROM (VALUES (0)) v(r)',         '22023', 'genrec_mean_mrr: rank 0'),
  ('SELECT genrec_ndcg_trans(NULL, 1, 10)',                    '22004', 'transition with a NULL state'),
  ('SELECT genrec_mrr_trans(''{1,2,3}'', 1)',                  '22023', 'transition with a 3-element state'),
  ('SELECT genrec_hit_rate_trans(''{{1,2}}'', 1, 1)',          '22023', 'transition with a 2-D state'),
  ('SELECT genrec_rmse_trans(''{1,NULL}'', 1, 1)',             '22023', 'transition with a NULL in the state'),
  ('SELECT genrec_metric_combine(''{0,0}'', ''{1}'')',         '22023', 'combine with a short state'),
  ('SELECT genrec_metric_mean(''{}'')',                        '22023', 'final with an empty state');

SELECT plan(8 + (SELECT count(*)::int FROM bad_calls));

SELECT throws_ok(sql, code, NULL, format('%s (%s)', why, code)) FROM bad_calls;
SELECT throws_ok('SELECT genrec_ndcg(0, 10)', '22023', 'rank must be at least 1, got 0',
                 'the rank message');
SELECT throws_ok('SELECT genrec_ndcg(1, 0)', '22023', 'k must be at least 1, got 0',
                 'the k message');

SELECT ok(genrec_hr(NULL, 10) IS NULL AND genrec_ndcg(1, NULL) IS NULL AND genrec_mrr(NULL) IS NULL,
          'scalars are STRICT: NULL in, NULL out');
SELECT is((SELECT genrec_mean_ndcg(r, 10) FROM (VALUES (1), (NULL)) v(r)), 0.5::float8,
          'aggregates count a NULL rank as a miss');
SELECT is((SELECT genrec_rmse(p, a) FROM (VALUES (1.0, 4.0), (NULL, 100.0), (100.0, NULL)) v(p, a)),
          3.0::float8, 'genrec_rmse skips pairs with a NULL');
SELECT is(genrec_ndcg(3, 10), 0.5::float8, 'NDCG of rank 3 is 1/log2(4)');
SELECT is(genrec_ndcg(11, 10), 0::float8, 'NDCG past k is 0');
SELECT is(genrec_metric_combine('{1,2}', '{3,4}'), '{4,6}'::float8[],
          'combine adds states (outside an aggregate, on a copy)');

SELECT * FROM finish();
ROLLBACK;
