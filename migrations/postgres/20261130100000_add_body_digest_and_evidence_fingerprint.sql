-- PostgreSQL twin of migrations/sqlite/20261130100000_add_body_digest_and_evidence_fingerprint.sql.

ALTER TABLE http_validators ADD COLUMN digest TEXT;
ALTER TABLE evidence ADD COLUMN fingerprint BIGINT;
