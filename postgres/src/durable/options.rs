//! How a [`DurableQueue`](super::DurableQueue) connects, keeps its leases,
//! and limits its queues.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Error;

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

/// The options of a [`DurableQueue`](crate::DurableQueue); the defaults suit most services.
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
    /// [`Enqueued::Duplicate`](crate::Enqueued::Duplicate) with the first item's id, whether that item
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
    /// [`DurableQueue::from_pool`](crate::DurableQueue::from_pool). A handler that takes [`Tx`](crate::Tx) holds one
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

    pub(super) fn check(&self) -> Result<(), Error> {
        crate::connection::check_schema_name(&self.schema)?;
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
        crate::connection::check_leases(
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
