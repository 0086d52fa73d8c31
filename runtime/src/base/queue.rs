//! The background work queue: a bounded queue of async work items run by
//! the host's workers, the `QueueBackgroundWorkItem` of ASP.NET Core, with
//! backpressure and nothing dropped silently at shutdown.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use concurrent_queue::{ConcurrentQueue, PopError, PushError};
use crossbeam_utils::CachePadded;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::base::outcome::{panic_message, IntoOutcome, Outcome};

/// The name of the queue that [`TaskQueue`] arguments get.
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
    /// `enqueue` waits for room; see [`TaskQueue::enqueue`] for when a
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

/// One queued item: its label, its outcome's sender and its work, in one
/// allocation, so a queued item costs one pointer in the channel.
type Item = Box<dyn QueuedWork>;

trait QueuedWork: Send {
    fn label(&self) -> &str;
    /// The item as `Any`, to hand its closure back when it was refused.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    /// Starts the work; returns its label, its future (or the message of a
    /// panic in the closure that makes it) and where its outcome goes.
    fn start(self: Box<Self>, token: CancellationToken) -> Started;
    /// The item will never run: resolves its handle.
    fn not_run(self: Box<Self>);
}

/// A started item: its label, its future (or the closure's panic), where
/// its outcome goes.
type Started = (
    Cow<'static, str>,
    Result<Pin<Box<dyn Running>>, String>,
    Option<oneshot::Sender<Outcome>>,
);

/// An item's future with its output erased to an [`Outcome`]. The item's
/// own future is boxed as it is: wrapped in a converting `async` block it
/// would be moved once more, and a future that holds a timer is hundreds of
/// bytes.
trait Running: Send {
    fn poll_outcome(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome>;
}

impl<Fut, R> Running for Fut
where
    Fut: Future<Output = R> + Send,
    R: IntoOutcome,
{
    fn poll_outcome(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.poll(cx).map(IntoOutcome::into_outcome)
    }
}

struct Work<F> {
    label: Cow<'static, str>,
    done: Option<oneshot::Sender<Outcome>>,
    work: F,
}

impl<F, Fut, R> QueuedWork for Work<F>
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoOutcome,
{
    fn label(&self) -> &str {
        &self.label
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }

    fn start(self: Box<Self>, token: CancellationToken) -> Started {
        let Work { label, done, work } = *self;
        // The closure is user code too: a panic before it returns its
        // future is the item's failure, not the worker's end.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            Box::pin(work(token)) as Pin<Box<dyn Running>>
        }))
        .map_err(|panic| panic_message(&*panic));
        (label, started, done)
    }

    fn not_run(self: Box<Self>) {
        if let Some(done) = self.done {
            let _ = done.send(Outcome::NotRun);
        }
    }
}

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

/// Samples of how many items a queue had been given, each with when it
/// was read, so that the oldest waiting item's age is known to within the
/// time between two reads: a timestamp on every item would cost a clock
/// read on each side and 16 bytes an item, on a queue built for items of
/// a microsecond.
#[derive(Default)]
struct Arrivals {
    /// Oldest first: (when, items pushed by then).
    samples: std::collections::VecDeque<(tokio::time::Instant, u64)>,
}

impl Arrivals {
    /// Notes that `pushed` items had arrived by `now`, of which `taken`
    /// have left; returns how long the oldest waiting one has waited (at
    /// least), zero if none waits.
    fn lag(&mut self, now: tokio::time::Instant, taken: u64, pushed: u64) -> Duration {
        // The samples before the one that brackets the oldest waiting item
        // are of no more use.
        while self.samples.len() > 1 && self.samples[1].1 <= taken {
            self.samples.pop_front();
        }
        let lag = if pushed <= taken {
            Duration::ZERO
        } else {
            // The first sample by which the oldest waiting item (number
            // `taken`) had arrived: it waited at least since then.
            self.samples
                .iter()
                .find(|(_, by_then)| *by_then > taken)
                .map_or(Duration::ZERO, |(at, _)| now.duration_since(*at))
        };
        if self.samples.back().is_none_or(|(_, last)| *last != pushed) {
            if self.samples.len() == 256 {
                self.samples.remove(1);
            }
            self.samples.push_back((now, pushed));
        }
        lag
    }
}

/// The waiting items: a bounded lock-free multi-producer, multi-consumer
/// queue (concurrent-queue's, the one inside async-channel), with a
/// [`Notify`] for the workers that found it empty. Closing it at stop hands
/// every later push its item back while the workers can still drain.
///
/// Not async-channel itself: its send takes the lock of its list of waiting
/// receivers on every item once any receiver has ever waited, even when
/// none waits now, and its waits take it twice more. Here a push reads one
/// counter, and only a push that finds a worker waiting wakes one; with
/// quick items that is most of the difference between a bare channel's cost
/// per item and this queue's.
struct Items {
    queue: ConcurrentQueue<Item>,
    /// How many workers wait for an item; read after every push.
    idle: CachePadded<AtomicUsize>,
    arrived: Notify,
}

impl Items {
    fn new(capacity: usize) -> Items {
        Items {
            queue: ConcurrentQueue::bounded(capacity),
            idle: CachePadded::new(AtomicUsize::new(0)),
            arrived: Notify::new(),
        }
    }

    /// Pushes `item` if there is room, and wakes a waiting worker, if any.
    fn push(&self, item: Item) -> Result<(), PushError<Item>> {
        self.queue.push(item)?;
        // Pairs with the fence in `next`: either that worker's retry sees
        // this item, or this sees the worker waiting.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.idle.load(Ordering::Relaxed) != 0 {
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// The next item, waiting for one while the queue is empty and open;
    /// `None` once it is closed and empty, or when `stop` fires first
    /// (`Err(())`).
    async fn next(
        &self,
        stop: Pin<&mut WaitForCancellationFuture<'_>>,
    ) -> Result<Option<Item>, ()> {
        let mut stop = stop;
        loop {
            match self.queue.pop() {
                Ok(item) => return Ok(Some(item)),
                Err(PopError::Closed) => return Ok(None),
                Err(PopError::Empty) => {}
            }
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let waiting = Waiting::new(&self.idle);
            std::sync::atomic::fence(Ordering::SeqCst);
            match self.queue.pop() {
                Ok(item) => return Ok(Some(item)),
                Err(PopError::Closed) => return Ok(None),
                Err(PopError::Empty) => {}
            }
            tokio::select! {
                biased;
                () = &mut arrived => {}
                () = stop.as_mut() => return Err(()),
            }
            drop(waiting);
        }
    }
}

/// Where producers wait while the queue is full.
///
/// Waking a sleeping producer costs the worker a system call. Woken for
/// every item taken from a full queue, as async-channel's own waiting `send`
/// is, a worker running quick items would spend most of its time waking
/// producers instead of running items. So a worker wakes the waiting
/// producers once the queue has drained to its low-water mark, half the
/// capacity, and they refill it in a burst; or as soon as an item it runs
/// has to wait (for I/O, a timer, a lock), when the wake-up costs nothing
/// next to the item and a producer should not wait for half a queue of
/// slow items.
struct Room {
    /// How many producers wait; read by the workers on every item taken and
    /// every item that has to wait.
    waiting: CachePadded<AtomicUsize>,
    wake: Notify,
    /// The depth at or below which waiting producers are woken.
    low: usize,
}

/// One worker's counters. Only that worker writes them, so a count is a
/// load and a store rather than a locked read-modify-write, and workers
/// never write a shared cache line on an item's path; readers sum the
/// slots.
#[derive(Default)]
struct WorkerCounts {
    in_flight: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    /// Items dropped at the shutdown deadline (counted in `failed` too).
    aborted: AtomicU64,
}

/// Adds `by` to a counter that one thread writes.
fn bump(counter: &AtomicU64, by: i64) {
    let value = counter.load(Ordering::Relaxed);
    counter.store(value.wrapping_add_signed(by), Ordering::Relaxed);
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

    /// The item for `work`, and the handle on its outcome; refused at once
    /// once stop has begun.
    fn item<F, Fut, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        work: F,
        tracked: bool,
    ) -> Result<(Item, Queued), Refused<F>>
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        if self.inner.stopping.load(Ordering::Acquire) {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Stopping(work));
        }
        let (done, handle) = if tracked {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let item: Item = Box::new(Work {
            label: label.into(),
            done,
            work,
        });
        Ok((item, Queued { done: handle }))
    }

    /// Sends `item`, waiting while the queue is full. Tries first: a send
    /// that need not wait never registers as waiting.
    async fn send<F: 'static>(&self, mut item: Item) -> Result<(), Refused<F>> {
        let room = &self.inner.room;
        let mut waiting = None;
        loop {
            // Made before the retry: a wake-up between the two is not lost.
            let woken = waiting.is_some().then(|| room.wake.notified());
            match self.inner.items.push(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Full(back)) => item = back,
                Err(PushError::Closed(back)) => return Err(self.refuse(Refused::Stopping, back)),
            }
            match woken {
                Some(woken) => woken.await,
                None => waiting = Some(Waiting::new(&room.waiting)),
            }
        }
    }

    fn try_send<F: 'static>(&self, item: Item) -> Result<(), Refused<F>> {
        match self.inner.items.push(item) {
            Ok(()) => Ok(()),
            Err(PushError::Full(item)) => Err(self.refuse(Refused::Full, item)),
            Err(PushError::Closed(item)) => Err(self.refuse(Refused::Stopping, item)),
        }
    }

    /// Counts a refusal and hands the item's closure back.
    fn refuse<F: 'static>(&self, why: fn(F) -> Refused<F>, item: Item) -> Refused<F> {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        match item.into_any().downcast::<Work<F>>() {
            Ok(work) => why(work.work),
            // `item` was built from an `F` by this queue a moment ago.
            Err(_) => unreachable!("a refused item is the `Work<F>` it was built as"),
        }
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

    /// Worker number `worker`: runs items until stop, then drains (if the
    /// queue does) until the queue is empty or the deadline fires.
    pub(crate) async fn work(self, worker: usize) {
        let inner = &*self.inner;
        let counts = &inner.done[worker];
        // Built once, not for every item or every empty wait.
        let stop = inner.stop.cancelled();
        let deadline = inner.deadline.cancelled();
        tokio::pin!(stop, deadline);
        let mut token = ItemToken::new(inner);
        loop {
            let item = if inner.stopping.load(Ordering::Acquire) {
                if !inner.options.drain || inner.deadline_passed.load(Ordering::Acquire) {
                    return;
                }
                match inner.items.queue.pop() {
                    Ok(item) => item,
                    Err(_) => return,
                }
            } else if let Ok(item) = inner.items.queue.pop() {
                // Work waiting: no waiting future to build.
                item
            } else {
                match inner.items.next(stop.as_mut()).await {
                    Ok(Some(item)) => item,
                    Ok(None) => return,
                    // Stop began: drain, or not, from the top.
                    Err(()) => continue,
                }
            };
            inner.room.taken(&inner.items.queue);
            self.run(item, token.get(inner), counts, deadline.as_mut())
                .await;
        }
    }

    async fn run(
        &self,
        item: Item,
        token: CancellationToken,
        counts: &WorkerCounts,
        mut deadline: Pin<&mut WaitForCancellationFuture<'_>>,
    ) {
        let inner = &*self.inner;
        bump(&counts.in_flight, 1);
        let (label, started, done) = item.start(token);
        // The item's own lines name its queue and label.
        let span = tracing::info_span!("item", queue = %inner.options.name, item = %label);
        let outcome = match started {
            Ok(mut work) => {
                let mut waited = false;
                // The item first: one that finishes at once never polls the
                // deadline.
                let outcome = std::future::poll_fn(|cx| {
                    let _entered = (!span.is_disabled()).then(|| span.enter());
                    match std::panic::catch_unwind(AssertUnwindSafe(|| {
                        work.as_mut().poll_outcome(cx)
                    })) {
                        Ok(Poll::Ready(outcome)) => Poll::Ready(outcome),
                        Ok(Poll::Pending) => {
                            if !waited {
                                waited = true;
                                inner.room.item_waits();
                            }
                            deadline.as_mut().poll(cx).map(|()| Outcome::Aborted)
                        }
                        Err(panic) => Poll::Ready(Outcome::Panicked(panic_message(&*panic))),
                    }
                })
                .await;
                // Whatever the item holds is released before its outcome is
                // seen; a panic in a destructor fails the item, not the
                // worker.
                match std::panic::catch_unwind(AssertUnwindSafe(move || drop(work))) {
                    Ok(()) => outcome,
                    Err(panic) => Outcome::Panicked(format!(
                        "panicked while being dropped: {}",
                        panic_message(&*panic)
                    )),
                }
            }
            Err(panic) => Outcome::Panicked(panic),
        };
        bump(&counts.in_flight, -1);
        if let Outcome::Succeeded | Outcome::Cancelled = outcome {
            bump(&counts.completed, 1);
        } else {
            self.failed(counts, &label, &outcome);
        }
        if let Some(done) = done {
            let _ = done.send(outcome);
        }
    }

    /// Counts and logs an item that failed or was aborted.
    #[cold]
    fn failed(&self, counts: &WorkerCounts, label: &str, outcome: &Outcome) {
        let inner = &*self.inner;
        bump(&counts.failed, 1);
        if let Outcome::Aborted = outcome {
            bump(&counts.aborted, 1);
            tracing::warn!(queue = %inner.options.name, item = %label, "item aborted at the shutdown deadline");
        } else {
            tracing::error!(queue = %inner.options.name, item = %label, error = %outcome, "item failed");
        }
    }

    /// After the workers: closes the queue and counts, logs and resolves as
    /// not run every item still in it. Returns how many there were.
    pub(crate) fn close(&self) -> u64 {
        let inner = &*self.inner;
        // Closed since stop began: nothing can arrive after this drain.
        inner.items.queue.close();
        let mut count = 0;
        while let Ok(item) = inner.items.queue.pop() {
            count += 1;
            tracing::warn!(queue = %inner.options.name, item = %item.label(), "not run: the host stopped first");
            item.not_run();
        }
        inner.not_run.fetch_add(count, Ordering::Relaxed);
        count
    }
}

/// The tokens a worker hands its items: each item gets a token of its own,
/// a child of the worker's token, which is a child of the queue's stop
/// token, or of its deadline token once stop has begun. An item that
/// cancels its token, even long after it ended, cancels nothing else.
///
/// The worker's own token sits between them so that making and dropping an
/// item's token locks only that worker's token, never the queue's, which
/// all of its workers share.
struct ItemToken {
    worker: CancellationToken,
    /// A child of `worker` that lives as long as it. tokio-util frees a
    /// token's list of children when its last child goes, so without this
    /// one every item would allocate and free that list on top of its own
    /// token; with it, the list keeps its room.
    _anchor: CancellationToken,
    draining: bool,
}

impl ItemToken {
    fn new(inner: &QueueInner) -> ItemToken {
        ItemToken::under(&inner.stop, false)
    }

    fn under(parent: &CancellationToken, draining: bool) -> ItemToken {
        let worker = parent.child_token();
        ItemToken {
            _anchor: worker.child_token(),
            worker,
            draining,
        }
    }

    /// The token for the next item.
    fn get(&mut self, inner: &QueueInner) -> CancellationToken {
        if !self.draining && inner.stopping.load(Ordering::Acquire) {
            *self = ItemToken::under(&inner.deadline, true);
        }
        self.worker.child_token()
    }
}

impl Room {
    /// An item was taken from `rx`: wakes the waiting producers if it is
    /// down to the low-water mark. Reads the depth only when someone waits.
    fn taken(&self, queue: &ConcurrentQueue<Item>) {
        // Pairs with the increment in `Waiting::new`: either the producer's
        // retry sees the room this take made, or this sees the producer.
        if self.waiting.load(Ordering::SeqCst) != 0 && queue.len() <= self.low {
            self.wake.notify_waiters();
        }
    }

    /// An item taken from the queue has to wait: wakes the waiting
    /// producers, if any, whatever the depth.
    fn item_waits(&self) {
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.wake.notify_waiters();
        }
    }
}

/// A producer's registration as waiting for room, or a worker's as waiting
/// for an item, undone when it is dropped (it got what it waited for, was
/// refused, or its future was dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiting: &'a AtomicUsize) -> Waiting<'a> {
        waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl QueueInner {
    /// Items waiting.
    fn depth(&self) -> usize {
        self.items.queue.len()
    }
}

/// A queue's counters, from [`TaskQueue::stats`] or
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

#[cfg(test)]
mod tests {
    use std::pin::pin;

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
    use std::task::{Context, Poll, Waker};

    use super::*;

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
