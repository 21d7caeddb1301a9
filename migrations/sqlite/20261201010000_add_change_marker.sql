-- The web service's conditional answers: one row counting every change to what the pages and
-- feeds show (releases, their evidence, per-version metadata), and when the last one happened.
-- Triggers keep it, so writers (check, alerts, another process) need not know about it. They
-- run once per written row, so they only add one and read the clock (no formatting).

CREATE TABLE change_marker (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    serial     INTEGER NOT NULL,
    changed_at REAL    NOT NULL  -- seconds since 1970 (unixepoch('subsec')): cheap in a trigger
);
INSERT INTO change_marker (id, serial, changed_at)
    VALUES (1, 0, unixepoch('subsec'));

CREATE TRIGGER change_marker_releases_insert AFTER INSERT ON releases BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_releases_update AFTER UPDATE ON releases BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_releases_delete AFTER DELETE ON releases BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_evidence_insert AFTER INSERT ON evidence BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_evidence_update AFTER UPDATE ON evidence BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_evidence_delete AFTER DELETE ON evidence BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_metadata_insert AFTER INSERT ON release_metadata BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
CREATE TRIGGER change_marker_metadata_update AFTER UPDATE ON release_metadata BEGIN
    UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') WHERE id = 1;
END;
