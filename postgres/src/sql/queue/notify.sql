-- $1 the channel, $2 the queue: wakes the instances waiting for its items.
SELECT pg_notify($1, $2)
