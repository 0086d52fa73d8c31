-- The newest dead letters of queue $1 (or of every queue, NULL), at most $2.
SELECT id, queue, handler, payload::text, priority, state, attempt, max_attempts, key,
       enqueued_at, run_at, started_at, finished_at, error, errors::text
FROM {s}.finished
WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1)
ORDER BY id DESC
LIMIT $2
