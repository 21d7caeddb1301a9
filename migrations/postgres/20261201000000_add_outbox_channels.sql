-- PostgreSQL twin of migrations/sqlite/20261201000000_add_outbox_channels.sql.

ALTER TABLE outbox ADD COLUMN channel TEXT;

CREATE INDEX outbox_channel_due ON outbox (channel, next_attempt_at)
    WHERE status IN ('queued', 'retrying', 'sending');

CREATE TABLE channel_state (
    name            TEXT PRIMARY KEY,
    disabled_at     TIMESTAMPTZ,
    disabled_reason TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE channel_compat_state (
    channel         TEXT   NOT NULL,
    core_release_id BIGINT NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    verdicts        TEXT   NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, core_release_id)
);
