//! The durable queue as a [`WorkSource`]: a claim loop per queue, a task
//! per item (run by the host, completed here), one maintenance task that
//! renews leases, rescues items of dead instances and prunes, and a
//! listener on a connection of its own that wakes idle claim loops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Object;
use hosted::cluster::{BoxError, BoxFuture};
use hosted::work::{HandlerOptions, ItemParts, WorkHost, WorkItem, WorkSource};
use hosted::Outcome;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::args::ItemData;
use super::{DurableQueue, DurableStats};
use crate::error::describe;

/// Most items one rescue statement hands out again.
const RESCUE_BATCH: i64 = 1_000;

/// Most finished items or keys one prune statement deletes.
const PRUNE_BATCH: i64 = 10_000;

/// The longest wait before a claim loop tries a failing database again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a busy claim loop lets slots free up before it claims.
const GATHER: Duration = Duration::from_millis(2);

/// How long a claim loop waits when due items exist that it could not
/// claim (another instance is claiming them).
const CONTENDED: Duration = Duration::from_millis(10);

/// The worker's state, shared by a queue's clones.
#[derive(Default)]
pub(crate) struct Worker {
    pub(crate) counters: Counters,
    /// The items this instance runs, by id.
    held: Mutex<HashMap<i64, Held>>,
    /// Each served queue's wake-up.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Cancelled at stop: ends the listener and the maintenance task.
    background: Mutex<Option<CancellationToken>>,
    notify: Mutex<NotifyGate>,
    /// Successes on their way to the batcher, which writes each batch in
    /// one statement.
    successes: Mutex<Option<mpsc::UnboundedSender<Success>>>,
}

/// An item that succeeded, waiting for its batch's statement.
struct Success {
    id: i64,
    fence: i64,
    /// `true` if it took, `false` if the claim was stale.
    took: oneshot::Sender<Result<bool, String>>,
}

/// Most successes one statement finishes.
const SUCCESS_BATCH: usize = 500;

struct Held {
    fence: i64,
    token: CancellationToken,
    /// Someone asked to cancel it (seen at a renewal).
    cancel: bool,
    /// Its claim is no longer current: no longer renewed.
    lost: bool,
}

/// The debounce of notifications sent with enqueues on the pool.
#[derive(Default)]
struct NotifyGate {
    last: HashMap<String, Instant>,
    dirty: HashSet<String>,
    pending: bool,
}

/// The counters behind [`DurableStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    claims: AtomicU64,
    claimed: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    cancelled: AtomicU64,
    stale: AtomicU64,
    lost: AtomicU64,
    released: AtomicU64,
    rescued: AtomicU64,
    notifications: AtomicU64,
    listens: AtomicU64,
    outages: AtomicU64,
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

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    fn wake(&self, queue: &str) {
        let wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = wakers.get(queue) {
            waker.notify_one();
        }
    }

    fn wake_all(&self) {
        let wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for waker in wakers.values() {
            waker.notify_one();
        }
    }
}

/// The handlers of one queue this instance serves.
struct QueueHandlers {
    names: Vec<String>,
    /// By name: the host's handler number and its options.
    by_name: HashMap<String, (usize, HandlerOptions)>,
}

/// One claimed item, as the claim statement returns it.
struct Claimed {
    id: i64,
    handler: String,
    payload: String,
    attempt: i32,
    max_attempts: i32,
    fence: i64,
    run_at: chrono::DateTime<chrono::Utc>,
    key: Option<String>,
}

impl DurableQueue {
    /// Whether an enqueue on the pool sends its notification itself: not
    /// when every one of its queues was notified within the debounce.
    pub(crate) fn notify_now(&self, queues: &[&str]) -> bool {
        let debounce = self.inner.options.notify_debounce;
        if debounce.is_zero() {
            return true;
        }
        let now = Instant::now();
        let mut gate = self
            .inner
            .worker
            .notify
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let recent = queues.iter().all(|q| {
            gate.last
                .get(*q)
                .is_some_and(|at| now.duration_since(*at) < debounce)
        });
        if !recent {
            for q in queues {
                gate.last.insert((*q).to_owned(), now);
            }
        }
        !recent
    }

    /// After an enqueue that sent no notification committed: one trailing
    /// notification per queue goes out at the end of the debounce, so the
    /// last enqueue of a burst still wakes a worker.
    pub(crate) fn notify_later(&self, queues: &[String]) {
        let worker = &self.inner.worker;
        {
            let mut gate = worker.notify.lock().unwrap_or_else(PoisonError::into_inner);
            gate.dirty.extend(queues.iter().cloned());
            if gate.pending {
                return;
            }
            gate.pending = true;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(queue.inner.options.notify_debounce).await;
            let dirty: Vec<String> = {
                let mut gate = queue
                    .inner
                    .worker
                    .notify
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                gate.pending = false;
                let now = Instant::now();
                let dirty: Vec<String> = gate.dirty.drain().collect();
                for q in &dirty {
                    gate.last.insert(q.clone(), now);
                }
                dirty
            };
            if let Ok(client) = queue.client().await {
                for q in dirty {
                    let sent = client
                        .execute("SELECT pg_notify($1, $2)", &[&queue.inner.sql.channel, &q])
                        .await;
                    if let Err(error) = sent {
                        tracing::debug!(queue = %q, error = %error, "could not send a trailing notification; the queue's poll covers it");
                    }
                }
            }
        });
    }

    async fn start_work(&self, host: WorkHost) -> Result<(), BoxError> {
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
            .map_err(|e| self.failed(&e))?;
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
        tokio::spawn(crate::telemetry::durable(self.clone(), background.clone()));
        tokio::spawn(maintain(self.clone(), background));
        for (name, handlers) in queues {
            let queue = self.clone();
            let for_loop = host.clone();
            host.spawn(claim_loop(queue, for_loop, name, Arc::new(handlers)));
        }
        tracing::info!(queues = ?names, instance = %inner.instance.id, "durable queue started");
        Ok(())
    }

    async fn stop_work(&self) {
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
                        &[&ids, &fences, &inner.instance.id, &inner.sql.channel],
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

    /// Claims up to `room` items of `queue`; with a cluster-wide limit,
    /// under the queue's row lock, counting what runs anywhere.
    async fn claim(
        &self,
        queue: &str,
        handlers: &[String],
        room: usize,
        cluster: Option<u32>,
    ) -> Result<Vec<Claimed>, String> {
        let inner = &self.inner;
        let sql = &inner.sql;
        let lease = inner.options.lease.as_secs_f64();
        let described = |e: tokio_postgres::Error| describe(&e, &inner.target);
        let mut client = self.client().await.map_err(|e| e.to_string())?;
        inner.worker.counters.claims.fetch_add(1, Ordering::Relaxed);
        let rows = match cluster {
            None => {
                let limit = i64::try_from(room).unwrap_or(i64::MAX);
                let claim = client.prepare_cached(&sql.claim).await.map_err(described)?;
                client
                    .query(
                        &claim,
                        &[&queue, &handlers, &limit, &inner.instance.id, &lease],
                    )
                    .await
                    .map_err(described)?
            }
            Some(limit) => {
                let tx = client.transaction().await.map_err(described)?;
                tx.query(&sql.lock_queue, &[&queue])
                    .await
                    .map_err(described)?;
                let running: i32 = tx
                    .query_one(&sql.running_in_queue, &[&queue])
                    .await
                    .map_err(described)?
                    .get(0);
                let free = i64::from(limit).saturating_sub(i64::from(running)).max(0);
                let limit = free.min(i64::try_from(room).unwrap_or(i64::MAX));
                let rows = if limit > 0 {
                    let claim = tx.prepare_cached(&sql.claim).await.map_err(described)?;
                    tx.query(
                        &claim,
                        &[&queue, &handlers, &limit, &inner.instance.id, &lease],
                    )
                    .await
                    .map_err(described)?
                } else {
                    Vec::new()
                };
                tx.commit().await.map_err(described)?;
                rows
            }
        };
        let claimed: Vec<Claimed> = rows
            .iter()
            .map(|row| Claimed {
                id: row.get(0),
                handler: row.get(1),
                payload: row.get(2),
                attempt: row.get(3),
                max_attempts: row.get(4),
                fence: row.get(5),
                run_at: row.get(6),
                key: row.get(7),
            })
            .collect();
        inner
            .worker
            .counters
            .claimed
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        Ok(claimed)
    }

    /// Seconds until the queue's next waiting item is due (of any handler:
    /// an item of a handler this instance lacks wakes it early, harmlessly).
    async fn next_due(&self, queue: &str) -> Option<f64> {
        let client = self.client().await.ok()?;
        let next_due = client.prepare_cached(&self.inner.sql.next_due).await.ok()?;
        let row = client.query_one(&next_due, &[&queue]).await.ok()?;
        row.get(0)
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

/// Claims and starts the items of one queue until the host stops: as many
/// as there is room for, then waits for a wake-up, the next due item, a
/// freed slot, or the fallback poll.
async fn claim_loop(
    queue: DurableQueue,
    host: WorkHost,
    name: String,
    handlers: Arc<QueueHandlers>,
) {
    let stop = host.stop_token();
    let started = host.started();
    tokio::select! {
        () = started.cancelled() => {}
        () = stop.cancelled() => return,
    }
    let options = &queue.inner.options;
    let limits = options.limits(&name);
    let running = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(Notify::new());
    let waker = queue.inner.worker.waker(&name);
    let mut failing: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    // Room below half the limit while items run: gather for a moment
    // first (once), then claim.
    let half = (limits.per_instance / 2).max(1);
    let mut gathered = false;
    loop {
        if stop.is_cancelled() {
            break;
        }
        let room = limits
            .per_instance
            .saturating_sub(running.load(Ordering::Acquire));
        if room == 0 {
            tokio::select! {
                () = freed.notified() => continue,
                () = stop.cancelled() => break,
            }
        }
        if room < half && !gathered {
            // Busy: let a few more slots free up, so that one claim takes
            // several items rather than one claim per finished item.
            gathered = true;
            let gather = tokio::time::sleep(GATHER);
            tokio::pin!(gather);
            loop {
                tokio::select! {
                    () = &mut gather => break,
                    () = freed.notified() => {
                        let room = limits.per_instance.saturating_sub(running.load(Ordering::Acquire));
                        if room >= half {
                            break;
                        }
                    }
                    () = stop.cancelled() => break,
                }
            }
            continue;
        }
        gathered = false;
        match queue
            .claim(&name, &handlers.names, room, limits.cluster)
            .await
        {
            Ok(items) => {
                if let Some(since) = failing.take() {
                    tracing::info!(queue = %name, after = ?since.elapsed(), "the durable queue reached the database again");
                    backoff = Duration::from_millis(100);
                }
                let claimed = items.len();
                for item in items {
                    let Some((index, handler)) = handlers.by_name.get(&item.handler).cloned()
                    else {
                        continue;
                    };
                    running.fetch_add(1, Ordering::AcqRel);
                    let task = run_claimed(
                        queue.clone(),
                        host.clone(),
                        index,
                        handler,
                        name.clone(),
                        item,
                        running.clone(),
                        freed.clone(),
                    );
                    if !host.spawn(task) {
                        running.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                if claimed >= room {
                    continue;
                }
                let wait = match queue.next_due(&name).await {
                    Some(secs) if secs <= 0.0 => CONTENDED,
                    Some(secs) => Duration::from_secs_f64(secs).min(options.poll_every),
                    None => options.poll_every,
                };
                tokio::select! {
                    () = waker.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => break,
                }
            }
            Err(error) => {
                if failing.is_none() {
                    failing = Some(Instant::now());
                    let counters = &queue.inner.worker.counters;
                    counters.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(queue = %name, error = %error, "the durable queue cannot reach the database; claiming nothing until it can");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => break,
                }
                backoff = (backoff * 2)
                    .min(MAX_BACKOFF)
                    .min(options.poll_every.max(Duration::from_millis(100)));
            }
        }
    }
}

/// How an item's attempt ends in the store.
enum Decision {
    /// Moved to `finished` in this state, with this error.
    Finish(&'static str, Option<String>),
    /// Back to wait, after this delay, with this error.
    Retry(String, Duration),
    /// Handed back without counting the attempt (stopped by the host).
    Release,
}

/// Runs one claimed item with its handler, then completes it.
#[allow(clippy::too_many_arguments)]
async fn run_claimed(
    queue: DurableQueue,
    host: WorkHost,
    handler: usize,
    options: HandlerOptions,
    queue_name: String,
    claimed: Claimed,
    running: Arc<AtomicUsize>,
    freed: Arc<Notify>,
) {
    let inner = &queue.inner;
    let token = host.stop_token().child_token();
    inner.worker.held().insert(
        claimed.id,
        Held {
            fence: claimed.fence,
            token: token.clone(),
            cancel: false,
            lost: false,
        },
    );
    let data = ItemData::new(inner.pool.clone(), inner.target.clone());
    let tx = data.tx.clone();
    let mut parts = ItemParts::new(claimed.id, claimed.payload, token);
    parts.queue = queue_name.clone();
    parts.attempt = claimed.attempt.max(1) as u32;
    parts.max_attempts = claimed.max_attempts.max(1) as u32;
    parts.fence = claimed.fence;
    parts.scheduled = claimed.run_at;
    parts.key = claimed.key;
    let item = WorkItem::new(parts, data);
    let outcome = match host.run(handler, item.clone()) {
        Some(run) => run.await,
        None => Outcome::Cancelled,
    };
    let done = || {
        running.fetch_sub(1, Ordering::AcqRel);
        freed.notify_one();
    };
    if outcome == Outcome::Aborted {
        // Dropped at the shutdown deadline: the item stays held, and the
        // stop hands it back. Its transaction's connection is closed.
        drop(tx.take().await.map(Object::take));
        done();
        return;
    }
    let cancel_asked = inner
        .worker
        .held()
        .get(&claimed.id)
        .is_some_and(|held| held.cancel);
    let unreadable = item
        .data::<ItemData>()
        .and_then(|data| data.unreadable.get().cloned());
    let attempt = item.attempt();
    let decision = match &outcome {
        Outcome::Succeeded => Decision::Finish("succeeded", None),
        Outcome::Cancelled if cancel_asked => Decision::Finish("cancelled", None),
        Outcome::Cancelled => Decision::Release,
        Outcome::Failed(error) | Outcome::Panicked(error) => {
            let error = match &outcome {
                Outcome::Panicked(_) => format!("panicked: {error}"),
                _ => error.clone(),
            };
            match unreadable {
                Some(unreadable) => Decision::Finish("dead", Some(unreadable)),
                None if cancel_asked => Decision::Finish("cancelled", Some(error)),
                None if attempt >= item.max_attempts() => Decision::Finish("dead", Some(error)),
                None => {
                    let unit = random_unit(claimed.id, claimed.fence);
                    Decision::Retry(error, options.retry_delay(attempt + 1, unit))
                }
            }
        }
        Outcome::Aborted | Outcome::NotRun => Decision::Release,
    };
    let fields = (claimed.id, attempt, &queue_name);
    complete(&queue, fields, claimed.fence, decision, tx.take().await).await;
    inner.worker.held().remove(&claimed.id);
    done();
}

/// Writes an item's end: in its transaction when the handler used one
/// (a success commits the handler's writes with it), else on the pool. A
/// write the store rejects because the claim is no longer current is
/// counted as stale; one that cannot reach the store is tried again while
/// the lease may still hold.
async fn complete(
    queue: &DurableQueue,
    (id, attempt, queue_name): (i64, u32, &String),
    fence: i64,
    decision: Decision,
    tx: Option<Object>,
) {
    let inner = &queue.inner;
    let counters = &inner.worker.counters;
    let mut decision = decision;
    if let Some(client) = tx {
        let failed = if let Decision::Finish("succeeded", None) = &decision {
            match finish_in(&client, queue, id, fence, "succeeded", None).await {
                Ok(true) => match client.batch_execute("COMMIT").await {
                    Ok(()) => {
                        counters.succeeded.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(queue = %queue_name, item = id, attempt, "item succeeded");
                        return;
                    }
                    Err(error) => Some(format!(
                        "its transaction did not commit: {}",
                        describe(&error, &inner.target)
                    )),
                },
                Ok(false) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    stale(queue, id, attempt, queue_name);
                    return;
                }
                Err(error) => Some(format!("its completion failed: {error}")),
            }
        } else {
            None
        };
        match failed {
            // The handler's writes and the completion are gone together:
            // the attempt failed. The connection is closed, not reused.
            Some(error) => {
                drop(Object::take(client));
                decision = Decision::Retry(error, Duration::from_secs(1));
            }
            // Any other end rolls the handler's writes back.
            None => {
                if client.batch_execute("ROLLBACK").await.is_err() {
                    drop(Object::take(client));
                }
            }
        }
    }
    let began = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match write_end(queue, id, fence, &decision).await {
            Ok(Some(true)) => {
                match &decision {
                    Decision::Finish("succeeded", _) => {
                        counters.succeeded.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(queue = %queue_name, item = id, attempt, "item succeeded");
                    }
                    Decision::Finish("dead", error) => {
                        counters.dead.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(queue = %queue_name, item = id, attempt, error = error.as_deref().unwrap_or_default(), "item dead-lettered");
                    }
                    Decision::Finish(_, _) => {
                        counters.cancelled.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(queue = %queue_name, item = id, attempt, "item cancelled");
                    }
                    Decision::Retry(error, delay) => {
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(queue = %queue_name, item = id, attempt, error = %error, retry_in = ?delay, "item failed; retrying");
                    }
                    Decision::Release => {
                        counters.released.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(queue = %queue_name, item = id, attempt, "item handed back at stop");
                    }
                }
                return;
            }
            Ok(Some(false)) => {
                // Retried, but someone asked to cancel it: it ends cancelled.
                let cancel = Decision::Finish("cancelled", None);
                Box::pin(complete(
                    queue,
                    (id, attempt, queue_name),
                    fence,
                    cancel,
                    None,
                ))
                .await;
                return;
            }
            Ok(None) => {
                stale(queue, id, attempt, queue_name);
                return;
            }
            Err(error) => {
                if began.elapsed() >= inner.options.trust_window {
                    tracing::warn!(queue = %queue_name, item = id, attempt, error = %error, "could not record the item's end; it runs again once its lease runs out");
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn stale(queue: &DurableQueue, id: i64, attempt: u32, queue_name: &str) {
    let counters = &queue.inner.worker.counters;
    counters.stale.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(queue = %queue_name, item = id, attempt, "the item's claim was no longer current (its lease ran out and it was handed out again): its completion was rejected");
}

/// The finish statement on `client`; `true` if it took.
async fn finish_in(
    client: &deadpool_postgres::ClientWrapper,
    queue: &DurableQueue,
    id: i64,
    fence: i64,
    state: &str,
    error: Option<&str>,
) -> Result<bool, String> {
    let described = |e: tokio_postgres::Error| describe(&e, &queue.inner.target);
    let finish = client
        .prepare_cached(&queue.inner.sql.finish)
        .await
        .map_err(described)?;
    client
        .query(&finish, &[&id, &fence, &state, &error])
        .await
        .map(|rows| !rows.is_empty())
        .map_err(|e| describe(&e, &queue.inner.target))
}

/// Writes `decision` on the pool: `Some(true)` done, `Some(false)` a retry
/// refused because the item was asked to be cancelled, `None` stale.
async fn write_end(
    queue: &DurableQueue,
    id: i64,
    fence: i64,
    decision: &Decision,
) -> Result<Option<bool>, String> {
    let inner = &queue.inner;
    let client = queue.client().await.map_err(|e| e.to_string())?;
    let sql = &inner.sql;
    match decision {
        Decision::Finish("succeeded", None) => {
            drop(client);
            let batcher = inner
                .worker
                .successes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let (took, answer) = oneshot::channel();
            match batcher.map(|b| b.send(Success { id, fence, took })) {
                Some(Ok(())) => {
                    let took = answer.await.map_err(|_| {
                        "the queue stopped before the completion was written".to_owned()
                    })??;
                    Ok(took.then_some(true))
                }
                _ => {
                    let client = queue.client().await.map_err(|e| e.to_string())?;
                    let took = finish_in(&client, queue, id, fence, "succeeded", None).await?;
                    Ok(took.then_some(true))
                }
            }
        }
        Decision::Finish(state, error) => {
            let took = finish_in(&client, queue, id, fence, state, error.as_deref()).await?;
            Ok(took.then_some(true))
        }
        Decision::Retry(error, delay) => {
            let retry = client
                .prepare_cached(&sql.retry)
                .await
                .map_err(|e| describe(&e, &inner.target))?;
            let rows = client
                .query(&retry, &[&id, &fence, error, &delay.as_secs_f64()])
                .await
                .map_err(|e| describe(&e, &inner.target))?;
            Ok(rows.first().map(|row| row.get::<_, bool>(0)))
        }
        Decision::Release => {
            let release = client
                .prepare_cached(&sql.release)
                .await
                .map_err(|e| describe(&e, &inner.target))?;
            let row = client
                .query_one(
                    &release,
                    &[&vec![id], &vec![fence], &inner.instance.id, &sql.channel],
                )
                .await
                .map_err(|e| describe(&e, &inner.target))?;
            Ok((row.get::<_, i64>(0) > 0).then_some(true))
        }
    }
}

/// Writes successes in batches: whatever has queued up while the previous
/// statement ran goes in the next, so that many short items cost one
/// commit per batch rather than one each, and a lone item waits for no
/// one. Ends once the queue stops and nothing is left.
async fn finish_successes(
    queue: DurableQueue,
    mut successes: mpsc::UnboundedReceiver<Success>,
    background: CancellationToken,
) {
    let inner = &queue.inner;
    let mut batch = Vec::with_capacity(SUCCESS_BATCH);
    loop {
        let got = tokio::select! {
            got = successes.recv_many(&mut batch, SUCCESS_BATCH) => got,
            () = background.cancelled() => {
                while batch.len() < SUCCESS_BATCH {
                    match successes.try_recv() {
                        Ok(success) => batch.push(success),
                        Err(_) => break,
                    }
                }
                batch.len()
            }
        };
        if got == 0 {
            return;
        }
        let (ids, fences): (Vec<i64>, Vec<i64>) = batch.iter().map(|s| (s.id, s.fence)).unzip();
        let written = match queue.client().await {
            Ok(client) => match client.prepare_cached(&inner.sql.finish_succeeded).await {
                Ok(finish) => client
                    .query(&finish, &[&ids, &fences])
                    .await
                    .map(|rows| {
                        rows.iter()
                            .map(|r| r.get::<_, i64>(0))
                            .collect::<HashSet<i64>>()
                    })
                    .map_err(|e| describe(&e, &inner.target)),
                Err(e) => Err(describe(&e, &inner.target)),
            },
            Err(error) => Err(error.to_string()),
        };
        for success in batch.drain(..) {
            let answer = match &written {
                Ok(took) => Ok(took.contains(&success.id)),
                Err(error) => Err(error.clone()),
            };
            let _ = success.took.send(answer);
        }
    }
}

/// A pseudo-random number in `[0, 1)` for an item's backoff: different per
/// item and per claim, so that items that failed together spread out.
fn random_unit(id: i64, fence: i64) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(id);
    hasher.write_i64(fence);
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

/// Renews leases, rescues items of dead instances and prunes, until the
/// queue stops.
/// The instance's upkeep: renewing its leases, rescuing expired ones, and
/// pruning the history, each on a timer and in a task of its own, so that
/// none waits behind another (a prune of thousands of finished rows on a
/// loaded server must not hold back the rescue that hands a dead
/// instance's items out, nor the renewal that keeps this one's).
async fn maintain(queue: DurableQueue, background: CancellationToken) {
    let options = queue.inner.options.clone();
    let rescue = tokio::spawn(every(
        options.rescue_every,
        background.clone(),
        queue.clone(),
        |queue| async move { rescue_lost(&queue).await },
    ));
    let prune = tokio::spawn(every(
        options.prune_every,
        background.clone(),
        queue.clone(),
        |queue| async move { prune_finished(&queue).await },
    ));
    let mut renew = tokio::time::interval(options.renew_every);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_renewed = Instant::now();
    let mut untrusted = false;
    loop {
        tokio::select! {
            () = background.cancelled() => break,
            _ = renew.tick() => {
                match renew_leases(&queue).await {
                    Ok(()) => {
                        last_renewed = Instant::now();
                        untrusted = false;
                    }
                    Err(error) if !untrusted && last_renewed.elapsed() >= options.trust_window => {
                        untrusted = true;
                        let held = queue.inner.worker.held();
                        for item in held.values() {
                            item.token.cancel();
                        }
                        tracing::warn!(items = held.len(), error = %error, "could not renew the running items' leases within the trust window; cancelled their tokens (another instance may take them over)");
                    }
                    Err(_) => {}
                }
            }
        }
    }
    let _ = tokio::join!(rescue, prune);
}

/// Runs `step` on `queue` every `period` (a late step delays the next
/// rather than bunching them) until `background` is cancelled.
async fn every<F, Fut>(
    period: Duration,
    background: CancellationToken,
    queue: DurableQueue,
    step: F,
) where
    F: Fn(DurableQueue) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = background.cancelled() => return,
            _ = timer.tick() => step(queue.clone()).await,
        }
    }
}

/// Renews every held item's lease; cancels the token of an item whose
/// claim is no longer current, and of one asked to be cancelled.
async fn renew_leases(queue: &DurableQueue) -> Result<(), String> {
    let inner = &queue.inner;
    let (ids, fences): (Vec<i64>, Vec<i64>) = inner
        .worker
        .held()
        .iter()
        .filter(|(_, held)| !held.lost)
        .map(|(id, held)| (*id, held.fence))
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    let client = queue.client().await.map_err(|e| e.to_string())?;
    let renew = client
        .prepare_cached(&inner.sql.renew)
        .await
        .map_err(|e| describe(&e, &inner.target))?;
    let rows = client
        .query(
            &renew,
            &[
                &ids,
                &fences,
                &inner.instance.id,
                &inner.options.lease.as_secs_f64(),
            ],
        )
        .await
        .map_err(|e| describe(&e, &inner.target))?;
    let renewed: HashMap<i64, bool> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut held = inner.worker.held();
    for (id, fence) in ids.iter().zip(&fences) {
        let Some(item) = held.get_mut(id) else {
            continue;
        };
        if item.fence != *fence {
            continue;
        }
        match renewed.get(id) {
            Some(true) if !item.cancel => {
                item.cancel = true;
                item.token.cancel();
                tracing::info!(item = id, "the item was cancelled; cancelled its token");
            }
            Some(_) => {}
            None => {
                item.lost = true;
                let counters = &inner.worker.counters;
                counters.lost.fetch_add(1, Ordering::Relaxed);
                item.token.cancel();
                tracing::warn!(item = id, "the item's lease was lost (it ran out and the item was handed out again); cancelled its token");
            }
        }
    }
    Ok(())
}

async fn rescue_lost(queue: &DurableQueue) {
    let inner = &queue.inner;
    let Ok(client) = queue.client().await else {
        return;
    };
    match client
        .query_one(&inner.sql.rescue, &[&RESCUE_BATCH, &inner.sql.channel])
        .await
    {
        Ok(row) => {
            let rescued = row.get::<_, i64>(0) as u64;
            let dead = row.get::<_, i64>(1) as u64;
            if rescued + dead > 0 {
                let counters = &inner.worker.counters;
                counters.rescued.fetch_add(rescued, Ordering::Relaxed);
                tracing::warn!(rescued, dead, "handed out again the items whose lease ran out (their instance died or lost the database)");
            }
        }
        Err(error) => {
            tracing::debug!(error = %describe(&error, &inner.target), "the rescue failed; it runs again");
        }
    }
}

async fn prune_finished(queue: &DurableQueue) {
    let inner = &queue.inner;
    let Ok(client) = queue.client().await else {
        return;
    };
    let keep = inner.options.retention.as_secs_f64();
    let keep_dead = inner.options.dead_retention.as_secs_f64();
    let mut pruned = 0;
    loop {
        match client
            .execute(&inner.sql.prune, &[&keep, &keep_dead, &PRUNE_BATCH])
            .await
        {
            Ok(n) => {
                pruned += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
            Err(error) => {
                tracing::debug!(error = %describe(&error, &inner.target), "pruning failed; it runs again");
                return;
            }
        }
    }
    loop {
        match client.execute(&inner.sql.prune_keys, &[&PRUNE_BATCH]).await {
            Ok(n) if n < PRUNE_BATCH as u64 => break,
            Ok(_) => {}
            Err(_) => return,
        }
    }
    if pruned > 0 {
        tracing::debug!(pruned, "pruned finished items");
    }
}

/// Listens for wake-ups on a connection of its own; after every
/// (re)connect, wakes every queue, since notifications sent while it was
/// away are lost.
async fn listen(
    queue: DurableQueue,
    config: tokio_postgres::Config,
    background: CancellationToken,
) {
    let inner = &queue.inner;
    let counters = &inner.worker.counters;
    let mut delay = Duration::from_millis(100);
    let mut announced_failure = false;
    loop {
        let connected = tokio::select! {
            connected = config.connect(NoTls) => connected,
            () = background.cancelled() => return,
        };
        match connected {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    loop {
                        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => return,
                        }
                    }
                });
                let listened = client
                    .batch_execute(&format!("LISTEN \"{}\"", inner.sql.channel))
                    .await;
                if listened.is_ok() {
                    let n = counters.listens.fetch_add(1, Ordering::Relaxed) + 1;
                    if n > 1 || announced_failure {
                        tracing::info!("the durable queue's listener is connected again");
                    }
                    announced_failure = false;
                    delay = Duration::from_millis(100);
                    // Catch up on what was enqueued while not listening.
                    inner.worker.wake_all();
                    loop {
                        tokio::select! {
                            message = rx.recv() => match message {
                                Some(name) => {
                                    counters.notifications.fetch_add(1, Ordering::Relaxed);
                                    inner.worker.wake(&name);
                                }
                                None => break,
                            },
                            () = background.cancelled() => {
                                driver.abort();
                                return;
                            }
                        }
                    }
                    tracing::warn!("the durable queue's listener lost its connection; reconnecting (idle queues poll meanwhile)");
                }
                driver.abort();
                drop(client);
            }
            Err(error) => {
                if !announced_failure {
                    announced_failure = true;
                    tracing::warn!(error = %describe(&error, &inner.target), "the durable queue's listener cannot connect; retrying (idle queues poll meanwhile)");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = background.cancelled() => return,
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}
