-- Metric functions and aggregates on hand-computed cases.
SET search_path = genrec, public;

-- HR@10, NDCG@10 = 1/log2(rank + 1), reciprocal rank
SELECT rank, genrec_hr(rank, 10) AS hr, round(genrec_ndcg(rank, 10)::numeric, 6) AS ndcg,
       round(genrec_mrr(rank)::numeric, 6) AS rr
  FROM (VALUES (1), (2), (3), (7), (10), (11), (1000)) v(rank);
-- exact values: log2(2) = 1, log2(4) = 2, log2(8) = 3
SELECT genrec_ndcg(1, 1) AS n1, genrec_ndcg(3, 3) AS n3, genrec_ndcg(7, 7) AS n7,
       genrec_ndcg(2, 1) AS past_k, genrec_mrr(4) AS rr4;
-- NULL in, NULL out
SELECT genrec_hr(NULL, 10) IS NULL AS hr_null, genrec_ndcg(1, NULL) IS NULL AS ndcg_null,
       genrec_mrr(NULL) IS NULL AS mrr_null;

-- aggregates: ranks 1, 3, 20 and one target not ranked (NULL, a miss)
CREATE TEMP TABLE ranks (rank int);
INSERT INTO ranks VALUES (1), (3), (20), (NULL);
-- HR@10 = 2/4; NDCG@10 = (1 + 0.5) / 4; MRR = (1 + 1/3 + 1/20 + 0) / 4
SELECT genrec_hit_rate(rank, 10) AS hr10, genrec_mean_ndcg(rank, 10) AS ndcg10,
       round(genrec_mean_mrr(rank)::numeric, 6) AS mrr,
       round(((1 + 1/3.0 + 1/20.0) / 4)::numeric, 6) AS mrr_by_hand
  FROM ranks;
-- the aggregates agree with avg() of the scalars where every target is ranked
SELECT genrec_mean_ndcg(rank, 50) = avg(genrec_ndcg(rank, 50)) AS ndcg_agrees,
       genrec_hit_rate(rank, 2) = avg(genrec_hr(rank, 2)) AS hr_agrees
  FROM ranks WHERE rank IS NOT NULL;
-- no rows: NULL
SELECT genrec_hit_rate(rank, 10) IS NULL AS hr, genrec_mean_ndcg(rank, 10) IS NULL AS ndcg,
       genrec_mean_mrr(rank) IS NULL AS mrr
  FROM ranks WHERE false;
-- per group
SELECT g, genrec_hit_rate(rank, 5) FROM (VALUES ('a', 1), ('a', 9), ('b', 2), ('b', 5)) v(g, rank)
 GROUP BY g ORDER BY g;

-- RMSE: errors 1, -2, 2 -> sqrt((1 + 4 + 4) / 3) = sqrt(3); NULL pairs skipped
SELECT genrec_rmse(p, a) AS rmse, sqrt(3.0::float8) AS by_hand
  FROM (VALUES (2.0, 1.0), (1.0, 3.0), (5.0, 3.0), (NULL, 1.0), (4.0, NULL)) v(p, a);
SELECT genrec_rmse(p, a) IS NULL AS no_pairs FROM (VALUES (NULL::float8, 1.0::float8)) v(p, a);
SELECT genrec_rmse(x, x) AS perfect FROM generate_series(1, 10) x;

-- parallel aggregation gives the same results as serial (combine function)
CREATE TABLE metric_rows AS
  SELECT g, (g * 7919) % 100 + 1 AS rank, (g % 13)::float8 AS p, (g % 11)::float8 AS a
    FROM generate_series(1, 200000) g;
ANALYZE metric_rows;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial AS
  SELECT genrec_hit_rate(rank, 10) AS hr, genrec_mean_ndcg(rank, 10) AS ndcg,
         genrec_mean_mrr(rank) AS mrr, genrec_rmse(p, a) AS rmse FROM metric_rows;
SET max_parallel_workers_per_gather = 4;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF)
  SELECT genrec_hit_rate(rank, 10), genrec_mean_ndcg(rank, 10), genrec_mean_mrr(rank),
         genrec_rmse(p, a) FROM metric_rows;
SELECT abs(s.hr - p.hr) < 1e-12 AS hr, abs(s.ndcg - p.ndcg) < 1e-12 AS ndcg,
       abs(s.mrr - p.mrr) < 1e-12 AS mrr, abs(s.rmse - p.rmse) < 1e-12 AS rmse
  FROM serial s,
       (SELECT genrec_hit_rate(rank, 10) AS hr, genrec_mean_ndcg(rank, 10) AS ndcg,
               genrec_mean_mrr(rank) AS mrr, genrec_rmse(p, a) AS rmse FROM metric_rows) p;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
DROP TABLE metric_rows;

-- invalid arguments
SELECT genrec_hr(0, 10);
SELECT genrec_ndcg(1, 0);
SELECT genrec_mrr(-3);
SELECT genrec_hit_rate(rank, 0) FROM ranks;
SELECT genrec_mean_ndcg(rank, NULL) FROM ranks;
SELECT genrec_mean_mrr(r) FROM (VALUES (0)) v(r);
