SELECT name FROM {s}.jobs WHERE paused AND name = ANY($1)
