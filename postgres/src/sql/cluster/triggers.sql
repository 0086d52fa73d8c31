-- $1 names of this instance's cluster jobs, $2 instance, $3 the
-- names among them that do not overlap, $4 lease seconds.
WITH t AS (
    DELETE FROM {s}.triggers WHERE id IN (
        SELECT id FROM {s}.triggers WHERE job = ANY($1)
        ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
    RETURNING job
),
jl AS (
    SELECT j.name, (j.lease_until IS NOT NULL AND j.lease_until >= now()) AS held,
           j.name = ANY($3) AS skip_overlap
    FROM {s}.jobs j WHERE j.name IN (SELECT job FROM t) ORDER BY j.name COLLATE "C" FOR UPDATE
),
go AS (
    SELECT name, skip_overlap, nextval('{s}.fences') AS fence FROM jl
    WHERE NOT (skip_overlap AND held)
),
j AS (
    UPDATE {s}.jobs SET fence = go.fence, lease_until = now() + $4::float8 * interval '1 second', lease_fence = go.fence,
        lease_holder = $2, lease_tick = now(), lease_rerun = false, lease_started = now()
    FROM go WHERE jobs.name = go.name AND go.skip_overlap
),
live AS (
    INSERT INTO {s}.running (job, tick, fence, instance, rerun, lease_until)
    SELECT name, now(), fence, $2, false, now() + $4::float8 * interval '1 second' FROM go WHERE NOT skip_overlap
    RETURNING id, job
)
SELECT 'run'::text, coalesce(live.id, 0), go.name, now(), go.fence
FROM go LEFT JOIN live ON live.job = go.name
UNION ALL SELECT 'dropped', NULL, name, NULL, NULL FROM jl WHERE skip_overlap AND held
