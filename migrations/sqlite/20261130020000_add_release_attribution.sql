-- Attribution (see src/attribution.rs): which tags and feed entries are a project's.

-- A release recorded under an earlier rule that the current rule gives to another package:
-- kept, shown by `herald releases`, never announced.
ALTER TABLE releases ADD COLUMN withdrawn_at TEXT;
ALTER TABLE releases ADD COLUMN withdrawn_reason TEXT;

-- The rule version a source's listing was last read under (0: before attribution). A source
-- read under an older rule is read once more in full, without conditional requests.
ALTER TABLE source_state ADD COLUMN attribution_rule INTEGER NOT NULL DEFAULT 0;

-- Entries a source skipped (another package's, or unreadable) that a run already reported,
-- so each is reported at warning level once.
CREATE TABLE skipped_entries (
    project       TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('pypi', 'github', 'feed')),
    entry         TEXT NOT NULL,             -- the source's spelling, at most 200 characters
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (project, source, entry)
);
