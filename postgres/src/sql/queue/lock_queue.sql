-- Serializes the claims of queue $1, which has a cluster-wide limit: taken
-- in the claim's transaction, before counting what runs, so that the count
-- sees every claim committed before it.
SELECT name FROM {s}.queues WHERE name = $1 FOR UPDATE
