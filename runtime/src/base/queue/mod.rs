//! The background work queue: a bounded queue of async work items run by
//! the host's workers, the `QueueBackgroundWorkItem` of ASP.NET Core, with
//! backpressure and nothing dropped silently at shutdown.

//!
//! `options.rs` holds the settings and stats, `items.rs` the items and
//! the structures they wait in, `worker.rs` the workers; this file the
//! queue's public face.

mod items;
mod options;
mod worker;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_utils::CachePadded;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use self::items::{Arrivals, Items, Room, WorkerCounts};
pub use self::options::{QueueOptions, QueueStats, DEFAULT_QUEUE};
use crate::base::outcome::{IntoOutcome, Outcome};

/// A handle on a bounded queue of background work. Cloneable; jobs take it
/// as an argument (the default queue), other code keeps the handle it made
/// with [`TaskQueue::new`], or gets it from [`Host::queue`](crate::Host::queue)
/// or a [`HostHandle`](crate::HostHandle).
///
/// A queue belongs to the one host it is given to
/// ([`HostBuilder::queue`](crate::HostBuilder::queue)), whose workers run its
/// items once the host has started.
///
/// Each item is an async closure that gets a [`CancellationToken`]: while
/// the host runs, one that fires when the host's stop begins, and for items
/// run while the queue drains at shutdown, one that fires at the shutdown
/// deadline. Each item's token is its own: an item that cancels it, even
/// after it ended, cancels no other item and not the queue. It returns `()`
/// or `Result<(), E>`; an error or a panic (in the closure, in its future,
/// or in dropping the future) is logged with the queue's name and the
/// item's label, counted as failed, and never stops a worker.
///
/// Items live in memory: a process that dies loses what is queued, and a
/// stop counts what never ran. For work that must happen even then (an
/// email, a payment, the follow-up of a committed order), use the durable
/// queue of `hosted-postgres` (`#[queued]` handlers fed by a
/// `DurableQueue`, see [`work`](crate::seams::work)).
///
/// # Examples
///
/// ```
/// use hosted::prelude::*;
/// use hosted::TaskQueue;
///
/// #[every("1m")]
/// async fn fan_out(queue: TaskQueue) -> anyhow::Result<()> {
///     for user in 0..3 {
///         queue
///             .enqueue_detached(format!("mail user {user}"), move |_stop| async move {
///                 // send the mail
///             })
///             .await
///             .map_err(|refused| anyhow::anyhow!("{refused}"))?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct TaskQueue {
    inner: Arc<QueueInner>,
}

pub(crate) struct QueueInner {
    options: QueueOptions,
    /// The waiting items, and the workers waiting for one.
    items: Items,
    /// Cancelled when the host's stop begins: running items see it.
    stop: CancellationToken,
    /// Cancelled at the host's shutdown deadline: the token of drained
    /// items, and the end of every worker.
    deadline: CancellationToken,
    /// Set when a host takes the queue.
    attached: AtomicBool,
    /// Mirrors of `stop` and `deadline` for the checks on every item: a
    /// token's `is_cancelled` takes a lock.
    stopping: AtomicBool,
    deadline_passed: AtomicBool,
    /// Producers' and workers' counters on cache lines of their own, so
    /// that neither side's writes evict the other's.
    refused: CachePadded<AtomicU64>,
    /// One slot per worker, each written by its worker alone.
    done: Box<[CachePadded<WorkerCounts>]>,
    not_run: AtomicU64,
    /// Producers waiting for room, and what wakes them.
    room: Room,
    /// When [`TaskQueue::stats`] was read, and how many items had been
    /// pushed by then: the lag, with no cost per item.
    arrivals: std::sync::Mutex<Arrivals>,
}

impl QueueInner {
    /// A counter summed over the workers' slots.
    fn total(&self, counter: impl Fn(&WorkerCounts) -> &AtomicU64) -> u64 {
        self.done
            .iter()
            .map(|slot| counter(slot).load(Ordering::Acquire))
            .sum()
    }
}

impl fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskQueue")
            .field("name", &self.inner.options.name)
            .field("depth", &self.inner.depth())
            .finish_non_exhaustive()
    }
}

/// An item the queue did not take, handed back.
pub enum Refused<F> {
    /// The queue was full (only from the `try_` methods).
    Full(F),
    /// The host is stopping.
    Stopping(F),
}

impl<F> Refused<F> {
    /// The item, to run or drop as the caller sees fit.
    pub fn into_inner(self) -> F {
        match self {
            Refused::Full(item) | Refused::Stopping(item) => item,
        }
    }
}

impl<F> fmt::Debug for Refused<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Full(_) => "Full(..)",
            Refused::Stopping(_) => "Stopping(..)",
        })
    }
}

impl<F> fmt::Display for Refused<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Full(_) => "the queue is full",
            Refused::Stopping(_) => "the host is stopping and takes no more work",
        })
    }
}

impl<F> std::error::Error for Refused<F> {}

/// The outcome of one queued item, to await or to drop.
#[must_use = "dropping the handle is fine, but then the outcome is not seen; `enqueue_detached` skips it"]
pub struct Queued {
    done: Option<oneshot::Receiver<Outcome>>,
}

impl fmt::Debug for Queued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queued").finish_non_exhaustive()
    }
}

impl Future for Queued {
    type Output = Outcome;

    /// [`Outcome::NotRun`] if the item was dropped without running at
    /// shutdown.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match &mut self.done {
            Some(done) => Pin::new(done)
                .poll(cx)
                .map(|result| result.unwrap_or(Outcome::NotRun)),
            // Detached items hand out no handle to poll.
            None => Poll::Ready(Outcome::NotRun),
        }
    }
}

impl From<QueueOptions> for TaskQueue {
    fn from(options: QueueOptions) -> TaskQueue {
        TaskQueue::new(options)
    }
}

impl TaskQueue {
    /// A queue, to give to [`HostBuilder::queue`](crate::HostBuilder::queue)
    /// while keeping a handle on it, e.g. for a web router built before the
    /// host.
    pub fn new(options: QueueOptions) -> TaskQueue {
        let capacity = options.capacity.max(1);
        let workers = options.workers;
        TaskQueue {
            inner: Arc::new(QueueInner {
                options,
                items: Items::new(capacity),
                stop: CancellationToken::new(),
                deadline: CancellationToken::new(),
                attached: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                deadline_passed: AtomicBool::new(false),
                refused: CachePadded::new(AtomicU64::new(0)),
                done: (0..workers.max(1))
                    .map(|_| CachePadded::new(WorkerCounts::default()))
                    .collect(),
                not_run: AtomicU64::new(0),
                room: Room {
                    waiting: CachePadded::new(AtomicUsize::new(0)),
                    wake: Notify::new(),
                    low: capacity / 2,
                },
                arrivals: std::sync::Mutex::default(),
            }),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.options.name
    }

    /// Enqueues `work`, waiting while the queue is full, and returns a
    /// handle on its outcome.
    ///
    /// A producer that finds the queue full waits until the workers have
    /// taken it down to half its capacity, or until an item they take has to
    /// wait (for I/O, a timer, a lock), whichever comes first. Quick items
    /// thus wake producers once per half a queue, not once per item, which
    /// would cost the workers a system call for every item while producers
    /// outpace them; behind slow items, a producer gets in as soon as one is
    /// taken.
    ///
    /// # Errors
    ///
    /// Hands `work` back if the host is stopping, or begins to stop while
    /// this waits for room.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: dropped while waiting for room, the item is dropped and
    /// nothing was enqueued.
    pub async fn enqueue<F, Fut, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Queued, Refused<F>>
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        let (item, handle) = self.item(label, work, true)?;
        self.send(item).await.map(|()| handle)
    }

    /// Like [`enqueue`](Self::enqueue), without an outcome to await: the
    /// cheapest way to queue fire-and-forget work.
    ///
    /// # Errors
    ///
    /// As for [`enqueue`](Self::enqueue).
    pub async fn enqueue_detached<F, Fut, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<(), Refused<F>>
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        let (item, _) = self.item(label, work, false)?;
        self.send(item).await
    }

    /// Enqueues `work` if there is room now, and returns a handle on its
    /// outcome.
    ///
    /// # Errors
    ///
    /// Hands `work` back if the queue is full or the host is stopping.
    pub fn try_enqueue<F, Fut, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Queued, Refused<F>>
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        let (item, handle) = self.item(label, work, true)?;
        self.try_send(item).map(|()| handle)
    }

    /// Like [`try_enqueue`](Self::try_enqueue), without an outcome to await.
    ///
    /// # Errors
    ///
    /// As for [`try_enqueue`](Self::try_enqueue).
    pub fn try_enqueue_detached<F, Fut, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<(), Refused<F>>
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        let (item, _) = self.item(label, work, false)?;
        self.try_send(item)
    }

    /// The queue's counters now.
    pub fn stats(&self) -> QueueStats {
        let inner = &*self.inner;
        let in_flight = inner.total(|c| &c.in_flight);
        let completed = inner.total(|c| &c.completed);
        let failed = inner.total(|c| &c.failed);
        let depth = inner.depth();
        let taken = in_flight + completed + failed;
        let lag = inner
            .arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lag(tokio::time::Instant::now(), taken, taken + depth as u64);
        QueueStats {
            name: inner.options.name.clone(),
            capacity: inner.options.capacity,
            workers: inner.options.workers,
            depth,
            lag,
            in_flight,
            completed,
            failed,
            refused: inner.refused.load(Ordering::Relaxed),
            not_run: inner.not_run.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn options(&self) -> &QueueOptions {
        &self.inner.options
    }

    /// Whether a host has taken the queue.
    pub(crate) fn is_attached(&self) -> bool {
        self.inner.attached.load(Ordering::Acquire)
    }

    /// Marks the queue as taken by a host.
    pub(crate) fn attach(&self) {
        self.inner.attached.store(true, Ordering::Release);
    }

    /// The host's stop began.
    pub(crate) fn begin_stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        // Sends waiting for room, and any later, get their item back; the
        // workers can still take what is queued.
        self.inner.items.queue.close();
        self.inner.room.wake.notify_waiters();
        self.inner.stop.cancel();
    }

    /// The host's shutdown deadline passed.
    pub(crate) fn abort(&self) {
        self.inner.deadline_passed.store(true, Ordering::Release);
        self.inner.deadline.cancel();
    }

    /// Whether an item was dropped at the shutdown deadline, or is still
    /// running (its worker blocked past it).
    pub(crate) fn aborted_items(&self) -> bool {
        let inner = &*self.inner;
        inner.total(|c| &c.aborted) > 0 || inner.total(|c| &c.in_flight) > 0
    }
}

impl QueueInner {
    /// Items waiting.
    fn depth(&self) -> usize {
        self.items.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use super::items::Arrivals;
    use super::*;

    /// The oldest waiting item waited at least since the first read that
    /// counted it; nothing waiting is no lag.
    #[test]
    fn the_lag_is_the_age_of_the_first_read_that_counted_the_oldest_waiting_item() {
        let t0 = tokio::time::Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut arrivals = Arrivals::default();
        // Three items pushed by 0 ms, none taken.
        assert_eq!(arrivals.lag(at(0), 0, 3), Duration::ZERO);
        // Two more by 1,000 ms: the oldest (item 0) was counted at 0 ms.
        assert_eq!(arrivals.lag(at(1_000), 0, 5), Duration::from_millis(1_000));
        // Three taken: the oldest waiting is item 3, first counted at 1,000.
        assert_eq!(arrivals.lag(at(1_500), 3, 5), Duration::from_millis(500));
        // All taken: no lag.
        assert_eq!(arrivals.lag(at(2_000), 5, 5), Duration::ZERO);
        // One more, seen first now: it has waited no time we can tell.
        assert_eq!(arrivals.lag(at(3_000), 5, 6), Duration::ZERO);
        assert_eq!(arrivals.lag(at(4_000), 5, 6), Duration::from_millis(1_000));
        assert!(arrivals.samples.len() <= 2, "{:?}", arrivals.samples);
    }

    /// With quick items, a producer waiting on a full queue is woken once
    /// the workers have taken it down to half its capacity, not before.
    #[test]
    fn a_waiting_producer_is_woken_at_half_the_capacity() {
        let queue = TaskQueue::new(QueueOptions::default().capacity(4));
        for i in 0..4 {
            assert!(queue
                .try_enqueue_detached(format!("item {i}"), |_stop| async {})
                .is_ok());
        }
        let mut patient = pin!(queue.enqueue_detached("patient", |_stop| async {}));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            patient.as_mut().poll(&mut cx).is_pending(),
            "the queue is full"
        );
        let inner = &*queue.inner;
        let take = || {
            let item = inner.items.queue.pop().expect("an item");
            inner.room.taken(&inner.items.queue);
            item
        };
        let _first = take();
        assert!(
            patient.as_mut().poll(&mut cx).is_pending(),
            "three of four wait: not woken yet"
        );
        let _second = take();
        assert!(
            matches!(patient.as_mut().poll(&mut cx), Poll::Ready(Ok(()))),
            "two of four wait: woken, and in"
        );
        assert_eq!(queue.stats().depth, 3);
    }
}
