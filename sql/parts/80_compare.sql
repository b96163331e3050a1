-- ---------------------------------------------------------------- layout comparison
--
-- genrec_compare_layouts: Table 2 of the LAC paper on the caller's own data. Every (layout,
-- seed) is one genrec_train call with the same options, so the source is read exactly as
-- genrec_train reads it (SECURITY INVOKER: the caller's rights, its cursor, its checks and
-- memory budget; nothing runs with another role's rights), cancels stop it the same way, and
-- the catalogue is written by genrec's own functions. The test metrics of each model come
-- from its catalogue row; models are dropped again unless keep_models. Every name is
-- schema-qualified; the search path is the caller's, for the source's name.

CREATE FUNCTION genrec_compare_layouts(source text, layouts text[],
                                       seeds integer[] DEFAULT '{1,2,3}',
                                       user_col text DEFAULT 'user_id',
                                       item_col text DEFAULT 'item_id',
                                       action_cols text[] DEFAULT NULL,
                                       time_col text DEFAULT 'ts',
                                       tiebreak_col text DEFAULT NULL,
                                       d_model integer DEFAULT 64,
                                       n_layer integer DEFAULT 2,
                                       n_head integer DEFAULT 2,
                                       max_len integer DEFAULT 50,
                                       epochs integer DEFAULT 50,
                                       batch_size integer DEFAULT 128,
                                       lr real DEFAULT 0.001,
                                       dropout real DEFAULT 0.2,
                                       patience integer DEFAULT 20,
                                       options jsonb DEFAULT '{}',
                                       reference text DEFAULT NULL,
                                       keep_models boolean DEFAULT false,
                                       model_prefix text DEFAULT 'compare')
    RETURNS TABLE (layout text, metric text, mean double precision, sd double precision,
                   n_seeds integer, change double precision)
    LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER
AS $fn$
#variable_conflict use_column
DECLARE
    l text;
    s integer;
    nm text;
    run integer := 0;
    runs integer;
    t0 timestamptz;
    r record;
    ref text := coalesce(reference, layouts[1]);
BEGIN
    IF source IS NULL OR layouts IS NULL OR seeds IS NULL OR model_prefix IS NULL
       OR keep_models IS NULL THEN
        RAISE EXCEPTION 'genrec_compare_layouts: source, layouts, seeds, keep_models and model_prefix must not be NULL'
            USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.cardinality(layouts) < 1 OR pg_catalog.cardinality(seeds) < 1
       OR pg_catalog.array_position(layouts, NULL) IS NOT NULL
       OR pg_catalog.array_position(seeds, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'genrec_compare_layouts: layouts and seeds must be non-empty arrays without NULLs'
            USING ERRCODE = '22023';
    END IF;
    IF (SELECT pg_catalog.count(DISTINCT x) FROM pg_catalog.unnest(layouts) x) <> pg_catalog.cardinality(layouts)
       OR (SELECT pg_catalog.count(DISTINCT x) FROM pg_catalog.unnest(seeds) x) <> pg_catalog.cardinality(seeds) THEN
        RAISE EXCEPTION 'genrec_compare_layouts: layouts and seeds must not repeat'
            USING ERRCODE = '22023';
    END IF;
    IF NOT ref = ANY (layouts) THEN
        RAISE EXCEPTION 'genrec_compare_layouts: reference layout "%" is not among the layouts', ref
            USING ERRCODE = '22023';
    END IF;
    runs := pg_catalog.cardinality(layouts) * pg_catalog.cardinality(seeds);
    -- never add versions to (or drop) a model that exists already
    FOREACH l IN ARRAY layouts LOOP
        FOREACH s IN ARRAY seeds LOOP
            nm := pg_catalog.format('%s_%s_s%s', model_prefix, l, s);
            IF EXISTS (SELECT 1 FROM genrec.model_names n WHERE n.name = nm) THEN
                RAISE EXCEPTION 'genrec_compare_layouts: a model named "%" exists already', nm
                    USING ERRCODE = '42710',
                          HINT = 'Choose another model_prefix, or drop the models of an earlier comparison.';
            END IF;
        END LOOP;
    END LOOP;

    CREATE TEMP TABLE IF NOT EXISTS genrec_compare_runs
        (layout text, seed integer, metric text, value double precision);
    TRUNCATE pg_temp.genrec_compare_runs;
    FOREACH l IN ARRAY layouts LOOP
        FOREACH s IN ARRAY seeds LOOP
            run := run + 1;
            nm := pg_catalog.format('%s_%s_s%s', model_prefix, l, s);
            t0 := pg_catalog.clock_timestamp();
            SELECT * INTO r FROM genrec.genrec_train(nm, source, user_col => user_col,
                item_col => item_col, action_cols => action_cols, time_col => time_col,
                tiebreak_col => tiebreak_col, layout => l, d_model => d_model,
                n_layer => n_layer, n_head => n_head, max_len => max_len, epochs => epochs,
                batch_size => batch_size, lr => lr, dropout => dropout, patience => patience,
                seed => s, options => options);
            INSERT INTO pg_temp.genrec_compare_runs
            SELECT l, s, m.metric, m.value
              FROM genrec.models g,
                   LATERAL (SELECT k AS metric, (g.metrics #>> ARRAY['test', k])::float8 AS value
                              FROM pg_catalog.unnest(ARRAY['hr@10', 'ndcg@10', 'hr@50', 'ndcg@50', 'mrr']) k
                            UNION ALL
                            SELECT p.k || ':' || (a.e ->> 'name'), (a.e ->> p.k)::float8
                              FROM pg_catalog.jsonb_array_elements(g.metrics #> '{test,actions}') a(e),
                                   pg_catalog.unnest(ARRAY['rmse', 'logloss', 'ne', 'auc']) p(k)) m
             WHERE g.name = nm AND m.value IS NOT NULL AND m.value = m.value;
            -- the baselines, once per seed (they do not depend on the layout), from the
            -- first model that reports them (a layout without an item head reports no
            -- popularity ranking, one without an action head no bias RMSE)
            IF NOT EXISTS (SELECT 1 FROM pg_temp.genrec_compare_runs c
                            WHERE c.layout = 'popularity' AND c.seed = s) THEN
                INSERT INTO pg_temp.genrec_compare_runs
                SELECT 'popularity', s, k, (g.metrics #>> ARRAY['test', 'popularity', k])::float8
                  FROM genrec.models g, pg_catalog.unnest(ARRAY['hr@10', 'ndcg@10', 'hr@50', 'ndcg@50']) k
                 WHERE g.name = nm AND g.metrics #>> ARRAY['test', 'popularity', k] IS NOT NULL;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_temp.genrec_compare_runs c
                            WHERE c.layout = 'bias' AND c.seed = s) THEN
                INSERT INTO pg_temp.genrec_compare_runs
                SELECT 'bias', s, 'rmse:' || (a.e ->> 'name'), (a.e ->> 'baseline_rmse')::float8
                  FROM genrec.models g,
                       pg_catalog.jsonb_array_elements(g.metrics #> '{test,actions}') a(e)
                 WHERE g.name = nm AND (a.e ->> 'baseline_rmse') IS NOT NULL;
            END IF;
            RAISE NOTICE 'genrec_compare_layouts: % seed % (% of %): test HR@10 %, RMSE %, % s',
                l, s, run, runs, coalesce(pg_catalog.round(r.test_hr10::numeric, 4)::text, '-'),
                coalesce(pg_catalog.round(r.test_rmse::numeric, 4)::text, '-'),
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - t0)::numeric, 1);
            IF NOT keep_models THEN
                PERFORM genrec.genrec_drop_model(nm);
            END IF;
        END LOOP;
    END LOOP;

    RETURN QUERY
    WITH agg AS (
        SELECT c.layout, c.metric, pg_catalog.avg(c.value) AS mean,
               pg_catalog.stddev_samp(c.value) AS sd, pg_catalog.count(*)::integer AS n
          FROM pg_temp.genrec_compare_runs c GROUP BY c.layout, c.metric)
    SELECT a.layout, a.metric, a.mean, a.sd, a.n,
           CASE WHEN b.mean IS NOT NULL AND b.mean <> 0 THEN (a.mean - b.mean) / b.mean END
      FROM agg a
      LEFT JOIN agg b ON b.layout = ref AND b.metric = a.metric
     ORDER BY CASE a.layout WHEN 'popularity' THEN 1 WHEN 'bias' THEN 2 ELSE 0 END,
              pg_catalog.array_position(layouts, a.layout), a.metric;
    DROP TABLE pg_temp.genrec_compare_runs;
END
$fn$;
COMMENT ON FUNCTION genrec_compare_layouts(text, text[], integer[], text, text, text[], text, text,
                                           integer, integer, integer, integer, integer, integer,
                                           real, real, integer, jsonb, text, boolean, text) IS
'Table 2 of the LAC paper on your data: trains every layout of layouts (e.g. ''{item,l2,l3,l4,l5,l6,l7,lac,l9,pc,int}'') once per seed with the same training options as genrec_train (each run is a genrec_train call, so the source is read with the caller''s rights exactly as genrec_train reads it), then returns one row per (layout, metric) of the test split: hr@10, ndcg@10, hr@50, ndcg@50, mrr where the layout predicts the next item; rmse:<col> (continuous), logloss:<col>, ne:<col>, auc:<col> (binary) where it predicts actions; with the baselines as layouts popularity (training-split popularity ranking) and bias (global + user + item bias RMSE). mean and sd (sample standard deviation) over the seeds, n_seeds = runs averaged, change = (mean - reference mean) / reference mean against the reference layout (default: the first). A NOTICE per run; cancel stops it like genrec_train; the models, named model_prefix_layout_sSEED, are dropped again unless keep_models (an existing name: 42710).';
