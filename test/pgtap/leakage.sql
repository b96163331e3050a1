-- genrec_leakage_check: the P3 perturbation test on trained models of several layouts passes
-- with its positive control, and fails on the test-only leaky variant (every action row's
-- token carrying its own label), which the extension does not declare: this test declares
-- the C entry point in pg_temp.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;
SET genrec.device = cpu;
SELECT plan(10);

CREATE TABLE lk_syn AS SELECT * FROM genrec_synthetic(60, 50, 12, 4);
CREATE TEMP TABLE lk AS SELECT t.* FROM unnest('{lac,int,pc,item,l4,l9}'::text[]) l,
       LATERAL genrec_train('lk_' || l, 'lk_syn', layout => l, d_model => 8, n_layer => 1,
                            n_head => 2, max_len => 6, epochs => 1, batch_size => 32, seed => 2,
                            options => '{"head_hidden": 8, "n_buckets": 4}') t;

CREATE FUNCTION pg_temp.leaky(model text, users integer DEFAULT 100)
    RETURNS TABLE ("check" text, passed boolean, max_change double precision)
    AS '$libdir/genrec', 'genrec_leakage_check_leaky' LANGUAGE C STABLE STRICT;

SELECT is((SELECT array_agg("check" ORDER BY "check") FROM genrec_leakage_check('lk_lac')),
          '{future_interaction,own_label,reaches_later}', 'three checks');
SELECT ok((SELECT bool_and(passed) FROM unnest('{lac,int,pc,item,l4,l9}'::text[]) l,
                  LATERAL genrec_leakage_check('lk_' || l, 20) c),
          'every trained layout passes every check');
SELECT is((SELECT max(max_change) FROM unnest('{lac,int,pc,item,l4,l9}'::text[]) l,
                  LATERAL genrec_leakage_check('lk_' || l, 20) c WHERE "check" <> 'reaches_later'),
          0::float8, 'on the CPU an unreached prediction is bit-identical');
SELECT ok((SELECT min(max_change) FROM unnest('{lac,int,pc,item,l4,l9}'::text[]) l,
                  LATERAL genrec_leakage_check('lk_' || l, 20) c WHERE "check" = 'reaches_later') > 1e-4,
          'the positive control: perturbations do reach later predictions');

-- the leaky variant: a_n in the token that predicts a_n
SELECT is((SELECT passed FROM pg_temp.leaky('lk_lac', 20) WHERE "check" = 'own_label'), false,
          'lac with its own label injected fails own_label');
SELECT ok((SELECT max_change FROM pg_temp.leaky('lk_pc', 20) WHERE "check" = 'own_label') > 1e-3,
          'pc with its own label injected moves by more than 1e-3');
SELECT is((SELECT passed FROM pg_temp.leaky('lk_lac', 20) WHERE "check" = 'future_interaction'), true,
          'the injected leak is of the own label only');
SELECT is((SELECT passed FROM pg_temp.leaky('lk_item', 20) WHERE "check" = 'own_label'), true,
          'nothing to inject into the item layout');

SELECT throws_ok($$SELECT * FROM genrec_leakage_check('lk_lac', 0)$$, '22023', NULL, 'users must be positive');
SELECT throws_ok($$SELECT * FROM genrec_leakage_check('lk_nope')$$, '42704', NULL, 'unknown model');

SELECT * FROM finish();
ROLLBACK;
