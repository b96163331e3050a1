-- ---------------------------------------------------------------- serving
--
-- Every model-dependent function is STABLE: it reads genrec.models (the version that serves a
-- name: the deployed one, else the newest) and the model's source in the caller's snapshot.
-- All are STRICT: a NULL argument gives NULL (no rows for the set-returning ones). The calling
-- role must be allowed to use the model (its owner, a grantee, a superuser: 42501 otherwise),
-- checked on every call.
-- The functions that take a user id read the user's history from the model's source with the
-- owner's rights inside a security-restricted operation (README "Security"); they are PARALLEL
-- RESTRICTED (a parallel worker cannot switch its search_path). Those given a genrec_history
-- run no user SQL and are PARALLEL SAFE. Evaluation is PARALLEL RESTRICTED.
--
-- SQLSTATEs: 42704 unknown model; 42501 a model the caller may not use; 22023 invalid
-- argument (k < 1, bad split or cut-offs, multi-dimensional arrays, genrec.default_model
-- unset); P0002 a user without interactions (or an empty history) where the layout needs one;
-- XX001 corrupt weights; 42P17 an unusable source mapping; 42804 a source column of an
-- unsupported type; 55000 a model without weights, or without a source where a user id is
-- given.

CREATE FUNCTION genrec_score(model text, user_id bigint, candidates bigint[])
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'genrec_score_user'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION genrec_score(text, bigint, bigint[]) IS
'Score candidate items for a user in one pass: one real per candidate, aligned with the array: the predicted first action (raw scale; a probability for a binary column) for the layouts whose action depends on the candidate (lac, int, pc, attnlfa, attnmvp, l4), the retrieval logit for the others with an item head (item, l2, l3, l6, l9). The ablations l5, l6, l7 and l9 predict the next action without the next item, so their action estimate is the user-level one at the last history token, the same for every candidate: genrec_score_detail reports it in actions, and genrec_score refuses l5 and l7, which have no item head either, with ERROR 0A000. Layouts without an item head (l4, l5, l7) have no retrieval logit (the engine computes NaN): retrieval_logit is NULL in genrec_score_detail. The history is the user''s most recent interactions in the model''s source (an index on the user column makes it cheap). NULL or unknown candidates give NULL; an empty array gives an empty array; a user without interactions is a cold start for the layouts that pack candidates (int, lac, attnlfa, attnmvp, l4) and ERROR P0002 for the others.';

CREATE FUNCTION genrec_score(user_id bigint, candidates bigint[])
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'genrec_score_default'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
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
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100;
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
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
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
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION genrec_recommend(bigint, bigint, boolean) IS
'genrec_recommend(genrec.default_model, user_id, k, exclude_seen); ERROR 22023 when genrec.default_model is not set.';

CREATE FUNCTION genrec_evaluate(model text, split text DEFAULT 'test',
                                ks integer[] DEFAULT '{10,50}')
    RETURNS TABLE (metric text, k integer, value double precision)
    AS 'MODULE_PATHNAME', 'genrec_evaluate'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 20;
COMMENT ON FUNCTION genrec_evaluate(text, text, integer[]) IS
'Evaluate a model on its source with the fixed protocol: each user''s interactions by time (tiebreak column), leave-one-out (test = last, valid = second to last; users with fewer than 3 only train), the target ranked over the full catalogue. Rows: users; hr, ndcg (at each k) and mrr with the user''s earlier items excluded; hr_all, ndcg_all, mrr_all with nothing excluded; popularity_hr/ndcg (training-split popularity, seen excluded); per action column rmse:<col> (normalised [0,1] scale) and baseline_rmse:<col> (global mean + user and item bias), or logloss:<col>, ne:<col> (log loss / entropy of the training split''s positive rate) and auc:<col> (ROC AUC) for binary columns. Equal to `genrec eval` on the same rows.';

-- The P3 perturbation test on a trained model (README "Leakage check").
CREATE FUNCTION genrec_leakage_check(model text, users integer DEFAULT 100)
    RETURNS TABLE ("check" text, passed boolean, max_change double precision)
    AS 'MODULE_PATHNAME', 'genrec_leakage_check'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 3;
COMMENT ON FUNCTION genrec_leakage_check(text, integer) IS
'The P3 perturbation test (LAYOUTS.md 3) on a trained model and its source (read with the owner''s rights, as genrec_evaluate does): for the first `users` users with two or more interactions, each interaction of the most recent training window is perturbed in turn (its action, then its item) and the window rerun alone. Rows: own_label (a prediction made for an interaction must not move when its own label changes: its action for every prediction, its item for the item prediction; an action may read its own item), future_interaction (no prediction for an earlier interaction may move), reaches_later (positive control: later predictions do move). passed compares max_change (the largest absolute change of an item logit or action output) with 1e-6; on the CPU an unreached prediction is bit-identical.';

CREATE FUNCTION genrec_model_info(model text)
    RETURNS TABLE (name text, version integer, deployed boolean, layout text,
                   n_items integer, n_actions integer, action_cols text[], d_model integer,
                   n_layer integer, n_head integer, max_len integer, n_params bigint,
                   bytes bigint, shared boolean, history_query text, trunk text)
    AS 'MODULE_PATHNAME', 'genrec_model_info'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 1;
COMMENT ON FUNCTION genrec_model_info(text) IS
'The version that serves a model name (deployed, else newest) as loaded: layout, catalogue size, action columns, architecture, parameter count, bytes in memory, and whether the copy is shared (a dynamic shared memory segment) or private to this backend, the query that reads a user''s history ($1 user id, $2 row limit; EXPLAIN it to check that an index serves it), and the trunk architecture (gpt2 or hstu). Loads the model when it is not loaded yet.';

-- The token layouts the engine offers, from its declared behaviours (README "Layouts").
CREATE FUNCTION genrec_layouts()
    RETURNS TABLE (layout text, alias text, reads_actions boolean, item_head boolean,
                   action_head text, candidates text, action_scope text, cold_start boolean)
    AS 'MODULE_PATHNAME', 'genrec_layouts'
    LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 16;
COMMENT ON FUNCTION genrec_layouts() IS
'The token layouts of the engine (LAYOUTS.md 4, the Table-2 ablations l2 ... l9 of 4.7), one row each from its declared behaviours: its Table-2 alias (l0 = item, l8 = lac, l10 = pc), whether tokens carry actions, whether an item head predicts the next item (retrieval, HR/NDCG), what the action head reads (none, state, coupler), how serving scores candidates (logit, packed, coupled, user), the scope of the served action (candidate; user = one estimate f(h_N) for every candidate, layouts that predict a_{n+1} without i_{n+1}; none) and whether a user without history is scored as a cold start.';

CREATE FUNCTION genrec_cache_status()
    RETURNS TABLE (name text, version integer, state text, shared boolean, bytes bigint,
                   attached integer, loaded_at timestamptz, load_ms double precision,
                   in_this_backend boolean, segment bigint, index_lists integer,
                   index_bytes bigint)
    AS 'MODULE_PATHNAME', 'genrec_cache_status'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION genrec_cache_status() IS
'Models in memory (other databases'' models and those of roles whose privileges the caller lacks are shown to superusers only): one row per version in the shared registry (state ready, loading or superseded, bytes of its segments, backends attached, when and how fast it was loaded) and one per private copy of this backend (state private); segment is the dynamic shared memory handle (the file /dev/shm/PostgreSQL.<segment> with the default posix implementation); index_lists and index_bytes describe the IVF retrieval index published beside a shared version (built once per server by the first indexed retrieval, its bytes counted in bytes) or kept with a private copy, NULL when there is none.';

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
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION genrec_models_changed() IS
'Statement trigger of genrec.models: counts the transactions that change the model catalogue (in shared memory, at commit), so that serving reuses a model lookup until the next change.';
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON genrec.models
    FOR EACH STATEMENT EXECUTE FUNCTION genrec_models_changed();
ALTER TABLE genrec.models ENABLE ALWAYS TRIGGER models_changed;
COMMENT ON TRIGGER models_changed ON genrec.models IS
'Tells serving (genrec_score and friends) that the catalogue changed; see genrec_models_changed().';
CREATE TRIGGER model_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON genrec.model_grants FOR EACH STATEMENT EXECUTE FUNCTION genrec_models_changed();
ALTER TABLE genrec.model_grants ENABLE ALWAYS TRIGGER model_grants_changed;
COMMENT ON TRIGGER model_grants_changed ON genrec.model_grants IS
'Tells serving that who may use a model changed (serving remembers the grants with the lookup).';

CREATE FUNCTION genrec_device_info(OUT setting text, OUT device text, OUT math text,
                                   OUT detail text)
    AS 'MODULE_PATHNAME', 'genrec_device_info'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION genrec_device_info() IS
'The compute device this backend uses for genrec.device and genrec.cuda_math (opening it if needed): the setting, the device (cpu or cuda), its GEMM math mode (fp32 on the CPU) and why the CPU is used when auto found no usable GPU (said once in the server log and at DEBUG1, not to every client).';

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
