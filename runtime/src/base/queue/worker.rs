//! The workers: each takes items as they arrive, runs them with panics
//! caught, counts how they ended, and drains what is left at stop.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::items::{bump, Item, ItemToken, WorkerCounts};
use super::TaskQueue;
use crate::base::outcome::{panic_message, Outcome};

impl TaskQueue {
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

    pub(super) async fn run(
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
    pub(super) fn failed(&self, counts: &WorkerCounts, label: &str, outcome: &Outcome) {
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
