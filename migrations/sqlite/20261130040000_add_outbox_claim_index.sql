-- Claims are small (two messages per connection) and frequent: finding a dispatcher's claims
-- and the holders of unexpired claims must not scan the whole outbox.
CREATE INDEX outbox_claimed ON outbox (claimed_by) WHERE status = 'sending';
