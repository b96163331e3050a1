-- sql/scale/partition.sql — the objects of a partition server's database in a scaled-out
-- genrec (README "Scaling out"); installed by scripts/scaleout.sh after CREATE EXTENSION
-- genrec, as a superuser, with psql variables :partition and :n_partitions.
--
-- Not part of the genrec extension: they only make sense on a server that subscribes to a
-- trainer's catalogue (a single server must not carry the read-only guard below), and they
-- change with the topology, not with genrec's version.
--
-- A partition holds the interactions of the users u with genrec_partition(u, n) = its number
-- and a copy of the trainer's model catalogue, written only by logical replication:
--   * genrec.model_names and genrec.models arrive as they are, except their owner: the
--     trainer's role OIDs mean nothing here, so a replica trigger maps each OID to the local
--     role of the same name, through genrec_scale.role_names (OID -> name, replicated from
--     the trainer). A role missing here is an ERROR in the apply worker: replication of the
--     catalogue waits (retrying) until the role is created.
--   * grants arrive by role name (genrec_scale.grants) and a replica trigger writes them to
--     genrec.model_grants with local OIDs; a replicated delete finds its row by name, which
--     a replicated genrec.model_grants row keyed by the trainer's OID could not.
-- Statement triggers do not fire for replicated rows; the extension's replica row triggers
-- on genrec.models and genrec.model_grants tell serving that the catalogue changed.
-- Apply workers run with an empty search_path: everything here is schema-qualified.

\set ON_ERROR_STOP 1
CREATE SCHEMA genrec_scale;
COMMENT ON SCHEMA genrec_scale IS
'Scale-out objects of a genrec partition server (sql/scale/partition.sql): its partition number, the role names and grants replicated from the trainer, and the functions the trainer and the proxy call through PL/Proxy.';
GRANT USAGE ON SCHEMA genrec_scale TO PUBLIC;

-- This server's place in the cluster: one row.
CREATE TABLE genrec_scale.node (
    partition    integer NOT NULL,
    n_partitions integer NOT NULL CHECK (n_partitions >= 1),
    CHECK (partition >= 0 AND partition < n_partitions)
);
CREATE UNIQUE INDEX node_one_row ON genrec_scale.node ((true));
COMMENT ON TABLE genrec_scale.node IS
'This partition''s number and the number of partitions (one row); it holds the users u with genrec.genrec_partition(u, n_partitions) = partition.';
INSERT INTO genrec_scale.node VALUES (:partition, :n_partitions);
GRANT SELECT ON genrec_scale.node TO PUBLIC;

-- Replicated from the trainer: the names of the role OIDs that own its models.
CREATE TABLE genrec_scale.role_names (
    oid  oid  PRIMARY KEY,
    name name NOT NULL
);
COMMENT ON TABLE genrec_scale.role_names IS
'The trainer''s role OIDs and their names (replicated): a replicated model''s owner OID is mapped to the local role of that name.';

-- Replicated from the trainer: who may use which model, by role name ('public' = PUBLIC).
CREATE TABLE genrec_scale.grants (
    name    text        NOT NULL,
    grantee name        NOT NULL,
    grantor name        NOT NULL,
    granted timestamptz NOT NULL,
    PRIMARY KEY (name, grantee)
);
COMMENT ON TABLE genrec_scale.grants IS
'The trainer''s genrec.model_grants by role name (replicated); a replica trigger keeps genrec.model_grants equal to it with local role OIDs.';

-- The local OID of a role named on the trainer (0 for 'public'); ERROR 42704 when missing.
CREATE FUNCTION genrec_scale.local_role(role_name name, what text) RETURNS oid
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_oid oid;
BEGIN
    IF role_name = 'public' THEN
        RETURN 0;
    END IF;
    SELECT r.oid INTO v_oid FROM pg_catalog.pg_roles r WHERE r.rolname = role_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" (%) does not exist on partition %', role_name, what,
            (SELECT n.partition FROM genrec_scale.node n)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create the role on every partition; replication of the model catalogue retries and resumes by itself.';
    END IF;
    RETURN v_oid;
END
$$;
COMMENT ON FUNCTION genrec_scale.local_role(name, text) IS
'The OID of the local role of a name replicated from the trainer (0 for public); ERROR 42704 naming the role and what it is for when it does not exist here.';

-- Replica trigger of genrec.model_names and genrec.models: the trainer's owner OID -> local.
CREATE FUNCTION genrec_scale.map_owner() RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name name;
BEGIN
    SELECT r.name INTO v_name FROM genrec_scale.role_names r WHERE r.oid = NEW.owner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'owner OID % of model "%" is not in genrec_scale.role_names', NEW.owner, NEW.name
            USING ERRCODE = 'undefined_object',
                  HINT = 'The trainer records it with the name (sql/scale/trainer.sql); an initial copy retries until genrec_scale.role_names is copied.';
    END IF;
    NEW.owner := genrec_scale.local_role(v_name, pg_catalog.format('owner of model "%s"', NEW.name));
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION genrec_scale.map_owner() IS
'Replica trigger of genrec.model_names and genrec.models: replaces the trainer''s owner OID by the OID of the local role with the same name (ERROR 42704 when there is none, and replication retries).';

CREATE TRIGGER scale_map_owner BEFORE INSERT OR UPDATE ON genrec.model_names
    FOR EACH ROW EXECUTE FUNCTION genrec_scale.map_owner();
ALTER TABLE genrec.model_names ENABLE REPLICA TRIGGER scale_map_owner;
CREATE TRIGGER scale_map_owner BEFORE INSERT OR UPDATE ON genrec.models
    FOR EACH ROW EXECUTE FUNCTION genrec_scale.map_owner();
ALTER TABLE genrec.models ENABLE REPLICA TRIGGER scale_map_owner;

-- Replica trigger of genrec_scale.grants: write the grant to genrec.model_grants locally.
CREATE FUNCTION genrec_scale.apply_grant() RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM genrec.model_grants g
         WHERE g.name = OLD.name
           AND g.grantee = (CASE WHEN OLD.grantee = 'public' THEN 0
                                 ELSE (SELECT r.oid FROM pg_catalog.pg_roles r
                                        WHERE r.rolname = OLD.grantee) END);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO genrec.model_grants (name, grantee, grantor, granted)
        VALUES (NEW.name,
                genrec_scale.local_role(NEW.grantee, pg_catalog.format('grantee of model "%s"', NEW.name)),
                genrec_scale.local_role(NEW.grantor, pg_catalog.format('grantor of model "%s"', NEW.name)),
                NEW.granted)
        ON CONFLICT (name, grantee) DO UPDATE SET grantor = EXCLUDED.grantor, granted = EXCLUDED.granted;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION genrec_scale.apply_grant() IS
'Replica trigger of genrec_scale.grants: inserts, updates and deletes the matching genrec.model_grants row with local role OIDs.';
CREATE TRIGGER scale_apply_grant AFTER INSERT OR UPDATE OR DELETE ON genrec_scale.grants
    FOR EACH ROW EXECUTE FUNCTION genrec_scale.apply_grant();
ALTER TABLE genrec_scale.grants ENABLE REPLICA TRIGGER scale_apply_grant;

-- Ordinary trigger (not fired by replication): the catalogue of a partition is read-only.
CREATE FUNCTION genrec_scale.refuse_local_write() RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the model catalogue of partition % is written by replication from the trainer',
        (SELECT n.partition FROM genrec_scale.node n)
        USING ERRCODE = 'read_only_sql_transaction',
              HINT = 'Train, import, deploy and grant on the trainer (README "Scaling out").';
END
$$;
COMMENT ON FUNCTION genrec_scale.refuse_local_write() IS
'Trigger of the catalogue tables of a partition: refuses writes that do not come from replication (ERROR 25006), which would collide with the trainer''s rows.';
CREATE TRIGGER scale_read_only BEFORE INSERT OR UPDATE OR DELETE ON genrec.model_names
    FOR EACH STATEMENT EXECUTE FUNCTION genrec_scale.refuse_local_write();
CREATE TRIGGER scale_read_only BEFORE INSERT OR UPDATE OR DELETE ON genrec.models
    FOR EACH STATEMENT EXECUTE FUNCTION genrec_scale.refuse_local_write();
CREATE TRIGGER scale_read_only BEFORE INSERT OR UPDATE OR DELETE ON genrec.model_grants
    FOR EACH STATEMENT EXECUTE FUNCTION genrec_scale.refuse_local_write();

-- Called through PL/Proxy (RUN ON ALL) by the trainer and the proxy.

CREATE FUNCTION genrec_scale.partition_version(name text, version integer)
    RETURNS TABLE (partition integer, n_partitions integer, present boolean,
                   weights_sha256 bytea, deployed boolean, serving_version integer)
    LANGUAGE sql STABLE CALLED ON NULL INPUT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.partition, n.n_partitions,
           m.version IS NOT NULL,
           m.weights_sha256,
           COALESCE(m.deployed, false),
           (SELECT s.version FROM genrec.models s
             WHERE s.name = partition_version.name
             ORDER BY s.deployed DESC, s.version DESC LIMIT 1)
      FROM genrec_scale.node n
      LEFT JOIN genrec.models m
        ON m.name = partition_version.name AND m.version = partition_version.version
$$;
COMMENT ON FUNCTION genrec_scale.partition_version(text, integer) IS
'One row: this partition''s number, the number of partitions, whether it has the version of the model (as the caller may see it), its weights'' SHA-256 (computed here), whether it is deployed here, and the version that serves the name here (deployed, else newest).';

CREATE FUNCTION genrec_scale.cache_status()
    RETURNS TABLE (partition integer, name text, version integer, state text, shared boolean,
                   bytes bigint, attached integer, loaded_at timestamptz)
    LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.partition, c.name, c.version, c.state, c.shared, c.bytes, c.attached, c.loaded_at
      FROM genrec_scale.node n, genrec.genrec_cache_status() c
$$;
COMMENT ON FUNCTION genrec_scale.cache_status() IS
'genrec_cache_status() of this partition, each row with the partition''s number.';
