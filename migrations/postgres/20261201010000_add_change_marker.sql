-- PostgreSQL twin of migrations/sqlite/20261201010000_add_change_marker.sql: one row counting
-- every change to what the pages and feeds show, kept by row triggers.

CREATE TABLE change_marker (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    serial     BIGINT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL  -- seconds since 1970
);
INSERT INTO change_marker (id, serial, changed_at)
    VALUES (1, 0, extract(epoch FROM clock_timestamp()));

CREATE FUNCTION herald_mark_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_marker SET serial = serial + 1,
        changed_at = extract(epoch FROM clock_timestamp()) WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER change_marker_releases AFTER INSERT OR UPDATE OR DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_evidence AFTER INSERT OR UPDATE OR DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION herald_mark_change();
CREATE TRIGGER change_marker_metadata AFTER INSERT OR UPDATE ON release_metadata
    FOR EACH ROW EXECUTE FUNCTION herald_mark_change();
