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
