-- genrec 0.1.0 -> 0.2.0
--
-- ALTER EXTENSION genrec UPDATE TO '0.2.0' runs this file on a database whose catalogue was
-- created by 0.1.0; the models it holds keep serving. Each change below names the issue part
-- it belongs to; its objects equal those of sql/parts/*.sql in a fresh 0.2.0 install
-- (test/pg/test_upgrade.sh compares the two).
\echo Use "ALTER EXTENSION genrec UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------- issue 7: trust boundaries

-- model names and their owners (one owner per name, by a primary key)
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

INSERT INTO genrec.model_names (name, owner, created)
SELECT m.name, (pg_catalog.array_agg(m.owner ORDER BY m.version))[1], pg_catalog.min(m.created)
  FROM genrec.models m GROUP BY m.name;
-- 0.1.0's policies kept one owner per name; make sure of it before the foreign key
UPDATE genrec.models m SET owner = n.owner
  FROM genrec.model_names n
 WHERE n.name OPERATOR(pg_catalog.=) m.name AND m.owner OPERATOR(pg_catalog.<>) n.owner;

ALTER TABLE genrec.models
    ADD COLUMN weights_sha256 bytea GENERATED ALWAYS AS (pg_catalog.sha256(weights)) STORED;
ALTER TABLE genrec.models
    ADD FOREIGN KEY (name, owner) REFERENCES genrec.model_names (name, owner) ON DELETE CASCADE;
COMMENT ON TABLE genrec.models IS
'Trained models, one row per version: layout, config {"model": engine config, "train": options}, source mapping, metrics, weights (safetensors with the item id map), owner role, deployed flag (at most one version per name). A role sees the rows of models it may use (owner, grantees, superusers); only genrec''s functions write it.';
COMMENT ON COLUMN genrec.models.name IS 'Model name (1..200 bytes), chosen by the user.';
COMMENT ON COLUMN genrec.models.version IS 'Version 1, 2, ... per name.';
COMMENT ON COLUMN genrec.models.config IS
'{"model": engine model configuration (as in the safetensors metadata), "train": training options}.';
COMMENT ON COLUMN genrec.models.source IS
'{"relation": quoted schema-qualified table or view, or null; "query": SQL text with every name schema-qualified, or null; "user_col", "item_col", "action_cols" [...], "time_col" or null, "tiebreak_col" or null} (column names unquoted), or JSON null for a model without a source. Read with the owner''s rights.';
COMMENT ON COLUMN genrec.models.owner IS 'OID of the role that owns the model (the owner of its name).';
COMMENT ON COLUMN genrec.models.weights_sha256 IS
'SHA-256 of the weights, computed by the server; a model in shared memory is keyed by it (with the database and the version) and checked against it on attach.';

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

-- reads: owners, grantees, superusers; writes: genrec's functions only (as the table owner)
DROP POLICY models_select ON genrec.models;
DROP POLICY models_insert ON genrec.models;
DROP POLICY models_update ON genrec.models;
DROP POLICY models_delete ON genrec.models;
ALTER TABLE genrec.models NO FORCE ROW LEVEL SECURITY;
REVOKE INSERT, DELETE, UPDATE ON genrec.models FROM PUBLIC;
REVOKE UPDATE (deployed) ON genrec.models FROM PUBLIC;
CREATE POLICY models_select ON genrec.models FOR SELECT
    USING (genrec.genrec_has_privs_of(owner)
           OR EXISTS (SELECT 1 FROM genrec.model_grants g
                       WHERE g.name OPERATOR(pg_catalog.=) models.name
                         AND genrec.genrec_has_privs_of(g.grantee)));
COMMENT ON POLICY models_select ON genrec.models IS
'A role reads a model''s rows (weights, items, source) when it has the privileges of the owner or of a grantee, or use was granted to PUBLIC.';

GRANT SELECT ON genrec.model_names, genrec.model_grants TO PUBLIC;

COMMENT ON VIEW genrec.model_overview IS
'One line per model version the current role may use: layout, deployed flag, owner, creation time, data size, epochs, validation NDCG@10, test HR@10 / NDCG@10 / RMSE of the first action with its bias baseline, training seconds, device and the size of the weights (not the bytes).';

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

-- deploy, rollback and drop in C (no advisory lock any role could hold)
CREATE OR REPLACE FUNCTION genrec_deploy(name text, version integer) RETURNS void
    AS 'MODULE_PATHNAME', 'genrec_deploy'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_deploy(text, integer) IS
'Deploy one version of a model (the one genrec_score and friends use), undeploying the previous one in the same transaction. Owner or superuser only (42501); unknown model or version: 42704; NULL arguments: 22004.';

CREATE OR REPLACE FUNCTION genrec_rollback(name text) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_rollback'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_rollback(text) IS
'Deploy the newest version older than the deployed one and return it. ERROR 55000 when nothing is deployed or no older version exists; owner or superuser only (42501).';

CREATE OR REPLACE FUNCTION genrec_drop_model(name text, version integer DEFAULT NULL) RETURNS integer
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

CREATE OR REPLACE FUNCTION genrec_export(name text, version integer DEFAULT NULL) RETURNS bytea
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

COMMENT ON FUNCTION genrec_import(text, bytea, boolean, jsonb) IS
'Add safetensors bytes (a model trained elsewhere, or exported) as the next version of a model and return the version; validated like genrec_weights_info (malformed bytes: XX001). source maps the interactions table for scoring: {"relation", "query", "user_col", "item_col", "action_cols", "time_col", "tiebreak_col"}, checked like genrec_train''s source (a query must be one SELECT); a source stored inside the file is never used, so without source the model has none (score histories then). Deployed when deploy is true or it is the first version. Retraining another role''s model: 42501.';

-- serving by user id reads the owner's source in a security-restricted operation
ALTER FUNCTION genrec_score(text, bigint, bigint[]) PARALLEL RESTRICTED;
ALTER FUNCTION genrec_score(bigint, bigint[]) PARALLEL RESTRICTED;
ALTER FUNCTION genrec_score_detail(text, bigint, bigint[]) PARALLEL RESTRICTED;
ALTER FUNCTION genrec_recommend(text, bigint, integer, boolean) PARALLEL RESTRICTED;
ALTER FUNCTION genrec_recommend(bigint, bigint, boolean) PARALLEL RESTRICTED;
CREATE TRIGGER model_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON genrec.model_grants FOR EACH STATEMENT EXECUTE FUNCTION genrec_models_changed();
ALTER TABLE genrec.model_grants ENABLE ALWAYS TRIGGER model_grants_changed;
COMMENT ON TRIGGER model_grants_changed ON genrec.model_grants IS
'Tells serving that who may use a model changed (serving remembers the grants with the lookup).';

DROP FUNCTION genrec_cache_status();
CREATE FUNCTION genrec_cache_status()
    RETURNS TABLE (name text, version integer, state text, shared boolean, bytes bigint,
                   attached integer, loaded_at timestamptz, load_ms double precision,
                   in_this_backend boolean, segment bigint, index_lists integer,
                   index_bytes bigint)
    AS 'MODULE_PATHNAME', 'genrec_cache_status'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION genrec_cache_status() IS
'Models in memory (other databases'' models and those of roles whose privileges the caller lacks are shown to superusers only): one row per version in the shared registry (state ready, loading or superseded, bytes of its segments, backends attached, when and how fast it was loaded) and one per private copy of this backend (state private); segment is the dynamic shared memory handle (the file /dev/shm/PostgreSQL.<segment> with the default posix implementation); index_lists and index_bytes describe the IVF retrieval index published beside a shared version (built once per server by the first indexed retrieval, its bytes counted in bytes) or kept with a private copy, NULL when there is none.';

COMMENT ON FUNCTION genrec_training_progress() IS
'Running genrec_train calls, from shared memory (see the view genrec.training_progress): those of this database by roles whose privileges the caller has; superusers see the whole cluster.';

COMMENT ON VIEW genrec.training_progress IS
'One row per running genrec_train of this database by a role whose privileges the caller has (superusers: of the whole cluster): backend pid, database, role, model name, phase (reading, training, saving), rows read, epoch in progress of epochs, optimiser steps so far (estimated within an epoch), last training loss and validation NDCG@10, the best validation NDCG@10, start and last update. Empty without shared memory for it (see the README).';

-- ---------------------------------------------------------------- issue 12: quiet defaults
CREATE FUNCTION genrec_device_info(OUT setting text, OUT device text, OUT math text,
                                   OUT detail text)
    AS 'MODULE_PATHNAME', 'genrec_device_info'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION genrec_device_info() IS
'The compute device this backend uses for genrec.device and genrec.cuda_math (opening it if needed): the setting, the device (cpu or cuda), its GEMM math mode (fp32 on the CPU) and why the CPU is used when auto found no usable GPU (said once in the server log and at DEBUG1, not to every client).';

-- ---------------------------------------------------------------- issue 12: the report

CREATE FUNCTION genrec_report(model text) RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_report'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_report(text) IS
'An HTML document (inline SVG, no script) showing the version that serves a model at a glance: training loss, validation HR@10 / NDCG@10 and RMSE per epoch, and the test metrics beside the popularity and bias baselines. The same page as `genrec report`. A model the caller may not use: 42501; unknown: 42704.';

CREATE FUNCTION genrec_report(models text[]) RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_report_many'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_report(text[]) IS
'The HTML report of several models (1 to 64 names), with a comparison first: test HR@10 and NDCG@10 per layout as bars with error bars (mean and standard deviation over the models of that layout, e.g. trained with different seeds). NULL names: 22004.';

-- ---------------------------------------------------------------- issue 11: scaling out
CREATE FUNCTION genrec_user_hash(user_id bigint) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_user_hash'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_user_hash(bigint) IS
'Stable hash of a user id in [0, 2^31): the first output of SplitMix64 seeded with the id (z = id + 0x9e3779b97f4a7c15; z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) * 0x94d049bb133111eb; z ^= z >> 31; all mod 2^64), shifted right by 33. The same on every platform and version; PL/Proxy routes on it (RUN ON genrec_user_hash(user_id)).';

CREATE FUNCTION genrec_partition(user_id bigint, n_partitions integer) RETURNS integer
    AS 'MODULE_PATHNAME', 'genrec_partition'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_partition(bigint, integer) IS
'The partition (0 .. n_partitions - 1) that holds a user: genrec_user_hash(user_id) % n_partitions, which is also where PL/Proxy sends the user''s calls (for 2^k partitions, and for any n with modular_mapping). IMMUTABLE: usable in partition keys and CHECK constraints. ERROR 22023 for n_partitions < 1.';

CREATE FUNCTION genrec_score_batch(model text, user_ids bigint[], candidates bigint[])
    RETURNS TABLE (user_id bigint, scores real[])
    LANGUAGE sql STABLE STRICT PARALLEL RESTRICTED ROWS 100
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, genrec.genrec_score(model, u.id, candidates)
      FROM pg_catalog.unnest(user_ids) WITH ORDINALITY AS u (id, ord)
     ORDER BY u.ord
$$;
COMMENT ON FUNCTION genrec_score_batch(text, bigint[], bigint[]) IS
'Score the same candidates for many users: one row (user_id, genrec_score(model, user_id, candidates)) per element of user_ids, in order (a NULL element gives NULL scores). A proxy runs it on every partition at once with each partition''s users.';

-- Logical replication applies rows without firing statement triggers, so models_changed and
-- model_grants_changed would miss a catalogue written by a subscription: these row triggers,
-- enabled only for replica sessions (the apply worker), count those transactions instead.
CREATE TRIGGER models_changed_replica AFTER INSERT OR UPDATE OR DELETE ON genrec.models
    FOR EACH ROW EXECUTE FUNCTION genrec_models_changed();
ALTER TABLE genrec.models ENABLE REPLICA TRIGGER models_changed_replica;
COMMENT ON TRIGGER models_changed_replica ON genrec.models IS
'Tells serving that a subscription (logical replication) changed the catalogue: the apply worker fires row triggers only; see genrec_models_changed().';
CREATE TRIGGER model_grants_changed_replica AFTER INSERT OR UPDATE OR DELETE
    ON genrec.model_grants FOR EACH ROW EXECUTE FUNCTION genrec_models_changed();
ALTER TABLE genrec.model_grants ENABLE REPLICA TRIGGER model_grants_changed_replica;
COMMENT ON TRIGGER model_grants_changed_replica ON genrec.model_grants IS
'Tells serving that a subscription changed who may use a model (row trigger for the apply worker).';

-- ---------------------------------------------------------------- issue 13: the serving worker
-- The serving worker (README "GPU worker"): its state and counters, from shared memory.
CREATE FUNCTION genrec_worker_status(OUT mode text, OUT running boolean, OUT pid integer,
                                     OUT device text, OUT started timestamptz,
                                     OUT starts bigint, OUT requests bigint, OUT batches bigint,
                                     OUT passes bigint, OUT batched_requests bigint,
                                     OUT max_batch integer, OUT cancelled bigint,
                                     OUT failed bigint, OUT local_fallbacks bigint,
                                     OUT models integer, OUT message text)
    AS 'MODULE_PATHNAME', 'genrec_worker_status'
    LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_worker_status() IS
'The serving worker (genrec.worker, with genrec in shared_preload_libraries): its mode, whether it runs and takes requests, its pid, device and start time, how many times it started, and since server start the requests it took, the sets of requests it took at once (batches), the engine passes it ran, the requests that shared a pass with another, the most requests in one pass, requests withdrawn by their backend (cancelled), requests lost when a worker stopped (failed, scored locally), calls scored locally because no worker could serve them, the models it holds, and why it last stopped or could not start. Counters are NULL when no worker is configured.';

-- ---------------------------------------------------------------- issue 8: AttnLFA and AttnMVP
-- The layouts attnlfa and attnmvp (README "Layouts"); the engine decides what each computes.
ALTER TABLE genrec.models DROP CONSTRAINT models_layout_check;
ALTER TABLE genrec.models ADD CONSTRAINT models_layout_check
    CHECK (layout IN ('item', 'int', 'lac', 'pc', 'attnlfa', 'attnmvp'));
COMMENT ON COLUMN genrec.models.layout IS 'Token layout: item, int, lac, pc, attnlfa or attnmvp.';
COMMENT ON FUNCTION genrec_score(text, bigint, bigint[]) IS
'Score candidate items for a user in one pass: one real per candidate, aligned with the array: the predicted first action (raw scale; a probability for a binary column) for the layouts whose action depends on the candidate (lac, int, pc, attnlfa, attnmvp, l4), the retrieval logit for the others with an item head (item, l2, l3, l6, l9). The ablations l5, l6, l7 and l9 predict the next action without the next item, so their action estimate is the user-level one at the last history token, the same for every candidate: genrec_score_detail reports it in actions, and genrec_score refuses l5 and l7, which have no item head either, with ERROR 0A000. Layouts without an item head (l4, l5, l7) have no retrieval logit (the engine computes NaN): retrieval_logit is NULL in genrec_score_detail. The history is the user''s most recent interactions in the model''s source (an index on the user column makes it cheap). NULL or unknown candidates give NULL; an empty array gives an empty array; a user without interactions is a cold start for the layouts that pack candidates (int, lac, attnlfa, attnmvp, l4) and ERROR P0002 for the others.';

-- ---------------------------------------------------------------- issue 9: ablation layouts
-- The catalogue accepts the Table-2 ablation layouts (the engine's names; aliases are stored
-- under the layout they name).
ALTER TABLE genrec.models DROP CONSTRAINT models_layout_check,
    ADD CONSTRAINT models_layout_check CHECK (layout IN ('item', 'int', 'lac', 'pc', 'attnlfa',
                                                         'attnmvp', 'l2', 'l3', 'l4', 'l5',
                                                         'l6', 'l7', 'l9'));
COMMENT ON COLUMN genrec.models.layout IS 'Token layout: item, int, lac, pc, attnlfa, attnmvp, or the Table-2 ablations l2, l3, l4, l5, l6, l7, l9 (LAYOUTS.md 4.7; genrec_train also accepts l0, l8 and l10 for item, lac and pc).';
-- The token layouts the engine offers, from its declared behaviours (README "Layouts").
CREATE FUNCTION genrec_layouts()
    RETURNS TABLE (layout text, alias text, reads_actions boolean, item_head boolean,
                   action_head text, candidates text, action_scope text, cold_start boolean)
    AS 'MODULE_PATHNAME', 'genrec_layouts'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 16;
COMMENT ON FUNCTION genrec_layouts() IS
'The token layouts of the engine (LAYOUTS.md 4, the Table-2 ablations l2 ... l9 of 4.7), one row each from its declared behaviours: its Table-2 alias (l0 = item, l8 = lac, l10 = pc), whether tokens carry actions, whether an item head predicts the next item (retrieval, HR/NDCG), what the action head reads (none, state, coupler), how serving scores candidates (logit, packed, coupled, user), the scope of the served action (candidate; user = one estimate f(h_N) for every candidate, layouts that predict a_{n+1} without i_{n+1}; none) and whether a user without history is scored as a cold start.';

-- ---------------------------------------------------------------- issue 9: several action tasks


COMMENT ON FUNCTION genrec_evaluate(text, text, integer[]) IS
'Evaluate a model on its source with the fixed protocol: each user''s interactions by time (tiebreak column), leave-one-out (test = last, valid = second to last; users with fewer than 3 only train), the target ranked over the full catalogue. Rows: users; hr, ndcg (at each k) and mrr with the user''s earlier items excluded; hr_all, ndcg_all, mrr_all with nothing excluded; popularity_hr/ndcg (training-split popularity, seen excluded); per action column rmse:<col> (normalised [0,1] scale) and baseline_rmse:<col> (global mean + user and item bias), or logloss:<col>, ne:<col> (log loss / entropy of the training split''s positive rate) and auc:<col> (ROC AUC) for binary columns. Equal to `genrec eval` on the same rows.';

-- ---------------------------------------------------------------- issue 9: leakage check
-- The P3 perturbation test on a trained model (README "Leakage check").
CREATE FUNCTION genrec_leakage_check(model text, users integer DEFAULT 100)
    RETURNS TABLE ("check" text, passed boolean, max_change double precision)
    AS 'MODULE_PATHNAME', 'genrec_leakage_check'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 3;
COMMENT ON FUNCTION genrec_leakage_check(text, integer) IS
'The P3 perturbation test (LAYOUTS.md 3) on a trained model and its source (read with the owner''s rights, as genrec_evaluate does): for the first `users` users with two or more interactions, each interaction of the most recent training window is perturbed in turn (its action, then its item) and the window rerun alone. Rows: own_label (a prediction made for an interaction must not move when its own label changes: its action for every prediction, its item for the item prediction; an action may read its own item), future_interaction (no prediction for an earlier interaction may move), reaches_later (positive control: later predictions do move). passed compares max_change (the largest absolute change of an item logit or action output) with 1e-6; on the CPU an unreached prediction is bit-identical.';

-- ---------------------------------------------------------------- issue 9: layout comparison
-- (see sql/parts/80_compare.sql)
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
-- the item losses for large catalogues are training options
COMMENT ON FUNCTION genrec_train(text, text, text, text, text[], text, text, text, integer,
                                 integer, integer, integer, integer, integer, real, real,
                                 integer, bigint, jsonb, boolean) IS
'Train a model on interactions from a table or view (regclass name) or a query (text starting with SELECT, WITH, VALUES or TABLE) with the leave-one-out protocol, store it in genrec.models as the next version of name (deployed unless deploy is false and an earlier version exists) and return one summary row (HR/NDCG@10 and RMSE of the first action on the validation and test splits, at the best epoch). A NOTICE per epoch; progress in genrec.training_progress; cancel and statement_timeout stop it within one optimiser step and leave the catalogue unchanged. options: beta1, beta2, eps, weight_decay, w_item, w_action, warmup_steps, eval_users, n_buckets, emb_scale, head_hidden, binary_actions (action columns to treat as binary, log loss), task_weights (one loss weight per action column, in the order of action_cols, times w_action); and the item loss: loss (full, the default: softmax over the whole catalogue; sampled: sampled negatives with the log-Q correction; infonce: the batch''s other targets as negatives), negatives (sampled: per user or per step, default 256; infonce: in-batch negatives drawn, default 0 = every row), sampler (uniform or popularity, for sampled), negatives_per (sampled: user, the default: each user''s sequence of a step draws its own negatives; batch: one set shared by the whole step), temperature (default 1), similarity (dot, the default; cosine, for sampled and infonce: unit item rows, kept unit while training, and a normalised user state, so the logit is a cosine divided by temperature), item_update (auto, the default: the sampled and in-batch losses update only the item rows a step touches, lazy AdamW; dense: every row every step; lazy); trunk (gpt2, the default: pre-LN GPT-2 blocks; hstu: HSTU blocks, SiLU attention with relative position and time biases read from time_col). Evaluation always ranks the whole catalogue.';

-- The trunk architecture (README "Trunks"): a column at the end of the overview view and of
-- genrec_model_info (a changed result type: dropped and created again).
CREATE OR REPLACE VIEW genrec.model_overview WITH (security_invoker = true) AS
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

DROP FUNCTION genrec_model_info(text);
CREATE FUNCTION genrec_model_info(model text)
    RETURNS TABLE (name text, version integer, deployed boolean, layout text,
                   n_items integer, n_actions integer, action_cols text[], d_model integer,
                   n_layer integer, n_head integer, max_len integer, n_params bigint,
                   bytes bigint, shared boolean, history_query text, trunk text)
    AS 'MODULE_PATHNAME', 'genrec_model_info'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 1;
COMMENT ON FUNCTION genrec_model_info(text) IS
'The version that serves a model name (deployed, else newest) as loaded: layout, catalogue size, action columns, architecture, parameter count, bytes in memory, and whether the copy is shared (a dynamic shared memory segment) or private to this backend, the query that reads a user''s history ($1 user id, $2 row limit; EXPLAIN it to check that an index serves it), and the trunk architecture (gpt2 or hstu). Loads the model when it is not loaded yet.';
