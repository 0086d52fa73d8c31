//! The durable queue as a [`WorkSource`]: its state (the items this
//! instance holds, the wake-ups of idle claim loops, the counters) and the
//! start and stop of its tasks. Each duty is a file of its own: `claim.rs`
//! (a claim loop per queue and the run of each item), `retry.rs` (how an
//! attempt ends), `complete.rs` (writing that end), `batch.rs` (successes
//! written in batches), `upkeep.rs` (renewal, rescue, prune), `listen.rs`
//! (wake-ups through `LISTEN`/`NOTIFY`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hosted::cluster::{BoxError, BoxFuture};
use hosted::work::{HandlerOptions, WorkHost, WorkSource};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batch::finish_successes;
use super::claim::claim_loop;
use super::listen::listen;
use super::upkeep::maintain;
use super::{DurableQueue, DurableStats};
use crate::error::describe;

/// Most items one rescue statement hands out again.
pub(super) const RESCUE_BATCH: i64 = 1_000;

/// Most finished items or keys one prune statement deletes.
pub(super) const PRUNE_BATCH: i64 = 10_000;

/// The longest wait before a claim loop tries a failing database again.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a busy claim loop lets slots free up before it claims.
pub(super) const GATHER: Duration = Duration::from_millis(2);

/// How long a claim loop waits when due items exist that it could not
/// claim (another instance is claiming them).
pub(super) const CONTENDED: Duration = Duration::from_millis(10);

/// The worker's state, shared by a queue's clones.
#[derive(Default)]
pub(crate) struct Worker {
    pub(crate) counters: Counters,
    /// The items this instance runs, by id.
    pub(super) held: Mutex<HashMap<i64, Held>>,
    /// Each served queue's wake-up.
    pub(super) wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Cancelled at stop: ends the listener and the maintenance task.
    pub(super) background: Mutex<Option<CancellationToken>>,
    pub(super) notify: Mutex<NotifyGate>,
    /// Successes on their way to the batcher, which writes each batch in
    /// one statement.
    pub(super) successes: Mutex<Option<mpsc::UnboundedSender<Success>>>,
}

/// An item that succeeded, waiting for its batch's statement.
pub(super) struct Success {
    pub(super) id: i64,
    pub(super) fence: i64,
    /// `true` if it took, `false` if the claim was stale.
    pub(super) took: oneshot::Sender<Result<bool, String>>,
}

/// Most successes one statement finishes.
pub(super) const SUCCESS_BATCH: usize = 500;

pub(super) struct Held {
    pub(super) fence: i64,
    pub(super) token: CancellationToken,
    /// Someone asked to cancel it (seen at a renewal).
    pub(super) cancel: bool,
    /// Its claim is no longer current: no longer renewed.
    pub(super) lost: bool,
}

/// The debounce of notifications sent with enqueues on the pool.
#[derive(Default)]
pub(super) struct NotifyGate {
    pub(super) last: HashMap<String, Instant>,
    pub(super) dirty: HashSet<String>,
    pub(super) pending: bool,
}

/// The counters behind [`DurableStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(super) claims: AtomicU64,
    pub(super) claimed: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead: AtomicU64,
    pub(super) cancelled: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) released: AtomicU64,
    pub(super) rescued: AtomicU64,
    pub(super) notifications: AtomicU64,
    pub(super) listens: AtomicU64,
    pub(super) outages: AtomicU64,
}

impl Worker {
    pub(crate) fn stats(&self) -> DurableStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DurableStats {
            enqueued: get(&c.enqueued),
            duplicates: get(&c.duplicates),
            claims: get(&c.claims),
            claimed: get(&c.claimed),
            succeeded: get(&c.succeeded),
            retried: get(&c.retried),
            dead: get(&c.dead),
            cancelled: get(&c.cancelled),
            stale: get(&c.stale),
            lost: get(&c.lost),
            released: get(&c.released),
            rescued: get(&c.rescued),
            notifications: get(&c.notifications),
            listens: get(&c.listens),
            outages: get(&c.outages),
        }
    }

    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn waker(&self, queue: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    pub(super) fn wake(&self, queue: &str) {
        let wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = wakers.get(queue) {
            waker.notify_one();
        }
    }

    pub(super) fn wake_all(&self) {
        let wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for waker in wakers.values() {
            waker.notify_one();
        }
    }
}

/// The handlers of one queue this instance serves.
pub(super) struct QueueHandlers {
    pub(super) names: Vec<String>,
    /// By name: the host's handler number and its options.
    pub(super) by_name: HashMap<String, (usize, HandlerOptions)>,
}

/// One claimed item, as the claim statement returns it.
pub(super) struct Claimed {
    pub(super) id: i64,
    pub(super) handler: String,
    pub(super) payload: String,
    pub(super) attempt: i32,
    pub(super) max_attempts: i32,
    pub(super) fence: i64,
    pub(super) run_at: chrono::DateTime<chrono::Utc>,
    pub(super) key: Option<String>,
}

impl DurableQueue {
    pub(super) async fn start_work(&self, host: WorkHost) -> Result<(), BoxError> {
        let inner = &self.inner;
        {
            let mut background = inner
                .worker
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if background.is_some() {
                return Err(
                    "this `DurableQueue` already feeds a host; connect one queue per host".into(),
                );
            }
            *background = Some(CancellationToken::new());
        }
        self.migrate().await?;
        let mut queues: BTreeMap<String, QueueHandlers> = BTreeMap::new();
        for (index, handler) in host.handlers().enumerate() {
            if !handler.enabled {
                continue;
            }
            let entry = queues
                .entry(handler.options.queue.clone())
                .or_insert_with(|| QueueHandlers {
                    names: Vec::new(),
                    by_name: HashMap::new(),
                });
            entry.names.push(handler.name.clone());
            entry
                .by_name
                .insert(handler.name.clone(), (index, handler.options.clone()));
        }
        if queues.is_empty() {
            tracing::warn!("the durable queue has no `#[queued]` handler to run in this binary: this instance only enqueues (a handler defined in a library crate needs `use that_crate as _;` to be linked)");
        }
        let names: Vec<String> = queues.keys().cloned().collect();
        let client = self.client().await?;
        client
            .execute(&inner.sql.add_queues, &[&names])
            .await
            .map_err(|e| self.failed(e))?;
        drop(client);
        for name in &names {
            inner.worker.waker(name);
        }
        let background = inner
            .worker
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        if let Some(config) = inner.listen_config.clone() {
            tokio::spawn(listen(self.clone(), config, background.clone()));
        }
        let (successes, batches) = mpsc::unbounded_channel();
        *inner
            .worker
            .successes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(successes);
        tokio::spawn(finish_successes(self.clone(), batches, background.clone()));
        #[cfg(feature = "metrics")]
        tokio::spawn(super::metrics::durable(self.clone(), background.clone()));
        tokio::spawn(maintain(self.clone(), background));
        for (name, handlers) in queues {
            let queue = self.clone();
            let for_loop = host.clone();
            host.spawn(claim_loop(queue, for_loop, name, Arc::new(handlers)));
        }
        tracing::info!(queues = ?names, instance = %inner.instance.id, "durable queue started");
        Ok(())
    }

    pub(super) async fn stop_work(&self) {
        let inner = &self.inner;
        let held: Vec<(i64, i64)> = inner
            .worker
            .held()
            .drain()
            .map(|(id, held)| (id, held.fence))
            .collect();
        if !held.is_empty() {
            let (ids, fences): (Vec<i64>, Vec<i64>) = held.into_iter().unzip();
            match self.client().await {
                Ok(client) => match client
                    .query_one(
                        &inner.sql.release,
                        &[&ids, &fences, &inner.instance.id, &inner.channel],
                    )
                    .await
                {
                    Ok(row) => {
                        let released = row.get::<_, i64>(0) as u64;
                        inner
                            .worker
                            .counters
                            .released
                            .fetch_add(released, Ordering::Relaxed);
                        tracing::info!(released, "handed back the items that did not finish before the shutdown deadline");
                    }
                    Err(error) => {
                        tracing::warn!(error = %describe(&error, &inner.target), "could not hand back the unfinished items; they go back once their leases run out")
                    }
                },
                Err(error) => {
                    tracing::warn!(error = %error, "could not hand back the unfinished items; they go back once their leases run out")
                }
            }
        }
        if let Some(background) = inner
            .worker
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            background.cancel();
        }
    }
}

impl WorkSource for DurableQueue {
    fn start(&self, host: WorkHost) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(self.start_work(host))
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_work())
    }
}
