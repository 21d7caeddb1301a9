-- PostgreSQL twin of migrations/sqlite/20261130020000_add_release_attribution.sql.

ALTER TABLE releases ADD COLUMN withdrawn_at TIMESTAMPTZ;
ALTER TABLE releases ADD COLUMN withdrawn_reason TEXT;

ALTER TABLE source_state ADD COLUMN attribution_rule BIGINT NOT NULL DEFAULT 0;

CREATE TABLE skipped_entries (
    project       TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('pypi', 'github', 'feed')),
    entry         TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, source, entry)
);
