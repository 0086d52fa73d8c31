-- Finishes item $1 under the claim with fence $2: moves it to `finished`
-- with state $3 ('succeeded', 'dead' or 'cancelled') and, for a failure,
-- error $4 appended to its attempts. No row: the claim is stale (the lease
-- ran out and the item was rescued, perhaps claimed again), and nothing is
-- written. A failed item that was asked to be cancelled ends cancelled.
WITH gone AS (
    DELETE FROM {s}.items WHERE id = $1 AND fence = $2 AND state = 'running'
    RETURNING *
)
INSERT INTO {s}.finished (id, queue, handler, payload, priority, state, attempt, max_attempts,
                          fence, holder, key, enqueued_at, run_at, started_at, error, errors)
SELECT id, queue, handler, payload, priority,
       CASE WHEN cancel AND $3 <> 'succeeded' THEN 'cancelled' ELSE $3 END,
       attempt, max_attempts, fence, holder, key, enqueued_at, run_at, started_at, $4::text,
       errors || CASE WHEN $4::text IS NULL THEN '[]'::jsonb
                      ELSE jsonb_build_array(jsonb_build_object(
                          'attempt', attempt, 'at', now(), 'error', $4::text, 'instance', holder))
                 END
FROM gone
RETURNING state
