SELECT count(*)::int8,
       count(*) FILTER (WHERE paused)::int8,
       count(*) FILTER (WHERE lease_until >= now())::int8
FROM {s}.jobs
