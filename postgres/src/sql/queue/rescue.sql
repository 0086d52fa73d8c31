-- Finds up to $1 running items whose lease ran out (their instance died,
-- hung or was cut off) and hands them out again: back to wait at once, in
-- their old place in the queue (their `run_at` is kept), the lost attempt
-- counted and recorded; an item out of attempts, or asked to
-- be cancelled, is finished instead ('dead', 'cancelled'). `SKIP LOCKED`:
-- instances rescuing at once share the work. Notifies the queues of the
-- items put back on channel $2.
WITH lost AS MATERIALIZED (
    SELECT id FROM {s}.items
    WHERE state = 'running' AND lease_until < now()
    ORDER BY lease_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
ended AS (
    DELETE FROM {s}.items i USING lost
    WHERE i.id = lost.id AND (i.attempt >= i.max_attempts OR i.cancel)
    RETURNING i.*
),
buried AS (
    INSERT INTO {s}.finished (id, queue, handler, payload, priority, state, attempt, max_attempts,
                              fence, holder, key, enqueued_at, run_at, started_at, error, errors)
    SELECT id, queue, handler, payload, priority,
           CASE WHEN cancel THEN 'cancelled' ELSE 'dead' END,
           attempt, max_attempts, fence, holder, key, enqueued_at, run_at, started_at,
           'its lease ran out on instance ' || coalesce(holder, '?') || ' (the process died, hung or lost the database)',
           errors || jsonb_build_array(jsonb_build_object(
               'attempt', attempt, 'at', now(), 'instance', holder,
               'error', 'its lease ran out on instance ' || coalesce(holder, '?')))
    FROM ended
    RETURNING state
),
back AS (
    UPDATE {s}.items i
    SET state = 'waiting', holder = NULL, lease_until = NULL,
        errors = i.errors || jsonb_build_array(jsonb_build_object(
            'attempt', i.attempt, 'at', now(), 'instance', i.holder,
            'error', 'its lease ran out on instance ' || coalesce(i.holder, '?')))
    FROM lost
    WHERE i.id = lost.id AND i.attempt < i.max_attempts AND NOT i.cancel
    RETURNING i.queue
)
SELECT (SELECT count(*) FROM back)::int8 AS rescued,
       (SELECT count(*) FROM buried WHERE state = 'dead')::int8 AS dead,
       (SELECT count(pg_notify($2, q)) FROM (SELECT DISTINCT queue AS q FROM back) d) AS sent
