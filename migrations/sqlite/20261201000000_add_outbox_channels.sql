-- Channels beyond mail (webhook, Matrix, Slack-compatible, Discord, ntfy) share the outbox.
-- A channel delivery has `channel` set to the channel's name, and `recipient` holds the same
-- name (channel names never contain `@`, so they cannot collide with a mail address under
-- UNIQUE (recipient, subject_key)). Mail keeps `channel` NULL.
ALTER TABLE outbox ADD COLUMN channel TEXT;

-- Mail workers and channel workers claim apart.
CREATE INDEX outbox_channel_due ON outbox (channel, next_attempt_at)
    WHERE status IN ('queued', 'retrying', 'sending');

-- A channel whose receiver answered `410 Gone` is disabled: its deliveries are dead-lettered
-- without a request until `herald send-test NAME` succeeds again.
CREATE TABLE channel_state (
    name            TEXT PRIMARY KEY,
    disabled_at     TEXT,
    disabled_reason TEXT,
    updated_at      TEXT NOT NULL
);

-- The verdicts a channel with an inventory was last sent for a core feature release (the
-- channel's twin of compat_state): follow-ups compare against it.
CREATE TABLE channel_compat_state (
    channel         TEXT    NOT NULL,
    core_release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    verdicts        TEXT    NOT NULL,      -- JSON object: plugin -> verdict
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (channel, core_release_id)
);
