-- Puts item $1, whose attempt under fence $2 failed with error $3, back to
-- wait $4 seconds (the backoff). No row: the claim is stale. An item that
-- was asked to be cancelled is not retried: `retried` is false, and the
-- caller finishes it as cancelled.
UPDATE {s}.items
SET state = CASE WHEN cancel THEN state ELSE 'waiting' END,
    run_at = CASE WHEN cancel THEN run_at ELSE now() + $4::float8 * interval '1 second' END,
    holder = CASE WHEN cancel THEN holder ELSE NULL END,
    lease_until = CASE WHEN cancel THEN lease_until ELSE NULL END,
    errors = CASE WHEN cancel THEN errors ELSE errors || jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', now(), 'error', $3::text, 'instance', holder)) END
WHERE id = $1 AND fence = $2 AND state = 'running'
RETURNING NOT cancel AS retried
