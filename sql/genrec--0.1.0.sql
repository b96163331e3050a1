-- genrec 0.1.0
\echo Use "CREATE EXTENSION genrec" to load this file. \quit

CREATE FUNCTION genrec_version() RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_version() IS 'Version of the genrec shared library.';
