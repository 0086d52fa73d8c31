-- One item by id ($1), live or finished.
SELECT id, queue, handler, payload::text, priority, state, attempt, max_attempts, key,
       enqueued_at, run_at, started_at, NULL::timestamptz AS finished_at, NULL::text AS error,
       errors::text
FROM {s}.items WHERE id = $1
UNION ALL
SELECT id, queue, handler, payload::text, priority, state, attempt, max_attempts, key,
       enqueued_at, run_at, started_at, finished_at, error, errors::text
FROM {s}.finished WHERE id = $1
