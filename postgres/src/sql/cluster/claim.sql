-- $1 names, $2 ticks, $3 catch-up, $4 skip overlap, $5 rerun,
-- $6 lease seconds, $7 instance. Two instances that claim one
-- tick take turns at the job's row: the second finds the tick
-- claimed. Each instance fires a tick when the database's clock
-- reaches it, so all claims of a tick come before any claim of
-- the next.
WITH req AS (
    SELECT r.name COLLATE "C" AS name, r.tick, r.catch_up, r.skip_overlap, r.rerun, r.n
    FROM unnest($1::text[], $2::timestamptz[], $3::bool[], $4::bool[], $5::bool[])
        WITH ORDINALITY AS r(name, tick, catch_up, skip_overlap, rerun, n)
),
locked AS (
    SELECT j.name, j.paused, j.last_tick,
           (j.lease_until IS NOT NULL AND j.lease_until >= now()) AS held
    FROM {s}.jobs j WHERE j.name IN (SELECT name FROM req)
    ORDER BY j.name COLLATE "C" FOR UPDATE
),
won AS (
    SELECT r.*, nextval('{s}.fences') AS fence
    FROM req r JOIN locked l ON l.name = r.name
    WHERE NOT l.paused
      AND (NOT r.skip_overlap OR NOT l.held)
      AND CASE WHEN l.last_tick IS NULL THEN NOT r.catch_up ELSE l.last_tick < r.tick END
),
updated AS (
    UPDATE {s}.jobs j SET
        last_tick = w.tick,
        fence = w.fence,
        lease_until = CASE WHEN w.skip_overlap THEN now() + $6::float8 * interval '1 second' ELSE j.lease_until END,
        lease_fence = CASE WHEN w.skip_overlap THEN w.fence ELSE j.lease_fence END,
        lease_holder = CASE WHEN w.skip_overlap THEN $7 ELSE j.lease_holder END,
        lease_tick = CASE WHEN w.skip_overlap THEN w.tick ELSE j.lease_tick END,
        lease_rerun = CASE WHEN w.skip_overlap THEN w.rerun ELSE j.lease_rerun END,
        lease_started = CASE WHEN w.skip_overlap THEN now() ELSE j.lease_started END
    FROM won w WHERE j.name = w.name
),
live AS (
    INSERT INTO {s}.running (job, tick, fence, instance, rerun, lease_until)
    SELECT name, tick, fence, $7, rerun, now() + $6::float8 * interval '1 second' FROM won WHERE NOT skip_overlap
    RETURNING id, job
)
SELECT r.n, w.fence, coalesce(lv.id, 0),
    CASE WHEN w.n IS NOT NULL THEN 'granted'
         WHEN l.name IS NULL THEN 'unknown'
         WHEN l.paused THEN 'paused'
         WHEN l.last_tick >= r.tick OR (l.last_tick IS NULL AND r.catch_up) THEN 'taken'
         WHEN r.skip_overlap AND l.held THEN 'running'
         ELSE 'taken' END
FROM req r
LEFT JOIN locked l ON l.name = r.name
LEFT JOIN won w ON w.n = r.n
LEFT JOIN live lv ON lv.job = w.name
