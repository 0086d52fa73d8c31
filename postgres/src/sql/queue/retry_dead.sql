-- Retries dead or cancelled items that match the filter ($1 ids or NULL,
-- $2 queue or NULL, $3 handler or NULL): back to wait at once, with one
-- more attempt than they had. Notifies their queues on channel $4.
WITH back AS (
    DELETE FROM {s}.finished
    WHERE state IN ('dead', 'cancelled')
      AND ($1::int8[] IS NULL OR id = ANY($1::int8[]))
      AND ($2::text IS NULL OR queue = $2)
      AND ($3::text IS NULL OR handler = $3)
    RETURNING *
),
waiting AS (
    INSERT INTO {s}.items (id, queue, handler, payload, priority, run_at, state, attempt,
                           max_attempts, fence, key, enqueued_at, errors)
    SELECT id, queue, handler, payload, priority, now(), 'waiting', attempt,
           greatest(max_attempts, attempt + 1), fence, key, enqueued_at, errors
    FROM back
    RETURNING queue
)
SELECT count(*)::int8 AS retried,
       (SELECT count(pg_notify($4, q)) FROM (SELECT DISTINCT queue AS q FROM waiting) d) AS sent
FROM waiting
