-- Deletes up to $3 finished items past their retention: $2 seconds for
-- dead letters, $1 for the rest. Run in a loop until fewer come back, so
-- that no statement holds locks for long.
DELETE FROM {s}.finished
WHERE id IN (
    SELECT id FROM {s}.finished
    WHERE finished_at < now() - least($1::float8, $2::float8) * interval '1 second'
      AND finished_at < now() - (CASE WHEN state = 'dead' THEN $2::float8 ELSE $1::float8 END) * interval '1 second'
    ORDER BY finished_at
    LIMIT $3
)
