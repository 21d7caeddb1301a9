-- Releases, the evidence each source gives for them, HTTP validators, per-source state,
-- check runs and the run lease. Timestamps are UTC text, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.

-- One row per project and canonical version (see version::canonical_key).
CREATE TABLE releases (
    id             INTEGER PRIMARY KEY,
    project        TEXT    NOT NULL,
    version        TEXT    NOT NULL,             -- PEP 440 normal form, as first recorded
    version_key    TEXT    NOT NULL,             -- canonical key: one per release
    class          TEXT    NOT NULL CHECK (class IN ('feature', 'bugfix', 'prerelease')),
    line           TEXT    NOT NULL,             -- e.g. 2025.2
    published_at   TEXT,                         -- the primary source's date when known
    first_seen_at  TEXT    NOT NULL,
    available_at   TEXT,                         -- first seen installable on the primary source
    yanked         INTEGER NOT NULL DEFAULT 0,
    yanked_reason  TEXT,
    baseline       INTEGER NOT NULL DEFAULT 0,   -- known from a source's first fetch: never announced
    new_in_run     INTEGER,                      -- the run that found it new (announce it)
    UNIQUE (project, version_key)
);
CREATE INDEX releases_new_in_run ON releases (new_in_run) WHERE new_in_run IS NOT NULL;

-- What one source said about one release.
CREATE TABLE evidence (
    id              INTEGER PRIMARY KEY,
    release_id      INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    source          TEXT    NOT NULL CHECK (source IN ('pypi', 'github', 'feed')),
    raw             TEXT    NOT NULL,            -- the source's own spelling (tag, title, version)
    url             TEXT,
    published_at    TEXT,
    notes           TEXT,
    yanked          INTEGER NOT NULL DEFAULT 0,
    yanked_reason   TEXT,
    available       INTEGER NOT NULL DEFAULT 1,
    prerelease_flag INTEGER,                     -- GitHub's own flag, kept as evidence only
    inherited       INTEGER NOT NULL DEFAULT 0,  -- a feed post of the line's feature release
    first_seen_at   TEXT    NOT NULL,
    last_seen_at    TEXT    NOT NULL,
    UNIQUE (release_id, source)
);

-- ETag / Last-Modified per URL, written in the same transaction as what the body recorded.
CREATE TABLE http_validators (
    url           TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    updated_at    TEXT NOT NULL
);

-- Health of each project x source.
CREATE TABLE source_state (
    project              TEXT    NOT NULL,
    source               TEXT    NOT NULL CHECK (source IN ('pypi', 'github', 'feed')),
    baseline_at          TEXT,                   -- first successful fetch
    last_success_at      TEXT,
    last_attempt_at      TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    deferred_until       TEXT,                   -- rate limited: do not ask before this time
    resolved_url         TEXT,                   -- the feed a configured page pointed to
    PRIMARY KEY (project, source)
);

-- One row per `herald check` (not for dry runs).
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    trigger      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    summary      TEXT                            -- JSON run summary
);

-- At most one check runs at a time, across processes and hosts sharing the database.
CREATE TABLE run_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT NOT NULL,
    run_id      INTEGER,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
