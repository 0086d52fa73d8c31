INSERT INTO {s}.triggers (job, requested_by)
SELECT name, $2 FROM {s}.jobs WHERE name = $1 RETURNING id
