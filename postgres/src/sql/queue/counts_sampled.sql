-- counts.sql over a sample of the live table's pages ($1 percent of
-- them), each count scaled up: for a table too large to count on every
-- look. The lag is the oldest due item of the sample: at least that.
SELECT queue,
       (count(*) FILTER (WHERE state = 'waiting' AND run_at <= now()) * 100.0 / $1)::int8 AS due,
       (count(*) FILTER (WHERE state = 'waiting' AND run_at > now()) * 100.0 / $1)::int8 AS scheduled,
       (count(*) FILTER (WHERE state = 'running') * 100.0 / $1)::int8 AS running,
       (count(*) FILTER (WHERE state = 'waiting' AND attempt > 0) * 100.0 / $1)::int8 AS retrying,
       coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'waiting' AND run_at <= now())), 0)::float8 AS lag
FROM {s}.items TABLESAMPLE SYSTEM ($1)
GROUP BY queue
