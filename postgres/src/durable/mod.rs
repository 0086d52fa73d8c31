//! The durable queue: named handlers of serde payloads, whose items live in
//! PostgreSQL until they succeed or are dead-lettered.

mod args;
mod enqueue;
mod sql;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;

pub use self::args::{Payload, Tx, TxClient};
pub use self::enqueue::{Enqueue, EnqueueMany, Enqueued};

use self::sql::QueueSql;
use self::worker::Worker;
use crate::coordinator::Instance;
use crate::error::{describe, describe_pool, Error};
use crate::{check_connection, Connection};

/// A handler of durable work items, as `#[queued]` declares it on the type
/// named like its fn: the payload's type, the handler's stable name, and
/// its defaults. Enqueueing goes through it, so a payload of another type
/// than the handler's is a compile error.
pub trait Durable {
    /// What an item carries.
    type Payload: Serialize;
    /// The handler's stable name: the identity of its items. The fn's path
    /// unless `name = "..."` says otherwise; renaming a fn that has an
    /// explicit name keeps its items.
    const NAME: &'static str;
    /// Its queue.
    const QUEUE: &'static str;
    /// The priority of its items unless an enqueue says otherwise.
    const PRIORITY: i16;
    /// Attempts before an item is dead-lettered.
    const MAX_ATTEMPTS: u32;
}

/// How much one queue runs at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Items of the queue one instance runs at once (10).
    pub per_instance: usize,
    /// Items of the queue the whole cluster runs at once; `None` (the
    /// default) for no limit beyond each instance's. A limit serializes the
    /// queue's claims on a row lock, so that no two instances both see room
    /// for the last slot.
    pub cluster: Option<u32>,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            per_instance: 10,
            cluster: None,
        }
    }
}

/// The options of a [`DurableQueue`]; the defaults suit most services.
///
/// ```
/// use std::time::Duration;
/// use hosted_postgres::{DurableOptions, QueueLimits};
///
/// let options = DurableOptions::default()
///     .queue("mail", QueueLimits { per_instance: 20, cluster: Some(50) })
///     .lease(Duration::from_secs(30))
///     .retention(Duration::from_secs(3 * 24 * 3600));
/// # drop(options);
/// ```
#[derive(Clone, Debug)]
pub struct DurableOptions {
    pub(crate) schema: String,
    pub(crate) lease: Duration,
    pub(crate) renew_every: Duration,
    pub(crate) trust_window: Duration,
    pub(crate) rescue_every: Duration,
    pub(crate) poll_every: Duration,
    pub(crate) prune_every: Duration,
    pub(crate) retention: Duration,
    pub(crate) dead_retention: Duration,
    pub(crate) key_window: Duration,
    pub(crate) notify_debounce: Duration,
    pub(crate) listen: bool,
    pub(crate) queues: HashMap<String, QueueLimits>,
    pub(crate) default_limits: QueueLimits,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            schema: "hosted".to_owned(),
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            trust_window: Duration::from_secs(12),
            rescue_every: Duration::from_secs(5),
            poll_every: Duration::from_secs(2),
            prune_every: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
            dead_retention: Duration::from_secs(30 * 24 * 3600),
            key_window: Duration::from_secs(24 * 3600),
            notify_debounce: Duration::from_millis(2),
            listen: true,
            queues: HashMap::new(),
            default_limits: QueueLimits::default(),
            pool_size: 10,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl DurableOptions {
    /// The schema the tables live in (`hosted`, shared with a
    /// [`Cluster`](crate::Cluster) on the same database).
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// How long a claim lasts without renewal (15 s): with
    /// [`rescue_every`](Self::rescue_every), how soon a killed instance's
    /// items run elsewhere.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often the leases of running items are renewed (3 s).
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = every;
        self
    }

    /// How long the instance trusts its leases without reaching the
    /// database (12 s); past it, it cancels the tokens of its running
    /// items, which another instance may take over once their leases run
    /// out. Shorter than the lease.
    pub fn trust_window(mut self, window: Duration) -> Self {
        self.trust_window = window;
        self
    }

    /// How often items whose lease ran out are looked for and handed out
    /// again (5 s).
    pub fn rescue_every(mut self, every: Duration) -> Self {
        self.rescue_every = every;
        self
    }

    /// How often an idle queue looks for work without a notification
    /// (2 s): covers notifications lost while the listener reconnected,
    /// and poolers in transaction mode, which do not pass them on.
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every;
        self
    }

    /// How often finished items and expired keys are pruned (1 min).
    pub fn prune_every(mut self, every: Duration) -> Self {
        self.prune_every = every;
        self
    }

    /// How long succeeded, cancelled and discarded items are kept (1 day).
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = keep;
        self
    }

    /// How long dead letters are kept (30 days).
    pub fn dead_retention(mut self, keep: Duration) -> Self {
        self.dead_retention = keep;
        self
    }

    /// How long an idempotency key holds unless the enqueue says otherwise
    /// (1 day): within it, an enqueue with the same key and handler returns
    /// [`Enqueued::Duplicate`] with the first item's id, whether that item
    /// waits, runs or finished.
    pub fn key_window(mut self, window: Duration) -> Self {
        self.key_window = window;
        self
    }

    /// Enqueues on the queue's pool within this long of one another send
    /// one notification per queue (2 ms): a burst of single enqueues costs
    /// the database one `NOTIFY`, not one per item. Zero sends one per
    /// enqueue. An enqueue inside a transaction always notifies, at its
    /// commit.
    pub fn notify_debounce(mut self, debounce: Duration) -> Self {
        self.notify_debounce = debounce;
        self
    }

    /// Whether idle workers wait for notifications on a connection of
    /// their own (`true`), or only poll: turn it off behind a pooler in
    /// transaction mode, which does not pass notifications on. (The
    /// queue's statements are prepared once per connection: PgBouncer in
    /// transaction mode needs 1.21 or later, with `max_prepared_statements`
    /// set.)
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// The limits of queue `name`.
    pub fn queue(mut self, name: impl Into<String>, limits: QueueLimits) -> Self {
        self.queues.insert(name.into(), limits);
        self
    }

    /// The limits of queues not named with [`queue`](Self::queue).
    pub fn default_limits(mut self, limits: QueueLimits) -> Self {
        self.default_limits = limits;
        self
    }

    /// The size of the queue's pool (10); ignored with
    /// [`DurableQueue::from_pool`]. A handler that takes [`Tx`] holds one
    /// connection while it runs.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long connecting may take (5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The server-side limit of each of the queue's own statements (10 s).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    pub(crate) fn limits(&self, queue: &str) -> QueueLimits {
        self.queues
            .get(queue)
            .copied()
            .unwrap_or(self.default_limits)
    }

    fn check(&self) -> Result<(), Error> {
        crate::check_schema_name(&self.schema)?;
        let positive = [
            ("lease", self.lease),
            ("renew_every", self.renew_every),
            ("trust_window", self.trust_window),
            ("rescue_every", self.rescue_every),
            ("poll_every", self.poll_every),
            ("prune_every", self.prune_every),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
            ("key_window", self.key_window),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::Options(format!(
                "`{name}` is zero; give it a positive duration"
            )));
        }
        crate::check_leases(
            self.lease,
            self.renew_every,
            self.trust_window,
            "run items after another took them over",
            "item",
        )?;
        let limits = self
            .queues
            .iter()
            .map(|(name, limits)| (name.as_str(), limits))
            .chain([("(default)", &self.default_limits)]);
        for (name, limits) in limits {
            if limits.per_instance == 0 || limits.cluster == Some(0) {
                return Err(Error::Options(format!(
                    "queue `{name}` has a limit of 0 items at once: it would never run; give it at least 1"
                )));
            }
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

/// A durable work queue on PostgreSQL: enqueue through it (from any
/// process), and give it to
/// [`HostBuilder::durable`](hosted::HostBuilder::durable) to run the
/// items of the host's `#[queued]` handlers. Cheap to clone; clones share
/// one pool and one worker.
#[derive(Clone)]
pub struct DurableQueue {
    pub(crate) inner: Arc<QueueInner>,
}

pub(crate) struct QueueInner {
    pub(crate) pool: Pool,
    pub(crate) options: DurableOptions,
    pub(crate) sql: QueueSql,
    pub(crate) instance: Instance,
    pub(crate) target: String,
    /// For the listener's connection of its own; `None`: poll only.
    pub(crate) listen_config: Option<tokio_postgres::Config>,
    pub(crate) worker: Worker,
}

impl fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableQueue")
            .field("instance", &self.inner.instance.id)
            .field("schema", &self.inner.options.schema)
            .finish_non_exhaustive()
    }
}

impl DurableQueue {
    /// Connects with the default options, and creates or migrates the
    /// schema: a wrong URL, server or credentials is an error here.
    ///
    /// # Errors
    ///
    /// A URL that does not parse, a server that cannot be reached, refused
    /// credentials, a schema that cannot be created: each says what to do.
    pub async fn connect(url: &str) -> Result<DurableQueue, Error> {
        DurableQueue::connect_with(url, DurableOptions::default()).await
    }

    /// Connects with `options`.
    ///
    /// # Errors
    ///
    /// As [`connect`](DurableQueue::connect), and options out of range.
    pub async fn connect_with(url: &str, options: DurableOptions) -> Result<DurableQueue, Error> {
        options.check()?;
        let instance = Instance::fresh();
        let connection = Connection::open(
            url,
            &instance,
            options.pool_size,
            options.connect_timeout,
            options.statement_timeout,
        )?;
        check_connection(&connection.pool, &connection.target).await?;
        let listen = options.listen.then_some(connection.config);
        let queue = DurableQueue::assemble(
            connection.pool,
            options,
            instance,
            connection.target,
            listen,
        );
        queue.migrate().await?;
        Ok(queue)
    }

    /// A queue on a pool of your own (with your TLS connector, say). Idle
    /// workers poll unless [`listen_with`](Self::listen_with) gives them a
    /// connection to listen on.
    ///
    /// # Errors
    ///
    /// Options out of range. The schema is created or migrated as the host
    /// starts, or by the first enqueue's caller with
    /// [`migrate`](Self::migrate).
    pub fn from_pool(pool: Pool, options: DurableOptions) -> Result<DurableQueue, Error> {
        options.check()?;
        Ok(DurableQueue::assemble(
            pool,
            options,
            Instance::fresh(),
            "the pool's server".to_owned(),
            None,
        ))
    }

    /// Listens for wake-ups on a connection of its own, made from `config`
    /// (without TLS). Call before the host starts.
    pub fn listen_with(self, config: tokio_postgres::Config) -> DurableQueue {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.listen_config = Some(config);
                inner
            }
            Err(shared) => {
                tracing::warn!("`listen_with` on a queue already cloned: its workers poll");
                return DurableQueue { inner: shared };
            }
        };
        DurableQueue {
            inner: Arc::new(inner),
        }
    }

    fn assemble(
        pool: Pool,
        options: DurableOptions,
        instance: Instance,
        target: String,
        listen_config: Option<tokio_postgres::Config>,
    ) -> DurableQueue {
        DurableQueue {
            inner: Arc::new(QueueInner {
                sql: QueueSql::new(&options.schema),
                worker: Worker::default(),
                pool,
                options,
                instance,
                target,
                listen_config,
            }),
        }
    }

    /// Creates or migrates the schema (done by [`connect`](Self::connect)
    /// and as the host starts).
    ///
    /// # Errors
    ///
    /// The database could not be reached, or refused to create the schema.
    pub async fn migrate(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let mut client = inner
            .pool
            .get()
            .await
            .map_err(|e| Error::Connect(describe_pool(&e, &inner.target)))?;
        crate::schema::migrate(&mut client, &inner.options.schema, &inner.target).await?;
        Ok(())
    }

    /// Enqueues one item for handler `H` (the type `#[queued]` declares
    /// beside the fn); `send_welcome::enqueue(&queue, payload)` says the
    /// same. Await the builder to write the item.
    pub fn enqueue<H: Durable>(&self, payload: H::Payload) -> Enqueue<'_, H> {
        Enqueue::new(self, payload)
    }

    /// Enqueues many items for handler `H` in one statement; await it.
    pub fn enqueue_many<H: Durable>(
        &self,
        payloads: impl IntoIterator<Item = H::Payload>,
    ) -> EnqueueMany<'_, H> {
        EnqueueMany::new(self, payloads)
    }

    /// This instance's id: the holder of the items it claims.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance.id
    }

    /// The pool the queue uses.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// What this instance sent, ran and was told.
    pub fn stats(&self) -> DurableStats {
        self.inner.worker.stats()
    }

    /// Each queue's items by state and its lag, from the live table (which
    /// holds only what waits and runs) and the dead letters' index.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        self.counts_sampling(None, None).await
    }

    /// [`counts`](DurableQueue::counts) for a page that is looked at
    /// often: a table that holds more than `exact_below` rows, by
    /// PostgreSQL's own estimate (`pg_class.reltuples`, read from the
    /// catalog), is sampled (`TABLESAMPLE SYSTEM`, about `exact_below` rows
    /// read) rather than counted, and its counts are marked
    /// [`estimated`](QueueCounts::estimated). A dashboard thus costs the
    /// database the same whether a million items wait or a hundred.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn estimated_counts(&self, exact_below: u64) -> Result<Vec<QueueCounts>, Error> {
        let client = self.client().await?;
        let sizes = client
            .query_one(&self.inner.sql.table_sizes, &[])
            .await
            .map_err(|e| self.failed(&e))?;
        drop(client);
        // The percent of a table's pages to read, if it is too large to
        // count.
        let sample = |rows: f64| {
            (rows > exact_below as f64)
                .then(|| ((exact_below.max(1) as f64 / rows) * 100.0).clamp(0.001, 100.0))
        };
        self.counts_sampling(sample(sizes.get(0)), sample(sizes.get(1)))
            .await
    }

    /// The counts, each table counted whole or, given a percent, sampled.
    async fn counts_sampling(
        &self,
        live_sample: Option<f64>,
        dead_sample: Option<f64>,
    ) -> Result<Vec<QueueCounts>, Error> {
        let client = self.client().await?;
        let sql = &self.inner.sql;
        let live = match live_sample {
            None => client.query(&sql.counts, &[]).await,
            Some(percent) => {
                client
                    .query(&sql.counts_sampled, &[&(percent as f32)])
                    .await
            }
        }
        .map_err(|e| self.failed(&e))?;
        let dead = match dead_sample {
            None => client.query(&sql.dead_counts, &[]).await,
            Some(percent) => {
                client
                    .query(&sql.dead_counts_sampled, &[&(percent as f32)])
                    .await
            }
        }
        .map_err(|e| self.failed(&e))?;
        let mut counts: Vec<QueueCounts> = live
            .iter()
            .map(|row| QueueCounts {
                queue: row.get(0),
                due: row.get::<_, i64>(1) as u64,
                scheduled: row.get::<_, i64>(2) as u64,
                running: row.get::<_, i64>(3) as u64,
                retrying: row.get::<_, i64>(4) as u64,
                dead: 0,
                lag: Duration::from_secs_f64(row.get::<_, f64>(5).max(0.0)),
                estimated: live_sample.is_some(),
            })
            .collect();
        for row in &dead {
            let queue: String = row.get(0);
            let n = row.get::<_, i64>(1) as u64;
            match counts.iter_mut().find(|c| c.queue == queue) {
                Some(c) => {
                    c.dead = n;
                    c.estimated |= dead_sample.is_some();
                }
                None => counts.push(QueueCounts {
                    queue,
                    dead: n,
                    estimated: dead_sample.is_some(),
                    ..QueueCounts::default()
                }),
            }
        }
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(counts)
    }

    /// One item by id, live or finished (until pruned).
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn item(&self, id: i64) -> Result<Option<ItemRecord>, Error> {
        let client = self.client().await?;
        let rows = client
            .query(&self.inner.sql.item, &[&id])
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows.first().map(ItemRecord::from_row))
    }

    /// The newest dead letters of `queue` (of every queue: `None`), at
    /// most `limit`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn dead_letters(
        &self,
        queue: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ItemRecord>, Error> {
        let client = self.client().await?;
        let rows = client
            .query(&self.inner.sql.dead, &[&queue, &limit])
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows.iter().map(ItemRecord::from_row).collect())
    }

    /// Runs dead (or cancelled) items that match `filter` again, at once,
    /// with one more attempt; returns how many.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn retry(&self, filter: &ItemFilter) -> Result<u64, Error> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &self.inner.sql.retry_dead,
                &[
                    &filter.ids,
                    &filter.queue,
                    &filter.handler,
                    &self.inner.sql.channel,
                ],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        let retried = row.get::<_, i64>(0) as u64;
        tracing::info!(retried, filter = %filter, "retried dead items");
        Ok(retried)
    }

    /// Discards dead letters that match `filter` (kept as discarded until
    /// pruned); returns how many.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn discard(&self, filter: &ItemFilter) -> Result<u64, Error> {
        let client = self.client().await?;
        let n = client
            .execute(
                &self.inner.sql.discard,
                &[&filter.ids, &filter.queue, &filter.handler],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        tracing::info!(discarded = n, filter = %filter, "discarded dead items");
        Ok(n)
    }

    /// Cancels live items that match `filter`: a waiting one ends at once,
    /// a running one has its token cancelled by its instance within
    /// [`DurableOptions::renew_every`] and ends cancelled unless it
    /// succeeds first.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn cancel(&self, filter: &ItemFilter) -> Result<Cancelled, Error> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &self.inner.sql.cancel,
                &[&filter.ids, &filter.queue, &filter.handler],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        let cancelled = Cancelled {
            waiting: row.get::<_, i64>(0) as u64,
            running: row.get::<_, i64>(1) as u64,
        };
        tracing::info!(waiting = cancelled.waiting, running = cancelled.running, filter = %filter, "cancelled items");
        Ok(cancelled)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| Error::Database(describe_pool(&e, &self.inner.target)))
    }

    pub(crate) fn failed(&self, error: &tokio_postgres::Error) -> Error {
        Error::Database(describe(error, &self.inner.target))
    }
}

/// Which items [`DurableQueue::retry`], [`discard`](DurableQueue::discard)
/// and [`cancel`](DurableQueue::cancel) act on: every condition given must
/// hold; none given matches every item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemFilter {
    ids: Option<Vec<i64>>,
    queue: Option<String>,
    handler: Option<String>,
}

impl ItemFilter {
    /// Every item (of the state the action applies to).
    pub fn all() -> ItemFilter {
        ItemFilter::default()
    }

    /// The item with `id`.
    pub fn id(id: i64) -> ItemFilter {
        ItemFilter::default().ids([id])
    }

    /// Items with one of `ids`.
    pub fn ids(mut self, ids: impl IntoIterator<Item = i64>) -> ItemFilter {
        self.ids = Some(ids.into_iter().collect());
        self
    }

    /// Items of `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> ItemFilter {
        self.queue = Some(queue.into());
        self
    }

    /// Items of the handler named `name`.
    pub fn handler(mut self, name: impl Into<String>) -> ItemFilter {
        self.handler = Some(name.into());
        self
    }

    /// Items of handler `H`.
    pub fn of<H: Durable>(self) -> ItemFilter {
        self.handler(H::NAME)
    }
}

impl fmt::Display for ItemFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(ids) = &self.ids {
            parts.push(format!("ids {ids:?}"));
        }
        if let Some(queue) = &self.queue {
            parts.push(format!("queue `{queue}`"));
        }
        if let Some(handler) = &self.handler {
            parts.push(format!("handler `{handler}`"));
        }
        if parts.is_empty() {
            f.write_str("all")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// What [`DurableQueue::cancel`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cancelled {
    /// Waiting items, ended at once.
    pub waiting: u64,
    /// Running items, flagged: their instances cancel them.
    pub running: u64,
}

/// A queue's items by state, as [`DurableQueue::counts`] reads them.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Waiting and due.
    pub due: u64,
    /// Waiting for a later instant (delayed, or backing off).
    pub scheduled: u64,
    /// Running, on any instance.
    pub running: u64,
    /// Waiting after at least one failed attempt.
    pub retrying: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// How long the oldest due item has waited.
    pub lag: Duration,
    /// Whether these are estimates from a sample of a large table
    /// ([`DurableQueue::estimated_counts`]); the lag is then the oldest of
    /// the sample's due items: at least that.
    pub estimated: bool,
}

/// One item, as [`DurableQueue::item`] and
/// [`dead_letters`](DurableQueue::dead_letters) read it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemRecord {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its handler's name.
    pub handler: String,
    /// Its payload, as JSON.
    pub payload: String,
    /// Its priority.
    pub priority: i16,
    /// `waiting`, `running`, `succeeded`, `dead`, `cancelled` or
    /// `discarded`.
    pub state: String,
    /// Attempts so far.
    pub attempt: u32,
    /// Attempts it may have.
    pub max_attempts: u32,
    /// Its idempotency key.
    pub key: Option<String>,
    /// When it was enqueued.
    pub enqueued: DateTime<Utc>,
    /// When it is (or was last) due.
    pub run_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Why it finished as it did, for a dead letter.
    pub error: Option<String>,
    /// Its failed attempts, as a JSON array of `{attempt, at, error,
    /// instance}`.
    pub attempts: String,
}

impl ItemRecord {
    fn from_row(row: &tokio_postgres::Row) -> ItemRecord {
        ItemRecord {
            id: row.get(0),
            queue: row.get(1),
            handler: row.get(2),
            payload: row.get(3),
            priority: row.get(4),
            state: row.get(5),
            attempt: row.get::<_, i32>(6).max(0) as u32,
            max_attempts: row.get::<_, i32>(7).max(0) as u32,
            key: row.get(8),
            enqueued: row.get(9),
            run_at: row.get(10),
            started: row.get(11),
            finished: row.get(12),
            error: row.get(13),
            attempts: row.get(14),
        }
    }
}

/// Counters of one instance's durable queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableStats {
    /// Items this instance enqueued (new ones, not duplicates).
    pub enqueued: u64,
    /// Enqueues whose key was held: [`Enqueued::Duplicate`].
    pub duplicates: u64,
    /// Claim statements sent.
    pub claims: u64,
    /// Items claimed.
    pub claimed: u64,
    /// Items that succeeded here.
    pub succeeded: u64,
    /// Failed attempts put back to wait with a backoff.
    pub retried: u64,
    /// Items dead-lettered here (attempts spent, or a payload that cannot
    /// be read).
    pub dead: u64,
    /// Items that ended cancelled here.
    pub cancelled: u64,
    /// Completions rejected because the claim was no longer current (the
    /// lease ran out and the item was handed out again).
    pub stale: u64,
    /// Leases lost while their items ran: their tokens were cancelled.
    pub lost: u64,
    /// Items handed back at stop without counting an attempt.
    pub released: u64,
    /// Items of dead instances this instance handed out again.
    pub rescued: u64,
    /// Notifications received.
    pub notifications: u64,
    /// Times the listener connected (1 plus its reconnects).
    pub listens: u64,
    /// Outages: times the database stopped answering.
    pub outages: u64,
}
