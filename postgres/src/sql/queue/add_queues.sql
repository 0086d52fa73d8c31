-- The queues this instance serves ($1), so that their rows can be locked.
INSERT INTO {s}.queues (name) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING
