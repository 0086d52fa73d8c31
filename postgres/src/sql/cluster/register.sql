INSERT INTO {s}.instances (id, host_name, pid) VALUES ($1, $2, $3)
