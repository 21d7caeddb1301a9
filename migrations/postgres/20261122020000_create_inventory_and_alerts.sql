-- PostgreSQL twin of migrations/sqlite/20261122020000_create_inventory_and_alerts.sql.

CREATE TABLE inventory (
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    project       TEXT   NOT NULL,
    version       TEXT   NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscriber_id, project)
);

CREATE TABLE release_metadata (
    project         TEXT NOT NULL,
    version_key     TEXT NOT NULL,
    requires_dist   TEXT,
    requires_python TEXT,
    vulnerabilities TEXT NOT NULL DEFAULT '[]',
    fetched_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, version_key)
);

CREATE TABLE compat_state (
    subscriber_id   BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    core_release_id BIGINT NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    verdicts        TEXT   NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscriber_id, core_release_id)
);

ALTER TABLE releases ADD COLUMN alerts_done_at TIMESTAMPTZ;
