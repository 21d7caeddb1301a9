-- `herald status`: since when a source has been failing, and when the outbox was last looked at.

-- The first failed attempt since the last success (NULL while the source answers). Sources
-- failing at upgrade time count from their last attempt.
ALTER TABLE source_state ADD COLUMN failing_since TEXT;
UPDATE source_state SET failing_since = last_attempt_at WHERE consecutive_failures > 0;

-- When `herald status` last looked (one row): dead letters after it need attention.
CREATE TABLE status_look (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    looked_at TEXT NOT NULL
);
