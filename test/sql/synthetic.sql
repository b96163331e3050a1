-- genrec_synthetic: first rows for a fixed seed, summary statistics, determinism.
SET search_path = genrec, public;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

SELECT * FROM genrec_synthetic(3, 100, 6, 42);

-- defaults: interactions_per_user 50, seed 42
SELECT count(*) AS n_rows, count(DISTINCT user_id) AS n_users
  FROM genrec_synthetic(20, 500);

CREATE TEMP TABLE syn AS SELECT * FROM genrec_synthetic(1000, 1000, 40, 7);

-- per-user counts vary around interactions_per_user, in [N - N/2, N + N/2]
SELECT min(c), max(c), round(avg(c)) AS mean
  FROM (SELECT user_id, count(*) AS c FROM syn GROUP BY user_id) per_user;

-- ids in range, actions in [1, 5] with one decimal, times strictly increasing per user
SELECT min(user_id), max(user_id), min(item_id) >= 1 AND max(item_id) <= 1000 AS items_in_range,
       min(action), max(action), bool_and(action::numeric = round(action::numeric, 1)) AS one_decimal,
       min(ts) >= '2024-01-01' AS after_epoch
  FROM syn;
SELECT bool_and(ts > prev) AS increasing
  FROM (SELECT ts, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM syn) t
 WHERE prev IS NOT NULL;

-- popularity is Zipf-like: item 1 is the most popular and the head is heavy
SELECT (array_agg(item_id ORDER BY c DESC, item_id))[1:3] AS top3,
       round(sum(c) FILTER (WHERE rnk <= 100)::numeric / sum(c), 1) AS top10pct_share
  FROM (SELECT item_id, count(*) AS c, rank() OVER (ORDER BY count(*) DESC) AS rnk
          FROM syn GROUP BY item_id) p;

-- few repeats per user
SELECT round((count(*) - count(DISTINCT (user_id, item_id)))::numeric / count(*), 2) AS repeat_share
  FROM syn;

-- taste: after a rating >= 3 the next item stays in the same cluster ((item - 1) % 31) far
-- more often than after a lower rating
WITH seq AS (
  SELECT item_id, lag(item_id) OVER w AS prev_item, lag(action) OVER w AS prev_action
    FROM syn WINDOW w AS (PARTITION BY user_id ORDER BY ts))
SELECT prev_action >= 3 AS liked_previous,
       round(avg(((item_id - 1) % 31 = (prev_item - 1) % 31)::int), 1) AS same_cluster
  FROM seq WHERE prev_item IS NOT NULL
 GROUP BY 1 ORDER BY 1;

-- actions: AR(1) residuals, so the residual after removing item means correlates with the
-- previous residual
WITH r AS (
  SELECT s.user_id, s.ts, s.action - m.mean AS res
    FROM syn s JOIN (SELECT item_id, avg(action) AS mean FROM syn GROUP BY item_id) m USING (item_id)),
l AS (SELECT res, lag(res) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM r)
SELECT round(corr(res, prev)::numeric, 1) AS residual_lag1_corr FROM l;

-- deterministic: same arguments, same rows; another seed, other rows
SELECT (SELECT string_agg(t::text, ';') FROM genrec_synthetic(30, 200, 10, 1) t)
     = (SELECT string_agg(t::text, ';') FROM genrec_synthetic(30, 200, 10, 1) t) AS same_seed_same_rows,
       (SELECT string_agg(t::text, ';') FROM genrec_synthetic(30, 200, 10, 1) t)
     = (SELECT string_agg(t::text, ';') FROM genrec_synthetic(30, 200, 10, 2) t) AS other_seed_same_rows;
-- a user's rows do not depend on how many users are generated
SELECT (SELECT string_agg(t::text, ';') FROM genrec_synthetic(5, 200, 10, 1) t WHERE user_id = 5)
     = (SELECT string_agg(t::text, ';') FROM genrec_synthetic(50, 200, 10, 1) t WHERE user_id = 5) AS prefix_stable;

-- tiny catalogues work (one cluster, repeats unavoidable)
SELECT count(*), min(item_id), max(item_id) FROM genrec_synthetic(2, 1, 3);

-- a user's rows make a genrec_history
SELECT user_id, genrec_history_length(genrec_history(item_id, action, ts ORDER BY ts)) AS len
  FROM genrec_synthetic(3, 100, 6, 42) GROUP BY user_id ORDER BY user_id;

-- invalid arguments
SELECT * FROM genrec_synthetic(0, 10);
SELECT * FROM genrec_synthetic(10, 0);
SELECT * FROM genrec_synthetic(10, 10, 100001);
SELECT * FROM genrec_synthetic(10000000, 10, 101);
