SELECT id, tick, fence, instance, state, started_at, finished_at, error FROM {s}.runs
WHERE job = $1 ORDER BY id DESC LIMIT $2
