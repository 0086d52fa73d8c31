-- Discards dead letters that match the filter ($1 ids or NULL, $2 queue
-- or NULL, $3 handler or NULL): kept as 'discarded' until pruned.
UPDATE {s}.finished SET state = 'discarded'
WHERE state = 'dead'
  AND ($1::int8[] IS NULL OR id = ANY($1::int8[]))
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR handler = $3)
