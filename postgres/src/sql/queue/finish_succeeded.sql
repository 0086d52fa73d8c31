-- Finishes a batch of items that succeeded ($1 ids, $2 their claims'
-- fences) in one statement: each moves to `finished` if its claim is still
-- current. The ids returned took; an id not returned was stale.
WITH gone AS (
    DELETE FROM {s}.items i
    USING unnest($1::int8[], $2::int8[]) AS h(id, fence)
    WHERE i.id = h.id AND i.fence = h.fence AND i.state = 'running'
    RETURNING i.*
)
INSERT INTO {s}.finished (id, queue, handler, payload, priority, state, attempt, max_attempts,
                          fence, holder, key, enqueued_at, run_at, started_at, error, errors)
SELECT id, queue, handler, payload, priority, 'succeeded', attempt, max_attempts,
       fence, holder, key, enqueued_at, run_at, started_at, NULL, errors
FROM gone
RETURNING id
