-- How many rows the live and finished tables hold, by PostgreSQL's own
-- estimate (kept by autovacuum and ANALYZE; -1 before the first): read
-- from the catalog, without touching either table.
SELECT (SELECT reltuples FROM pg_class WHERE oid = '{s}.items'::regclass)::float8,
       (SELECT reltuples FROM pg_class WHERE oid = '{s}.finished'::regclass)::float8
