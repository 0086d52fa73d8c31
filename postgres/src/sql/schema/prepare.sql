-- The schema and its version table, if they are not there yet.
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
