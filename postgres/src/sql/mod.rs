//! Every statement the crate sends, one `.sql` file each, named after what
//! it does, so that a reviewer reads the claim, the completion and the
//! rescue without reading Rust:
//!
//! - `cluster/`: the coordinator's (claims, completions, leases, rescue,
//!   controls, and the dashboard's reads);
//! - `queue/`: the durable queue's;
//! - `schema/` and `migrations/`: creating and migrating the schema, one
//!   numbered file per version;
//! - `ping.sql`: the check of a new connection.
//!
//! Each file is loaded here, the one way: `{s}` in it becomes the quoted
//! schema, `{channel}` the quoted notification channel. Only transaction
//! control (`BEGIN`, `COMMIT`, `ROLLBACK`) is written in the Rust code.
//!
//! Rules every statement follows:
//! - every lease is `now()` of the database plus a length, and every check
//!   of one compares it with `now()`: no instance's clock decides;
//! - every write to a claimed run or item names the claim's fencing
//!   number, so a late write of an earlier claim changes nothing; fencing
//!   numbers grow with every claim;
//! - a claim is one statement: for a tick, the compare-and-set on the
//!   job's last claimed tick and the record of the run and its lease commit
//!   together; for items, `FOR UPDATE SKIP LOCKED` in a materialized CTE,
//!   fenced by its `LIMIT`;
//! - a statement that updates several rows of `jobs` locks them first, in
//!   name order, in a `FOR UPDATE` CTE; names sort and join by bytes
//!   (`COLLATE "C"`): the database's locale would make every sort of ten
//!   thousand names cost a third of a second;
//! - notifications are sent by the statement that makes work available,
//!   and so go out at its commit, never from a trigger.

/// The notification channel of the durable queue in `schema`.
pub(crate) fn channel(schema: &str) -> String {
    format!("hosted_items_{schema}")
}

/// A statement's text with the schema's names in place.
pub(crate) fn render(text: &str, schema: &str) -> String {
    text.replace("{s}", &format!("\"{schema}\""))
        .replace("{channel}", &format!("\"{}\"", channel(schema)))
}

/// A struct with one rendered statement per file of a folder.
macro_rules! statements {
    ($(#[$doc:meta])* $name:ident in $dir:literal { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        pub(crate) struct $name {
            $(
                #[doc = concat!("`", $dir, "/", stringify!($field), ".sql`")]
                pub(crate) $field: String,
            )*
        }

        impl $name {
            /// Every statement, rendered for `schema`.
            pub(crate) fn new(schema: &str) -> $name {
                $name {
                    $($field: render(
                        include_str!(concat!($dir, "/", stringify!($field), ".sql")),
                        schema,
                    ),)*
                }
            }
        }
    };
}

statements! {
    /// The coordinator's statements.
    ClusterSql in "cluster" {
        acquire,
        audit,
        audit_log,
        claim,
        clock,
        complete,
        failures,
        give_back,
        instances,
        job_counts,
        jobs,
        jobs_named,
        paused,
        prune,
        register,
        release,
        renew,
        rescue,
        runs,
        set_paused,
        stop,
        trigger,
        triggers,
        upsert_jobs
    }
}

statements! {
    /// The durable queue's statements.
    QueueSql in "queue" {
        add_queues,
        cancel,
        claim,
        counts,
        counts_sampled,
        dead,
        dead_counts,
        dead_counts_sampled,
        discard,
        enqueue,
        finish,
        finish_succeeded,
        item,
        key_holder,
        listen,
        lock_queue,
        next_due,
        notify,
        prune,
        prune_keys,
        release,
        renew,
        rescue,
        retry,
        retry_dead,
        running_in_queue,
        table_sizes
    }
}

statements! {
    /// Creating the schema and recording its version.
    SchemaSql in "schema" {
        lock, prepare, record_version, version
    }
}

/// `ping.sql`.
pub(crate) const PING: &str = include_str!("ping.sql");

/// Each version's statements, in order; `{s}` is the quoted schema.
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/001_cluster.sql")),
    (2, include_str!("migrations/002_durable_queue.sql")),
    (3, include_str!("migrations/003_audit.sql")),
];
