-- A check writes only what changed.
--
-- http_validators.digest: the XXH3-128 digest (32 hex digits) of the last body recorded from
-- the URL. A body that arrives again unchanged, from an upstream that sends no ETag or
-- Last-Modified (or a new ETag for the same bytes), is treated like a 304: no parsing, no
-- writes.
ALTER TABLE http_validators ADD COLUMN digest TEXT;

-- evidence.fingerprint: an XXH3-64 digest of the observation last written to the row. A
-- listing read again writes only the rows whose observation changed; last_seen_at is from now
-- on the last time the row was written.
ALTER TABLE evidence ADD COLUMN fingerprint INTEGER;
