-- $1 name, $2 instance, $3 lease seconds.
INSERT INTO {s}.leases AS l (name, holder, fence, lease_until, acquired_at)
VALUES ($1, $2, 1, now() + $3::float8 * interval '1 second', now())
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, fence = l.fence + 1,
    lease_until = EXCLUDED.lease_until, acquired_at = now()
WHERE l.lease_until IS NULL OR l.lease_until < now()
RETURNING l.fence
