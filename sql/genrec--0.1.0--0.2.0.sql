-- genrec 0.1.0 -> 0.2.0
--
-- ALTER EXTENSION genrec UPDATE TO '0.2.0' runs this file on a database whose catalogue was
-- created by 0.1.0; the models it holds keep serving. Each change below names the issue part
-- it belongs to; its objects equal those of sql/parts/*.sql in a fresh 0.2.0 install
-- (test/pg/test_upgrade.sh compares the two).
\echo Use "ALTER EXTENSION genrec UPDATE TO '0.2.0'" to load this file. \quit
