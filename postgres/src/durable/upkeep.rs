//! Upkeep, each duty on a task of its own: lease renewal
//! (`sql/queue/renew.sql`), the rescue of items whose lease ran out
//! (`rescue.sql`), and the prune of finished items and keys (`prune.sql`,
//! `prune_keys.sql`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::worker::{PRUNE_BATCH, RESCUE_BATCH};
use super::DurableQueue;
use crate::error::describe;

/// Renews leases, rescues items of dead instances and prunes, until the
/// queue stops.
/// The instance's upkeep: renewing its leases, rescuing expired ones, and
/// pruning the history, each on a timer and in a task of its own, so that
/// none waits behind another (a prune of thousands of finished rows on a
/// loaded server must not hold back the rescue that hands a dead
/// instance's items out, nor the renewal that keeps this one's).
pub(super) async fn maintain(queue: DurableQueue, background: CancellationToken) {
    let options = queue.inner.options.clone();
    let rescue = tokio::spawn(every(
        options.leases.rescue_every,
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
    let mut renew = tokio::time::interval(options.leases.renew_every);
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
                    Err(error) if !untrusted && last_renewed.elapsed() >= options.leases.trust_window => {
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
pub(super) async fn every<F, Fut>(
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
pub(super) async fn renew_leases(queue: &DurableQueue) -> Result<(), String> {
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
                &inner.options.leases.lease.as_secs_f64(),
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

pub(super) async fn rescue_lost(queue: &DurableQueue) {
    let inner = &queue.inner;
    let Ok(client) = queue.client().await else {
        return;
    };
    match client
        .query_one(&inner.sql.rescue, &[&RESCUE_BATCH, &inner.channel])
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

pub(super) async fn prune_finished(queue: &DurableQueue) {
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
