-- Enqueues a batch of items in one statement: one array per column, one
-- element per item ($1 handler, $2 queue, $3 payload as JSON text,
-- $4 priority, $5 delay in seconds or NULL, $6 instant or NULL,
-- $7 max attempts, $8 idempotency key or NULL, $9 key window in seconds).
-- An item with a key whose window still runs is not inserted: its row
-- comes back with `new = false` and the id the key holds. $10 is the
-- notification channel, $11 whether to notify (at commit: inside the
-- caller's transaction, only if it commits).
WITH given AS MATERIALIZED (
    SELECT g.*, nextval('{s}.item_ids') AS id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::float8[],
                $6::timestamptz[], $7::int4[], $8::text[], $9::float8[])
         WITH ORDINALITY AS g(handler, queue, payload, priority, delay_s, at,
                              max_attempts, key, window_s, n)
),
keyed AS (
    INSERT INTO {s}.item_keys AS k (handler, key, item, until)
    SELECT handler, key, id, now() + window_s * interval '1 second'
    FROM given WHERE key IS NOT NULL
    ORDER BY handler, key
    ON CONFLICT (handler, key) DO UPDATE
        SET item = EXCLUDED.item, until = EXCLUDED.until
        WHERE k.until <= now()
    RETURNING k.item
),
inserted AS (
    INSERT INTO {s}.items (id, queue, handler, payload, priority, run_at, max_attempts, key)
    SELECT g.id, g.queue, g.handler, g.payload::jsonb, g.priority,
           coalesce(g.at, now() + coalesce(g.delay_s, 0) * interval '1 second'),
           g.max_attempts, g.key
    FROM given g
    WHERE g.key IS NULL OR g.id IN (SELECT item FROM keyed)
    RETURNING id, queue
),
notified AS (
    SELECT count(pg_notify($10, q.queue)) AS sent
    FROM (SELECT DISTINCT queue FROM inserted) q
    WHERE $11::bool
)
SELECT g.n, i.id IS NOT NULL AS new,
       coalesce(i.id, (SELECT k.item FROM {s}.item_keys k
                       WHERE k.handler = g.handler AND k.key = g.key)) AS id,
       (SELECT sent FROM notified) AS sent
FROM given g
LEFT JOIN inserted i ON i.id = g.id
ORDER BY g.n
