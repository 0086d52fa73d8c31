SELECT id, host_name, pid, started_at, heartbeat_at, stopped_at FROM {s}.instances
ORDER BY started_at, id
