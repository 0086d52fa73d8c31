-- $1 instance: every lease this instance still holds ends now
-- (the rescue decides what runs again), and it is marked stopped.
WITH jl AS (
    SELECT j.name FROM {s}.jobs j WHERE j.lease_holder = $1 AND j.lease_until > now()
    ORDER BY j.name COLLATE "C" FOR UPDATE
),
j AS (UPDATE {s}.jobs SET lease_until = now() FROM jl WHERE jobs.name = jl.name RETURNING jobs.name),
r AS (
    UPDATE {s}.running SET lease_until = now()
    WHERE instance = $1 AND lease_until > now() RETURNING id
),
l AS (UPDATE {s}.leases SET holder = NULL, lease_until = NULL WHERE holder = $1 RETURNING name),
i AS (UPDATE {s}.instances SET stopped_at = now() WHERE id = $1 RETURNING id)
SELECT (SELECT count(*) FROM j) + (SELECT count(*) FROM r), (SELECT count(*) FROM l)
