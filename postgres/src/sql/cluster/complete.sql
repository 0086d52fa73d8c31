-- $1 names, $2 fences, $3 ids (0: the lease on the job's row),
-- $4 states, $5 errors, $6 instance. A run whose lease ran out
-- is not completed: its fence is not returned. A completed run
-- moves to the history.
WITH done AS (
    SELECT d.name COLLATE "C" AS name, d.fence, d.id, d.state, d.error
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])
        AS d(name, fence, id, state, error)
),
jl AS (
    SELECT j.name, j.lease_tick, j.lease_started FROM {s}.jobs j
    WHERE j.name IN (SELECT name FROM done WHERE id = 0)
    ORDER BY j.name COLLATE "C" FOR UPDATE
),
j AS (
    UPDATE {s}.jobs SET lease_until = NULL, lease_fence = NULL, lease_holder = NULL,
        lease_tick = NULL, lease_rerun = NULL, lease_started = NULL
    FROM done d, jl
    WHERE jobs.name = jl.name AND d.name = jl.name AND d.id = 0
      AND jobs.lease_fence = d.fence AND jobs.lease_holder = $6 AND jobs.lease_until >= now()
    RETURNING d.fence, d.name, jl.lease_tick AS tick, jl.lease_started AS started_at, d.state, d.error
),
r AS (
    DELETE FROM {s}.running USING done d
    WHERE running.id = d.id AND d.id <> 0 AND running.instance = $6 AND running.lease_until >= now()
    RETURNING running.fence, running.job AS name, running.tick, running.started_at, d.state, d.error
),
finished AS (SELECT * FROM j UNION ALL SELECT * FROM r),
history AS (
    INSERT INTO {s}.runs (job, tick, fence, instance, state, started_at, error)
    SELECT name, tick, fence, $6, state, started_at, error FROM finished
)
SELECT fence FROM finished
