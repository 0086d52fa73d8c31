-- $1 the version just applied.
INSERT INTO {s}.schema_version (version) VALUES ($1)
