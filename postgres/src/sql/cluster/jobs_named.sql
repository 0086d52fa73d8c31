-- $1 names: those jobs of the cluster, with their runs going on or their
-- latest finished ones.
SELECT j.name, j.kind, j.paused, j.last_tick, j.fence,
       coalesce(CASE WHEN j.lease_until >= now() THEN j.lease_holder END, r.instance),
       CASE WHEN j.lease_until >= now() THEN 'running' ELSE r.state END,
       CASE WHEN j.lease_until >= now() THEN j.lease_tick ELSE r.tick END,
       CASE WHEN j.lease_until >= now() THEN j.lease_started ELSE r.started_at END,
       CASE WHEN j.lease_until >= now() THEN NULL ELSE r.finished_at END,
       CASE WHEN j.lease_until >= now() THEN NULL ELSE r.error END,
       CASE WHEN j.lease_until >= now() THEN j.lease_fence ELSE r.fence END
FROM {s}.jobs j
LEFT JOIN LATERAL (
    SELECT instance, state, tick, fence, started_at, finished_at, error FROM {s}.runs
    WHERE runs.job = j.name ORDER BY id DESC LIMIT 1
) r ON true
WHERE j.name = ANY($1)
ORDER BY j.name
