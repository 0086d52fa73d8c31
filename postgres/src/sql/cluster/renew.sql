-- $1 instance, $2 lease seconds, $3 names and $4 fences of the
-- leases on jobs' rows, $5 ids of running rows, $6 singleton
-- names, $7 their fences. Returns the fences renewed.
WITH hb AS (UPDATE {s}.instances SET heartbeat_at = now() WHERE id = $1 RETURNING id),
jl AS (SELECT j.name FROM {s}.jobs j WHERE j.name = ANY($3) ORDER BY j.name COLLATE "C" FOR UPDATE),
j AS (
    UPDATE {s}.jobs SET lease_until = now() + $2::float8 * interval '1 second'
    FROM jl WHERE jobs.name = jl.name AND jobs.lease_holder = $1
      AND jobs.lease_fence = ANY($4) AND jobs.lease_until >= now()
    RETURNING jobs.lease_fence AS fence
),
r AS (
    UPDATE {s}.running SET lease_until = now() + $2::float8 * interval '1 second'
    WHERE id = ANY($5) AND instance = $1 AND lease_until >= now()
    RETURNING fence
),
l AS (
    UPDATE {s}.leases SET lease_until = now() + $2::float8 * interval '1 second'
    FROM unnest($6::text[], $7::bigint[]) AS x(name, fence)
    WHERE leases.name = x.name AND leases.fence = x.fence AND leases.holder = $1
      AND leases.lease_until >= now()
    RETURNING leases.name
)
SELECT 'run'::text, j.fence, NULL::text, NULL::timestamptz FROM j
UNION ALL SELECT 'run', r.fence, NULL, NULL FROM r
UNION ALL SELECT 'lease', NULL, l.name, NULL FROM l
UNION ALL SELECT 'instance', NULL, NULL, clock_timestamp() FROM hb
