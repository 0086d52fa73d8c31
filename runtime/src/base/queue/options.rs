//! How a queue is set up, and what its stats say.

use std::time::Duration;

/// The name of the queue that [`TaskQueue`](crate::TaskQueue) arguments get.
pub const DEFAULT_QUEUE: &str = "default";

/// How a queue is set up; give it to
/// [`HostBuilder::queue`](crate::HostBuilder::queue).
///
/// # Examples
///
/// ```
/// use hosted::{Host, QueueOptions};
///
/// let host = Host::builder()
///     .queue(QueueOptions::default())                       // "default": 100 items, 1 worker
///     .queue(QueueOptions::named("emails").capacity(1_000).workers(8))
///     .build();
/// # drop(host);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    pub(crate) name: String,
    pub(crate) capacity: usize,
    pub(crate) workers: usize,
    pub(crate) drain: bool,
}

impl Default for QueueOptions {
    /// The default queue: 100 items, 1 worker (items run in order), drained
    /// at shutdown.
    fn default() -> Self {
        QueueOptions::named(DEFAULT_QUEUE)
    }
}

impl QueueOptions {
    /// A queue with a name of its own, with the default settings.
    pub fn named(name: impl Into<String>) -> QueueOptions {
        QueueOptions {
            name: name.into(),
            capacity: 100,
            workers: 1,
            drain: true,
        }
    }

    /// How many items may wait (default 100). Once that many wait,
    /// `enqueue` waits for room; see [`TaskQueue::enqueue`](crate::TaskQueue::enqueue) for when a
    /// waiting producer is let in.
    pub fn capacity(mut self, capacity: usize) -> QueueOptions {
        self.capacity = capacity;
        self
    }

    /// How many items run at once (default 1: in the order enqueued).
    pub fn workers(mut self, workers: usize) -> QueueOptions {
        self.workers = workers;
        self
    }

    /// At shutdown, whether waiting items still run within the shutdown
    /// timeout (`true`, the default) or are dropped without running. Either
    /// way, what did not run is counted in the [`Report`](crate::Report) and
    /// logged with its label.
    pub fn drain(mut self, drain: bool) -> QueueOptions {
        self.drain = drain;
        self
    }
}

/// A queue's counters, from [`TaskQueue::stats`](crate::TaskQueue::stats) or
/// [`HostHandle::queues`](crate::HostHandle::queues).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// How many items may wait.
    pub capacity: usize,
    /// How many items may run at once.
    pub workers: usize,
    /// Items waiting now.
    pub depth: usize,
    /// How long the oldest waiting item has waited; zero when none waits.
    /// Known to within the time between two reads of these stats: the
    /// queue notes how many items it had been given each time they are
    /// read (the `metrics` feature reads them every second), rather than
    /// stamping every item.
    pub lag: Duration,
    /// Items running now.
    pub in_flight: u64,
    /// Items that finished (returned `Ok`, or were cancelled by the stop).
    pub completed: u64,
    /// Items that returned `Err`, panicked or were aborted.
    pub failed: u64,
    /// Items handed back: the queue was full (`try_` methods) or the host
    /// was stopping.
    pub refused: u64,
    /// Items dropped without running at shutdown.
    pub not_run: u64,
}
