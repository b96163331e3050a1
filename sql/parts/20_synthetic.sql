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

