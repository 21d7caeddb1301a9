-- PostgreSQL twin of migrations/sqlite/20261130040000_add_outbox_claim_index.sql.

CREATE INDEX outbox_claimed ON outbox (claimed_by) WHERE status = 'sending';
