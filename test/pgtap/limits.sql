-- Resource limits of genrec_train, checked before allocating: genrec.max_train_memory (54000)
-- against the engine's estimate for the configuration alone (before any row is read), while
-- reading rows, and for the built dataset (before training); the 1 GB a stored model may take
-- (54000, before any row is read); who may change the setting; the estimate in the metrics.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;
SELECT plan(13);

CREATE TABLE lim_syn AS SELECT * FROM genrec_synthetic(2000, 3000, 15, 5);
-- a source that fails (22012) as soon as a row is read, but not when it is only planned
CREATE VIEW lim_fails AS
  SELECT 1 / (random() * 0)::integer AS user_id, 1 AS item_id, 1.0::real AS action, now() AS ts;

-- "SQLSTATE: message" of a statement, or "ok"
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END
$f$;

SELECT is(current_setting('genrec.max_train_memory'), '4GB', 'genrec.max_train_memory defaults to 4GB');

-- a configuration too large for the budget is refused before the source is read
SELECT matches(pg_temp.outcome($$SELECT * FROM genrec_train('lim_big', 'lim_fails', layout => 'item',
                 d_model => 512, n_layer => 4, n_head => 2, max_len => 200, batch_size => 512)$$),
               '^54000: genrec_train "lim_big": training on the configuration alone needs an estimated [0-9.]+ MB, more than genrec.max_train_memory \(4096\.0 MB\)$',
               'a configuration over genrec.max_train_memory is refused (54000) before any row is read');
SET LOCAL genrec.max_train_memory = -1;
SELECT matches(pg_temp.outcome($$SELECT * FROM genrec_train('lim_big', 'lim_fails', layout => 'item',
                 d_model => 512, n_layer => 4, n_head => 2, max_len => 200, batch_size => 512)$$),
               '^22012: ', 'without a limit the same call goes on to read the source');

-- a model whose weights cannot be stored is refused before reading, whatever the budget
SELECT matches(pg_temp.outcome($$SELECT * FROM genrec_train('lim_huge', 'lim_fails', layout => 'item',
                 d_model => 8192, n_layer => 2, n_head => 2, max_len => 8, batch_size => 1)$$),
               '^54000: genrec_train "lim_huge": the model would take [0-9.]+ MB, more than a bytea holds \(1 GB\)$',
               'weights over 1 GB are refused (54000) before training and before any row is read');

-- the rows read are bounded: the buffers grow only within the budget
SET LOCAL genrec.max_train_memory = '2MB';
SELECT matches(pg_temp.outcome($$SELECT * FROM genrec_train('lim_rows', 'lim_syn', layout => 'lac',
                 d_model => 8, n_layer => 1, n_head => 2, max_len => 8, batch_size => 16,
                 options => '{"head_hidden": 8, "n_buckets": 4}')$$),
               '^54000: genrec_train "lim_rows": the source has more than [0-9]+ rows, and reading and indexing more would take more than genrec.max_train_memory \(2\.0 MB\)$',
               'reading stops with 54000 before the rows outgrow genrec.max_train_memory');

-- the built dataset's exact estimate is checked before training
SET LOCAL genrec.max_train_memory = '60MB';
SELECT matches(pg_temp.outcome($$SELECT * FROM genrec_train('lim_data', 'lim_syn', layout => 'lac',
                 d_model => 256, n_layer => 1, n_head => 2, max_len => 8, batch_size => 64,
                 options => '{"head_hidden": 8, "n_buckets": 4}')$$),
               '^54000: genrec_train "lim_data": training on this data needs an estimated [0-9.]+ MB, more than genrec.max_train_memory \(60\.0 MB\)$',
               'training on data whose estimate passes genrec.max_train_memory is refused (54000)');
SELECT is((SELECT count(*) FROM genrec.models WHERE name LIKE 'lim\_%'), 0::bigint,
          'refused trainings leave genrec.models unchanged');

-- within the budget it trains, and the metrics keep the estimate
SET LOCAL genrec.max_train_memory = '100MB';
SELECT is((SELECT version FROM genrec_train('lim_ok', 'lim_syn', layout => 'lac', d_model => 256,
                 n_layer => 1, n_head => 2, max_len => 8, batch_size => 64, epochs => 1,
                 options => '{"head_hidden": 8, "n_buckets": 4}')), 1,
          'the same training runs within a larger budget');
SELECT ok((SELECT (metrics->>'memory_estimate')::bigint BETWEEN 60 * 1048576 AND 100 * 1048576
             FROM genrec.models WHERE name = 'lim_ok'),
          'metrics.memory_estimate holds the estimate the budget was checked against');

-- only superusers (or roles granted SET on it) change the budget
CREATE ROLE lim_user;
GRANT USAGE ON SCHEMA public TO lim_user;
SET LOCAL ROLE lim_user;
SELECT matches(pg_temp.outcome($$SET genrec.max_train_memory = '64GB'$$), '^42501: ',
               'a non-superuser cannot raise genrec.max_train_memory (42501)');
SELECT matches(pg_temp.outcome($$SET genrec.max_train_memory = '1MB'$$), '^42501: ',
               'nor change it otherwise');
RESET ROLE;
GRANT SET ON PARAMETER genrec.max_train_memory TO lim_user;
SET LOCAL ROLE lim_user;
SELECT is(pg_temp.outcome($$SET genrec.max_train_memory = '1MB'$$), 'ok',
          'a role granted SET on the parameter may change it');
RESET ROLE;
SELECT is(pg_temp.outcome($$SET genrec.max_train_memory = -2$$) ~ '^22023: ', true,
          'the budget is -1 (no limit) or a size');

SELECT * FROM finish();
ROLLBACK;
