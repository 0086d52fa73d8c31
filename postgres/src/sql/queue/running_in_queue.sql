-- How many items of queue $1 run, on any instance.
SELECT count(*)::int4 FROM {s}.items WHERE queue = $1 AND state = 'running'
