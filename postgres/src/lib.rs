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

mod coordinator;
mod durable;
mod error;
mod schema;
mod sql;
#[cfg(feature = "metrics")]
mod telemetry;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use crate::durable::{
    Cancelled, Durable, DurableOptions, DurableQueue, DurableStats, Enqueue, EnqueueMany, Enqueued,
    ItemFilter, ItemRecord, Payload, QueueCounts, QueueLimits, Tx, TxClient,
};
pub use crate::error::Error;
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

use crate::coordinator::Inner;
use crate::error::{describe, describe_pool};

/// The options of a [`Cluster`]; the defaults suit most services.
///
/// ```
/// use std::time::Duration;
/// use hosted_postgres::ClusterOptions;
///
/// let options = ClusterOptions::default()
///     .schema("billing_jobs")
///     .lease(Duration::from_secs(30))
///     .trust_window(Duration::from_secs(24));
/// # drop(options);
/// ```
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    schema: String,
    lease: Duration,
    renew_every: Duration,
    trust_window: Duration,
    poll_every: Duration,
    rescue_every: Duration,
    history: Duration,
    pool_size: usize,
    connect_timeout: Duration,
    statement_timeout: Duration,
    claim_ahead: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            schema: "hosted".to_owned(),
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            trust_window: Duration::from_secs(12),
            poll_every: Duration::from_secs(1),
            rescue_every: Duration::from_secs(5),
            history: Duration::from_secs(7 * 24 * 3600),
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            claim_ahead: Duration::from_millis(50),
        }
    }
}

impl ClusterOptions {
    /// The schema the cluster's tables live in (`hosted`): a lowercase SQL
    /// identifier. Two schemas in one database are two separate clusters.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// How long a claim or a singleton's lease lasts without renewal
    /// (15 s): the longest a dead instance holds a tick or a service.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often leases are renewed and the heartbeat written (3 s).
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = every;
        self
    }

    /// How long the instance trusts its leases without reaching the
    /// database (12 s); past it, it claims nothing and cancels the tokens
    /// of its runs. Shorter than the lease, so that the instance lets go
    /// before another may take over.
    pub fn trust_window(mut self, window: Duration) -> Self {
        self.trust_window = window;
        self
    }

    /// How often triggers and pause flags are read, and a free singleton
    /// lease is tried (1 s).
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every;
        self
    }

    /// How often runs whose lease ran out are looked for (5 s): marked
    /// lost, and run again if their job has `on_crash = "rerun"`.
    pub fn rescue_every(mut self, every: Duration) -> Self {
        self.rescue_every = every;
        self
    }

    /// How long finished runs stay in the history (7 days); older ones are
    /// deleted in batches.
    pub fn history(mut self, keep: Duration) -> Self {
        self.history = keep;
        self
    }

    /// The size of the cluster's own pool (4); ignored with
    /// [`Cluster::from_pool`].
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long connecting may take (5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The server-side limit of each of the cluster's statements (10 s).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How long before a tick's instant its claim is sent (50 ms): a claim
    /// granted early waits for the instant, so that the round trip to the
    /// database does not make the run late. A claim declined because the
    /// previous run still held its lease is sent again at the instant. A
    /// pause takes effect for ticks whose claim is not yet sent. Zero sends
    /// each claim at its tick.
    pub fn claim_ahead(mut self, ahead: Duration) -> Self {
        self.claim_ahead = ahead;
        self
    }

    fn check(&self) -> Result<(), Error> {
        check_schema_name(&self.schema)?;
        let positive = [
            ("lease", self.lease),
            ("renew_every", self.renew_every),
            ("trust_window", self.trust_window),
            ("poll_every", self.poll_every),
            ("rescue_every", self.rescue_every),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::Options(format!(
                "`{name}` is zero; give it a positive duration"
            )));
        }
        check_leases(
            self.lease,
            self.renew_every,
            self.trust_window,
            "run after another took its ticks over",
            "run",
        )?;
        if self.claim_ahead >= self.lease {
            return Err(Error::Options(format!(
                "claims are sent {:?} ahead, not within the lease ({:?}): a claim's lease would run out before its run starts; send them closer to the tick",
                self.claim_ahead, self.lease
            )));
        }
        if self.pool_size < 2 {
            return Err(Error::Options(
                "`pool_size` is below 2: claims and lease renewals need a connection each"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// A cluster of instances that share one PostgreSQL database: give it to
/// [`HostBuilder::cluster`](hosted::HostBuilder::cluster). Cheap to clone;
/// clones share one connection pool and one instance. Its methods steer the
/// whole cluster from any instance.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.inner.instance.id)
            .field("schema", &self.inner.options.schema)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects with the default options: checks the URL, the server and
    /// the credentials at once, so that a wrong one is an error here, not a
    /// host that runs without coordination.
    ///
    /// # Errors
    ///
    /// A URL that does not parse, a server that cannot be reached, refused
    /// credentials, a missing database: each says what to check.
    pub async fn connect(url: &str) -> Result<Cluster, Error> {
        Cluster::connect_with(url, ClusterOptions::default()).await
    }

    /// Connects with `options`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Cluster::connect), and options out of range.
    pub async fn connect_with(url: &str, options: ClusterOptions) -> Result<Cluster, Error> {
        options.check()?;
        let instance = coordinator::Instance::fresh();
        let connection = Connection::open(
            url,
            &instance,
            options.pool_size,
            options.connect_timeout,
            options.statement_timeout,
        )?;
        let cluster = Cluster {
            inner: Arc::new(Inner::new(
                connection.pool,
                options,
                instance,
                connection.target,
            )),
        };
        check_connection(&cluster.inner.pool, &cluster.inner.target).await?;
        Ok(cluster)
    }

    /// A cluster on a pool of your own (with your TLS connector, say). Its
    /// connections keep the `application_name` your configuration gives.
    ///
    /// # Errors
    ///
    /// Options out of range. The pool is first used as the host starts.
    pub fn from_pool(pool: Pool, options: ClusterOptions) -> Result<Cluster, Error> {
        options.check()?;
        let instance = coordinator::Instance::fresh();
        Ok(Cluster {
            inner: Arc::new(Inner::new(
                pool,
                options,
                instance,
                "the pool's server".to_owned(),
            )),
        })
    }

    /// This instance's id: fresh at every start of the process.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance.id
    }

    /// The pool the cluster uses.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Pauses a job on every instance: its ticks pass without runs until
    /// [`resume`](Cluster::resume).
    ///
    /// # Errors
    ///
    /// No such job in the cluster, or the database failed.
    pub async fn pause(&self, job: &str) -> Result<(), Error> {
        self.inner.set_paused(job, true).await
    }

    /// Resumes a job paused with [`pause`](Cluster::pause), on every
    /// instance.
    ///
    /// # Errors
    ///
    /// No such job in the cluster, or the database failed.
    pub async fn resume(&self, job: &str) -> Result<(), Error> {
        self.inner.set_paused(job, false).await
    }

    /// Runs a job once, now, on one instance that has it (within
    /// [`ClusterOptions::poll_every`]), beside its schedule. A job that does
    /// not overlap and holds its lease is not started again.
    ///
    /// # Errors
    ///
    /// No such job in the cluster, or the database failed.
    pub async fn trigger(&self, job: &str) -> Result<(), Error> {
        self.inner.trigger(job).await
    }

    /// The instances that joined the cluster, oldest first.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, Error> {
        self.inner.instances().await
    }

    /// Every job the cluster knows, with its last run wherever it ran.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn jobs(&self) -> Result<Vec<ClusterJobStatus>, Error> {
        self.inner.jobs().await
    }

    /// The latest runs of `job`, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn runs(&self, job: &str, limit: i64) -> Result<Vec<RunRecord>, Error> {
        self.inner.runs(job, limit).await
    }

    /// The jobs named in `names` that the cluster knows, as
    /// [`jobs`](Cluster::jobs) gives them: one page's worth, read
    /// through the jobs' primary key.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn jobs_named(&self, names: &[String]) -> Result<Vec<ClusterJobStatus>, Error> {
        self.inner.jobs_named(names).await
    }

    /// The jobs the cluster knows, how many of them are paused, and how
    /// many hold a run's lease now: one pass over the jobs table, no
    /// history.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn job_counts(&self) -> Result<ClusterJobCounts, Error> {
        let (jobs, paused, running) = self.inner.job_counts().await?;
        Ok(ClusterJobCounts {
            jobs,
            paused,
            running,
        })
    }

    /// The latest failed (or lost) runs of any job, newest first, at most
    /// `limit`: through an index of failures only, however many runs
    /// succeeded.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn failures(&self, limit: i64) -> Result<Vec<(String, RunRecord)>, Error> {
        self.inner.failures(limit).await
    }

    /// Records an action an operator took (trigger, pause, a retry of
    /// dead letters) in the cluster's audit table, with this instance's
    /// id. The table is kept, not pruned.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn audit(&self, action: &AuditRecord) -> Result<(), Error> {
        self.inner.audit(action).await
    }

    /// The latest actions of the audit table, newest first, at most
    /// `limit`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, Error> {
        self.inner.audit_log(limit).await
    }

    /// What this instance sent and was told.
    pub fn stats(&self) -> ClusterStats {
        self.inner.stats()
    }
}

/// The cluster's jobs counted, as [`Cluster::job_counts`] gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterJobCounts {
    /// Jobs the cluster knows.
    pub jobs: u64,
    /// Of those, paused across the cluster.
    pub paused: u64,
    /// Of those, holding a run's lease now (running somewhere).
    pub running: u64,
}

/// An action in the cluster's audit table ([`Cluster::audit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// When it was recorded, in database time (ignored by
    /// [`Cluster::audit`], which records `now()`).
    pub at: DateTime<Utc>,
    /// Who took it.
    pub who: String,
    /// `trigger`, `pause`, `resume`, `retry`, `discard`…
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// What came of it.
    pub result: String,
    /// The instance it was recorded from (ignored by
    /// [`Cluster::audit`], which records its own).
    pub instance: String,
}

impl AuditRecord {
    /// An action to record: who did what to what, and what came of it.
    pub fn new(
        who: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        result: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord {
            at: Utc::now(),
            who: who.into(),
            action: action.into(),
            target: target.into(),
            result: result.into(),
            instance: String::new(),
        }
    }
}

/// Checks that positive durations are positive, and that leases are renewed
/// within the trust window, which is shorter than the lease: an instance
/// cut off from the database lets go of its work before another may take
/// it over. `goes_on` says what it would do otherwise; `one` is a unit of
/// its work.
pub(crate) fn check_leases(
    lease: Duration,
    renew_every: Duration,
    trust_window: Duration,
    goes_on: &str,
    one: &str,
) -> Result<(), Error> {
    if trust_window >= lease {
        return Err(Error::Options(format!(
            "the trust window ({trust_window:?}) is not shorter than the lease ({lease:?}): an instance cut off from the database would still {goes_on}; shorten the window or lengthen the lease"
        )));
    }
    if renew_every >= trust_window {
        return Err(Error::Options(format!(
            "leases are renewed every {renew_every:?}, not within the trust window ({trust_window:?}): one late renewal would cancel every {one}; renew more often"
        )));
    }
    Ok(())
}

/// Checks that `name` is a lowercase SQL identifier, safe to quote into
/// every statement.
pub(crate) fn check_schema_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::Options(format!(
            "the schema `{name}` is not a lowercase SQL identifier (letters, digits and `_`, starting with a letter or `_`, at most 63 bytes)"
        )))
    }
}

/// A pool on a URL, as [`Cluster::connect_with`] and
/// [`DurableQueue::connect_with`] open it: each connection named after the
/// instance (`application_name`), with keepalives and a statement timeout.
pub(crate) struct Connection {
    pub(crate) pool: Pool,
    /// For a connection of its own (the durable queue's listener).
    pub(crate) config: tokio_postgres::Config,
    /// `host:port (user, database)`, for error messages.
    pub(crate) target: String,
}

impl Connection {
    pub(crate) fn open(
        url: &str,
        instance: &coordinator::Instance,
        pool_size: usize,
        connect_timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Connection, Error> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::Url(e.to_string()))?;
        config.application_name(instance.application_name());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let timeout = format!("-c statement_timeout={}", statement_timeout.as_millis());
        let given = config.get_options().unwrap_or_default().to_owned();
        config.options(if given.is_empty() {
            timeout
        } else {
            format!("{given} {timeout}")
        });
        let target = target_of(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(connect_timeout))
            .wait_timeout(Some(statement_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| Error::Options(format!("could not build the connection pool: {e}")))?;
        Ok(Connection {
            pool,
            config,
            target,
        })
    }
}

/// Checks the server and the credentials with one statement.
pub(crate) async fn check_connection(pool: &Pool, target: &str) -> Result<(), Error> {
    let client = pool
        .get()
        .await
        .map_err(|e| Error::Connect(describe_pool(&e, target)))?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| Error::Connect(describe(&e, target)))?;
    Ok(())
}

/// `host:port` of the first host in `config`, for error messages.
fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("{host}:{port} (user `{user}`, database `{db}`)")
}

/// An instance of the cluster, as [`Cluster::instances`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceInfo {
    /// Its id.
    pub id: String,
    /// The host it runs on.
    pub host_name: String,
    /// Its process id.
    pub pid: i32,
    /// When it joined.
    pub started: DateTime<Utc>,
    /// Its last heartbeat, in database time.
    pub heartbeat: DateTime<Utc>,
    /// When it stopped cleanly; `None` while it runs (or if it died).
    pub stopped: Option<DateTime<Utc>>,
}

/// A job as the cluster's store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterJobStatus {
    /// Its name.
    pub name: String,
    /// `every`, `cron` or `service`.
    pub kind: String,
    /// Paused across the cluster.
    pub paused: bool,
    /// The last tick claimed, on any instance.
    pub last_tick: Option<DateTime<Utc>>,
    /// The last fencing number handed out.
    pub fence: i64,
    /// Its latest run, wherever it ran.
    pub last_run: Option<RunRecord>,
}

/// One run in the cluster's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunRecord {
    /// The tick it ran.
    pub tick: DateTime<Utc>,
    /// The instance that ran it.
    pub instance: String,
    /// `running`, `succeeded`, `failed`, `panicked`, `cancelled`,
    /// `aborted`, or `lost` (its lease ran out).
    pub state: String,
    /// The fencing number of its claim.
    pub fence: i64,
    /// When it was claimed, in database time.
    pub started: DateTime<Utc>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// The error of a failed run.
    pub error: Option<String>,
}

/// Counters of one instance's traffic with the cluster's store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Statements sent (each commits on its own).
    pub statements: u64,
    /// Of those, claim statements.
    pub claim_statements: u64,
    /// Ticks this instance claimed.
    pub granted: u64,
    /// Ticks another instance had claimed.
    pub taken: u64,
    /// Ticks skipped because the previous run held its lease.
    pub running: u64,
    /// Ticks not claimed because the store was out of reach.
    pub unavailable: u64,
    /// Completions rejected because the lease had run out.
    pub stale: u64,
    /// Leases this instance lost while their runs went on.
    pub lost: u64,
    /// Runs this instance ran again for another that died.
    pub reruns: u64,
    /// Outages: times the store stopped answering.
    pub outages: u64,
}
