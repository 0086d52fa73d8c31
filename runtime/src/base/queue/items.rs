//! The queue's items: the bounded lock-free list they wait in, the
//! arrivals idle workers wait for, the room `enqueue` waits for, and each
//! item's token.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use concurrent_queue::{ConcurrentQueue, PopError, PushError};
use crossbeam_utils::CachePadded;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::{QueueInner, Queued, Refused, TaskQueue};
use crate::base::outcome::{panic_message, IntoOutcome, Outcome};

/// One queued item: its label, its outcome's sender and its work, in one
/// allocation, so a queued item costs one pointer in the channel.
pub(super) type Item = Box<dyn QueuedWork>;

pub(super) trait QueuedWork: Send {
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
pub(super) type Started = (
    Cow<'static, str>,
    Result<Pin<Box<dyn Running>>, String>,
    Option<oneshot::Sender<Outcome>>,
);

/// An item's future with its output erased to an [`Outcome`]. The item's
/// own future is boxed as it is: wrapped in a converting `async` block it
/// would be moved once more, and a future that holds a timer is hundreds of
/// bytes.
pub(super) trait Running: Send {
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

pub(super) struct Work<F> {
    pub(super) label: Cow<'static, str>,
    pub(super) done: Option<oneshot::Sender<Outcome>>,
    pub(super) work: F,
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

/// Samples of how many items a queue had been given, each with when it
/// was read, so that the oldest waiting item's age is known to within the
/// time between two reads: a timestamp on every item would cost a clock
/// read on each side and 16 bytes an item, on a queue built for items of
/// a microsecond.
#[derive(Default)]
pub(super) struct Arrivals {
    /// Oldest first: (when, items pushed by then).
    pub(super) samples: std::collections::VecDeque<(tokio::time::Instant, u64)>,
}

impl Arrivals {
    /// Notes that `pushed` items had arrived by `now`, of which `taken`
    /// have left; returns how long the oldest waiting one has waited (at
    /// least), zero if none waits.
    pub(super) fn lag(&mut self, now: tokio::time::Instant, taken: u64, pushed: u64) -> Duration {
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
pub(super) struct Items {
    pub(super) queue: ConcurrentQueue<Item>,
    /// How many workers wait for an item; read after every push.
    pub(super) idle: CachePadded<AtomicUsize>,
    pub(super) arrived: Notify,
}

impl Items {
    pub(super) fn new(capacity: usize) -> Items {
        Items {
            queue: ConcurrentQueue::bounded(capacity),
            idle: CachePadded::new(AtomicUsize::new(0)),
            arrived: Notify::new(),
        }
    }

    /// Pushes `item` if there is room, and wakes a waiting worker, if any.
    pub(super) fn push(&self, item: Item) -> Result<(), PushError<Item>> {
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
    pub(super) async fn next(
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
pub(super) struct Room {
    /// How many producers wait; read by the workers on every item taken and
    /// every item that has to wait.
    pub(super) waiting: CachePadded<AtomicUsize>,
    pub(super) wake: Notify,
    /// The depth at or below which waiting producers are woken.
    pub(super) low: usize,
}

/// One worker's counters. Only that worker writes them, so a count is a
/// load and a store rather than a locked read-modify-write, and workers
/// never write a shared cache line on an item's path; readers sum the
/// slots.
#[derive(Default)]
pub(super) struct WorkerCounts {
    pub(super) in_flight: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) failed: AtomicU64,
    /// Items dropped at the shutdown deadline (counted in `failed` too).
    pub(super) aborted: AtomicU64,
}

/// Adds `by` to a counter that one thread writes.
pub(super) fn bump(counter: &AtomicU64, by: i64) {
    let value = counter.load(Ordering::Relaxed);
    counter.store(value.wrapping_add_signed(by), Ordering::Relaxed);
}

/// The tokens a worker hands its items: each item gets a token of its own,
/// a child of the worker's token, which is a child of the queue's stop
/// token, or of its deadline token once stop has begun. An item that
/// cancels its token, even long after it ended, cancels nothing else.
///
/// The worker's own token sits between them so that making and dropping an
/// item's token locks only that worker's token, never the queue's, which
/// all of its workers share.
pub(super) struct ItemToken {
    pub(super) worker: CancellationToken,
    /// A child of `worker` that lives as long as it. tokio-util frees a
    /// token's list of children when its last child goes, so without this
    /// one every item would allocate and free that list on top of its own
    /// token; with it, the list keeps its room.
    pub(super) _anchor: CancellationToken,
    pub(super) draining: bool,
}

impl ItemToken {
    pub(super) fn new(inner: &QueueInner) -> ItemToken {
        ItemToken::under(&inner.stop, false)
    }

    pub(super) fn under(parent: &CancellationToken, draining: bool) -> ItemToken {
        let worker = parent.child_token();
        ItemToken {
            _anchor: worker.child_token(),
            worker,
            draining,
        }
    }

    /// The token for the next item.
    pub(super) fn get(&mut self, inner: &QueueInner) -> CancellationToken {
        if !self.draining && inner.stopping.load(Ordering::Acquire) {
            *self = ItemToken::under(&inner.deadline, true);
        }
        self.worker.child_token()
    }
}

impl Room {
    /// An item was taken from `rx`: wakes the waiting producers if it is
    /// down to the low-water mark. Reads the depth only when someone waits.
    pub(super) fn taken(&self, queue: &ConcurrentQueue<Item>) {
        // Pairs with the increment in `Waiting::new`: either the producer's
        // retry sees the room this take made, or this sees the producer.
        if self.waiting.load(Ordering::SeqCst) != 0 && queue.len() <= self.low {
            self.wake.notify_waiters();
        }
    }

    /// An item taken from the queue has to wait: wakes the waiting
    /// producers, if any, whatever the depth.
    pub(super) fn item_waits(&self) {
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.wake.notify_waiters();
        }
    }
}

/// A producer's registration as waiting for room, or a worker's as waiting
/// for an item, undone when it is dropped (it got what it waited for, was
/// refused, or its future was dropped).
pub(super) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub(super) fn new(waiting: &'a AtomicUsize) -> Waiting<'a> {
        waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TaskQueue {
    /// The item for `work`, and the handle on its outcome; refused at once
    /// once stop has begun.
    pub(super) fn item<F, Fut, R>(
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
    pub(super) async fn send<F: 'static>(&self, mut item: Item) -> Result<(), Refused<F>> {
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

    pub(super) fn try_send<F: 'static>(&self, item: Item) -> Result<(), Refused<F>> {
        match self.inner.items.push(item) {
            Ok(()) => Ok(()),
            Err(PushError::Full(item)) => Err(self.refuse(Refused::Full, item)),
            Err(PushError::Closed(item)) => Err(self.refuse(Refused::Stopping, item)),
        }
    }

    /// Counts a refusal and hands the item's closure back.
    pub(super) fn refuse<F: 'static>(&self, why: fn(F) -> Refused<F>, item: Item) -> Refused<F> {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        match item.into_any().downcast::<Work<F>>() {
            Ok(work) => why(work.work),
            // `item` was built from an `F` by this queue a moment ago.
            Err(_) => unreachable!("a refused item is the `Work<F>` it was built as"),
        }
    }
}
