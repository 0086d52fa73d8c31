-- $1 names of this instance's jobs that rerun, $2 instance, $3
-- lease seconds. A lease that ran out is a lost run: written to
-- the history as lost, and claimed again here if its job reruns
-- (lost runs of jobs this instance lacks are left to one that
-- has them, unless they do not rerun).
WITH lost_jobs AS (
    SELECT name, paused, lease_tick, lease_fence, lease_holder, lease_rerun, lease_started
    FROM {s}.jobs
    WHERE lease_holder IS NOT NULL AND lease_until < now()
      AND (NOT lease_rerun OR name = ANY($1))
    ORDER BY name COLLATE "C" LIMIT 1000 FOR UPDATE SKIP LOCKED
),
again AS (
    SELECT name, nextval('{s}.fences') AS fence FROM lost_jobs WHERE lease_rerun AND NOT paused
),
retaken AS (
    UPDATE {s}.jobs j SET
        fence = coalesce(a.fence, j.fence),
        lease_until = CASE WHEN a.fence IS NOT NULL THEN now() + $3::float8 * interval '1 second' END,
        lease_fence = a.fence,
        lease_holder = CASE WHEN a.fence IS NOT NULL THEN $2 END,
        lease_tick = CASE WHEN a.fence IS NOT NULL THEN lj.lease_tick END,
        lease_rerun = CASE WHEN a.fence IS NOT NULL THEN true END,
        lease_started = CASE WHEN a.fence IS NOT NULL THEN now() END
    FROM lost_jobs lj LEFT JOIN again a ON a.name = lj.name
    WHERE j.name = lj.name
    RETURNING j.name, a.fence, lj.lease_tick AS tick
),
lost_live AS (
    DELETE FROM {s}.running WHERE id IN (
        SELECT id FROM {s}.running WHERE lease_until < now() AND (NOT rerun OR job = ANY($1))
        ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)
    RETURNING job, tick, fence, instance, rerun, started_at
),
again_live AS (
    INSERT INTO {s}.running (job, tick, fence, instance, rerun, lease_until)
    SELECT job, tick, nextval('{s}.fences'), $2, true, now() + $3::float8 * interval '1 second' FROM lost_live WHERE rerun
    RETURNING id, job, tick, fence
),
history AS (
    INSERT INTO {s}.runs (job, tick, fence, instance, state, started_at, error)
    SELECT name, lease_tick, lease_fence, lease_holder, 'lost', lease_started,
           'its instance stopped renewing the lease' FROM lost_jobs
    UNION ALL
    SELECT job, tick, fence, instance, 'lost', started_at,
           'its instance stopped renewing the lease' FROM lost_live
)
SELECT 'rerun'::text, 0::bigint, name, tick, fence FROM retaken WHERE fence IS NOT NULL
UNION ALL SELECT 'rerun', id, job, tick, fence FROM again_live
UNION ALL SELECT 'lost', NULL, name, lease_tick, NULL FROM lost_jobs
UNION ALL SELECT 'lost', NULL, job, tick, NULL FROM lost_live
