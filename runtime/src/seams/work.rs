//! The seam a durable queue plugs into: queued handlers (jobs of
//! [`JobKind::Queued`](crate::JobKind::Queued), declared with `#[queued]` of `hosted-postgres`),
//! the [`WorkItem`] a run of one is given, and the [`WorkSource`] trait a
//! durable queue implements to be started, fed and stopped with the host.
//!
//! The host knows nothing of where items are kept. It checks a handler's
//! arguments at `build()` like any job's, and runs an item when its source
//! asks ([`WorkHost::run`]): with the handler's typed arguments, its scoped
//! values, its counters and its span, under the host's stop and shutdown
//! deadline. What an item's outcome means (done, retried, dead-lettered),
//! and every write to the store, are the source's.
//!
//! Pick by what the work needs: [`TaskQueue`](crate::TaskQueue) holds
//! closures in memory, costs nothing to enqueue, and loses what is queued
//! when the process dies (at stop it counts what never ran); a durable
//! queue (`hosted_postgres::DurableQueue`) keeps named items with serde
//! payloads in PostgreSQL, retries them, and hands a killed process's
//! items to another.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::HostSide;
use crate::base::outcome::Outcome;
use crate::seams::cluster::{BoxError, BoxFuture};

/// What a queued handler declares about its items: from `#[queued]`'s
/// options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// The queue its items go to (`"default"`).
    pub queue: String,
    /// Attempts before an item is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// How long one attempt may run before it is cut off and failed; zero
    /// for no limit.
    pub timeout: Duration,
    /// The delay before the first retry; it doubles with each attempt.
    pub backoff_min: Duration,
    /// The longest delay between two attempts.
    pub backoff_max: Duration,
    /// The priority of its items unless the enqueue says otherwise: higher
    /// runs first.
    pub priority: i16,
}

impl HandlerOptions {
    /// Checks the options; the error says what to change.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.queue.trim().is_empty() || self.queue.trim() != self.queue {
            return Err(
                "the queue's name must be non-empty, without leading or trailing whitespace"
                    .to_owned(),
            );
        }
        if self.max_attempts == 0 {
            return Err("`max_attempts` is 0; an item needs at least one attempt".to_owned());
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(format!(
                "the backoff {:?}..{:?} is empty; give a positive first delay no longer than the longest",
                self.backoff_min, self.backoff_max
            ));
        }
        Ok(())
    }

    /// The delay before attempt `next` (from 2), given a random `unit` in
    /// `[0, 1)`: `backoff_min * 2^(next-2)`, capped at `backoff_max`, then
    /// scaled into `[0.5, 1]` of itself ("equal jitter"), so that items
    /// that failed together do not come back together.
    pub fn retry_delay(&self, next: u32, unit: f64) -> Duration {
        let doublings = next.saturating_sub(2).min(32);
        let full = self
            .backoff_min
            .saturating_mul(1_u32 << doublings.min(31))
            .min(self.backoff_max);
        full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// One item a queued handler runs: what its durable queue knows of it.
/// Cheap to clone. A handler takes it as an argument to see its attempt,
/// its id or its token.
///
/// # Examples
///
/// ```
/// use hosted::work::WorkItem;
///
/// async fn handler(item: WorkItem) {
///     if item.attempt() > 1 {
///         tracing::warn!(item = item.id(), attempt = item.attempt(), "retrying");
///     }
/// }
/// # drop(handler);
/// ```
#[derive(Clone)]
pub struct WorkItem {
    inner: Arc<ItemInner>,
}

struct ItemInner {
    parts: ItemParts,
    data: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for WorkItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner.parts;
        f.debug_struct("WorkItem")
            .field("id", &i.id)
            .field("queue", &i.queue)
            .field("attempt", &i.attempt)
            .field("max_attempts", &i.max_attempts)
            .field("fence", &i.fence)
            .field("key", &i.key)
            .finish_non_exhaustive()
    }
}

/// The parts of a [`WorkItem`], as its source fills them in.
#[derive(Debug)]
#[non_exhaustive]
pub struct ItemParts {
    /// The item's id in its store.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// This attempt, from 1.
    pub attempt: u32,
    /// The attempts it may have.
    pub max_attempts: u32,
    /// A number that grows with each claim of the item: a late completion
    /// of an earlier claim carries a lower one.
    pub fence: i64,
    /// The payload as its store keeps it (JSON text for `hosted-postgres`).
    pub payload: String,
    /// When it was due.
    pub scheduled: DateTime<Utc>,
    /// Its idempotency key, if it was enqueued with one.
    pub key: Option<String>,
    /// Cancelled when the run must end: the host stops, the lease is lost,
    /// or the item was cancelled.
    pub token: CancellationToken,
}

impl ItemParts {
    /// The parts of an item with `id`, `payload` and `token`; the rest at
    /// their first-attempt defaults.
    pub fn new(id: i64, payload: String, token: CancellationToken) -> ItemParts {
        ItemParts {
            id,
            queue: crate::base::queue::DEFAULT_QUEUE.to_owned(),
            attempt: 1,
            max_attempts: 1,
            fence: 1,
            payload,
            scheduled: DateTime::<Utc>::UNIX_EPOCH,
            key: None,
            token,
        }
    }
}

impl WorkItem {
    /// An item from its `parts`, carrying `data`: whatever its source needs
    /// to find again in the handler's arguments (see [`data`](Self::data)).
    pub fn new(parts: ItemParts, data: impl Any + Send + Sync) -> WorkItem {
        WorkItem {
            inner: Arc::new(ItemInner {
                parts,
                data: Box::new(data),
            }),
        }
    }

    /// The item's id in its store.
    pub fn id(&self) -> i64 {
        self.inner.parts.id
    }

    /// Its queue.
    pub fn queue(&self) -> &str {
        &self.inner.parts.queue
    }

    /// This attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.parts.attempt
    }

    /// The attempts it may have; the last failed one dead-letters it.
    pub fn max_attempts(&self) -> u32 {
        self.inner.parts.max_attempts
    }

    /// Whether this is its last attempt.
    pub fn is_last_attempt(&self) -> bool {
        self.inner.parts.attempt >= self.inner.parts.max_attempts
    }

    /// The fencing number of this claim of the item: pass it with external
    /// writes, which refuse a lower one than they saw (see
    /// [`Fence`](crate::seams::cluster::Fence)).
    pub fn fence(&self) -> i64 {
        self.inner.parts.fence
    }

    /// The payload as the store keeps it.
    pub fn payload(&self) -> &str {
        &self.inner.parts.payload
    }

    /// When it was due.
    pub fn scheduled(&self) -> DateTime<Utc> {
        self.inner.parts.scheduled
    }

    /// Its idempotency key, if any.
    pub fn key(&self) -> Option<&str> {
        self.inner.parts.key.as_deref()
    }

    /// Cancelled when the run must end: the host stops, the item's lease is
    /// lost, or the item was cancelled.
    pub fn token(&self) -> &CancellationToken {
        &self.inner.parts.token
    }

    /// The data its source attached, if it is a `T`.
    pub fn data<T: Any>(&self) -> Option<&T> {
        self.inner.data.downcast_ref()
    }
}

/// A durable queue, as the host sees it: started before any service,
/// stopped after every run ended. `hosted-postgres` implements it on
/// PostgreSQL; give one to
/// [`HostBuilder::durable`](crate::HostBuilder::durable).
pub trait WorkSource: Send + Sync + 'static {
    /// Called once as the host starts: connects, prepares the store, and
    /// starts claiming items for the handlers [`WorkHost::handlers`] lists,
    /// running each with [`WorkHost::run`] in a task of
    /// [`WorkHost::spawn`]. An error fails the host's startup.
    fn start(&self, host: WorkHost) -> BoxFuture<'_, Result<(), BoxError>>;

    /// Called once as the host stops, after every run ended or was dropped
    /// at the shutdown deadline: releases the items this instance still
    /// holds, so that another takes them at once.
    fn stop(&self) -> BoxFuture<'_, ()>;
}

/// A queued handler of the host, as [`WorkHost::handlers`] lists it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HandlerInfo {
    /// Its stable name: the identity of its items.
    pub name: String,
    /// What it declared.
    pub options: HandlerOptions,
    /// `false`: disabled by configuration; this instance runs none of its
    /// items.
    pub enabled: bool,
}

/// What a [`WorkSource`] may ask of the host it feeds. Holds the host
/// weakly: a source that outlives its host gets `None` and `false`.
#[derive(Clone)]
pub struct WorkHost {
    host: Weak<dyn HostSide>,
    handlers: Arc<[(usize, HandlerInfo)]>,
}

impl fmt::Debug for WorkHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkHost")
            .field("handlers", &self.handlers.len())
            .finish_non_exhaustive()
    }
}

impl WorkHost {
    pub(crate) fn new(host: Weak<dyn HostSide>, handlers: Arc<[(usize, HandlerInfo)]>) -> WorkHost {
        WorkHost { host, handlers }
    }

    /// The host's queued handlers, in the order [`run`](Self::run) refers
    /// to them.
    pub fn handlers(&self) -> impl ExactSizeIterator<Item = &HandlerInfo> + '_ {
        self.handlers.iter().map(|(_, info)| info)
    }

    /// Runs `item` with handler number `handler`: with its arguments,
    /// scoped values, counters and span, cut off after its timeout, and
    /// ended as [`Outcome::Aborted`] at the shutdown deadline. `None` if
    /// the host is gone or the handler unknown or disabled.
    ///
    /// A payload its handler's `Payload<T>` could not read fails the run
    /// with an argument error; the source learns it from the data it
    /// attached to the item.
    pub fn run(
        &self,
        handler: usize,
        item: WorkItem,
    ) -> Option<impl Future<Output = Outcome> + Send + 'static> {
        let host = self.host.upgrade()?;
        let (index, info) = self.handlers.get(handler)?;
        if !info.enabled {
            return None;
        }
        let timeout = (!info.options.timeout.is_zero()).then_some(info.options.timeout);
        host.run_item(*index, item, timeout)
    }

    /// Spawns `task` on the host's tracker: the host's stop waits for it
    /// (up to the shutdown deadline) before it stops the sources. `false`
    /// if the host is gone or its tracker closed; the task is then dropped.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        match self.host.upgrade().map(|host| host.tracker()) {
            Some(tracker) if !tracker.is_closed() => {
                tracker.spawn(task);
                true
            }
            _ => false,
        }
    }

    /// The host's stop token: cancelled when the host begins to stop. A
    /// source stops claiming then.
    pub fn stop_token(&self) -> CancellationToken {
        super::stop_token_of(&self.host)
    }

    /// Fired once the host has started (every service's `start` and
    /// `started` done): a source starts claiming then, so that no item
    /// runs before the services it may use. Never fired if startup fails
    /// or the host is gone.
    pub fn started(&self) -> CancellationToken {
        match self.host.upgrade() {
            Some(host) => host.started(),
            None => CancellationToken::new(),
        }
    }

    /// Whether the host still exists.
    pub fn is_alive(&self) -> bool {
        self.host.strong_count() > 0
    }
}
