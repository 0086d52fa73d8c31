-- Version 3: what operators did, and the failed runs found fast.
--
-- `audit`: one row per action taken on the cluster through a dashboard
-- (or `Cluster::audit`): who, what, on what, with what result, from which
-- instance. Operators act at human rates, so it is kept, not pruned.
CREATE TABLE {s}.audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    who text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    result text NOT NULL,
    instance text NOT NULL
);

-- The latest failed runs, newest first, without reading the successes
-- that outnumber them (`Cluster::failures`).
CREATE INDEX runs_failed ON {s}.runs (id DESC)
    WHERE state IN ('failed', 'panicked', 'aborted', 'lost');
