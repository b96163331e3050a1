-- sql/scale/proxy.sql — the proxy database of a scaled-out genrec (README "Scaling out"):
-- genrec's serving functions by user id, with the signatures they have on a single server,
-- as PL/Proxy functions that run on the user's partition. Installed by scripts/scaleout.sh
-- after CREATE EXTENSION plproxy, as a superuser; the script then creates the PL/Proxy
-- cluster genrec_partitions (SQL/MED server, one connection string per partition).
--
-- Not the genrec extension: the proxy has no model catalogue and holds no model, and its
-- schema genrec has only these functions, so a client's `SELECT genrec.genrec_score(...)`
-- reads the same on the proxy and on a single server. The hash comes from genrec's shared
-- library itself (the same C function the partitions' CHECK constraints call), so routing
-- and data placement cannot disagree.
--
-- Differences from a single server: PL/Proxy functions must be VOLATILE; rows of a batch or of
-- RUN ON ALL come partition by partition; the genrec_history overloads (no user id, nothing to
-- route) are not here: call them on any partition. Errors raised on a partition reach the
-- client with their message and SQLSTATE; an unreachable partition is an ERROR (XX000) naming
-- its database (genrec_pN) and address, for the users of that partition only.

\set ON_ERROR_STOP 1
CREATE SCHEMA genrec;
COMMENT ON SCHEMA genrec IS
'genrec''s serving functions routed to the partitions by PL/Proxy (sql/scale/proxy.sql); no catalogue and no models here.';
GRANT USAGE ON SCHEMA genrec TO PUBLIC;
CREATE SCHEMA genrec_scale;
COMMENT ON SCHEMA genrec_scale IS 'Cluster-wide status functions of a scaled-out genrec, through PL/Proxy.';
GRANT USAGE ON SCHEMA genrec_scale TO PUBLIC;

CREATE FUNCTION genrec.genrec_user_hash(user_id bigint) RETURNS integer
    AS '$libdir/genrec', 'genrec_user_hash'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec.genrec_user_hash(bigint) IS
'The genrec user hash (genrec''s C function): the first SplitMix64 output seeded with the user id, shifted right by 33, in [0, 2^31). PL/Proxy routes a user to partition hash % n.';

CREATE FUNCTION genrec.genrec_partition(user_id bigint, n_partitions integer) RETURNS integer
    AS '$libdir/genrec', 'genrec_partition'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec.genrec_partition(bigint, integer) IS
'The partition of a user among n: genrec_user_hash(user_id) % n_partitions (ERROR 22023 for n < 1).';

CREATE FUNCTION genrec.genrec_score(model text, user_id bigint, candidates bigint[])
    RETURNS real[]
    LANGUAGE plproxy VOLATILE STRICT PARALLEL UNSAFE
AS $$
    CLUSTER 'genrec_partitions';
    RUN ON genrec.genrec_user_hash(user_id);
$$;
COMMENT ON FUNCTION genrec.genrec_score(text, bigint, bigint[]) IS
'genrec_score(model, user_id, candidates) on the user''s partition (PL/Proxy): one real per candidate.';

CREATE FUNCTION genrec.genrec_score_detail(model text, user_id bigint, candidates bigint[])
    RETURNS TABLE (item_id bigint, known boolean, retrieval_logit real, actions real[])
    LANGUAGE plproxy VOLATILE STRICT PARALLEL UNSAFE ROWS 100
AS $$
    CLUSTER 'genrec_partitions';
    RUN ON genrec.genrec_user_hash(user_id);
$$;
COMMENT ON FUNCTION genrec.genrec_score_detail(text, bigint, bigint[]) IS
'genrec_score_detail(model, user_id, candidates) on the user''s partition (PL/Proxy).';

CREATE FUNCTION genrec.genrec_recommend(model text, user_id bigint, k integer DEFAULT 10,
                                        exclude_seen boolean DEFAULT true)
    RETURNS TABLE (rank integer, item_id bigint, score real)
    LANGUAGE plproxy VOLATILE STRICT PARALLEL UNSAFE ROWS 10
AS $$
    CLUSTER 'genrec_partitions';
    RUN ON genrec.genrec_user_hash(user_id);
$$;
COMMENT ON FUNCTION genrec.genrec_recommend(text, bigint, integer, boolean) IS
'genrec_recommend(model, user_id, k, exclude_seen) on the user''s partition (PL/Proxy).';

CREATE FUNCTION genrec.genrec_score_batch(model text, user_ids bigint[], candidates bigint[])
    RETURNS TABLE (user_id bigint, scores real[])
    LANGUAGE plproxy VOLATILE STRICT PARALLEL UNSAFE ROWS 100
AS $$
    CLUSTER 'genrec_partitions';
    SPLIT user_ids;
    RUN ON genrec.genrec_user_hash(user_ids);
$$;
COMMENT ON FUNCTION genrec.genrec_score_batch(text, bigint[], bigint[]) IS
'genrec_score_batch for many users at once: PL/Proxy splits user_ids by partition and runs every partition''s share in parallel; rows come partition by partition (order by user_id if the order matters). A NULL element is an ERROR here.';

-- The model of genrec.default_model (ERROR 22023 when unset), as on a single server.
CREATE FUNCTION genrec.genrec_default_model() RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_model text := pg_catalog.current_setting('genrec.default_model', true);
BEGIN
    IF v_model IS NULL OR v_model = '' THEN
        RAISE EXCEPTION 'genrec.default_model is not set'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'SET genrec.default_model = ''name'', or pass the model name.';
    END IF;
    RETURN v_model;
END
$$;
COMMENT ON FUNCTION genrec.genrec_default_model() IS
'The value of genrec.default_model in this proxy session; ERROR 22023 when it is not set.';

CREATE FUNCTION genrec.genrec_score(user_id bigint, candidates bigint[]) RETURNS real[]
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
RETURN genrec.genrec_score(genrec.genrec_default_model(), user_id, candidates);
COMMENT ON FUNCTION genrec.genrec_score(bigint, bigint[]) IS
'genrec_score(genrec.default_model, user_id, candidates) on the user''s partition.';

CREATE FUNCTION genrec.genrec_recommend(user_id bigint, k bigint DEFAULT 10,
                                        exclude_seen boolean DEFAULT true)
    RETURNS TABLE (rank integer, item_id bigint, score real)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE ROWS 10
AS $$
    SELECT r.rank, r.item_id, r.score
      FROM genrec.genrec_recommend(genrec.genrec_default_model(), user_id, k::integer,
                                   exclude_seen) r
$$;
COMMENT ON FUNCTION genrec.genrec_recommend(bigint, bigint, boolean) IS
'genrec_recommend(genrec.default_model, user_id, k, exclude_seen) on the user''s partition.';

CREATE FUNCTION genrec_scale.partition_version(name text, version integer)
    RETURNS TABLE (partition integer, n_partitions integer, present boolean,
                   weights_sha256 bytea, deployed boolean, serving_version integer)
    LANGUAGE plproxy VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
AS $$
    CLUSTER 'genrec_partitions';
    RUN ON ALL;
$$;
COMMENT ON FUNCTION genrec_scale.partition_version(text, integer) IS
'One row per partition: whether it has the version of the model, its weights'' SHA-256, whether it is deployed there, and the version that serves the name there (a rollout in progress shows here).';

CREATE FUNCTION genrec_scale.cache_status()
    RETURNS TABLE (partition integer, name text, version integer, state text, shared boolean,
                   bytes bigint, attached integer, loaded_at timestamptz)
    LANGUAGE plproxy VOLATILE STRICT PARALLEL UNSAFE
AS $$
    CLUSTER 'genrec_partitions';
    RUN ON ALL;
$$;
COMMENT ON FUNCTION genrec_scale.cache_status() IS
'genrec_cache_status() of every partition, each row with the partition''s number (the models each partition holds in its own shared memory).';
