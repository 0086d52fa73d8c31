WITH given AS (SELECT * FROM unnest($1::text[], $2::text[]) AS g(name, kind)),
upserted AS (
    INSERT INTO {s}.jobs (name, kind) SELECT name, kind FROM given ORDER BY name COLLATE "C"
    ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind WHERE jobs.kind <> EXCLUDED.kind
)
SELECT j.name, j.last_tick, j.paused FROM {s}.jobs j WHERE j.name IN (SELECT name FROM given)
