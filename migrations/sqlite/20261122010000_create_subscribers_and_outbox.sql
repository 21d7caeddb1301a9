-- Subscribers, what they follow, the digest queue and the transactional outbox.

CREATE TABLE subscribers (
    id               INTEGER PRIMARY KEY,
    email            TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed')),
    token_hash       TEXT,                     -- SHA-256 of the confirmation token (pending only)
    token_expires_at TEXT,
    digest           TEXT    NOT NULL DEFAULT 'instant' CHECK (digest IN ('instant', 'daily', 'weekly')),
    classes          TEXT    NOT NULL,          -- comma-separated release classes
    created_at       TEXT    NOT NULL,
    confirmed_at     TEXT,
    updated_at       TEXT    NOT NULL
);

-- The projects a subscriber follows.
CREATE TABLE subscriber_projects (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    project       TEXT    NOT NULL,
    PRIMARY KEY (subscriber_id, project)
);
CREATE INDEX subscriber_projects_project ON subscriber_projects (project);

-- Releases waiting for a digest subscriber's period to end.
CREATE TABLE digest_items (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    release_id    INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    period        TEXT    NOT NULL,            -- e.g. daily:2026-11-22, weekly:2026-W47
    due_at        TEXT    NOT NULL,            -- when the period ends
    outbox_id     INTEGER REFERENCES outbox (id) ON DELETE SET NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (subscriber_id, release_id)
);
CREATE INDEX digest_items_due ON digest_items (due_at) WHERE outbox_id IS NULL;

-- Every message Herald sends, written in the transaction that decided it. One per
-- recipient and subject: re-runs and overlapping runs cannot duplicate.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    subscriber_id   INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
    recipient       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,          -- template folder: new_release, digest, ...
    subject_key     TEXT    NOT NULL,          -- e.g. release:pretalx:2026.2.1
    payload         TEXT    NOT NULL,          -- JSON: what to render
    message_id      TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'retrying', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    claimed_until   TEXT,                      -- a dispatcher is sending it until then
    claimed_by      TEXT,                      -- which dispatch run claimed it
    last_response   TEXT,                      -- the SMTP server's last answer
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    sent_at         TEXT,
    UNIQUE (recipient, subject_key)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('queued', 'retrying', 'sending');
