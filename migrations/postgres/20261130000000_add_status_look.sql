-- PostgreSQL twin of migrations/sqlite/20261130000000_add_status_look.sql.

ALTER TABLE source_state ADD COLUMN failing_since TIMESTAMPTZ;
UPDATE source_state SET failing_since = last_attempt_at WHERE consecutive_failures > 0;

CREATE TABLE status_look (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    looked_at TIMESTAMPTZ NOT NULL
);
