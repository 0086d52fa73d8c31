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
//!
//! Version 1 is `sql/migrations/001_cluster.sql`.

use deadpool_postgres::Client;

use crate::error::{describe, Error};
use crate::sql::{render, SchemaSql, MIGRATIONS};

/// The newest schema version this release knows.
pub(crate) const VERSION: i32 = 3;

/// The key of the advisory lock that serializes migrations, with the
/// schema's name hashed beside it: two schemas in one database migrate
/// independently.
const LOCK_KEY: i32 = 0x686f_7374; // "host"

/// Creates or migrates the schema `name` (already checked as an
/// identifier) to [`VERSION`]; returns the version found before.
pub(crate) async fn migrate(client: &mut Client, name: &str, target: &str) -> Result<i32, Error> {
    let quoted = format!("\"{name}\"");
    let fail = |what: &str, error: tokio_postgres::Error| {
        let denied = error
            .as_db_error()
            .filter(|db| *db.code() == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
        let message = match denied {
            Some(db) => format!(
                "could not {what} the schema `{name}`: PostgreSQL at {target} said: {}. Grant it with `GRANT CREATE ON DATABASE <database> TO <user>`, or have an owner create the schema once (`CREATE SCHEMA {quoted} AUTHORIZATION <user>`), or choose a schema the user owns with `ClusterOptions::schema`",
                db.message()
            ),
            None => format!("could not {what} the schema `{name}`: {}", describe(&error, target)),
        };
        Error::Schema {
            message,
            source: Some(error),
        }
    };
    let tx = client.transaction().await.map_err(|e| fail("migrate", e))?;
    let sql = SchemaSql::new(name);
    tx.execute(&sql.lock, &[&LOCK_KEY, &name])
        .await
        .map_err(|e| fail("lock", e))?;
    tx.batch_execute(&sql.prepare)
        .await
        .map_err(|e| fail("create", e))?;
    let row = tx
        .query_one(&sql.version, &[])
        .await
        .map_err(|e| fail("read the version of", e))?;
    let found: i32 = row.get(0);
    if found > VERSION {
        return Err(Error::Schema {
            message: format!(
                "the schema `{name}` is at version {found}, newer than this release of hosted-postgres knows ({VERSION}); upgrade hosted-postgres on this instance"
            ),
            source: None,
        });
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(&render(statements, name))
            .await
            .map_err(|e| fail("migrate", e))?;
        tx.execute(&sql.record_version, &[version])
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
