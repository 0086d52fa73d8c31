-- dead_counts.sql over a sample of the finished table's pages ($1
-- percent of them), scaled up.
SELECT queue, (count(*) * 100.0 / $1)::int8
FROM {s}.finished TABLESAMPLE SYSTEM ($1)
WHERE state = 'dead'
GROUP BY queue
