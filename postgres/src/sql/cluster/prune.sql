-- $1 retention seconds.
DELETE FROM {s}.runs WHERE id IN (
    SELECT id FROM {s}.runs
    WHERE finished_at < now() - $1::float8 * interval '1 second'
    LIMIT 10000)
