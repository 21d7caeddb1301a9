-- PostgreSQL twin of migrations/sqlite/20261201020000_drop_unused_outbox_channel_index.sql.

DROP INDEX IF EXISTS outbox_channel_due;
