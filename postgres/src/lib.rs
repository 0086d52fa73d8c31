//! [`hosted`] on the PostgreSQL the service already runs: several instances
//! of a service with one run per tick ([`Cluster`]), and work that survives
//! a killed process ([`DurableQueue`], [`queued`]).
//!
//! ```no_run
//! use hosted::prelude::*;
//!
//! #[every("30s")]
//! async fn sweep() {
//!     // runs once per tick across every instance that shares the database
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<std::process::ExitCode> {
//!     let cluster = hosted_postgres::Cluster::connect("postgres://app@127.0.0.1/app").await?;
//!     let report = Host::builder().cluster(cluster).build()?.run().await;
//!     Ok(report.exit_code())
//! }
//! ```
//!
//! Nothing else changes: every `#[every]` and `#[cron]` job now runs once
//! per tick across all instances that share the database, and a
//! `#[hosted_service(scope = "singleton")]` runs on one instance at a time.
//!
//! # Running several instances
//!
//! Start as many instances as you like, with the same jobs and the same
//! database. Each registers itself at start (a fresh id, its host name and
//! process id, a heartbeat), creates or migrates the schema (`hosted` by
//! default, see [`ClusterOptions::schema`]) under an advisory lock, and then
//! claims ticks. There is no leader: a tick's identity is the job's name and
//! the tick's instant on the wall clock, and every instance computes the
//! same instants (an `every` grid is anchored at the Unix epoch, and jitter
//! is a function of the job and the tick). The first instance whose claim
//! reaches the database runs the tick; the others' claims for the same tick
//! find it taken. An instance whose clock runs ahead claims more ticks
//! first; one whose clock lags claims fewer; no tick runs twice, whatever
//! the skew.
//!
//! A claim is one statement: a compare-and-set on the job's last claimed
//! tick, with the insert of the run's record, in one transaction. It also
//! takes the run's lease, in database time (`now()` of the server, never the
//! instance's clock), and a **fencing number** that grows with every claim
//! of the job. Claims that fall due together (10,000 jobs on one grid) go in
//! one statement.
//!
//! # What each option guarantees
//!
//! | option | guarantee |
//! |---|---|
//! | `scope = "cluster"` (default for scheduled jobs) | each tick runs on one instance |
//! | `scope = "instance"` | every instance runs every tick: a local cache refresh |
//! | `on_crash = "skip"` (default) | **at most once**: a tick whose instance died mid-run is not run again |
//! | `on_crash = "rerun"` | **at least once**: another instance runs it again once its lease ran out and the rescue found it |
//! | `missed = "skip"` (default) | ticks that fell while the whole cluster was down pass |
//! | `missed = "once"` | the last of them runs once when the first instance comes back (judged from the durable last tick, so a weekly job runs even after restarts that kept missing its instant) |
//! | `overlap = "skip"` (default) | a tick that comes while the job's previous run holds its lease, on any instance, is skipped and counted |
//! | `#[hosted_service(scope = "singleton")]` | the service runs on one instance at a time, under a renewed lease; when that instance dies or stops, another takes it over within the lease time plus [`ClusterOptions::poll_every`] |
//!
//! Pause and resume ([`Cluster::pause`], [`Cluster::resume`]) are stored in
//! the database and hold for every instance; [`Cluster::trigger`] from any
//! instance runs the job once, on one instance (within
//! [`ClusterOptions::poll_every`]).
//!
//! # What the fencing number is for
//!
//! A lease can run out while its run still goes on: the process was paused
//! (a stop-the-world pause, `SIGSTOP`, a VM migration) or cut off from the
//! database. The cluster then treats the run as lost; with `on_crash =
//! "rerun"` another instance runs the tick again, under a higher fencing
//! number. When the first run wakes up, its completion is rejected (counted
//! in [`JobStatus::stale_completions`](hosted::JobStatus::stale_completions)),
//! but writes it made elsewhere are not the cluster's to stop. Take
//! [`Fence`](hosted::cluster::Fence) as an argument and pass it with those
//! writes, and have their target refuse a number lower than the highest it
//! has seen (`UPDATE ... SET fence = $1 WHERE fence < $1`): then the late run
//! cannot overwrite the newer one's work.
//!
//! # When the database is out of reach
//!
//! The instance keeps running; it claims nothing, so nothing runs twice
//! because of the outage. It logs the outage once and its end once, counts
//! the ticks it did not claim ([`JobStatus::unclaimed`](hosted::JobStatus::unclaimed)),
//! and reconnects with backoff on its own. Runs already going carry on
//! while their leases can be renewed; once the instance has not reached the
//! database for [`ClusterOptions::trust_window`] (12 seconds by default,
//! shorter than the 15-second lease) it cancels their tokens, since another
//! instance may take their ticks over once the leases run out. Until a
//! lease of a job that does not overlap runs out, the other instances skip
//! that job's ticks (and count them): the run may still be going. A job
//! with `overlap = "allow"` holds a lease per run and goes on elsewhere at
//! once.
//!
//! # How this differs from Quartz clustering and Hangfire
//!
//! Quartz's clustered job store has instances take turns at a row lock and
//! fire triggers from each instance's own clock; its documentation asks for
//! clocks synchronised within a second, and a paused instance can fire a
//! trigger another already fired. Here the database's clock decides leases,
//! the tick's identity is computed rather than read from an instance's clock,
//! and a late completion is refused by its fencing number. Hangfire's
//! recurring jobs rely on a distributed lock per job held while a scheduler
//! instance enqueues; its invisibility timeout (30 minutes by default)
//! decides when work of a dead server runs again, and a lock that outlives
//! its holder blocks the job. Here a lease is renewed while the run goes on,
//! runs out within seconds when it stops, and the rescue reruns what must be
//! rerun within the lease time plus [`ClusterOptions::rescue_every`].
//!
//! # The durable queue
//!
//! A `#[queued]` fn handles durable work items: named, with a serde
//! payload, kept in PostgreSQL until they succeed or are dead-lettered.
//!
//! ```no_run
//! use hosted::prelude::*;
//! use hosted_postgres::{DurableQueue, Payload};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Welcome { user_id: i64 }
//!
//! #[hosted_postgres::queued(queue = "mail", max_attempts = 10)]
//! async fn send_welcome(Payload(w): Payload<Welcome>) -> anyhow::Result<()> {
//!     println!("welcome, user {}", w.user_id);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<std::process::ExitCode> {
//!     let queue = DurableQueue::connect("postgres://app@127.0.0.1/app").await?;
//!     send_welcome::enqueue(&queue, Welcome { user_id: 7 })
//!         .key("welcome:7")
//!         .delay(std::time::Duration::from_secs(60))
//!         .await?;
//!     let report = Host::builder().durable(queue).build()?.run().await;
//!     Ok(report.exit_code())
//! }
//! ```
//!
//! **Which queue.** [`hosted::TaskQueue`] holds closures in memory: nothing
//! to set up and nearly free to enqueue, but what is queued is gone when
//! the process dies (at stop it is counted and reported). Pick it for work
//! that can be lost or redone from scratch: a cache warm-up, a fan-out of
//! in-memory work. Pick the durable queue when an item must happen even if
//! the process is killed: an email, a payment, a webhook, a follow-up of a
//! committed order.
//!
//! **What it guarantees.**
//! - *At least once, never lost.* An item is claimed with `FOR UPDATE SKIP
//!   LOCKED` inside a materialized CTE whose `LIMIT` fences the planner, and
//!   runs under a lease in database time that its instance renews while it
//!   runs ([`DurableOptions::renew_every`]). A killed instance's items are
//!   handed out again once their leases run out, by the rescue of any
//!   instance: within [`DurableOptions::lease`] plus
//!   [`DurableOptions::rescue_every`], 20 seconds with the defaults (River
//!   and Oban take an hour, Hangfire 5 to 30 minutes). Rescued items keep
//!   their place in the queue.
//! - *Fenced completions.* Every claim takes a fencing number from one
//!   sequence, and every write of the item's end names it: a completion
//!   from a process that was paused past its lease (a stop-the-world pause,
//!   `SIGSTOP`) is rejected and counted ([`DurableStats::stale`]), never
//!   overwriting the newer attempt's result. The handler gets the number as
//!   [`Fence`](hosted::cluster::Fence) or [`WorkItem::fence`](hosted::work::WorkItem::fence)
//!   for its external writes.
//! - *Exactly once, for writes to the same database.* A handler that takes
//!   [`Tx`] writes in the transaction its completion commits in: a late or
//!   failed attempt's writes roll back with it.
//! - *Retries.* A failed attempt (an `Err`, a panic, a timeout) waits an
//!   exponential backoff with random jitter (`backoff = "1s..10m"`), up to
//!   `max_attempts`; then the item is dead-lettered with its error and the
//!   history of its attempts. A payload that no longer reads as the
//!   handler's type is dead-lettered at once. [`DurableQueue::retry`],
//!   [`discard`](DurableQueue::discard) and [`cancel`](DurableQueue::cancel)
//!   act on one item or every item an [`ItemFilter`] matches.
//! - *Enqueue.* One item or a batch in one statement
//!   ([`DurableQueue::enqueue_many`], thousands of items), with a delay or
//!   an instant (scheduled work), a priority, and an idempotency key held
//!   for a window ([`Enqueued::New`] or [`Enqueued::Duplicate`]), on the
//!   queue's pool or [inside your own transaction](Enqueue::on): an order
//!   row and its follow-up work commit together or not at all.
//! - *Workers.* Per queue, a limit per instance and one across the cluster
//!   ([`QueueLimits`]); a per-attempt timeout; the token cancelled at stop.
//!   No item runs before the host has started. At stop an instance stops
//!   claiming, gives running items the shutdown timeout, and hands back
//!   what did not finish without counting an attempt, notifying the other
//!   instances so that one takes it at once.
//! - *Wake-ups.* An enqueue notifies (`NOTIFY`, sent by the statement that
//!   inserts, so at its commit; never from a trigger; debounced per queue,
//!   [`DurableOptions::notify_debounce`]). Idle workers listen on a
//!   connection of their own, which reconnects and then looks for work it
//!   missed; a slow fallback poll ([`DurableOptions::poll_every`]) covers
//!   lost notifications and poolers in transaction mode
//!   ([`DurableOptions::listen`]).
//! - *Small live tables.* Finished items move from `items` to `finished` in
//!   the statement that finishes them, so claims stay fast however much
//!   has passed through; `finished` is pruned after a retention, in
//!   batches. [`DurableQueue::counts`] reads each queue's depth, lag and
//!   states from the live table and the dead letters' index.
//!
//! A handler's stable name (the fn's path, or `name = "..."`) identifies
//! its items: renaming a fn that has an explicit name keeps its items. An
//! instance claims only items of handlers it has, so a release that adds a
//! handler can roll out instance by instance.
//!
//! The statements are under `src/sql/queue/`, one file each, and the
//! schema in `src/sql/migrations/`.
//!
//! # Metrics
//!
//! With the feature `metrics` (which turns on `hosted`'s own, listed in
//! its documentation), each instance publishes its [`ClusterStats`] and
//! [`DurableStats`] through the `metrics` facade every second and once
//! more at stop, as counters without labels (the scrape's `instance` label
//! tells the processes apart):
//!
//! | name | labels | what |
//! |---|---|---|
//! | `hosted_cluster_ticks_total` | `result` | ticks asked for: `granted` (run here), `taken` (another instance had it: a claim lost), `running` (the previous run held its lease), `unavailable` (the store was out of reach) |
//! | `hosted_cluster_statements_total` | | statements sent to the store |
//! | `hosted_cluster_stale_completions_total` | | completions rejected: the run's lease had run out |
//! | `hosted_cluster_leases_lost_total` | | leases lost while their runs went on |
//! | `hosted_cluster_reruns_total` | | runs run again for an instance that died |
//! | `hosted_cluster_outages_total` | | times the store stopped answering |
//! | `hosted_durable_items_total` | `outcome` | attempts ended here: `succeeded`, `retried`, `dead`, `cancelled`, `released` (handed back at stop) |
//! | `hosted_durable_enqueued_total` | | items enqueued (not duplicates) |
//! | `hosted_durable_duplicates_total` | | enqueues whose key was held |
//! | `hosted_durable_claimed_total` | | items claimed |
//! | `hosted_durable_rescued_total` | | items of dead instances handed out again (rescues) |
//! | `hosted_durable_stale_completions_total` | | ends of attempts rejected: their fence was no longer current |
//! | `hosted_durable_leases_lost_total` | | leases lost while their items ran |
//! | `hosted_durable_outages_total` | | times the store stopped answering |
//! | `hosted_durable_queue_items` (gauge) | `queue`, `state` | items by state: `due`, `scheduled`, `running`, `retrying`, `dead` |
//! | `hosted_durable_queue_lag_seconds` (gauge) | `queue` | how long the oldest due item has waited |
//!
//! The two gauges come from [`DurableQueue::estimated_counts`], which each
//! instance reads every 15 s (not every second): exact while the tables
//! hold fewer than 100,000 rows, estimated from a sample of about that
//! many beyond. Every instance publishes the same values, so take their
//! `max` across instances.
//!
//! # The driver
//!
//! `tokio-postgres` with a `deadpool-postgres` pool: a maintained, pipelined
//! async driver whose statements are prepared and checked by the server at
//! run time, so building needs no database. Connections carry an
//! `application_name` naming the instance (`hosted <instance id>`), so
//! `pg_stat_activity` shows which instance holds which connection. Without a
//! pool of your own ([`Cluster::from_pool`]) the cluster keeps a small one
//! ([`ClusterOptions::pool_size`], 4 by default). TLS: connect through
//! [`Cluster::from_pool`] with a pool built with your TLS connector.

mod cluster;
mod connection;
mod durable;
mod error;
mod leases;
mod schema;
mod sql;
mod state;
#[cfg(feature = "metrics")]
mod telemetry;

pub use crate::cluster::{
    AuditRecord, Cluster, ClusterJobCounts, ClusterJobStatus, ClusterOptions, ClusterStats,
    InstanceInfo, RunRecord,
};
#[allow(deprecated)]
pub use crate::durable::Cancelled;
pub use crate::durable::{
    CancelCounts, Durable, DurableOptions, DurableQueue, DurableStats, Enqueue, EnqueueMany,
    Enqueued, ItemFilter, ItemRecord, Payload, QueueCounts, QueueLimits, Tx, TxClient,
};
pub use crate::error::Error;
pub use crate::state::{ItemState, RunState};
pub use deadpool_postgres;
pub use tokio_postgres;

/// Handles durable work items: the fn runs once per item of its queue,
/// with the item's [`Payload`] and any argument a job may take (`State<T>`,
/// `Scoped<T>`, the token, [`WorkItem`](hosted::work::WorkItem) with its
/// attempt, [`Tx`] for exactly-once writes). Registered through
/// `inventory` like the other jobs; give the host a [`DurableQueue`] with
/// [`HostBuilder::durable`](hosted::HostBuilder::durable) to run them.
///
/// Beside the fn, the macro declares a type of the same name (types and
/// fns live apart, so the fn stays callable) whose `enqueue` takes the
/// payload's type and nothing else: enqueueing a payload of another type
/// is a compile error.
///
/// ```no_run
/// use hosted_postgres::{DurableQueue, Payload};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Welcome { user_id: i64 }
///
/// #[hosted_postgres::queued(queue = "mail", max_attempts = 10, timeout = "30s")]
/// async fn send_welcome(Payload(w): Payload<Welcome>) -> anyhow::Result<()> {
///     println!("welcome, user {}", w.user_id);
///     Ok(())
/// }
///
/// # async fn example(queue: DurableQueue) -> anyhow::Result<()> {
/// send_welcome::enqueue(&queue, Welcome { user_id: 7 }).key("welcome:7").await?;
/// # Ok(())
/// # }
/// ```
///
/// # Options
///
/// | option | default | meaning |
/// |---|---|---|
/// | `name = "..."` | the fn's path (`module_path!()::fn`) | the stable name its items carry |
/// | `queue = "..."` | `"default"` | the queue its items go to; limits are set per queue |
/// | `max_attempts = N` | 10 | attempts before an item is dead-lettered |
/// | `timeout = "30s"` | 30 min | how long one attempt may run: past it the attempt fails |
/// | `backoff = "1s..10m"` | `"1s..10m"` | the first retry's delay, doubling up to the longest, with random jitter |
/// | `priority = N` | 0 | its items' priority unless an enqueue says otherwise; higher runs first |
/// | `crate = "..."` | `::hosted_postgres` | the path to this crate, when it is re-exported |
///
/// A wrong option is a compile error on the literal:
///
/// ```compile_fail
/// #[hosted_postgres::queued(max_attempts = 0)]
/// async fn never() {}
/// ```
pub use hosted_macros::queued;

/// Not public API: what `#[queued]`'s expansion names.
#[doc(hidden)]
pub mod __private {
    pub use hosted;
}
