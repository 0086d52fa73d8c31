-- Hands back the items instance $3 still holds at stop ($1 ids, $2 their
-- fences): they wait again at once, in their old place in the queue, and
-- the interrupted attempt is not counted. Notifies their queues on channel
-- $4, so that another instance takes them now.
WITH back AS (
    UPDATE {s}.items i
    SET state = 'waiting', attempt = greatest(i.attempt - 1, 0),
        holder = NULL, lease_until = NULL
    FROM unnest($1::int8[], $2::int8[]) AS h(id, fence)
    WHERE i.id = h.id AND i.fence = h.fence AND i.state = 'running' AND i.holder = $3
    RETURNING i.queue
)
SELECT count(*)::int8 AS released,
       (SELECT count(pg_notify($4, q)) FROM (SELECT DISTINCT queue AS q FROM back) d) AS sent
FROM back
