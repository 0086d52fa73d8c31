-- Dead letters per queue, through their partial index.
SELECT queue, count(*)::int8 FROM {s}.finished WHERE state = 'dead' GROUP BY queue
