-- sql/scale/trainer.sql — the objects of the trainer's database in a scaled-out genrec (README
-- "Scaling out"); installed by scripts/scaleout.sh after CREATE EXTENSION genrec, plproxy and
-- postgres_fdw, as a superuser. The script then creates the PL/Proxy cluster
-- genrec_partitions (one connection string per partition) and the postgres_fdw servers
-- genrec_p0, genrec_p1, ... that the partitioned interaction tables use.
--
-- Not part of the genrec extension: they need PL/Proxy, postgres_fdw and a publication, which
-- a single server has no use for.
--
-- The trainer trains (genrec_train reads partitioned tables whose partitions are postgres_fdw
-- foreign tables on the partition servers) and publishes its catalogue to every partition:
--   publication genrec_catalogue = genrec.model_names, genrec.models (weights as bytea; the
--   generated weights_sha256 is not sent, each subscriber computes it), genrec_scale.role_names
--   and genrec_scale.grants.
-- Role OIDs differ between servers, so owners travel as OIDs with an OID -> name table
-- (role_names, filled by a trigger before the name's row is written, so a partition always
-- has the name when the row arrives) and grants travel by role name (grants, kept equal to
-- genrec.model_grants by a trigger); partitions map names to their own roles
-- (sql/scale/partition.sql). genrec.model_grants itself is not published: a replicated
-- revoke keyed by the trainer's OID would find no row on a partition.

\set ON_ERROR_STOP 1
CREATE SCHEMA genrec_scale;
COMMENT ON SCHEMA genrec_scale IS
'Scale-out objects of the genrec trainer (sql/scale/trainer.sql): the published role names and grants, and the functions that check and deploy versions on every partition through PL/Proxy.';
GRANT USAGE ON SCHEMA genrec_scale TO PUBLIC;

-- This trainer's partitions: one row.
CREATE TABLE genrec_scale.node (
    n_partitions integer NOT NULL CHECK (n_partitions >= 1)
);
CREATE UNIQUE INDEX node_one_row ON genrec_scale.node ((true));
COMMENT ON TABLE genrec_scale.node IS 'The number of partitions of this trainer (one row).';
INSERT INTO genrec_scale.node VALUES (:n_partitions);
GRANT SELECT ON genrec_scale.node TO PUBLIC;

CREATE TABLE genrec_scale.role_names (
    oid  oid  PRIMARY KEY,
    name name NOT NULL
);
COMMENT ON TABLE genrec_scale.role_names IS
'Names of the role OIDs that own models (published): partitions map a replicated owner OID to their role of that name.';

CREATE TABLE genrec_scale.grants (
    name    text        NOT NULL,
    grantee name        NOT NULL,
    grantor name        NOT NULL,
    granted timestamptz NOT NULL,
    PRIMARY KEY (name, grantee)
);
COMMENT ON TABLE genrec_scale.grants IS
'genrec.model_grants by role name, ''public'' for PUBLIC (published; kept equal by a trigger).';
GRANT SELECT ON genrec_scale.role_names, genrec_scale.grants TO PUBLIC;

-- The name of a role OID ('public' for 0); ERROR 42704 for an OID that is no role.
CREATE FUNCTION genrec_scale.role_name(role oid) RETURNS name
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name name;
BEGIN
    IF role = 0 THEN
        RETURN 'public';
    END IF;
    SELECT r.rolname INTO v_name FROM pg_catalog.pg_roles r WHERE r.oid = role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role OID % does not exist', role USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v_name;
END
$$;
COMMENT ON FUNCTION genrec_scale.role_name(oid) IS
'The name of a role OID (public for 0), as published to the partitions; ERROR 42704 for an unknown OID.';

-- Trigger of genrec.model_names: record the owner's name before the row is written.
CREATE FUNCTION genrec_scale.note_owner() RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO genrec_scale.role_names (oid, name)
    VALUES (NEW.owner, genrec_scale.role_name(NEW.owner))
    ON CONFLICT (oid) DO UPDATE SET name = EXCLUDED.name
     WHERE role_names.name IS DISTINCT FROM EXCLUDED.name;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION genrec_scale.note_owner() IS
'Trigger of genrec.model_names (before insert or update): records the owner OID''s role name in genrec_scale.role_names, in the same transaction and before the row, so a partition can map it.';
CREATE TRIGGER scale_note_owner BEFORE INSERT OR UPDATE OF owner ON genrec.model_names
    FOR EACH ROW EXECUTE FUNCTION genrec_scale.note_owner();

-- Trigger of genrec.model_grants: keep genrec_scale.grants equal to it, by role name.
CREATE FUNCTION genrec_scale.mirror_grant() RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM genrec_scale.grants g
         WHERE g.name = OLD.name AND g.grantee = genrec_scale.role_name(OLD.grantee);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO genrec_scale.grants (name, grantee, grantor, granted)
        VALUES (NEW.name, genrec_scale.role_name(NEW.grantee), genrec_scale.role_name(NEW.grantor),
                NEW.granted)
        ON CONFLICT (name, grantee) DO UPDATE SET grantor = EXCLUDED.grantor,
                                                  granted = EXCLUDED.granted;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION genrec_scale.mirror_grant() IS
'Trigger of genrec.model_grants: writes each grant and revoke to genrec_scale.grants by role name (published to the partitions).';
CREATE TRIGGER scale_mirror_grant AFTER INSERT OR UPDATE OR DELETE ON genrec.model_grants
    FOR EACH ROW EXECUTE FUNCTION genrec_scale.mirror_grant();

-- Rows that existed before this file was installed.
INSERT INTO genrec_scale.role_names (oid, name)
SELECT DISTINCT n.owner, genrec_scale.role_name(n.owner) FROM genrec.model_names n
    ON CONFLICT (oid) DO NOTHING;
INSERT INTO genrec_scale.grants (name, grantee, grantor, granted)
SELECT g.name, genrec_scale.role_name(g.grantee), genrec_scale.role_name(g.grantor), g.granted
  FROM genrec.model_grants g
    ON CONFLICT (name, grantee) DO NOTHING;

CREATE PUBLICATION genrec_catalogue
    FOR TABLE genrec.model_names, genrec.models, genrec_scale.role_names, genrec_scale.grants
    WITH (publish = 'insert, update, delete');
COMMENT ON PUBLICATION genrec_catalogue IS
'The model catalogue for the partitions: names, versions (weights as bytea), owners'' role names and grants by role name. TRUNCATE is not published.';

-- Through PL/Proxy: each partition's view of one version (cluster genrec_partitions).
CREATE FUNCTION genrec_scale.partition_version(name text, version integer)
    RETURNS TABLE (partition integer, n_partitions integer, present boolean,
                   weights_sha256 bytea, deployed boolean, serving_version integer)
    LANGUAGE plproxy VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
AS $$
    CLUSTER 'genrec_partitions';
    RUN ON ALL;
$$;
COMMENT ON FUNCTION genrec_scale.partition_version(text, integer) IS
'One row per partition (through PL/Proxy): whether it has the version, its weights'' SHA-256 computed there, whether it is deployed there, and the version that serves the name there. An unreachable partition is an ERROR naming it.';

-- The partitions that do not have a version with the trainer's weights, as text ('' = none).
CREATE FUNCTION genrec_scale.missing_on(name text, version integer, need_deployed boolean)
    RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sha bytea;
    v_n integer;
    v_missing text;
BEGIN
    SELECT m.weights_sha256 INTO v_sha FROM genrec.models m
     WHERE m.name = missing_on.name AND m.version = missing_on.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" has no version % on the trainer (or the caller may not use it)',
            name, version USING ERRCODE = 'undefined_object';
    END IF;
    SELECT n.n_partitions INTO v_n FROM genrec_scale.node n;
    -- one PL/Proxy call (a materialized CTE), then every partition number must answer yes
    WITH r AS MATERIALIZED (
        SELECT * FROM genrec_scale.partition_version(missing_on.name, missing_on.version))
    SELECT pg_catalog.string_agg(p::text, ', ' ORDER BY p) INTO v_missing
      FROM pg_catalog.generate_series(0, v_n - 1) p
     WHERE NOT EXISTS (
            SELECT 1 FROM r
             WHERE r.partition = p AND r.n_partitions = v_n AND r.present
               AND r.weights_sha256 = v_sha
               AND (NOT need_deployed OR r.deployed));
    RETURN COALESCE(v_missing, '');
END
$$;
COMMENT ON FUNCTION genrec_scale.missing_on(text, integer, boolean) IS
'The numbers of the partitions (comma-separated; empty when none) that lack a version with the trainer''s weights (SHA-256 compared), or, with need_deployed, do not have it deployed. Asks every partition through PL/Proxy; an unreachable partition is an ERROR.';

CREATE FUNCTION genrec_scale.deploy(name text, version integer) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_missing text := genrec_scale.missing_on(name, version, false);
BEGIN
    IF v_missing <> '' THEN
        RAISE EXCEPTION 'version % of model "%" is not on every partition yet (missing on partition %)',
            version, name, v_missing
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Replication may be behind or stopped: see pg_stat_subscription on that partition, or wait with CALL genrec_scale.rollout(name, version).';
    END IF;
    PERFORM genrec.genrec_deploy(name, version);
END
$$;
COMMENT ON FUNCTION genrec_scale.deploy(text, integer) IS
'Deploy a version on the trainer (and so, by replication, on every partition) only if every partition already has it with the same weights (checked through PL/Proxy); otherwise ERROR 55000 naming the partitions that lack it, and nothing changes. An unreachable partition is an ERROR too.';

CREATE PROCEDURE genrec_scale.rollout(name text, version integer,
                                      timeout interval DEFAULT '60 s')
    LANGUAGE plpgsql
-- no SET clause: a procedure with one cannot COMMIT; every name below is qualified instead
AS $$
DECLARE
    v_deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
    v_deployed timestamptz;
    v_missing text;
BEGIN
    LOOP
        v_missing := genrec_scale.missing_on(name, version, false);
        EXIT WHEN v_missing = '';
        IF pg_catalog.clock_timestamp() > v_deadline THEN
            RAISE EXCEPTION 'version % of model "%" did not reach partition % within %',
                version, name, v_missing, timeout
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
    PERFORM genrec_scale.deploy(name, version);
    COMMIT;
    v_deployed := pg_catalog.clock_timestamp();
    LOOP
        v_missing := genrec_scale.missing_on(name, version, true);
        EXIT WHEN v_missing = '';
        IF pg_catalog.clock_timestamp() > v_deadline THEN
            RAISE EXCEPTION 'version % of model "%" is deployed on the trainer but partition % did not report it deployed within %',
                version, name, v_missing, timeout
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        PERFORM pg_catalog.pg_sleep(0.02);
    END LOOP;
    RAISE NOTICE 'model "%" version % serves on every partition (% s after the deploy committed)',
        name, version,
        pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - v_deployed), 3);
END
$$;
COMMENT ON PROCEDURE genrec_scale.rollout(text, integer, interval) IS
'Wait until every partition has a version, deploy it with genrec_scale.deploy, commit, and wait until every partition reports it deployed; a NOTICE gives the switch-over time. ERROR 55000 after timeout (the deploy stands once committed). Call it outside a transaction block.';
