-- Claims up to $3 due items of queue $1 whose handler this instance has
-- ($2), highest priority first, then oldest. The materialized CTE with
-- `FOR UPDATE SKIP LOCKED` and its `LIMIT` is the fence around the planner:
-- it cannot claim more rows than asked, and instances claiming at once
-- skip each other's rows instead of waiting. Each claim takes a lease in
-- database time ($5 seconds) for instance $4, counts an attempt, and takes
-- a fencing number that grows with every claim.
WITH picked AS MATERIALIZED (
    SELECT id FROM {s}.items
    WHERE state = 'waiting' AND queue = $1 AND run_at <= now() AND handler = ANY($2::text[])
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE {s}.items i
SET state = 'running',
    attempt = i.attempt + 1,
    fence = nextval('{s}.item_fences'),
    holder = $4,
    lease_until = now() + $5::float8 * interval '1 second',
    started_at = now()
FROM picked
WHERE i.id = picked.id
RETURNING i.id, i.handler, i.payload::text, i.attempt, i.max_attempts, i.fence, i.run_at, i.key
