//! The durable queue's counters through the `metrics` facade (feature
//! `metrics`), published every second from [`DurableStats`] and once more
//! at stop, and its items by state and lag as gauges every 15 s; the names
//! are in the crate's documentation, section "Metrics".

use std::time::Duration;

use metrics::{describe_counter, Unit};
use tokio_util::sync::CancellationToken;

use super::{DurableQueue, DurableStats};
use crate::telemetry::every_second;

/// How often each instance reads the durable queues' items by state and
/// their lag (`DurableQueue::estimated_counts`: a statement over the live
/// table and one over the dead letters) for their gauges: once a scrape
/// interval, not once a second.
const COUNTS_EVERY: Duration = Duration::from_secs(15);

/// Tables larger than this are sampled for the gauges, not counted.
const EXACT_BELOW: u64 = 100_000;

/// Publishes `queue`'s counters, and its queues' items by state and lag,
/// until `stop` fires.
pub(crate) async fn durable(queue: DurableQueue, stop: CancellationToken) {
    describe_durable();
    let counters = every_second(stop.clone(), || publish_durable(&queue.stats()));
    tokio::join!(counters, counts(&queue, stop));
}

/// Reads the queues' counts every [`COUNTS_EVERY`] (the first at once) and
/// sets their gauges; a read that fails or takes longer than that leaves
/// the last values.
async fn counts(queue: &DurableQueue, stop: CancellationToken) {
    let mut every = tokio::time::interval(COUNTS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let read = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            read = tokio::time::timeout(COUNTS_EVERY, queue.estimated_counts(EXACT_BELOW)) => read,
        };
        match read {
            Ok(Ok(counts)) => {
                for c in &counts {
                    let items = |state: &'static str, value: u64| {
                        metrics::gauge!("hosted_durable_queue_items", "queue" => c.queue.clone(), "state" => state)
                            .set(value as f64);
                    };
                    items("due", c.due);
                    items("scheduled", c.scheduled);
                    items("running", c.running);
                    items("retrying", c.retrying);
                    items("dead", c.dead);
                    metrics::gauge!("hosted_durable_queue_lag_seconds", "queue" => c.queue.clone())
                        .set(c.lag.as_secs_f64());
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "could not read the durable queues' counts for their gauges")
            }
            Err(_) => {
                tracing::debug!("the durable queues' counts took longer than {COUNTS_EVERY:?}")
            }
        }
    }
}

pub(crate) fn publish_durable(stats: &DurableStats) {
    let items = |outcome: &'static str, value: u64| {
        metrics::counter!("hosted_durable_items_total", "outcome" => outcome).absolute(value);
    };
    items("succeeded", stats.succeeded);
    items("retried", stats.retried);
    items("dead", stats.dead);
    items("cancelled", stats.cancelled);
    items("released", stats.released);
    metrics::counter!("hosted_durable_enqueued_total").absolute(stats.enqueued);
    metrics::counter!("hosted_durable_duplicates_total").absolute(stats.duplicates);
    metrics::counter!("hosted_durable_claimed_total").absolute(stats.claimed);
    metrics::counter!("hosted_durable_rescued_total").absolute(stats.rescued);
    metrics::counter!("hosted_durable_stale_completions_total").absolute(stats.stale);
    metrics::counter!("hosted_durable_leases_lost_total").absolute(stats.lost);
    metrics::counter!("hosted_durable_outages_total").absolute(stats.outages);
}

fn describe_durable() {
    metrics::describe_gauge!(
        "hosted_durable_queue_items",
        Unit::Count,
        "Items of a durable queue by state (due, scheduled, running, retrying, dead), read every 15 s"
    );
    metrics::describe_gauge!(
        "hosted_durable_queue_lag_seconds",
        Unit::Seconds,
        "How long the oldest due item of a durable queue has waited, read every 15 s"
    );
    describe_counter!(
        "hosted_durable_items_total",
        Unit::Count,
        "Attempts of durable items this instance ended, by outcome: succeeded, retried, dead, cancelled, released (handed back at stop)"
    );
    describe_counter!(
        "hosted_durable_enqueued_total",
        Unit::Count,
        "Items enqueued through this instance"
    );
    describe_counter!(
        "hosted_durable_duplicates_total",
        Unit::Count,
        "Enqueues that found their key held and added nothing"
    );
    describe_counter!(
        "hosted_durable_claimed_total",
        Unit::Count,
        "Items this instance claimed"
    );
    describe_counter!(
        "hosted_durable_rescued_total",
        Unit::Count,
        "Items whose lease had run out that this instance's rescue handed out again"
    );
    describe_counter!(
        "hosted_durable_stale_completions_total",
        Unit::Count,
        "Ends of attempts the store rejected because their fence was no longer current"
    );
    describe_counter!(
        "hosted_durable_leases_lost_total",
        Unit::Count,
        "Items whose lease this instance lost while they ran"
    );
    describe_counter!(
        "hosted_durable_outages_total",
        Unit::Count,
        "Times the store stopped answering"
    );
}
