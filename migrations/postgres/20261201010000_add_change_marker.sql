-- PostgreSQL twin of migrations/sqlite/20261201010000_add_change_marker.sql: one row counting
-- every change to what the pages and feeds show (releases, their evidence, per-version
-- metadata), and when the last one happened.
--
-- Statement triggers, not row triggers: a check writes a project's releases and evidence in a
-- few set-based statements, and a row trigger would update the marker row once per written
-- row, each time a new row version of it inside one transaction (measured: 500 transactions
-- of 168 rows took 3.0 s with a row trigger, 0.8 s with a statement trigger). The transition
-- table lets a statement that changed no row leave the marker alone, as SQLite's row
-- triggers do. PostgreSQL allows a transition table only on a trigger of one event, hence one
-- trigger per table and event.

CREATE TABLE change_marker (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    serial     BIGINT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL  -- seconds since 1970
);
INSERT INTO change_marker (id, serial, changed_at)
    VALUES (1, 0, extract(epoch FROM clock_timestamp()));

CREATE FUNCTION herald_mark_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        UPDATE change_marker SET serial = serial + 1,
            changed_at = extract(epoch FROM clock_timestamp()) WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER change_marker_releases_insert AFTER INSERT ON releases
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_releases_update AFTER UPDATE ON releases
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_releases_delete AFTER DELETE ON releases
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_evidence_insert AFTER INSERT ON evidence
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_evidence_update AFTER UPDATE ON evidence
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_evidence_delete AFTER DELETE ON evidence
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_metadata_insert AFTER INSERT ON release_metadata
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_metadata_update AFTER UPDATE ON release_metadata
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION herald_mark_change();
