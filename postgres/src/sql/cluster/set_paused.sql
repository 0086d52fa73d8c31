UPDATE {s}.jobs SET paused = $2 WHERE name = $1 RETURNING name
