-- Cancels live items that match the filter ($1 ids or NULL, $2 queue or
-- NULL, $3 handler or NULL): a waiting one is finished as 'cancelled' at
-- once; a running one is flagged, its instance cancels its token at the
-- next renewal, and it ends cancelled unless it succeeds first.
WITH matching AS (
    SELECT id, state FROM {s}.items
    WHERE ($1::int8[] IS NULL OR id = ANY($1::int8[]))
      AND ($2::text IS NULL OR queue = $2)
      AND ($3::text IS NULL OR handler = $3)
    FOR UPDATE
),
gone AS (
    DELETE FROM {s}.items i USING matching m
    WHERE i.id = m.id AND m.state = 'waiting'
    RETURNING i.*
),
ended AS (
    INSERT INTO {s}.finished (id, queue, handler, payload, priority, state, attempt, max_attempts,
                              fence, holder, key, enqueued_at, run_at, started_at, error, errors)
    SELECT id, queue, handler, payload, priority, 'cancelled', attempt, max_attempts,
           fence, holder, key, enqueued_at, run_at, started_at, NULL, errors
    FROM gone
    RETURNING id
),
flagged AS (
    UPDATE {s}.items i SET cancel = true
    FROM matching m
    WHERE i.id = m.id AND m.state = 'running'
    RETURNING i.id
)
SELECT (SELECT count(*) FROM ended)::int8 AS cancelled, (SELECT count(*) FROM flagged)::int8 AS flagged
