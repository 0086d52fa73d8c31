-- The item an idempotency key holds ($1 handler, $2 key): read again when
-- the enqueue's own snapshot could not see a key another transaction had
-- just committed.
SELECT item FROM {s}.item_keys WHERE handler = $1 AND key = $2
