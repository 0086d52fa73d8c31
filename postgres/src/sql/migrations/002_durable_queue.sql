-- Version 2: the durable queue.
--
-- `items` is the live table: only what waits or runs, so that claims stay
-- fast however much work has passed through. A finished item (succeeded,
-- dead-lettered, cancelled) moves to `finished` in the statement that
-- finishes it, and `finished` is pruned by age in batches.

CREATE SEQUENCE {s}.item_ids;

-- Fencing numbers of item claims: one sequence, so that every claim of an
-- item carries a higher number than the claims before it.
CREATE SEQUENCE {s}.item_fences;

CREATE TABLE {s}.items (
    id bigint PRIMARY KEY DEFAULT nextval('{s}.item_ids'),
    queue text NOT NULL,
    handler text NOT NULL,
    payload jsonb NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'running')),
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    fence bigint NOT NULL DEFAULT 0,
    holder text,
    lease_until timestamptz,
    started_at timestamptz,
    cancel boolean NOT NULL DEFAULT false,
    key text,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    -- One object per failed attempt: {attempt, at, error, instance}.
    errors jsonb NOT NULL DEFAULT '[]'
);

-- The claim's order, over waiting items only. The only index on waiting
-- items: a second one (on `(queue, run_at)`, say) tempts the planner, while
-- the table's statistics still describe it as empty, to sort every due item
-- for each claim (70 ms a claim at 87,000 items, where this index takes
-- 0.1 ms).
CREATE INDEX items_due ON {s}.items (queue, priority DESC, run_at, id) WHERE state = 'waiting';
-- Every claim and completion leaves a dead row version behind: vacuum and
-- analyze the live table far sooner than PostgreSQL's default (a fifth of
-- the table), so that claims do not wade through them and the planner
-- knows how many items wait.
ALTER TABLE {s}.items SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);

-- The rescue's scan for leases that ran out.
CREATE INDEX items_leases ON {s}.items (lease_until) WHERE state = 'running';

CREATE TABLE {s}.finished (
    id bigint PRIMARY KEY,
    queue text NOT NULL,
    handler text NOT NULL,
    payload jsonb NOT NULL,
    priority smallint NOT NULL,
    state text NOT NULL CHECK (state IN ('succeeded', 'dead', 'cancelled', 'discarded')),
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    fence bigint NOT NULL,
    holder text,
    key text,
    enqueued_at timestamptz NOT NULL,
    run_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz NOT NULL DEFAULT now(),
    error text,
    errors jsonb NOT NULL
);

CREATE INDEX finished_by_age ON {s}.finished (finished_at);
CREATE INDEX finished_dead ON {s}.finished (queue, id) WHERE state = 'dead';

-- Idempotency keys, per handler, each held until its window ends. The
-- window makes the uniqueness depend on the time, which an index predicate
-- cannot express: the key's row carries its end, and an enqueue takes over
-- a key only past it (`ON CONFLICT ... DO UPDATE ... WHERE until <= now()`),
-- decided atomically in the unique index, never by an advisory lock.
CREATE TABLE {s}.item_keys (
    handler text NOT NULL,
    key text NOT NULL,
    item bigint NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (handler, key)
);

CREATE INDEX item_keys_until ON {s}.item_keys (until);

-- One row per queue: the lock that serializes claims of a queue with a
-- cluster-wide limit.
CREATE TABLE {s}.queues (
    name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
