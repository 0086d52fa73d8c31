-- Version 1: the cluster's scheduling. `{s}` is the quoted schema.
CREATE TABLE {s}.instances (
    id text PRIMARY KEY,
    host_name text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
CREATE SEQUENCE {s}.fences;
CREATE TABLE {s}.jobs (
    name text PRIMARY KEY,
    kind text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    last_tick timestamptz,
    fence bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    lease_fence bigint,
    lease_holder text,
    lease_tick timestamptz,
    lease_rerun boolean,
    lease_started timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.running (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job text NOT NULL,
    tick timestamptz NOT NULL,
    fence bigint NOT NULL,
    instance text NOT NULL,
    rerun boolean NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);
CREATE INDEX running_lease ON {s}.running (lease_until);
CREATE TABLE {s}.runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job text NOT NULL,
    tick timestamptz NOT NULL,
    fence bigint NOT NULL,
    instance text NOT NULL,
    state text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    error text
);
CREATE INDEX runs_by_job ON {s}.runs (job, id DESC);
CREATE INDEX runs_finished ON {s}.runs (finished_at);
CREATE TABLE {s}.leases (
    name text PRIMARY KEY,
    holder text,
    fence bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    acquired_at timestamptz
);
CREATE TABLE {s}.triggers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job text NOT NULL,
    requested_by text,
    requested_at timestamptz NOT NULL DEFAULT now()
);
