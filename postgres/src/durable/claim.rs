//! Claims: a loop per queue that claims what its free workers can take
//! (`sql/queue/claim.sql`), waits for a wake-up or the next due item when
//! there is none, and runs each claimed item with its handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Object;
use hosted::work::{HandlerOptions, ItemParts, WorkHost, WorkItem};
use hosted::Outcome;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::args::ItemData;
use super::complete::complete;
use super::retry::{decide, random_unit};
use super::worker::{Claimed, Held, QueueHandlers, CONTENDED, GATHER, MAX_BACKOFF};
use super::DurableQueue;
use crate::error::describe;

impl DurableQueue {
    /// Claims up to `room` items of `queue`; with a cluster-wide limit,
    /// under the queue's row lock, counting what runs anywhere.
    pub(super) async fn claim(
        &self,
        queue: &str,
        handlers: &[String],
        room: usize,
        cluster: Option<u32>,
    ) -> Result<Vec<Claimed>, String> {
        let inner = &self.inner;
        let sql = &inner.sql;
        let lease = inner.options.leases.lease.as_secs_f64();
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
    pub(super) async fn next_due(&self, queue: &str) -> Option<f64> {
        let client = self.client().await.ok()?;
        let next_due = client.prepare_cached(&self.inner.sql.next_due).await.ok()?;
        let row = client.query_one(&next_due, &[&queue]).await.ok()?;
        row.get(0)
    }
}

/// Claims and starts the items of one queue until the host stops: as many
/// as there is room for, then waits for a wake-up, the next due item, a
/// freed slot, or the fallback poll.
pub(super) async fn claim_loop(
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
                    Some(secs) => Duration::from_secs_f64(secs).min(options.leases.poll_every),
                    None => options.leases.poll_every,
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
                    .min(options.leases.poll_every.max(Duration::from_millis(100)));
            }
        }
    }
}

/// Runs one claimed item with its handler, then completes it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_claimed(
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
    let decision = decide(
        &outcome,
        (attempt, item.max_attempts()),
        cancel_asked,
        unreadable,
        &options,
        random_unit(claimed.id, claimed.fence),
    );
    let fields = (claimed.id, attempt, &queue_name);
    complete(&queue, fields, claimed.fence, decision, tx.take().await).await;
    inner.worker.held().remove(&claimed.id);
    done();
}
