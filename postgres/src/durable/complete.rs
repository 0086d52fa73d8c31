//! Completion: an attempt's end written under its fence
//! (`sql/queue/finish.sql`, `retry.sql`, `release.sql`), in the handler's
//! transaction when it used one.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use deadpool_postgres::Object;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::retry::Decision;
use super::worker::Success;
use super::DurableQueue;
use crate::error::describe;
use crate::state::ItemState;

/// Writes an item's end: in its transaction when the handler used one
/// (a success commits the handler's writes with it), else on the pool. A
/// write the store rejects because the claim is no longer current is
/// counted as stale; one that cannot reach the store is tried again while
/// the lease may still hold.
pub(super) async fn complete(
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
        let failed = if let Decision::Finish(ItemState::Succeeded, None) = &decision {
            match finish_in(&client, queue, id, fence, ItemState::Succeeded, None).await {
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
                    Decision::Finish(ItemState::Succeeded, _) => {
                        counters.succeeded.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(queue = %queue_name, item = id, attempt, "item succeeded");
                    }
                    Decision::Finish(ItemState::Dead, error) => {
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
                let cancel = Decision::Finish(ItemState::Cancelled, None);
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
                if began.elapsed() >= inner.options.leases.trust_window {
                    tracing::warn!(queue = %queue_name, item = id, attempt, error = %error, "could not record the item's end; it runs again once its lease runs out");
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

pub(super) fn stale(queue: &DurableQueue, id: i64, attempt: u32, queue_name: &str) {
    let counters = &queue.inner.worker.counters;
    counters.stale.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(queue = %queue_name, item = id, attempt, "the item's claim was no longer current (its lease ran out and it was handed out again): its completion was rejected");
}

/// The finish statement on `client`; `true` if it took.
pub(super) async fn finish_in(
    client: &deadpool_postgres::ClientWrapper,
    queue: &DurableQueue,
    id: i64,
    fence: i64,
    state: ItemState,
    error: Option<&str>,
) -> Result<bool, String> {
    let described = |e: tokio_postgres::Error| describe(&e, &queue.inner.target);
    let finish = client
        .prepare_cached(&queue.inner.sql.finish)
        .await
        .map_err(described)?;
    client
        .query(&finish, &[&id, &fence, &state.as_str(), &error])
        .await
        .map(|rows| !rows.is_empty())
        .map_err(|e| describe(&e, &queue.inner.target))
}

/// Writes `decision` on the pool: `Some(true)` done, `Some(false)` a retry
/// refused because the item was asked to be cancelled, `None` stale.
pub(super) async fn write_end(
    queue: &DurableQueue,
    id: i64,
    fence: i64,
    decision: &Decision,
) -> Result<Option<bool>, String> {
    let inner = &queue.inner;
    let client = queue.client().await.map_err(|e| e.to_string())?;
    let sql = &inner.sql;
    match decision {
        Decision::Finish(ItemState::Succeeded, None) => {
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
                    let took =
                        finish_in(&client, queue, id, fence, ItemState::Succeeded, None).await?;
                    Ok(took.then_some(true))
                }
            }
        }
        Decision::Finish(state, error) => {
            let took = finish_in(&client, queue, id, fence, *state, error.as_deref()).await?;
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
                    &[&vec![id], &vec![fence], &inner.instance.id, &inner.channel],
                )
                .await
                .map_err(|e| describe(&e, &inner.target))?;
            Ok((row.get::<_, i64>(0) > 0).then_some(true))
        }
    }
}
