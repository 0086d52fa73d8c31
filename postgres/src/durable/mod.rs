//! The durable queue: named handlers of serde payloads, whose items live in
//! PostgreSQL until they succeed or are dead-lettered.

mod args;
mod batch;
mod claim;
mod complete;
mod enqueue;
mod listen;
#[cfg(feature = "metrics")]
mod metrics;
mod operate;
mod options;
mod read;
mod retry;
mod upkeep;
mod worker;

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::Pool;
use serde::Serialize;

pub use self::args::{Payload, Tx, TxClient};
pub use self::enqueue::{Enqueue, EnqueueMany, Enqueued};
pub use self::operate::CancelCounts;
#[allow(deprecated)]
pub use self::operate::Cancelled;
pub use self::options::{DurableOptions, QueueLimits};
pub use self::read::{DurableStats, ItemFilter, ItemRecord, QueueCounts};

use self::worker::Worker;
use crate::connection::Instance;
use crate::connection::{check_connection, Connection};
use crate::error::Error;
use crate::sql::QueueSql;

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
    /// The channel of wake-ups: one per schema.
    pub(crate) channel: String,
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
            .field("schema", &self.inner.options.leases.schema)
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
        let connection = Connection::open(url, &instance, &options.leases)?;
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
                sql: QueueSql::new(&options.leases.schema),
                channel: crate::sql::channel(&options.leases.schema),
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
            .map_err(|e| Error::connect_pool(e, &inner.target))?;
        crate::schema::migrate(&mut client, &inner.options.leases.schema, &inner.target).await?;
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

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| Error::pool(e, &self.inner.target))
    }

    pub(crate) fn failed(&self, error: tokio_postgres::Error) -> Error {
        Error::database(error, &self.inner.target)
    }
}
