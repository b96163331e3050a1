-- genrec_history contracts: every malformed input is rejected with its SQLSTATE, in text,
-- binary, array and aggregate form; the limits hold exactly at 100000 interactions.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- The detail of the error a statement raises.
CREATE FUNCTION pg_temp.err_detail(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  d text;
BEGIN
  EXECUTE sql;
  RETURN NULL;
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN d;
END
$f$;

-- Feed raw bytes to genrec_history_recv through COPY (FORMAT binary) and return the result
-- as text: a bytea column's binary COPY field is its raw bytes, read back as genrec_history.
CREATE TEMP TABLE recv_src (b bytea);
CREATE TEMP TABLE recv_dst (h genrec.genrec_history);
CREATE FUNCTION pg_temp.recv(payload bytea) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  path text := current_setting('data_directory') || '/genrec_tap_recv.bin';
  r text;
BEGIN
  TRUNCATE recv_src, recv_dst;
  INSERT INTO recv_src VALUES (payload);
  EXECUTE format('COPY recv_src TO %L (FORMAT binary)', path);
  EXECUTE format('COPY recv_dst FROM %L (FORMAT binary)', path);
  SELECT h::text INTO r FROM recv_dst;
  RETURN r;
END
$f$;

CREATE TEMP TABLE bad_text (lit text, code text, why text);
INSERT INTO bad_text VALUES
  ('',                                  '22P02', 'empty string'),
  ('   ',                               '22P02', 'only whitespace'),
  ('x',                                 '22P02', 'no brace'),
  ('(1,,)',                             '22P02', 'interaction without braces'),
  ('{',                                 '22P02', 'unterminated list'),
  ('{(',                                '22P02', 'unterminated interaction'),
  ('{(1',                               '22P02', 'item only'),
  ('{(1,',                              '22P02', 'item and comma'),
  ('{(1,2',                             '22P02', 'no second comma'),
  ('{(1,2,',                            '22P02', 'no closing parenthesis'),
  ('{(1,2,)',                           '22P02', 'no closing brace'),
  ('{(1,2,),}',                         '22P02', 'trailing comma'),
  ('{,(1,2,)}',                         '22P02', 'leading comma'),
  ('{(1,2,)(3,4,)}',                    '22P02', 'missing comma between interactions'),
  ('{(1,2,)} x',                        '22P02', 'junk after the list'),
  ('{(1,2,)}}',                         '22P02', 'extra closing brace'),
  ('{{(1,2,)}}',                        '22P02', 'nested braces'),
  ('{()}',                              '22P02', 'empty interaction'),
  ('{(,1,)}',                           '22P02', 'missing item'),
  ('{(1)}',                             '22P02', 'one field'),
  ('{(1,2)}',                           '22P02', 'two fields'),
  ('{(1,2,,)}',                         '22P02', 'four fields'),
  ('{1,2}',                             '22P02', 'bare items'),
  ('{(1.5,,)}',                         '22P02', 'fractional item'),
  ('{(1e3,,)}',                         '22P02', 'item in exponent form'),
  ('{(abc,,)}',                         '22P02', 'non-numeric item'),
  ('{(- 1,,)}',                         '22P02', 'sign apart from digits'),
  ('{(1 2,,)}',                         '22P02', 'two numbers as item'),
  ('{("1",,)}',                         '22P02', 'quoted item'),
  ('{(1,abc,)}',                        '22P02', 'non-numeric action'),
  ('{(1,1.2.3,)}',                      '22P02', 'two decimal points'),
  ('{(1,1 2,)}',                        '22P02', 'two numbers as action'),
  ('{(1,"2",)}',                        '22P02', 'quoted action'),
  ('{(1,,"2024-01-01)}',                '22P02', 'unterminated quoted time'),
  ('{(1,,"2024\01-01")}',               '22P02', 'backslash in quoted time'),
  ('{(1,,"2024-01-01"x)}',              '22P02', 'text after quoted time'),
  ('{(1,NaN,)}',                        '22003', 'NaN action'),
  ('{(1,nan,)}',                        '22003', 'nan action'),
  ('{(1,Infinity,)}',                   '22003', 'infinite action'),
  ('{(1,-inf,)}',                       '22003', 'negative infinite action'),
  ('{(1,1e39,)}',                       '22003', 'action overflows real'),
  ('{(1,-1e39,)}',                      '22003', 'action underflows real'),
  ('{(1,1e-50,)}',                      '22003', 'action too small for real'),
  ('{(9223372036854775808,,)}',         '22003', 'item above bigint'),
  ('{(-9223372036854775809,,)}',        '22003', 'item below bigint'),
  ('{(99999999999999999999999,,)}',     '22003', 'item far above bigint'),
  ('{(1,,"not a time")}',               '22007', 'unparseable time'),
  ('{(1,,2024-13-01)}',                 '22008', 'month 13'),
  ('{(1,,"294277-01-01 00:00:00+00")}', '22008', 'time beyond timestamptz');

CREATE TEMP TABLE bad_recv (payload bytea, code text, why text);
INSERT INTO bad_recv VALUES
  ('\xffffffff00000000',                                          '22P03', 'negative length'),
  ('\x000186a100000000',                                          '54000', 'length 100001'),
  ('\x0000000100000008' || '\x0000000000000005'::bytea,           '22P03', 'unknown flag'),
  ('\x0000000100000004' || '\x0000000000000005'::bytea,           '22P03', 'time NULLs without times'),
  ('\x0000000100000001' || '\x00000000000000057f800000'::bytea,   '22003', 'infinite action'),
  ('\x0000000100000001' || '\x0000000000000005ff800000'::bytea,   '22003', 'negative infinite action'),
  ('\x0000000100000002' || '\x00000000000000057ffffffffffffffe'::bytea, '22008', 'time out of range'),
  ('\x0000000200000000' || '\x0000000000000005'::bytea,           '08P01', 'truncated items'),
  ('\x0000000100000001' || '\x0000000000000005'::bytea,           '08P01', 'missing actions'),
  ('\x0000000100000000' || '\x000000000000000500'::bytea,         '22P03', 'trailing byte'),
  ('\x00000001',                                                  '08P01', 'no flags');

SELECT plan(35 + (SELECT count(*)::int FROM bad_text) + (SELECT count(*)::int FROM bad_recv));

-- text input: every malformed literal, with its SQLSTATE
SELECT throws_ok(format('SELECT %L::genrec.genrec_history', lit), code, NULL,
                 format('text input rejects %s (%s)', why, code))
  FROM bad_text;

-- messages name the problem and where it is
SELECT throws_ok($$SELECT '{(1;2,)}'::genrec_history$$, '22P02',
                 'malformed genrec_history literal: "{(1;2,)}"', 'syntax error message');
SELECT is(pg_temp.err_detail($$SELECT '{(1;2,)}'::genrec_history$$),
          'Expected "," after the item id at position 4.', 'syntax error detail gives the position');
SELECT is(pg_temp.err_detail($$SELECT '{(1,2,)'::genrec_history$$),
          'Expected "," or "}" after an interaction at end of input.', 'detail at end of input');
SELECT is(pg_temp.err_detail($$SELECT '{(1,2,),(3,x y,)}'::genrec_history$$),
          'Expected an action (a real number, or nothing for NULL) at position 12.',
          'detail for a bad action');
SELECT throws_ok(format('SELECT %L::genrec_history', '{(1,,)' || repeat(',(1,,)', 100) || ',(x,,)}'),
                 '22P02', format('malformed genrec_history literal: "%s..."', left('{(1,,)' || repeat(',(1,,)', 100), 64)),
                 'a long literal is clipped in the message');
SELECT throws_ok($$SELECT '{(1,NaN,)}'::genrec_history$$, '22003',
                 'genrec_history action must be a finite number', 'NaN action message');
SELECT throws_ok($$SELECT '{(9223372036854775808,,)}'::genrec_history$$, '22003',
                 'item id 9223372036854775808 is out of range for type bigint', 'item range message');

-- the length limit, exactly
SELECT lives_ok(format('SELECT %L::genrec_history', '{' || string_agg('(1,,)', ',') || '}'),
                'text input takes 100000 interactions')
  FROM generate_series(1, 100000);
SELECT throws_ok(format('SELECT %L::genrec_history', '{' || string_agg('(1,,)', ',') || '}'),
                 '54000', 'genrec_history cannot hold more than 100000 interactions',
                 'text input rejects 100001 interactions')
  FROM generate_series(1, 100001);

-- binary input
SELECT is(pg_temp.recv('\x0000000000000000'), '{}', 'binary input reads the empty history');
SELECT is(pg_temp.recv('\x0000000100000000' || '\x0000000000000005'::bytea), '{(5,,)}',
          'binary input reads an item-only history');
SELECT is(pg_temp.recv('\x0000000100000001' || '\x00000000000000057fc00000'::bytea), '{(5,,)}',
          'binary input reads NaN as a missing action');
SELECT is(genrec_history_send('{(5,,)}'), '\x00000001000000000000000000000005'::bytea,
          'a history whose actions are all missing is sent without actions');
SELECT is(pg_temp.recv('\x0000000100000002' || '\x00000000000000057fffffffffffffff'::bytea),
          '{(5,,"infinity")}', 'binary input accepts an infinite time');
SELECT is(pg_temp.recv(genrec_history_send(h)), h::text, format('binary round trip of %s', h::text))
  FROM (VALUES ('{(1,2.5,"2024-01-01 00:00:00+00"),(2,,),(3,,"2024-01-02 00:00:00+00")}'::genrec_history),
               ('{(-1,-0,),(9223372036854775807,3.4028235e+38,"-infinity")}')) v(h);
SELECT throws_ok(format('SELECT pg_temp.recv(%L::bytea)', payload), code, NULL,
                 format('binary input rejects %s (%s)', why, code))
  FROM bad_recv;

-- from arrays
SELECT throws_ok($$SELECT genrec_history(ARRAY[1, 2], ARRAY[1]::real[])$$, '2202E',
                 'actions and items must have the same length', 'actions shorter than items');
SELECT throws_ok($$SELECT genrec_history(ARRAY[1], ARRAY[1, 2]::real[])$$, '2202E',
                 'actions and items must have the same length', 'actions longer than items');
SELECT throws_ok($$SELECT genrec_history(ARRAY[1, 2], NULL, ARRAY[now()])$$, '2202E',
                 'ts and items must have the same length', 'ts shorter than items');
SELECT throws_ok($$SELECT genrec_history('{}'::bigint[], '{1}'::real[])$$, '2202E',
                 'actions and items must have the same length', 'actions for no items');
SELECT throws_ok($$SELECT genrec_history(ARRAY[[1, 2], [3, 4]])$$, '2202E',
                 'items must be a one-dimensional array', 'two-dimensional items');
SELECT throws_ok($$SELECT genrec_history(ARRAY[1, 2], ARRAY[[1], [2]]::real[])$$, '2202E',
                 'actions must be a one-dimensional array', 'two-dimensional actions');
SELECT throws_ok($$SELECT genrec_history(ARRAY[1, NULL, 3])$$, '22004',
                 'genrec_history item must not be NULL', 'NULL item element');
SELECT throws_ok($$SELECT genrec_history(ARRAY[1], ARRAY['NaN']::real[])$$, '22003',
                 'genrec_history action must be a finite number', 'NaN action element');
SELECT throws_ok($$SELECT genrec_history(ARRAY[1], ARRAY['-Infinity']::real[])$$, '22003',
                 'genrec_history action must be a finite number', 'infinite action element');
SELECT throws_ok($$SELECT genrec_history(array_agg(g::bigint)) FROM generate_series(1, 100001) g$$,
                 '54000', 'genrec_history cannot hold more than 100000 interactions',
                 'more than 100000 items');
SELECT is(genrec_history(ARRAY[1, 2], NULL, NULL)::text, '{(1,,),(2,,)}',
          'NULL actions and ts arrays mean all missing');
SELECT ok(genrec_history(NULL::bigint[], ARRAY[1]::real[]) IS NULL, 'NULL items gives NULL');

-- the aggregate
SELECT throws_ok($$SELECT genrec_history(i, 1, now()) FROM (VALUES (1::bigint), (NULL)) v(i)$$,
                 '22004', 'genrec_history item must not be NULL', 'aggregate: NULL item');
SELECT throws_ok($$SELECT genrec_history(1, a, now()) FROM (VALUES ('NaN'::real)) v(a)$$,
                 '22003', 'genrec_history action must be a finite number', 'aggregate: NaN action');
SELECT throws_ok($$SELECT genrec_history(1, a, now()) FROM (VALUES ('Infinity'::real)) v(a)$$,
                 '22003', 'genrec_history action must be a finite number', 'aggregate: infinite action');
SELECT throws_ok($$SELECT genrec_history(g, NULL, NULL ORDER BY g) FROM generate_series(1, 100001) g$$,
                 '54000', 'genrec_history cannot hold more than 100000 interactions',
                 'aggregate: 100001 rows');
SELECT is((SELECT genrec_history(i, NULL, NULL) FILTER (WHERE i IS NOT NULL)
             FROM (VALUES (1::bigint), (NULL)) v(i))::text,
          '{(1,,)}', 'aggregate: FILTER skips NULL items');

-- accessors
SELECT throws_ok($$SELECT genrec_history_tail('{(1,,)}', -1)$$, '22023',
                 'genrec_history_tail length must not be negative', 'negative tail length');
SELECT ok(genrec_history_tail(NULL, 1) IS NULL, 'accessors are strict');

SELECT * FROM finish();
ROLLBACK;
