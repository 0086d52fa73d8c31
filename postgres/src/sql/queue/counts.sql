-- Each queue's live items by state, and its lag: how long the oldest due
-- item has waited. Reads the live table only, which holds what waits and
-- runs.
SELECT queue,
       count(*) FILTER (WHERE state = 'waiting' AND run_at <= now())::int8 AS due,
       count(*) FILTER (WHERE state = 'waiting' AND run_at > now())::int8 AS scheduled,
       count(*) FILTER (WHERE state = 'running')::int8 AS running,
       count(*) FILTER (WHERE state = 'waiting' AND attempt > 0)::int8 AS retrying,
       coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'waiting' AND run_at <= now())), 0)::float8 AS lag
FROM {s}.items
GROUP BY queue
