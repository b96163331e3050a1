-- genrec_history: text I/O, the ordered aggregate, arrays, accessors, binary I/O.
-- (The full list of error cases and their SQLSTATEs is in test/pgtap/history_errors.sql.)
SET search_path = genrec, public;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- text input and output
SELECT '{}'::genrec_history AS empty;
SELECT '{(101,4.5,"2024-01-01 00:00:00+00"),(102,,),(103,-0.25,"2024-01-02 12:30:00.123456+00")}'::genrec_history;
-- whitespace everywhere, bare and quoted times, signs, bigint limits, real limits, infinities
SELECT E' {\t( +1 , 2 , 2024-01-01 ) ,\n( -9223372036854775808 , , ) } '::genrec_history;
SELECT '{(9223372036854775807,3.4028235e38,infinity),(0,1e-45,"-infinity"),(7,-0,)}'::genrec_history;
-- actions print in the shortest form that reads back exactly
SELECT '{(1,0.1,),(2,3.14159265358979,),(3,1e10,),(4,1.17549435e-38,),(5,0x1p-3,)}'::genrec_history;
-- times follow the session's TimeZone and DateStyle, like timestamptz
SET TimeZone = 'America/New_York';
SELECT '{(1,,"2024-07-01 12:00:00+00")}'::genrec_history;
SET DateStyle = 'Postgres, MDY';
SELECT '{(1,,"2024-07-01 12:00:00+00")}'::genrec_history;
SELECT '{(1,,"2024-07-01 12:00:00+00")}'::genrec_history::text::genrec_history;
RESET DateStyle;
SET DateStyle = 'ISO, YMD';
SET TimeZone = 'UTC';

-- output reads back to the identical value
CREATE TEMP TABLE lits (id int, lit text);
INSERT INTO lits VALUES
  (1, '{}'),
  (2, '{(1,,)}'),
  (3, '{(1,0.3,)}'),
  (4, '{(1,,"2024-01-01 00:00:00+00")}'),
  (5, '{(1,2.5,"2024-01-01 00:00:00.000001+00"),(2,,),(3,,"2024-01-02 00:00:00+00"),(4,1e-30,)}'),
  (6, '{(5,1,"-infinity"),(6,2,"infinity"),(-7,3.4028235e+38,"4713-01-01 00:00:00+00 BC")}');
SELECT id, lit::genrec_history::text = lit AS canonical,
       lit::genrec_history::text::genrec_history::text = lit::genrec_history::text AS round_trip
  FROM lits ORDER BY id;

-- a few malformed literals, to show the messages
SELECT '{(1,2,)'::genrec_history;
SELECT '{(1,2,),}'::genrec_history;
SELECT '{(1;2,)}'::genrec_history;
SELECT '{(x,2,)}'::genrec_history;
SELECT '{(1,2,)} junk'::genrec_history;
SELECT '{(1,NaN,)}'::genrec_history;
SELECT '{(1,1e39,)}'::genrec_history;
SELECT '{(9223372036854775808,,)}'::genrec_history;
SELECT '{(1,,"yesterday-ish")}'::genrec_history;
SELECT '{(1,,"2024-01-01)}'::genrec_history;

-- the ordered aggregate
CREATE TEMP TABLE log (user_id int, item bigint, action real, ts timestamptz);
INSERT INTO log VALUES
  (1, 30, 3.0, '2024-01-03'),
  (1, 10, 1.0, '2024-01-01'),
  (1, 20, NULL, '2024-01-02'),
  (2, 11, 5.0, '2024-02-02'),
  (2, 12, 4.0, NULL),
  (2, 10, 4.5, '2024-02-01'),
  (3, 99, NULL, NULL);
SELECT user_id, genrec_history(item, action, ts ORDER BY ts) AS h
  FROM log GROUP BY user_id ORDER BY user_id;
-- the aggregate keeps the order it receives
SELECT genrec_history(item, action, ts ORDER BY item DESC) FROM log WHERE user_id = 1;
-- ties in ORDER BY ts are broken by the tiebreak the query adds
SELECT genrec_history(item, NULL, '2024-01-01'::timestamptz ORDER BY ts, item) FROM log;
-- no rows: NULL
SELECT genrec_history(item, action, ts ORDER BY ts) IS NULL AS no_rows FROM log WHERE false;
-- as a window function: the history so far, per row
SELECT user_id, item,
       genrec_history(item, action, ts) OVER (PARTITION BY user_id ORDER BY ts) AS so_far
  FROM log WHERE user_id = 1 ORDER BY ts;
-- a NULL item is an error
SELECT genrec_history(item, action, ts ORDER BY ts) FROM (VALUES (NULL::bigint, 1::real, now())) v(item, action, ts);

-- from arrays
SELECT genrec_history(ARRAY[1, 2, 3]);
SELECT genrec_history(ARRAY[1, 2, 3], ARRAY[1.5, NULL, 2]::real[],
                      ARRAY['2024-01-01', NULL, '2024-01-03']::timestamptz[]);
SELECT genrec_history(ARRAY[1, 2], ts => ARRAY['2024-01-01', '2024-01-02']::timestamptz[]);
SELECT genrec_history('{}'::bigint[]) AS empty, genrec_history(NULL::bigint[]) IS NULL AS null_items;
-- an array with a lower bound other than 1 is read in order
SELECT genrec_history('[0:2]={7,8,9}'::bigint[], '[5:7]={1,2,3}'::real[]);
SELECT genrec_history(ARRAY[1, 2], ARRAY[1]::real[]);
SELECT genrec_history(ARRAY[1, NULL, 3]);
SELECT genrec_history(ARRAY[[1, 2], [3, 4]]);
SELECT genrec_history(ARRAY[1], ARRAY['NaN']::real[]);

-- accessors
CREATE TEMP TABLE hs (id int, h genrec_history);
INSERT INTO hs VALUES
  (1, '{}'),
  (2, '{(1,,)}'),
  (3, '{(101,4.5,"2024-01-01 00:00:00+00"),(102,,),(103,-0.25,"2024-01-02 12:30:00+00")}'),
  (4, '{(1,,"2024-01-01 00:00:00+00"),(2,,),(3,,"2024-01-03 00:00:00+00")}'),
  (5, NULL);
SELECT id, genrec_history_items(h) AS items, genrec_history_actions(h) AS actions,
       genrec_history_times(h) AS times, genrec_history_length(h) AS len
  FROM hs ORDER BY id;
SELECT id, genrec_history_tail(h, 0) AS t0, genrec_history_tail(h, 2) AS t2,
       genrec_history_tail(h, 10) AS t10
  FROM hs ORDER BY id;
SELECT genrec_history_tail('{(1,,)}', -1);
-- expanding a history back into rows
SELECT u.* FROM hs, unnest(genrec_history_items(h), genrec_history_actions(h),
                           genrec_history_times(h)) WITH ORDINALITY AS u(item, action, ts, pos)
  WHERE id = 3;

-- binary output (the wire format: n, flags, items, actions, times, time-NULL bitmap)
SELECT id, genrec_history_send(h) FROM hs WHERE id < 5 ORDER BY id;
SELECT genrec_history_send('{(1,0.5,"2000-01-01 00:00:00+00"),(2,,)}');

-- binary round trip through COPY (FORMAT binary), in a file in the server's data directory
CREATE TEMP TABLE bin_src AS
  SELECT id, h FROM hs
  UNION ALL SELECT 10 + id, lit::genrec_history FROM lits;
CREATE TEMP TABLE bin_dst (LIKE bin_src);
DO $$
BEGIN
  EXECUTE format('COPY bin_src TO %L (FORMAT binary)',
                 current_setting('data_directory') || '/genrec_regress_history.bin');
  EXECUTE format('COPY bin_dst FROM %L (FORMAT binary)',
                 current_setting('data_directory') || '/genrec_regress_history.bin');
END
$$;
SELECT count(*) AS copied,
       bool_and(s.h::text IS NOT DISTINCT FROM d.h::text) AS identical,
       bool_and(genrec_history_send(s.h) IS NOT DISTINCT FROM genrec_history_send(d.h)) AS same_bytes
  FROM bin_src s JOIN bin_dst d USING (id);

-- the longest history: 100000 interactions, stored (TOAST, compressed) and read back
CREATE TEMP TABLE big AS
  SELECT genrec_history(array_agg(g::bigint ORDER BY g), array_agg((g % 5)::real ORDER BY g),
                        array_agg('2024-01-01'::timestamptz + g * interval '1 minute' ORDER BY g)) AS h
    FROM generate_series(1, 100000) g;
SELECT genrec_history_length(h), (genrec_history_items(h))[100000] AS last_item,
       (genrec_history_times(h))[100000] AS last_time,
       pg_column_size(h) < 100000 * 20 AS compressed,
       h::text::genrec_history::text = h::text AS text_round_trip,
       genrec_history_length(genrec_history_tail(h, 200)) AS tail_len
  FROM big;
SELECT genrec_history_length(genrec_history(item, NULL, NULL ORDER BY item))
  FROM generate_series(1, 100000) item;
SELECT genrec_history_length(genrec_history(item, NULL, NULL ORDER BY item))
  FROM generate_series(1, 100001) item;
