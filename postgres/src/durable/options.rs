//! How a [`DurableQueue`](super::DurableQueue) connects, keeps its leases,
//! and limits its queues.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Error;
use crate::leases::{lease_setters, LeaseOptions};

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
    pub(crate) leases: LeaseOptions,
    pub(crate) prune_every: Duration,
    pub(crate) retention: Duration,
    pub(crate) dead_retention: Duration,
    pub(crate) key_window: Duration,
    pub(crate) notify_debounce: Duration,
    pub(crate) listen: bool,
    pub(crate) queues: HashMap<String, QueueLimits>,
    pub(crate) default_limits: QueueLimits,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            leases: LeaseOptions::new(Duration::from_secs(2), 10),
            prune_every: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
            dead_retention: Duration::from_secs(30 * 24 * 3600),
            key_window: Duration::from_secs(24 * 3600),
            notify_debounce: Duration::from_millis(2),
            listen: true,
            queues: HashMap::new(),
            default_limits: QueueLimits::default(),
        }
    }
}

impl DurableOptions {
    lease_setters!("queue", "DurableQueue::from_pool");

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

    pub(crate) fn limits(&self, queue: &str) -> QueueLimits {
        self.queues
            .get(queue)
            .copied()
            .unwrap_or(self.default_limits)
    }

    pub(super) fn check(&self) -> Result<(), Error> {
        self.leases.check(
            &[
                ("prune_every", self.prune_every),
                ("key_window", self.key_window),
            ],
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
        Ok(())
    }
}
