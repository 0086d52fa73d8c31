-- $1 name, $2 instance, $3 fence.
UPDATE {s}.leases SET holder = NULL, lease_until = NULL
WHERE name = $1 AND holder = $2 AND fence = $3 AND lease_until >= now()
RETURNING fence
