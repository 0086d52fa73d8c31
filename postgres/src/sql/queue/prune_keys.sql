-- Deletes up to $1 idempotency keys whose window ended.
DELETE FROM {s}.item_keys
WHERE (handler, key) IN (
    SELECT handler, key FROM {s}.item_keys WHERE until <= now() ORDER BY until LIMIT $1
)
