-- $1 names, $2 fences, $3 ids, $4 instance: the leases end now,
-- so that the rescue treats the runs as lost (and reruns those
-- that rerun).
WITH given AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS g(name, fence, id)),
jl AS (
    SELECT j.name FROM {s}.jobs j WHERE j.name IN (SELECT name FROM given WHERE id = 0)
    ORDER BY j.name COLLATE "C" FOR UPDATE
),
j AS (
    UPDATE {s}.jobs SET lease_until = now()
    FROM given g, jl WHERE jobs.name = jl.name AND g.name = jl.name AND g.id = 0
      AND jobs.lease_fence = g.fence AND jobs.lease_holder = $4
    RETURNING jobs.name
),
r AS (
    UPDATE {s}.running SET lease_until = now()
    WHERE id IN (SELECT id FROM given WHERE id <> 0) AND instance = $4
    RETURNING id
)
SELECT (SELECT count(*) FROM j) + (SELECT count(*) FROM r)
