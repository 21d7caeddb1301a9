-- No query uses this index: the claim reads `outbox_due` (its mail-or-channels condition is an
-- OR, which SQLite's planner does not match to `(channel, next_attempt_at)`), and the counts
-- per channel scan the table. Every outbox write still paid for it: queueing a message and
-- each change of its status updated it.
DROP INDEX IF EXISTS outbox_channel_due;
