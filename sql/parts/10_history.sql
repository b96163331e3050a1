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

