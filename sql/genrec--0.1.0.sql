-- genrec 0.1.0
--
-- Versions and upgrades: this file installs version 0.1.0 from scratch. Every later version
-- change ships sql/genrec--A--B.sql (A the previous released version, B the new one) with
-- exactly the DDL that turns A into B, and bumps default_version in genrec.control and
-- EXTVERSION in the Makefile; ALTER EXTENSION genrec UPDATE then walks the chain. A released
-- script is never edited afterwards. Every object gets explicit volatility, STRICT or a
-- stated NULL handling, PARALLEL marking and a COMMENT ON.
--
-- All objects live in schema genrec (genrec.control: schema genrec, not relocatable).
\echo Use "CREATE EXTENSION genrec" to load this file. \quit

CREATE FUNCTION genrec_version() RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_version() IS 'Version of the genrec shared library.';

-- ---------------------------------------------------------------- genrec_history

CREATE TYPE genrec_history;

-- Text input reads timestamps like timestamptz does (DateStyle, TimeZone): STABLE.
CREATE FUNCTION genrec_history_in(cstring) RETURNS genrec_history
    AS 'MODULE_PATHNAME', 'genrec_history_in'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_in(cstring) IS
'Text input of genrec_history: {(item,action,"time"),...}; action and time may be empty (NULL).';

CREATE FUNCTION genrec_history_out(genrec_history) RETURNS cstring
    AS 'MODULE_PATHNAME', 'genrec_history_out'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_out(genrec_history) IS
'Text output of genrec_history; times follow DateStyle and TimeZone, actions read back exactly.';

CREATE FUNCTION genrec_history_recv(internal) RETURNS genrec_history
    AS 'MODULE_PATHNAME', 'genrec_history_recv'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_recv(internal) IS
'Binary input of genrec_history (validated like text input).';

CREATE FUNCTION genrec_history_send(genrec_history) RETURNS bytea
    AS 'MODULE_PATHNAME', 'genrec_history_send'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_send(genrec_history) IS
'Binary output of genrec_history: int32 n, int32 flags, int64 items, then float4 actions, int64 times and a time-NULL bitmap when present.';

CREATE TYPE genrec_history (
    INPUT = genrec_history_in,
    OUTPUT = genrec_history_out,
    RECEIVE = genrec_history_recv,
    SEND = genrec_history_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE genrec_history IS
'One user''s interaction sequence: up to 100000 (item bigint, action real or NULL, time timestamptz or NULL), in order.';

-- The ordered aggregate: genrec_history(item, action, ts ORDER BY ts).
CREATE FUNCTION genrec_history_agg_trans(internal, bigint, real, timestamptz) RETURNS internal
    AS 'MODULE_PATHNAME', 'genrec_history_agg_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_agg_trans(internal, bigint, real, timestamptz) IS
'Transition function of the genrec_history aggregate: appends one interaction; a NULL item is an error.';

CREATE FUNCTION genrec_history_agg_final(internal) RETURNS genrec_history
    AS 'MODULE_PATHNAME', 'genrec_history_agg_final'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_agg_final(internal) IS
'Final function of the genrec_history aggregate: builds the history (NULL for no rows).';

CREATE AGGREGATE genrec_history(item bigint, action real, ts timestamptz) (
    SFUNC = genrec_history_agg_trans,
    STYPE = internal,
    FINALFUNC = genrec_history_agg_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_history(bigint, real, timestamptz) IS
'Collect rows into a genrec_history in the order received: call as genrec_history(item, action, ts ORDER BY ts); ties keep the order received, which SQL leaves undefined unless ORDER BY has a tiebreak. NULL action or ts = missing; NULL item = error; no rows = NULL.';

-- From arrays. Not STRICT: actions and ts may be NULL (all missing); NULL items gives NULL.
CREATE FUNCTION genrec_history(items bigint[], actions real[] DEFAULT NULL,
                               ts timestamptz[] DEFAULT NULL) RETURNS genrec_history
    AS 'MODULE_PATHNAME', 'genrec_history_from_arrays'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history(bigint[], real[], timestamptz[]) IS
'Build a genrec_history from parallel one-dimensional arrays of equal length; NULL action or ts elements = missing, a NULL item element = error, NULL items array = NULL.';

CREATE FUNCTION genrec_history_items(h genrec_history) RETURNS bigint[]
    AS 'MODULE_PATHNAME', 'genrec_history_items'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_items(genrec_history) IS
'Item ids of a genrec_history, in order.';

CREATE FUNCTION genrec_history_actions(h genrec_history) RETURNS real[]
    AS 'MODULE_PATHNAME', 'genrec_history_actions'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_actions(genrec_history) IS
'Actions of a genrec_history, in order; NULL elements for missing actions.';

CREATE FUNCTION genrec_history_times(h genrec_history) RETURNS timestamptz[]
    AS 'MODULE_PATHNAME', 'genrec_history_times'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_times(genrec_history) IS
'Times of a genrec_history, in order; NULL elements for missing times.';

CREATE FUNCTION genrec_history_length(h genrec_history) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_history_length'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_length(genrec_history) IS
'Number of interactions in a genrec_history (reads only the header of a stored value).';

CREATE FUNCTION genrec_history_tail(h genrec_history, n integer) RETURNS genrec_history
    AS 'MODULE_PATHNAME', 'genrec_history_tail'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_history_tail(genrec_history, integer) IS
'The last n interactions of a genrec_history (all of them when it is shorter); n < 0 is an error.';

-- ---------------------------------------------------------------- synthetic data

-- IMMUTABLE: the rows are a pure function of the arguments (counter-based RNG, absolute
-- timestamps, no catalog or setting is read). Changing the generative model therefore means
-- a new function or parameter, never new rows for the same arguments.
CREATE FUNCTION genrec_synthetic(users integer, items integer,
                                 interactions_per_user integer DEFAULT 50,
                                 seed bigint DEFAULT 42)
    RETURNS TABLE (user_id bigint, item_id bigint, action real, ts timestamptz)
    AS 'MODULE_PATHNAME', 'genrec_synthetic'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_synthetic(integer, integer, integer, bigint) IS
'Deterministic synthetic interaction log: Zipf-like item popularity, items in sqrt(items) clusters, users with 3 preferred clusters who stay in a cluster more after a good rating, ratings in [1,5] from item quality, user bias, taste and an AR(1) residual on the previous rating; times increase per user from 2024-01-01. Same arguments, same rows.';

-- ---------------------------------------------------------------- metrics

CREATE FUNCTION genrec_hr(rank integer, k integer) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_hr'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_hr(integer, integer) IS
'HR@k of one 1-based rank: 1 if rank <= k, else 0. rank or k < 1 is an error.';

CREATE FUNCTION genrec_ndcg(rank integer, k integer) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_ndcg'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_ndcg(integer, integer) IS
'NDCG@k of one 1-based rank (one relevant item): 1/log2(rank+1) if rank <= k, else 0. rank or k < 1 is an error.';

CREATE FUNCTION genrec_mrr(rank integer) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_mrr'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_mrr(integer) IS
'Reciprocal rank 1/rank of one 1-based rank (average it for MRR). rank < 1 is an error.';

-- Aggregate support: the state is double precision[2] = {count, sum}.
CREATE FUNCTION genrec_hit_rate_trans(double precision[], integer, integer)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_hit_rate_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_hit_rate_trans(double precision[], integer, integer) IS
'Transition function of genrec_hit_rate: a NULL rank counts as a miss; a NULL k is an error.';

CREATE FUNCTION genrec_ndcg_trans(double precision[], integer, integer)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_ndcg_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_ndcg_trans(double precision[], integer, integer) IS
'Transition function of genrec_mean_ndcg: a NULL rank counts as a miss; a NULL k is an error.';

CREATE FUNCTION genrec_mrr_trans(double precision[], integer)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_mrr_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_mrr_trans(double precision[], integer) IS
'Transition function of genrec_mean_mrr: a NULL rank counts as a miss.';

CREATE FUNCTION genrec_rmse_trans(double precision[], double precision, double precision)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_rmse_trans'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_rmse_trans(double precision[], double precision, double precision) IS
'Transition function of genrec_rmse: adds one squared error (strict, so NULL pairs are skipped).';

CREATE FUNCTION genrec_metric_combine(double precision[], double precision[])
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_metric_combine'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_metric_combine(double precision[], double precision[]) IS
'Combine function of the genrec metric aggregates: adds two {count, sum} states.';

CREATE FUNCTION genrec_metric_mean(double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_metric_mean'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_metric_mean(double precision[]) IS
'Final function of the genrec ranking aggregates: sum / count, NULL for no rows.';

CREATE FUNCTION genrec_rmse_final(double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_rmse_final'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_rmse_final(double precision[]) IS
'Final function of genrec_rmse: sqrt(sum of squared errors / count), NULL for no rows.';

CREATE AGGREGATE genrec_hit_rate(rank integer, k integer) (
    SFUNC = genrec_hit_rate_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_metric_mean,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_hit_rate(integer, integer) IS
'Mean HR@k over rows; a NULL rank (target not ranked) counts as a miss; NULL for no rows.';

CREATE AGGREGATE genrec_mean_ndcg(rank integer, k integer) (
    SFUNC = genrec_ndcg_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_metric_mean,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_mean_ndcg(integer, integer) IS
'Mean NDCG@k over rows; a NULL rank (target not ranked) counts as a miss; NULL for no rows.';

CREATE AGGREGATE genrec_mean_mrr(rank integer) (
    SFUNC = genrec_mrr_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_metric_mean,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_mean_mrr(integer) IS
'MRR: mean reciprocal rank over rows; a NULL rank (target not ranked) counts as 0; NULL for no rows.';

CREATE AGGREGATE genrec_rmse(prediction double precision, actual double precision) (
    SFUNC = genrec_rmse_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_rmse_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_rmse(double precision, double precision) IS
'Root mean squared error of prediction against actual; rows with a NULL in either are skipped; NULL for no rows.';
-- ---------------------------------------------------------------- model catalogue

-- Every role may use the extension's objects; what a role may do to a model is decided by
-- the row level security policies of genrec.models below.
GRANT USAGE ON SCHEMA genrec TO PUBLIC;

-- One row per trained (or imported) version of a named model. All versions of a name share
-- one owner (the role that trained the first version); genrec_train and genrec_import add
-- versions 1, 2, ... under a transaction-scoped advisory lock on the name, so concurrent
-- trainings of one name get distinct versions.
CREATE TABLE genrec.models (
    name     text        NOT NULL CHECK (name <> '' AND octet_length(name) <= 200),
    version  integer     NOT NULL CHECK (version >= 1),
    layout   text        NOT NULL CHECK (layout IN ('item', 'int', 'lac', 'pc')),
    config   jsonb       NOT NULL,
    source   jsonb       NOT NULL,
    n_items  integer     NOT NULL CHECK (n_items >= 1),
    metrics  jsonb,
    weights  bytea       NOT NULL,
    owner    oid         NOT NULL,
    created  timestamptz NOT NULL DEFAULT now(),
    deployed boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE genrec.models IS
'Trained models, one row per version: layout, config {"model": engine config, "train": options}, source mapping, metrics, weights (safetensors with the item id map), owner role, deployed flag (at most one version per name). Everyone may read it; only the owner (or a superuser) may change a model.';
COMMENT ON COLUMN genrec.models.name IS 'Model name (1..200 bytes), chosen by the user.';
COMMENT ON COLUMN genrec.models.version IS 'Version 1, 2, ... per name.';
COMMENT ON COLUMN genrec.models.layout IS 'Token layout: item, int, lac or pc.';
COMMENT ON COLUMN genrec.models.config IS
'{"model": engine model configuration (as in the safetensors metadata), "train": training options}.';
COMMENT ON COLUMN genrec.models.source IS
'{"relation": quoted schema-qualified table or view, or null; "query": SQL text or null; "user_col", "item_col", "action_cols" [...], "time_col" or null, "tiebreak_col" or null} (column names unquoted).';
COMMENT ON COLUMN genrec.models.n_items IS 'Items the model knows (its catalogue size V).';
COMMENT ON COLUMN genrec.models.metrics IS
'{"valid": {...}, "test": {...}, "baselines": {...}, "epochs_run", "best_epoch", "train_seconds", "device", ...}; NULL for imported models without a summary.';
COMMENT ON COLUMN genrec.models.weights IS
'The model as safetensors bytes (parameters, the item id map as tensor item_ids, configuration and summary in the metadata).';
COMMENT ON COLUMN genrec.models.owner IS 'OID of the role that owns the model.';
COMMENT ON COLUMN genrec.models.created IS 'When the version was added.';
COMMENT ON COLUMN genrec.models.deployed IS
'The version that serves the name (genrec_score, genrec_recommend, ...); at most one per name.';

CREATE UNIQUE INDEX models_one_deployed ON genrec.models (name) WHERE deployed;
COMMENT ON INDEX genrec.models_one_deployed IS 'At most one deployed version per model name.';

-- Models are user data: pg_dump dumps the rows (not only the table definition).
SELECT pg_catalog.pg_extension_config_dump('genrec.models', '');

-- Row level security, forced for the table's owner (the role that created the extension)
-- too: reading is open to everyone (scoring reads the weights with the caller's privileges);
-- a row may be added, changed or removed only by a role with the privileges of its owner
-- (pg_has_role(owner, 'USAGE'): the owner, members of an owning group role that inherit,
-- superusers). Superusers and BYPASSRLS roles are not subject to policies at all.
ALTER TABLE genrec.models ENABLE ROW LEVEL SECURITY;
ALTER TABLE genrec.models FORCE ROW LEVEL SECURITY;

CREATE POLICY models_select ON genrec.models FOR SELECT USING (true);
COMMENT ON POLICY models_select ON genrec.models IS 'Every role may read every model.';

-- A new row belongs to a role the inserting role acts for, and joins no name owned by
-- another role (so all versions of a name keep one owner).
CREATE POLICY models_insert ON genrec.models FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE')
                AND NOT EXISTS (SELECT 1 FROM genrec.models o
                                 WHERE o.name = models.name AND o.owner <> models.owner));
COMMENT ON POLICY models_insert ON genrec.models IS
'A role may add a model (version) only as its owner or for a role whose privileges it has, and never under a name owned by another role.';

CREATE POLICY models_update ON genrec.models FOR UPDATE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE'));
COMMENT ON POLICY models_update ON genrec.models IS
'Only the owner (or a member with its privileges, or a superuser) may change a model row.';

CREATE POLICY models_delete ON genrec.models FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
COMMENT ON POLICY models_delete ON genrec.models IS
'Only the owner (or a member with its privileges, or a superuser) may delete a model row.';

-- Rows are written by genrec_train and genrec_import; in place only the deployed flag
-- changes (genrec_deploy, genrec_rollback), so UPDATE is granted on that column alone.
GRANT SELECT, INSERT, DELETE ON genrec.models TO PUBLIC;
GRANT UPDATE (deployed) ON genrec.models TO PUBLIC;

CREATE VIEW genrec.model_overview WITH (security_invoker = true) AS
SELECT m.name,
       m.version,
       m.layout,
       m.deployed,
       pg_catalog.pg_get_userbyid(m.owner) AS owner,
       m.created,
       m.n_items,
       (m.metrics #>> '{data,users}')::integer AS n_users,
       (m.metrics #>> '{data,interactions}')::bigint AS n_interactions,
       (m.metrics ->> 'epochs_run')::integer AS epochs_run,
       (m.metrics ->> 'best_epoch')::integer AS best_epoch,
       (m.metrics #>> '{valid,ndcg@10}')::double precision AS valid_ndcg10,
       (m.metrics #>> '{test,hr@10}')::double precision AS test_hr10,
       (m.metrics #>> '{test,ndcg@10}')::double precision AS test_ndcg10,
       (m.metrics #>> '{test,actions,0,rmse}')::double precision AS test_rmse,
       (m.metrics #>> '{baselines,bias_rmse}')::double precision AS baseline_rmse,
       (m.metrics ->> 'train_seconds')::double precision AS train_seconds,
       m.metrics ->> 'device' AS device,
       pg_catalog.octet_length(m.weights) AS weights_bytes
  FROM genrec.models m;
COMMENT ON VIEW genrec.model_overview IS
'One line per model version: layout, deployed flag, owner, creation time, data size, epochs, validation NDCG@10, test HR@10 / NDCG@10 / RMSE of the first action with its bias baseline, training seconds, device and the size of the weights (not the bytes).';

-- The advisory lock that serialises changes to one model name: key 1 is 'genr' as an
-- integer, key 2 hashtext(name). genrec_train and genrec_import (C) take the same lock.
CREATE FUNCTION genrec_deploy(name text, version integer) RETURNS void
    LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner oid;
BEGIN
    IF name IS NULL OR version IS NULL THEN
        RAISE EXCEPTION 'genrec_deploy: name and version must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pg_advisory_xact_lock(1734700658, hashtext(name));
    SELECT m.owner INTO v_owner FROM genrec.models m
     WHERE m.name = genrec_deploy.name ORDER BY m.version LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of model "%" to deploy it', name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Model "%s" belongs to role %s.', name,
                                  coalesce(quote_ident(pg_get_userbyid(v_owner)), 'unknown'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM genrec.models m
                    WHERE m.name = genrec_deploy.name AND m.version = genrec_deploy.version) THEN
        RAISE EXCEPTION 'model "%" has no version %', name, version
            USING ERRCODE = 'undefined_object';
    END IF;
    -- undeploy first: the unique index admits one deployed row per name at every moment
    UPDATE genrec.models m SET deployed = false
     WHERE m.name = genrec_deploy.name AND m.deployed AND m.version <> genrec_deploy.version;
    UPDATE genrec.models m SET deployed = true
     WHERE m.name = genrec_deploy.name AND m.version = genrec_deploy.version AND NOT m.deployed;
END
$$;
COMMENT ON FUNCTION genrec_deploy(text, integer) IS
'Deploy one version of a model (the one genrec_score and friends use), undeploying the previous one in the same transaction. Owner or superuser only (42501); unknown model or version: 42704.';

CREATE FUNCTION genrec_rollback(name text) RETURNS integer
    LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner oid;
    v_current integer;
    v_previous integer;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'genrec_rollback: name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pg_advisory_xact_lock(1734700658, hashtext(name));
    SELECT m.owner INTO v_owner FROM genrec.models m
     WHERE m.name = genrec_rollback.name ORDER BY m.version LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of model "%" to roll it back', name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Model "%s" belongs to role %s.', name,
                                  coalesce(quote_ident(pg_get_userbyid(v_owner)), 'unknown'));
    END IF;
    SELECT m.version INTO v_current FROM genrec.models m
     WHERE m.name = genrec_rollback.name AND m.deployed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" has no deployed version to roll back', name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Deploy a version with genrec_deploy(name, version).';
    END IF;
    SELECT max(m.version) INTO v_previous FROM genrec.models m
     WHERE m.name = genrec_rollback.name AND m.version < v_current;
    IF v_previous IS NULL THEN
        RAISE EXCEPTION 'model "%" has no version before the deployed version %', name, v_current
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE genrec.models m SET deployed = false
     WHERE m.name = genrec_rollback.name AND m.version = v_current;
    UPDATE genrec.models m SET deployed = true
     WHERE m.name = genrec_rollback.name AND m.version = v_previous;
    RETURN v_previous;
END
$$;
COMMENT ON FUNCTION genrec_rollback(text) IS
'Deploy the newest version older than the deployed one and return it. ERROR 55000 when nothing is deployed or no older version exists; owner or superuser only (42501).';

CREATE FUNCTION genrec_drop_model(name text, version integer DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner oid;
    v_dropped integer;
    v_was_deployed boolean;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'genrec_drop_model: name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pg_advisory_xact_lock(1734700658, hashtext(name));
    SELECT m.owner INTO v_owner FROM genrec.models m
     WHERE m.name = genrec_drop_model.name ORDER BY m.version LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of model "%" to drop it', name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Model "%s" belongs to role %s.', name,
                                  coalesce(quote_ident(pg_get_userbyid(v_owner)), 'unknown'));
    END IF;
    IF version IS NULL THEN
        DELETE FROM genrec.models m WHERE m.name = genrec_drop_model.name;
        GET DIAGNOSTICS v_dropped = ROW_COUNT;
        RETURN v_dropped;
    END IF;
    DELETE FROM genrec.models m
     WHERE m.name = genrec_drop_model.name AND m.version = genrec_drop_model.version
    RETURNING m.deployed INTO v_was_deployed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" has no version %', name, version
            USING ERRCODE = 'undefined_object';
    END IF;
    IF v_was_deployed AND EXISTS (SELECT 1 FROM genrec.models m
                                   WHERE m.name = genrec_drop_model.name) THEN
        RAISE NOTICE 'model "%" has no deployed version now; its newest version serves it', name
            USING HINT = 'Deploy one with genrec_deploy(name, version).';
    END IF;
    RETURN 1;
END
$$;
COMMENT ON FUNCTION genrec_drop_model(text, integer) IS
'Drop one version of a model, or every version when version is NULL; returns the number of versions dropped. Owner or superuser only (42501); unknown model or version: 42704.';

CREATE FUNCTION genrec_export(name text, version integer DEFAULT NULL) RETURNS bytea
    LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL SAFE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_weights bytea;
BEGIN
    IF name IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT m.weights INTO v_weights FROM genrec.models m
     WHERE m.name = genrec_export.name
       AND (genrec_export.version IS NULL OR m.version = genrec_export.version)
     ORDER BY m.deployed DESC, m.version DESC LIMIT 1;
    IF NOT FOUND THEN
        IF version IS NULL THEN
            RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
        END IF;
        RAISE EXCEPTION 'model "%" has no version %', name, version
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v_weights;
END
$$;
COMMENT ON FUNCTION genrec_export(text, integer) IS
'The safetensors bytes of a model version (NULL version: the deployed one, else the newest), for genrec eval/score or PyTorch. NULL name gives NULL; unknown model or version: 42704.';

CREATE FUNCTION genrec_weights_info(weights bytea,
                                    OUT layout text, OUT n_items integer, OUT n_actions integer,
                                    OUT n_params bigint, OUT config jsonb, OUT extra jsonb,
                                    OUT item_ids bigint[])
    AS 'MODULE_PATHNAME', 'genrec_weights_info'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_weights_info(bytea) IS
'Validate safetensors bytes as a genrec model and describe them: layout, items, action columns, parameters, the engine configuration, the stored summary ("genrec.extra") and the item id map. Malformed bytes: XX001.';

CREATE FUNCTION genrec_model_items(name text, version integer DEFAULT NULL) RETURNS bigint[]
    LANGUAGE sql STABLE CALLED ON NULL INPUT PARALLEL SAFE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
RETURN (genrec.genrec_weights_info(genrec.genrec_export(name, version))).item_ids;
COMMENT ON FUNCTION genrec_model_items(text, integer) IS
'The item ids a model version knows, ascending (dense id i is element i), decoded from its weights. NULL version: the deployed one, else the newest. NULL name gives NULL; unknown model or version: 42704.';

CREATE FUNCTION genrec_import(name text, weights bytea, deploy boolean DEFAULT true,
                              source jsonb DEFAULT NULL) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_import'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION genrec_import(text, bytea, boolean, jsonb) IS
'Add safetensors bytes (a model trained elsewhere, or exported) as the next version of a model and return the version; validated like genrec_weights_info (malformed bytes: XX001). source maps the interactions table for scoring: {"relation", "query", "user_col", "item_col", "action_cols", "time_col", "tiebreak_col"}. Deployed when deploy is true or it is the first version. Retraining another role''s model: 42501.';
-- ---------------------------------------------------------------- serving
--
-- Every model-dependent function is STABLE: it reads genrec.models (the version that serves a
-- name: the deployed one, else the newest) and the model's source in the caller's snapshot.
-- All are STRICT: a NULL argument gives NULL (no rows for the set-returning ones).
-- Scoring and retrieval are PARALLEL SAFE: they only read tables through SPI and map the
-- shared model segments, which works in parallel workers (a model whose source is a
-- temporary table can only be served by its own session, never in a parallel plan).
-- Evaluation is PARALLEL RESTRICTED (a single heavy call reading a whole source).
--
-- SQLSTATEs: 42704 unknown model; 22023 invalid argument (k < 1, bad split or cut-offs,
-- multi-dimensional arrays, genrec.default_model unset); P0002 a user without interactions
-- (or an empty history) where the layout needs one; XX001 corrupt weights; 42P17 an unusable
-- source mapping; 42804 a source column of an unsupported type; 55000 a model without
-- weights, or without a source where a user id is given.

CREATE FUNCTION genrec_score(model text, user_id bigint, candidates bigint[])
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'genrec_score_user'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_score(text, bigint, bigint[]) IS
'Score candidate items for a user in one pass: one real per candidate, aligned with the array: the predicted first action (raw scale; a probability for a binary column) for action layouts (lac, int, pc), the retrieval logit for the item layout. The history is the user''s most recent interactions in the model''s source (an index on the user column makes it cheap). NULL or unknown candidates give NULL; an empty array gives an empty array; a user without interactions is a cold start for lac/int and ERROR P0002 for item/pc.';

CREATE FUNCTION genrec_score(user_id bigint, candidates bigint[])
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'genrec_score_default'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_score(bigint, bigint[]) IS
'genrec_score(genrec.default_model, user_id, candidates); ERROR 22023 when genrec.default_model is not set.';

CREATE FUNCTION genrec_score(model text, history genrec_history, candidates bigint[])
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'genrec_score_history'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_score(text, genrec_history, bigint[]) IS
'Score candidate items for a given history (oldest first; its action is the model''s first action column, others missing), as genrec_score(model, user_id, candidates) does for a stored one.';

CREATE FUNCTION genrec_score_detail(model text, user_id bigint, candidates bigint[])
    RETURNS TABLE (item_id bigint, known boolean, retrieval_logit real, actions real[])
    AS 'MODULE_PATHNAME', 'genrec_score_detail_user'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION genrec_score_detail(text, bigint, bigint[]) IS
'Everything the model predicts for each candidate, one row per array element in order: whether the model knows the item, the retrieval logit, and every action column (raw scale; NULL for the item layout). Unknown or NULL candidates get NULL predictions.';

CREATE FUNCTION genrec_score_detail(model text, history genrec_history, candidates bigint[])
    RETURNS TABLE (item_id bigint, known boolean, retrieval_logit real, actions real[])
    AS 'MODULE_PATHNAME', 'genrec_score_detail_history'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION genrec_score_detail(text, genrec_history, bigint[]) IS
'genrec_score_detail for a given history instead of a stored one.';

CREATE FUNCTION genrec_recommend(model text, user_id bigint, k integer DEFAULT 10,
                                 exclude_seen boolean DEFAULT true)
    RETURNS TABLE (rank integer, item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'genrec_recommend_user'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION genrec_recommend(text, bigint, integer, boolean) IS
'Top k items over the whole catalogue for a user, best first, by retrieval logit (score). exclude_seen drops every item in the user''s history. k < 1 is ERROR 22023, k above the catalogue is the catalogue; a user without interactions is ERROR P0002.';

CREATE FUNCTION genrec_recommend(model text, history genrec_history, k integer DEFAULT 10,
                                 exclude_seen boolean DEFAULT true)
    RETURNS TABLE (rank integer, item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'genrec_recommend_history'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION genrec_recommend(text, genrec_history, integer, boolean) IS
'genrec_recommend for a given history (oldest first) instead of a stored one.';

-- k is bigint here so that genrec_recommend('model', 42) resolves to the overload above (an
-- integer k would match the literal 42 exactly and win, reading 'model' as a user id).
CREATE FUNCTION genrec_recommend(user_id bigint, k bigint DEFAULT 10,
                                 exclude_seen boolean DEFAULT true)
    RETURNS TABLE (rank integer, item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'genrec_recommend_default'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION genrec_recommend(bigint, bigint, boolean) IS
'genrec_recommend(genrec.default_model, user_id, k, exclude_seen); ERROR 22023 when genrec.default_model is not set.';

CREATE FUNCTION genrec_evaluate(model text, split text DEFAULT 'test',
                                ks integer[] DEFAULT '{10,50}')
    RETURNS TABLE (metric text, k integer, value double precision)
    AS 'MODULE_PATHNAME', 'genrec_evaluate'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 20;
COMMENT ON FUNCTION genrec_evaluate(text, text, integer[]) IS
'Evaluate a model on its source with the fixed protocol: each user''s interactions by time (tiebreak column), leave-one-out (test = last, valid = second to last; users with fewer than 3 only train), the target ranked over the full catalogue. Rows: users; hr, ndcg (at each k) and mrr with the user''s earlier items excluded; hr_all, ndcg_all, mrr_all with nothing excluded; popularity_hr/ndcg (training-split popularity, seen excluded); per action column rmse:<col> (normalised [0,1] scale) and baseline_rmse:<col> (global mean + user and item bias), or logloss:<col> and ne:<col> for binary columns. Equal to `genrec eval` on the same rows.';

CREATE FUNCTION genrec_model_info(model text)
    RETURNS TABLE (name text, version integer, deployed boolean, layout text,
                   n_items integer, n_actions integer, action_cols text[], d_model integer,
                   n_layer integer, n_head integer, max_len integer, n_params bigint,
                   bytes bigint, shared boolean, history_query text)
    AS 'MODULE_PATHNAME', 'genrec_model_info'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 1;
COMMENT ON FUNCTION genrec_model_info(text) IS
'The version that serves a model name (deployed, else newest) as loaded: layout, catalogue size, action columns, architecture, parameter count, bytes in memory, and whether the copy is shared (a dynamic shared memory segment) or private to this backend, and the query that reads a user''s history ($1 user id, $2 row limit; EXPLAIN it to check that an index serves it). Loads the model when it is not loaded yet.';

CREATE FUNCTION genrec_cache_status()
    RETURNS TABLE (name text, version integer, state text, shared boolean, bytes bigint,
                   attached integer, loaded_at timestamptz, load_ms double precision,
                   in_this_backend boolean, segment bigint)
    AS 'MODULE_PATHNAME', 'genrec_cache_status'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION genrec_cache_status() IS
'Models in memory: one row per version in the shared registry (state ready, loading or superseded, bytes of its segment, backends attached, when and how fast it was loaded) and one per private copy of this backend (state private); segment is the dynamic shared memory handle (the file /dev/shm/PostgreSQL.<segment> with the default posix implementation).';

CREATE FUNCTION genrec_cache_evict(model text DEFAULT NULL)
    RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_cache_evict'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_cache_evict(text) IS
'Drop cached versions of a model (NULL: of every model) that no backend has attached, after this backend lets go of its own; returns how many shared versions were dropped. Superuser only by default.';
REVOKE ALL ON FUNCTION genrec_cache_evict(text) FROM PUBLIC;

-- Serving remembers which version serves a name until the catalogue changes: this trigger
-- counts, in shared memory just before commit, the transactions that write genrec.models
-- (ENABLE ALWAYS: also under session_replication_role = replica).
CREATE FUNCTION genrec_models_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'genrec_models_changed'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_models_changed() IS
'Statement trigger of genrec.models: counts the transactions that change the model catalogue (in shared memory, at commit), so that serving reuses a model lookup until the next change.';
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON genrec.models
    FOR EACH STATEMENT EXECUTE FUNCTION genrec_models_changed();
ALTER TABLE genrec.models ENABLE ALWAYS TRIGGER models_changed;
COMMENT ON TRIGGER models_changed ON genrec.models IS
'Tells serving (genrec_score and friends) that the catalogue changed; see genrec_models_changed().';
-- ---------------------------------------------------------------- training

-- VOLATILE and PARALLEL UNSAFE: reads the source through SPI and writes genrec.models.
-- NULL handling: name, source, user_col, item_col, layout, the sizes, epochs, lr, dropout,
-- patience, seed and deploy must not be NULL (22004); action_cols NULL means the column
-- named "action" when the source has one (else none), time_col NULL means the rows' order is
-- their time order, tiebreak_col NULL means no tiebreak, options NULL means '{}'.
CREATE FUNCTION genrec_train(name text, source text,
                             user_col text DEFAULT 'user_id',
                             item_col text DEFAULT 'item_id',
                             action_cols text[] DEFAULT NULL,
                             time_col text DEFAULT 'ts',
                             tiebreak_col text DEFAULT NULL,
                             layout text DEFAULT 'lac',
                             d_model integer DEFAULT 64,
                             n_layer integer DEFAULT 2,
                             n_head integer DEFAULT 2,
                             max_len integer DEFAULT 50,
                             epochs integer DEFAULT 50,
                             batch_size integer DEFAULT 128,
                             lr real DEFAULT 0.001,
                             dropout real DEFAULT 0.2,
                             patience integer DEFAULT 20,
                             seed bigint DEFAULT 42,
                             options jsonb DEFAULT '{}',
                             deploy boolean DEFAULT true)
    RETURNS TABLE (model text, version integer, layout text, deployed boolean, device text,
                   users integer, items integer, interactions bigint,
                   epochs_run integer, best_epoch integer,
                   valid_hr10 double precision, valid_ndcg10 double precision,
                   valid_rmse double precision,
                   test_hr10 double precision, test_ndcg10 double precision,
                   test_rmse double precision, baseline_rmse double precision,
                   seconds double precision)
    AS 'MODULE_PATHNAME', 'genrec_train'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION genrec_train(text, text, text, text, text[], text, text, text, integer,
                                 integer, integer, integer, integer, integer, real, real,
                                 integer, bigint, jsonb, boolean) IS
'Train a model on interactions from a table or view (regclass name) or a query (text starting with SELECT, WITH, VALUES or TABLE) with the leave-one-out protocol, store it in genrec.models as the next version of name (deployed unless deploy is false and an earlier version exists) and return one summary row (HR/NDCG@10 and RMSE of the first action on the validation and test splits, at the best epoch). A NOTICE per epoch; progress in genrec.training_progress; cancel and statement_timeout stop it within one optimiser step and leave the catalogue unchanged. options: beta1, beta2, eps, weight_decay, w_item, w_action, warmup_steps, eval_users, n_buckets, emb_scale, head_hidden, binary_actions.';

CREATE FUNCTION genrec_training_progress(
        OUT pid integer, OUT datid oid, OUT roleid oid, OUT model text, OUT phase text,
        OUT rows_read bigint, OUT epoch integer, OUT epochs integer, OUT step bigint,
        OUT steps_per_epoch integer, OUT train_loss double precision,
        OUT valid_ndcg10 double precision, OUT best_valid_ndcg10 double precision,
        OUT started timestamptz, OUT updated timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'genrec_training_progress'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION genrec_training_progress() IS
'Running genrec_train calls of the whole cluster, from shared memory (see the view genrec.training_progress).';

CREATE VIEW genrec.training_progress AS
SELECT p.pid,
       d.datname AS database,
       pg_catalog.pg_get_userbyid(p.roleid) AS role,
       p.model,
       p.phase,
       p.rows_read,
       p.epoch,
       p.epochs,
       p.step,
       p.steps_per_epoch,
       p.train_loss,
       p.valid_ndcg10,
       p.best_valid_ndcg10,
       p.started,
       p.updated
  FROM genrec.genrec_training_progress() p
  LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid;
COMMENT ON VIEW genrec.training_progress IS
'One row per running genrec_train in the cluster: backend pid, database, role, model name, phase (reading, training, saving), rows read, epoch in progress of epochs, optimiser steps so far (estimated within an epoch), last training loss and validation NDCG@10, the best validation NDCG@10, start and last update. Empty without shared memory for it (see the README).';
