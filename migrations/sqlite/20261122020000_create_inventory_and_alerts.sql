-- Operator inventories, per-version package metadata, and what compatibility verdicts each
-- operator was last told.

-- What an operator runs: one row per tracked project.
CREATE TABLE inventory (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    project       TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (subscriber_id, project)
);

-- The index's per-version document, reduced to what alerts need.
CREATE TABLE release_metadata (
    project         TEXT NOT NULL,
    version_key     TEXT NOT NULL,
    requires_dist   TEXT,                  -- JSON array, NULL when the index has none
    requires_python TEXT,
    vulnerabilities TEXT NOT NULL DEFAULT '[]',  -- JSON array
    fetched_at      TEXT NOT NULL,
    PRIMARY KEY (project, version_key)
);

-- The verdicts an operator was last sent for a core feature release.
CREATE TABLE compat_state (
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    core_release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    verdicts        TEXT    NOT NULL,      -- JSON object: plugin -> verdict
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (subscriber_id, core_release_id)
);

-- Operator alerts for a new release are decided once; this marks it done.
ALTER TABLE releases ADD COLUMN alerts_done_at TEXT;
