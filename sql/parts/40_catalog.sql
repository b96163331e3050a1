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
