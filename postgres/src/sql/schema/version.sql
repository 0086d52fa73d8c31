-- The version the schema is at: 0 when it is new.
SELECT coalesce(max(version), 0) FROM {s}.schema_version
