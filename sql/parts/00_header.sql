-- genrec 0.2.0
--
-- Versions and upgrades: this file installs version 0.2.0 from scratch. Every later version
-- change ships sql/genrec--A--B.sql (A the previous released version, B the new one) with
-- exactly the DDL that turns A into B, and bumps default_version in genrec.control and
-- EXTVERSION in the Makefile; ALTER EXTENSION genrec UPDATE then walks the chain. A released
-- script is never edited afterwards; sql/genrec--0.1.0.sql is the released 0.1.0 install
-- script, kept so that upgrades from 0.1.0 can be installed and tested. Every object gets explicit volatility, STRICT or a
-- stated NULL handling, PARALLEL marking and a COMMENT ON.
--
-- All objects live in schema genrec (genrec.control: schema genrec, not relocatable).
\echo Use "CREATE EXTENSION genrec" to load this file. \quit

CREATE FUNCTION genrec_version() RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_version() IS 'Version of the genrec shared library.';

