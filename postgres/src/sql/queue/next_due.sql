-- Seconds until the next waiting item of queue $1 is due, if any: the
-- earliest `run_at` of each priority, found by a walk down the claim's
-- index from one priority to the next (a handful of steps, however many
-- items wait), and the earliest of those.
WITH RECURSIVE priorities AS (
    (SELECT priority FROM {s}.items
     WHERE state = 'waiting' AND queue = $1
     ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT i.priority FROM {s}.items i
            WHERE i.state = 'waiting' AND i.queue = $1 AND i.priority < p.priority
            ORDER BY i.priority DESC LIMIT 1)
    FROM priorities p
    WHERE p.priority IS NOT NULL
)
SELECT extract(epoch FROM min(
           (SELECT i.run_at FROM {s}.items i
            WHERE i.state = 'waiting' AND i.queue = $1 AND i.priority = p.priority
            ORDER BY i.priority DESC, i.run_at LIMIT 1)) - now())::float8
FROM priorities p
WHERE p.priority IS NOT NULL
