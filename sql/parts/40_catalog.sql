-- ---------------------------------------------------------------- model catalogue

-- Every role may use the extension's objects; what a role may do with a model is decided by
-- its owner (genrec_grant) and checked by genrec's functions, which are the only writers of
-- the catalogue tables (README "Security").
GRANT USAGE ON SCHEMA genrec TO PUBLIC;

-- One row per model name: its owner. All versions of a name share this owner; the primary key
-- makes "one owner per name" hold under concurrent first trainings (one wins, the other gets
-- ERROR 42501), and changes to a name are serialised by locking its row here, which only
-- genrec's functions can do (no role has UPDATE on these tables, so no role can hold a lock
-- that blocks another's training or deploy).
CREATE TABLE genrec.model_names (
    name    text        PRIMARY KEY CHECK (name <> '' AND octet_length(name) <= 200),
    owner   oid         NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, owner)
);
COMMENT ON TABLE genrec.model_names IS
'One row per model name and its owner role (all versions of a name share it). Readable by every role, like the names of tables in pg_class; written only by genrec''s functions.';
COMMENT ON COLUMN genrec.model_names.name IS 'Model name (1..200 bytes).';
COMMENT ON COLUMN genrec.model_names.owner IS 'OID of the role that owns the name and every version of it.';
COMMENT ON COLUMN genrec.model_names.created IS 'When the name was first trained or imported.';
SELECT pg_catalog.pg_extension_config_dump('genrec.model_names', '');

-- One row per trained (or imported) version of a named model; genrec_train and genrec_import
-- add versions 1, 2, ... with the name's row locked.
CREATE TABLE genrec.models (
    name     text        NOT NULL CHECK (name <> '' AND octet_length(name) <= 200),
    version  integer     NOT NULL CHECK (version >= 1),
    layout   text        NOT NULL CHECK (layout IN ('item', 'int', 'lac', 'pc', 'attnlfa',
                                                    'attnmvp', 'l2', 'l3', 'l4', 'l5',
                                                    'l6', 'l7', 'l9')),
    config   jsonb       NOT NULL,
    source   jsonb       NOT NULL,
    n_items  integer     NOT NULL CHECK (n_items >= 1),
    metrics  jsonb,
    weights  bytea       NOT NULL,
    owner    oid         NOT NULL,
    created  timestamptz NOT NULL DEFAULT now(),
    deployed boolean     NOT NULL DEFAULT false,
    weights_sha256 bytea GENERATED ALWAYS AS (pg_catalog.sha256(weights)) STORED,
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, owner) REFERENCES genrec.model_names (name, owner) ON DELETE CASCADE
);
COMMENT ON TABLE genrec.models IS
'Trained models, one row per version: layout, config {"model": engine config, "train": options}, source mapping, metrics, weights (safetensors with the item id map), owner role, deployed flag (at most one version per name). A role sees the rows of models it may use (owner, grantees, superusers); only genrec''s functions write it.';
COMMENT ON COLUMN genrec.models.name IS 'Model name (1..200 bytes), chosen by the user.';
COMMENT ON COLUMN genrec.models.version IS 'Version 1, 2, ... per name.';
COMMENT ON COLUMN genrec.models.layout IS 'Token layout: item, int, lac, pc, attnlfa, attnmvp, or the Table-2 ablations l2, l3, l4, l5, l6, l7, l9 (LAYOUTS.md 4.7; genrec_train also accepts l0, l8 and l10 for item, lac and pc).';
COMMENT ON COLUMN genrec.models.config IS
'{"model": engine model configuration (as in the safetensors metadata), "train": training options}.';
COMMENT ON COLUMN genrec.models.source IS
'{"relation": quoted schema-qualified table or view, or null; "query": SQL text with every name schema-qualified, or null; "user_col", "item_col", "action_cols" [...], "time_col" or null, "tiebreak_col" or null} (column names unquoted), or JSON null for a model without a source. Read with the owner''s rights.';
COMMENT ON COLUMN genrec.models.n_items IS 'Items the model knows (its catalogue size V).';
COMMENT ON COLUMN genrec.models.metrics IS
'{"valid": {...}, "test": {...}, "baselines": {...}, "epochs_run", "best_epoch", "train_seconds", "device", ...}; NULL for imported models without a summary.';
COMMENT ON COLUMN genrec.models.weights IS
'The model as safetensors bytes (parameters, the item id map as tensor item_ids, configuration and summary in the metadata).';
COMMENT ON COLUMN genrec.models.owner IS 'OID of the role that owns the model (the owner of its name).';
COMMENT ON COLUMN genrec.models.created IS 'When the version was added.';
COMMENT ON COLUMN genrec.models.deployed IS
'The version that serves the name (genrec_score, genrec_recommend, ...); at most one per name.';
COMMENT ON COLUMN genrec.models.weights_sha256 IS
'SHA-256 of the weights, computed by the server; a model in shared memory is keyed by it (with the database and the version) and checked against it on attach.';

-- A version written directly (by a superuser: no other role may write the table) claims its
-- name for its owner when the name is new, so the foreign key holds for such rows too.
CREATE FUNCTION genrec_models_claim_name() RETURNS trigger
    LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO genrec.model_names (name, owner) VALUES (NEW.name, NEW.owner)
        ON CONFLICT (name) DO NOTHING;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION genrec_models_claim_name() IS
'Row trigger of genrec.models: a version inserted directly claims its name (genrec.model_names) for its owner when the name is new.';
CREATE TRIGGER models_claim_name BEFORE INSERT ON genrec.models
    FOR EACH ROW EXECUTE FUNCTION genrec_models_claim_name();
COMMENT ON TRIGGER models_claim_name ON genrec.models IS
'Claims a new name for the owner of a version inserted directly; see genrec_models_claim_name().';

CREATE UNIQUE INDEX models_one_deployed ON genrec.models (name) WHERE deployed;
COMMENT ON INDEX genrec.models_one_deployed IS 'At most one deployed version per model name.';

-- Models are user data: pg_dump dumps the rows (not only the table definition).
SELECT pg_catalog.pg_extension_config_dump('genrec.models', '');

-- Who else may use a model: score, recommend, evaluate, and read its weights, items and
-- source. grantee 0 is PUBLIC.
CREATE TABLE genrec.model_grants (
    name    text        NOT NULL REFERENCES genrec.model_names (name) ON DELETE CASCADE,
    grantee oid         NOT NULL,
    grantor oid         NOT NULL,
    granted timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, grantee)
);
COMMENT ON TABLE genrec.model_grants IS
'Roles a model''s owner granted its use to (genrec_grant; grantee 0 = PUBLIC). Readable by every role, like the ACLs in pg_class; written only by genrec_grant and genrec_revoke.';
COMMENT ON COLUMN genrec.model_grants.name IS 'Model name.';
COMMENT ON COLUMN genrec.model_grants.grantee IS 'OID of the role that may use the model, or 0 for PUBLIC.';
COMMENT ON COLUMN genrec.model_grants.grantor IS 'OID of the role that granted it.';
COMMENT ON COLUMN genrec.model_grants.granted IS 'When it was granted.';
SELECT pg_catalog.pg_extension_config_dump('genrec.model_grants', '');

CREATE FUNCTION genrec_has_privs_of(role oid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'genrec_has_privs_of_sql'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_has_privs_of(oid) IS
'Whether the current role has the privileges of a role (as pg_has_role(role, ''USAGE'') does; false for a dropped role, true for 0 = PUBLIC). Used by the row level security of genrec.models.';

-- Row level security: a role reads the rows of models it may use. Superusers and BYPASSRLS
-- roles are not subject to policies; the catalogue's owner writes through genrec's functions.
ALTER TABLE genrec.models ENABLE ROW LEVEL SECURITY;

CREATE POLICY models_select ON genrec.models FOR SELECT
    USING (genrec.genrec_has_privs_of(owner)
           OR EXISTS (SELECT 1 FROM genrec.model_grants g
                       WHERE g.name OPERATOR(pg_catalog.=) models.name
                         AND genrec.genrec_has_privs_of(g.grantee)));
COMMENT ON POLICY models_select ON genrec.models IS
'A role reads a model''s rows (weights, items, source) when it has the privileges of the owner or of a grantee, or use was granted to PUBLIC.';

GRANT SELECT ON genrec.models, genrec.model_names, genrec.model_grants TO PUBLIC;

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
       pg_catalog.octet_length(m.weights) AS weights_bytes,
       COALESCE(m.config #>> '{model,trunk}', 'gpt2') AS trunk
  FROM genrec.models m;
COMMENT ON VIEW genrec.model_overview IS
'One line per model version the current role may use: layout, deployed flag, owner, creation time, data size, epochs, validation NDCG@10, test HR@10 / NDCG@10 / RMSE of the first action with its bias baseline, training seconds, device, the size of the weights (not the bytes) and the trunk architecture (gpt2 or hstu).';

CREATE VIEW genrec.model_privileges WITH (security_invoker = true) AS
SELECT n.name,
       pg_catalog.pg_get_userbyid(n.owner) AS owner,
       CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
            ELSE pg_catalog.pg_get_userbyid(g.grantee) END AS grantee,
       pg_catalog.pg_get_userbyid(g.grantor) AS grantor,
       g.granted
  FROM genrec.model_names n
  JOIN genrec.model_grants g ON g.name OPERATOR(pg_catalog.=) n.name;
COMMENT ON VIEW genrec.model_privileges IS
'Who may use which model besides its owner: one row per grant (grantee PUBLIC for everyone).';

CREATE FUNCTION genrec_deploy(name text, version integer) RETURNS void
    AS 'MODULE_PATHNAME', 'genrec_deploy'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_deploy(text, integer) IS
'Deploy one version of a model (the one genrec_score and friends use), undeploying the previous one in the same transaction. Owner or superuser only (42501); unknown model or version: 42704; NULL arguments: 22004.';

CREATE FUNCTION genrec_rollback(name text) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_rollback'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_rollback(text) IS
'Deploy the newest version older than the deployed one and return it. ERROR 55000 when nothing is deployed or no older version exists; owner or superuser only (42501).';

CREATE FUNCTION genrec_drop_model(name text, version integer DEFAULT NULL) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_drop_model'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_drop_model(text, integer) IS
'Drop one version of a model, or every version when version is NULL (the name, and its grants, go with its last version); returns the number of versions dropped. Owner or superuser only (42501); unknown model or version: 42704.';

CREATE FUNCTION genrec_grant(model text, grantee text) RETURNS void
    AS 'MODULE_PATHNAME', 'genrec_grant'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_grant(text, text) IS
'Let a role (a role name, or PUBLIC) use a model: score, recommend, evaluate, and read its weights, items and source. Owner or superuser only (42501); unknown model or role: 42704. Granting twice is a no-op.';

CREATE FUNCTION genrec_revoke(model text, grantee text) RETURNS void
    AS 'MODULE_PATHNAME', 'genrec_revoke'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_revoke(text, text) IS
'Take back a grant of genrec_grant (a role name, or PUBLIC); the next call of that role is refused (42501). Owner or superuser only (42501); unknown model or role: 42704.';

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
        IF NOT EXISTS (SELECT 1 FROM genrec.model_names n WHERE n.name = genrec_export.name) THEN
            RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM genrec.models m WHERE m.name = genrec_export.name) THEN
            RAISE EXCEPTION 'permission denied for model "%"', name
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Its owner can grant its use with genrec_grant(model, role).';
        END IF;
        RAISE EXCEPTION 'model "%" has no version %', name, version
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v_weights;
END
$$;
COMMENT ON FUNCTION genrec_export(text, integer) IS
'The safetensors bytes of a model version (NULL version: the deployed one, else the newest), for genrec eval/score or PyTorch. NULL name gives NULL; unknown model or version: 42704; a model the caller may not use: 42501.';

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
'Add safetensors bytes (a model trained elsewhere, or exported) as the next version of a model and return the version; validated like genrec_weights_info (malformed bytes: XX001). source maps the interactions table for scoring: {"relation", "query", "user_col", "item_col", "action_cols", "time_col", "tiebreak_col"}, checked like genrec_train''s source (a query must be one SELECT); a source stored inside the file is never used, so without source the model has none (score histories then). Deployed when deploy is true or it is the first version. Retraining another role''s model: 42501.';
