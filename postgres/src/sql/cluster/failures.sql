SELECT job, tick, fence, instance, state, started_at, finished_at, error FROM {s}.runs
WHERE state IN ('failed', 'panicked', 'aborted', 'lost')
ORDER BY id DESC LIMIT $1
