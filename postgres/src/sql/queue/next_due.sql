-- Seconds until the next waiting item of queue $1 whose handler this
-- instance has ($2) is due, if any.
SELECT extract(epoch FROM min(run_at) - now())::float8
FROM {s}.items
WHERE state = 'waiting' AND queue = $1 AND handler = ANY($2::text[])
