-- Renews the leases of the items instance $3 runs ($1 ids, $2 their
-- fences) for $4 seconds. An item not returned is no longer this claim's:
-- its lease ran out and it was rescued, or it was finished. `cancel` says
-- that someone asked to cancel it.
UPDATE {s}.items i
SET lease_until = now() + $4::float8 * interval '1 second'
FROM unnest($1::int8[], $2::int8[]) AS h(id, fence)
WHERE i.id = h.id AND i.fence = h.fence AND i.state = 'running' AND i.holder = $3
RETURNING i.id, i.cancel
