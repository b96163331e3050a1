-- ---------------------------------------------------------------- scaling out
--
-- What a genrec database needs to be one server of several (README "Scaling out"): the user
-- hash that places users on partitions and routes calls to them, scoring many users in one
-- call (what a proxy splits by partition), and catalogue changes made by logical replication
-- noticed by serving. The proxy's, trainer's and partitions' own objects are in sql/scale/.

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
