-- The SQL surface of genrec: every function's signature, return type, volatility, strictness
-- and parallel marking, and a comment on every object. A new function must be listed here.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;

CREATE TEMP TABLE api (fn name, args text[], rettype text, vol text, strict bool, agg bool);
INSERT INTO api VALUES
  ('genrec_version',            '{}',                                        'text',                       'IMMUTABLE', true,  false),
  ('genrec_history_in',         '{cstring}',                                 'genrec_history',             'STABLE',    true,  false),
  ('genrec_history_out',        '{genrec_history}',                          'cstring',                    'STABLE',    true,  false),
  ('genrec_history_recv',       '{internal}',                                'genrec_history',             'IMMUTABLE', true,  false),
  ('genrec_history_send',       '{genrec_history}',                          'bytea',                      'IMMUTABLE', true,  false),
  ('genrec_history_agg_trans',  '{internal,bigint,real,timestamp with time zone}',        'internal',                   'IMMUTABLE', false, false),
  ('genrec_history_agg_final',  '{internal}',                                'genrec_history',             'IMMUTABLE', false, false),
  ('genrec_history',            '{bigint,real,timestamp with time zone}',    'genrec_history',             NULL,        NULL,  true),
  ('genrec_history',            '{bigint[],real[],timestamp with time zone[]}', 'genrec_history',             'IMMUTABLE', false, false),
  ('genrec_history_items',      '{genrec_history}',                          'bigint[]',                   'IMMUTABLE', true,  false),
  ('genrec_history_actions',    '{genrec_history}',                          'real[]',                     'IMMUTABLE', true,  false),
  ('genrec_history_times',      '{genrec_history}',                          'timestamp with time zone[]', 'IMMUTABLE', true,  false),
  ('genrec_history_length',     '{genrec_history}',                          'integer',                    'IMMUTABLE', true,  false),
  ('genrec_history_tail',       '{genrec_history,integer}',                  'genrec_history',             'IMMUTABLE', true,  false),
  ('genrec_synthetic',          '{integer,integer,integer,bigint}',          'setof record',               'IMMUTABLE', true,  false),
  ('genrec_hr',                 '{integer,integer}',                         'double precision',           'IMMUTABLE', true,  false),
  ('genrec_ndcg',               '{integer,integer}',                         'double precision',           'IMMUTABLE', true,  false),
  ('genrec_mrr',                '{integer}',                                 'double precision',           'IMMUTABLE', true,  false),
  ('genrec_hit_rate_trans',     '{double precision[],integer,integer}',      'double precision[]',         'IMMUTABLE', false, false),
  ('genrec_ndcg_trans',         '{double precision[],integer,integer}',      'double precision[]',         'IMMUTABLE', false, false),
  ('genrec_mrr_trans',          '{double precision[],integer}',              'double precision[]',         'IMMUTABLE', false, false),
  ('genrec_rmse_trans',         '{double precision[],double precision,double precision}', 'double precision[]', 'IMMUTABLE', true, false),
  ('genrec_metric_combine',     '{double precision[],double precision[]}',   'double precision[]',         'IMMUTABLE', true,  false),
  ('genrec_metric_mean',        '{double precision[]}',                      'double precision',           'IMMUTABLE', true,  false),
  ('genrec_rmse_final',         '{double precision[]}',                      'double precision',           'IMMUTABLE', true,  false),
  ('genrec_hit_rate',           '{integer,integer}',                         'double precision',           NULL,        NULL,  true),
  ('genrec_mean_ndcg',          '{integer,integer}',                         'double precision',           NULL,        NULL,  true),
  ('genrec_mean_mrr',           '{integer}',                                 'double precision',           NULL,        NULL,  true),
  ('genrec_rmse',               '{double precision,double precision}',       'double precision',           NULL,        NULL,  true);

-- serving (sql/parts/50_serve.sql)
INSERT INTO api VALUES
  ('genrec_score',              '{text,bigint,bigint[]}',                    'real[]',                     'STABLE',    true,  false),
  ('genrec_score',              '{bigint,bigint[]}',                         'real[]',                     'STABLE',    true,  false),
  ('genrec_score',              '{text,genrec_history,bigint[]}',            'real[]',                     'STABLE',    true,  false),
  ('genrec_score_detail',       '{text,bigint,bigint[]}',                    'setof record',               'STABLE',    true,  false),
  ('genrec_score_detail',       '{text,genrec_history,bigint[]}',            'setof record',               'STABLE',    true,  false),
  ('genrec_recommend',          '{text,bigint,integer,boolean}',             'setof record',               'STABLE',    true,  false),
  ('genrec_recommend',          '{text,genrec_history,integer,boolean}',     'setof record',               'STABLE',    true,  false),
  ('genrec_recommend',          '{bigint,bigint,boolean}',                   'setof record',               'STABLE',    true,  false),
  ('genrec_evaluate',           '{text,text,integer[]}',                     'setof record',               'STABLE',    true,  false),
  ('genrec_model_info',         '{text}',                                    'setof record',               'STABLE',    true,  false),
  ('genrec_layouts',            '{}',                                        'setof record',               'STABLE',    true,  false),
  ('genrec_leakage_check',      '{text,integer}',                            'setof record',               'STABLE',    true,  false),
  ('genrec_compare_layouts',    '{text,text[],integer[],text,text,text[],text,text,integer,integer,integer,integer,integer,integer,real,real,integer,jsonb,text,boolean,text}', 'setof record', 'VOLATILE', false, false),
  ('genrec_cache_status',       '{}',                                        'setof record',               'VOLATILE',  true,  false),
  ('genrec_cache_evict',        '{text}',                                    'integer',                    'VOLATILE',  false, false),
  ('genrec_models_changed',     '{}',                                        'trigger',                    'VOLATILE',  false, false),
  ('genrec_device_info',        '{}',                                        'record',                     'VOLATILE',  true,  false),
  ('genrec_report',             '{text}',                                    'text',                       'STABLE',    true,  false),
  ('genrec_report',             '{text[]}',                                  'text',                       'STABLE',    true,  false),
  ('genrec_worker_status',      '{}',                                        'record',                     'VOLATILE',  true,  false);

-- model catalogue and training (sql/parts/40_catalog.sql, 60_train.sql)
INSERT INTO api VALUES
  ('genrec_deploy',             '{text,integer}',                            'void',                       'VOLATILE',  false, false),
  ('genrec_rollback',           '{text}',                                    'integer',                    'VOLATILE',  false, false),
  ('genrec_drop_model',         '{text,integer}',                            'integer',                    'VOLATILE',  false, false),
  ('genrec_export',             '{text,integer}',                            'bytea',                      'STABLE',    false, false),
  ('genrec_weights_info',       '{bytea}',                                   'record',                     'IMMUTABLE', true,  false),
  ('genrec_model_items',        '{text,integer}',                            'bigint[]',                   'STABLE',    false, false),
  ('genrec_import',             '{text,bytea,boolean,jsonb}',                'integer',                    'VOLATILE',  false, false),
  ('genrec_train',              '{text,text,text,text,text[],text,text,text,integer,integer,integer,integer,integer,integer,real,real,integer,bigint,jsonb,boolean}',
                                                                             'setof record',               'VOLATILE',  false, false),
  ('genrec_training_progress',  '{}',                                        'setof record',               'VOLATILE',  true,  false),
  ('genrec_grant',              '{text,text}',                               'void',                       'VOLATILE',  true,  false),
  ('genrec_revoke',             '{text,text}',                               'void',                       'VOLATILE',  true,  false),
  ('genrec_has_privs_of',       '{oid}',                                     'boolean',                    'STABLE',    true,  false),
  ('genrec_models_claim_name',  '{}',                                        'trigger',                    'VOLATILE',  false, false);

-- scaling out (sql/parts/70_scale.sql)
INSERT INTO api VALUES
  ('genrec_user_hash',          '{bigint}',                                  'integer',                    'IMMUTABLE', true,  false),
  ('genrec_partition',          '{bigint,integer}',                          'integer',                    'IMMUTABLE', true,  false),
  ('genrec_score_batch',        '{text,bigint[],bigint[]}',                  'setof record',               'STABLE',    true,  false);

-- functions that are not PARALLEL SAFE, with their marking (r restricted, u unsafe)
CREATE TEMP TABLE api_parallel (sig text, par "char");
INSERT INTO api_parallel VALUES
  ('genrec_deploy(text,integer)',          'u'),
  ('genrec_rollback(text)',                'u'),
  ('genrec_drop_model(text,integer)',      'u'),
  ('genrec_import(text,bytea,boolean,jsonb)', 'u'),
  ('genrec_train(text,text,text,text,text[],text,text,text,integer,integer,integer,integer,integer,integer,real,real,integer,bigint,jsonb,boolean)', 'u'),
  ('genrec_training_progress()',           'r'),
  ('genrec_evaluate(text,text,integer[])', 'r'),
  ('genrec_cache_status()',                'r'),
  ('genrec_cache_evict(text)',             'u'),
  ('genrec_models_changed()',              'u'),
  ('genrec_models_claim_name()',           'u'),
  ('genrec_grant(text,text)',              'u'),
  ('genrec_revoke(text,text)',             'u'),
  ('genrec_device_info()',                 'r'),
  -- the user-id forms run the model's source SQL as its owner (not in parallel workers)
  ('genrec_score(text,bigint,bigint[])',   'r'),
  ('genrec_score(bigint,bigint[])',        'r'),
  ('genrec_score_detail(text,bigint,bigint[])', 'r'),
  ('genrec_recommend(text,bigint,integer,boolean)', 'r'),
  ('genrec_recommend(bigint,bigint,boolean)', 'r'),
  ('genrec_score_batch(text,bigint[],bigint[])', 'r'),
  ('genrec_leakage_check(text,integer)',   'r'),
  ('genrec_compare_layouts(text,text[],integer[],text,text,text[],text,text,integer,integer,integer,integer,integer,integer,real,real,integer,jsonb,text,boolean,text)', 'u');

-- the functions of the extension, by signature
CREATE TEMP VIEW ext_procs AS
  SELECT p.oid, p.proname, p.prokind, p.proparallel
    FROM pg_proc p
    JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
    JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'genrec';

SELECT plan((SELECT 13 + 3 * count(*)::int + count(*) FILTER (WHERE NOT agg)::int * 2 FROM api));

SELECT has_extension('genrec', 'extension genrec is installed');
SELECT has_schema('genrec', 'schema genrec exists');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'genrec'), false,
          'genrec is not relocatable');
SELECT is((SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = 'genrec'), 'genrec', 'genrec lives in schema genrec');
SELECT has_type('genrec', 'genrec_history', 'type genrec_history exists');
SELECT is((SELECT ROW(typlen, typalign, typstorage)::text FROM pg_type
            WHERE oid = 'genrec.genrec_history'::regtype), '(-1,d,x)',
          'genrec_history is a double-aligned, compressible varlena');
SELECT isnt(obj_description('genrec.genrec_history'::regtype, 'pg_type'), NULL,
            'genrec_history has a comment');
SELECT is(genrec.genrec_version(), '0.2.0', 'genrec_version() reports 0.2.0');

SELECT has_function('genrec', fn, args, format('%s(%s) exists', fn, array_to_string(args, ', ')))
  FROM api;
SELECT function_returns('genrec', fn, args, rettype,
                        format('%s(%s) returns %s', fn, array_to_string(args, ', '), rettype))
  FROM api;
SELECT volatility_is('genrec', fn, args, vol,
                     format('%s(%s) is %s', fn, array_to_string(args, ', '), vol))
  FROM api WHERE NOT agg;
SELECT CASE WHEN strict
            THEN is_strict('genrec', fn, args, format('%s(%s) is STRICT', fn, array_to_string(args, ', ')))
            ELSE isnt_strict('genrec', fn, args, format('%s(%s) is CALLED ON NULL INPUT', fn, array_to_string(args, ', ')))
       END
  FROM api WHERE NOT agg;
SELECT CASE WHEN agg
            THEN is_aggregate('genrec', fn, args, format('%s(%s) is an aggregate', fn, array_to_string(args, ', ')))
            ELSE isnt_aggregate('genrec', fn, args, format('%s(%s) is not an aggregate', fn, array_to_string(args, ', ')))
       END
  FROM api;

SELECT is((SELECT count(*)::int FROM ext_procs), (SELECT count(*)::int FROM api),
          'the list above names every function and aggregate of the extension');
SELECT is_empty($$SELECT oid::regprocedure::text FROM ext_procs
                   WHERE proparallel <> 's'
                     AND replace(oid::regprocedure::text, 'genrec.', '') NOT IN (SELECT sig FROM api_parallel)$$,
                'every function and aggregate not listed in api_parallel is PARALLEL SAFE');
SELECT set_eq($$SELECT replace(oid::regprocedure::text, 'genrec.', ''), proparallel FROM ext_procs
                 WHERE proparallel <> 's'$$,
              $$SELECT sig, par FROM api_parallel$$,
              'the functions in api_parallel have the marking listed there');
SELECT is_empty($$SELECT oid::regprocedure::text FROM ext_procs
                   WHERE obj_description(oid, 'pg_proc') IS NULL$$,
                'every function and aggregate has a COMMENT');
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attnum)
             FROM pg_proc p, unnest(p.proargnames, p.proargmodes) WITH ORDINALITY a(attname, mode, attnum)
            WHERE p.oid = 'genrec.genrec_synthetic(integer,integer,integer,bigint)'::regprocedure
              AND a.mode = 't'),
          ARRAY['user_id', 'item_id', 'action', 'ts'],
          'genrec_synthetic returns (user_id, item_id, action, ts)');

SELECT * FROM finish();
ROLLBACK;
