//! The schema: created and migrated at start, in one transaction under an
//! advisory lock (eight instances starting at once take turns), versioned
//! so that a later release can migrate it. Rows of jobs that no longer
//! exist are left alone.
//!
//! - `jobs`: one row per job, small and hot. The last claimed tick (the
//!   compare-and-set of every claim), the last fencing number, the pause
//!   flag, and the lease of the run going on for a job that does not
//!   overlap (the default): a claim and a completion each update this row
//!   in place (no indexed column changes, so PostgreSQL updates it without
//!   touching an index).
//! - `running`: the leases of runs of jobs that overlap, one row per run
//!   going on.
//! - `runs`: the history, append-only: a row per finished or lost run,
//!   pruned by age.
//! - `items`, `finished`, `item_keys` and `queues` (version 2): the
//!   durable queue, described in `sql/migrations/002_durable_queue.sql`.
//! - `audit` (version 3): actions operators took, and an index of the
//!   failed runs (`sql/migrations/003_audit.sql`).

use deadpool_postgres::Client;

use crate::error::{describe, Error};

/// The newest schema version this release knows.
pub(crate) const VERSION: i32 = 3;

/// The key of the advisory lock that serializes migrations, with the
/// schema's name hashed beside it: two schemas in one database migrate
/// independently.
const LOCK_KEY: i32 = 0x686f_7374; // "host"

/// Each version's statements; `{s}` is the quoted schema name.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, V1),
    (2, include_str!("sql/migrations/002_durable_queue.sql")),
    (3, include_str!("sql/migrations/003_audit.sql")),
];

/// Version 1: the cluster's scheduling.
const V1: &str = r"
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
";

/// Creates or migrates the schema `name` (already checked as an
/// identifier) to [`VERSION`]; returns the version found before.
pub(crate) async fn migrate(client: &mut Client, name: &str, target: &str) -> Result<i32, Error> {
    let quoted = format!("\"{name}\"");
    let fail = |what: &str, error: tokio_postgres::Error| {
        let denied = error
            .as_db_error()
            .filter(|db| *db.code() == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
        Error::Schema(match denied {
            Some(db) => format!(
                "could not {what} the schema `{name}`: PostgreSQL at {target} said: {}. Grant it with `GRANT CREATE ON DATABASE <database> TO <user>`, or have an owner create the schema once (`CREATE SCHEMA {quoted} AUTHORIZATION <user>`), or choose a schema the user owns with `ClusterOptions::schema`",
                db.message()
            ),
            None => format!("could not {what} the schema `{name}`: {}", describe(&error, target)),
        })
    };
    let tx = client.transaction().await.map_err(|e| fail("migrate", e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_KEY, &name],
    )
    .await
    .map_err(|e| fail("lock", e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted};
         CREATE TABLE IF NOT EXISTS {quoted}.schema_version (
             version integer NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(|e| fail("create", e))?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {quoted}.schema_version"),
            &[],
        )
        .await
        .map_err(|e| fail("read the version of", e))?;
    let found: i32 = row.get(0);
    if found > VERSION {
        return Err(Error::Schema(format!(
            "the schema `{name}` is at version {found}, newer than this release of hosted-postgres knows ({VERSION}); upgrade hosted-postgres on this instance"
        )));
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(&statements.replace("{s}", &quoted))
            .await
            .map_err(|e| fail("migrate", e))?;
        tx.execute(
            &format!("INSERT INTO {quoted}.schema_version (version) VALUES ($1)"),
            &[version],
        )
        .await
        .map_err(|e| fail("migrate", e))?;
    }
    tx.commit().await.map_err(|e| fail("migrate", e))?;
    if found < VERSION {
        tracing::info!(
            schema = name,
            from = found,
            to = VERSION,
            "migrated the cluster's schema"
        );
    }
    Ok(found)
}
